"""Combined session rules: billable sessions merged from several devices' sessions (catalog).

A combined rule is a profile kind: creating one also creates a device profile with the same id
and no `start_on` (no device's events form sessions under it), so the rule id is a profile id
wherever one is named. A session metric with `profiles = [rule id]` then measures the rule's
combined sessions (`cloud.rating.combine`), and the profile table keeps rule ids and profile
ids in one namespace. Rules are append-only, like plan versions: an invoice names the member
pieces it used and freezes the rule it was rated under.

Members are existing profiles (not combined rules), each with an optional channel filter; the
whole rule is checked before anything is written, so a refused rule leaves nothing behind.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from cloud.catalog.checks import check_labels, check_name, check_slug
from cloud.catalog.models import DeviceProfile
from cloud.catalog.store import insert_new
from cloud.db import Base, UtcDateTime
from cloud.errors import AlreadyExists, InvalidBillingInput, ProfileNotFound
from cloud.rating.combine import (
    MAX_MEMBERS,
    CombinedMember,
    CombinedRule,
    CombineMode,
    CombineScope,
    check_rule,
)

MAX_CHANNELS = 32


class CombinedSessionRule(Base):
    """A combined session rule; its id is also a (session-less) device profile's id."""

    __tablename__ = "combined_session_rules"

    id: Mapped[str] = mapped_column(ForeignKey("device_profiles.id"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # site | account
    combine: Mapped[str] = mapped_column(String(16))  # union | intersection
    # [{"profile": id, "channels": [..]}] in the order given (intersection groups).
    members: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


def build_rule(
    *, rule_id: str, scope: str, combine: str, members: Sequence[tuple[str, Sequence[str]]]
) -> CombinedRule:
    """A checked rule from plain values; `InvalidBillingInput` naming what is wrong."""
    if len(members) > MAX_MEMBERS:
        raise InvalidBillingInput(
            f"combined rule {rule_id!r}: at most {MAX_MEMBERS} members",
            detail={"field": "members"},
        )
    rule = CombinedRule(
        id=check_slug("combined rule", rule_id),
        scope=_choice(CombineScope, scope, "scope"),
        combine=_choice(CombineMode, combine, "combine"),
        members=tuple(_member(profile, channels) for profile, channels in members),
    )
    check_rule(rule)
    return rule


def _member(profile: str, channels: Sequence[str]) -> CombinedMember:
    if len(channels) > MAX_CHANNELS:
        raise InvalidBillingInput(
            f"member {profile!r}: at most {MAX_CHANNELS} channels", detail={"field": "channels"}
        )
    return CombinedMember(
        profile=check_slug("profile", profile),
        channels=frozenset(check_labels(channels, field="channels")),
    )


def _choice(kind: type[CombineScope] | type[CombineMode], value: str, field: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidBillingInput(
            f"invalid {field} {value!r}: one of {allowed}", detail={"field": field, "value": value}
        ) from None


async def create_combined_rule(
    *,
    session: AsyncSession,
    rule_id: str,
    name: str,
    scope: str,
    combine: str,
    members: Sequence[tuple[str, Sequence[str]]],
) -> CombinedSessionRule:
    """Create the rule and its profile; unknown or combined member profiles are refused."""
    rule = build_rule(rule_id=rule_id, scope=scope, combine=combine, members=members)
    checked_name = check_name(name)
    await _require_members(session, rule)
    now = datetime.now(UTC)
    profile = DeviceProfile(
        id=rule.id, name=checked_name, start_on=[], end_on=[], timeout_seconds=None, created_at=now
    )
    await insert_new(session, profile, what="profile", key=rule.id)
    row = CombinedSessionRule(
        id=rule.id,
        scope=rule.scope.value,
        combine=rule.combine.value,
        members=[member_document(m) for m in rule.members],
        created_at=now,
    )
    return await insert_new(session, row, what="combined rule", key=rule.id)


async def _require_members(session: AsyncSession, rule: CombinedRule) -> None:
    """Every member is an existing profile and none is itself a combined rule."""
    wanted = sorted({m.profile for m in rule.members})
    known = set(await session.scalars(select(DeviceProfile.id).where(DeviceProfile.id.in_(wanted))))
    missing = [p for p in wanted if p not in known]
    if missing:
        raise ProfileNotFound(
            f"combined rule {rule.id!r}: unknown member profile(s) {', '.join(missing)}",
            detail={"combined_rule": rule.id, "profiles": missing},
        )
    nested = sorted(
        await session.scalars(
            select(CombinedSessionRule.id).where(CombinedSessionRule.id.in_(wanted))
        )
    )
    if nested:
        raise InvalidBillingInput(
            f"combined rule {rule.id!r}: member(s) {', '.join(nested)} are combined rules",
            detail={"combined_rule": rule.id, "profiles": nested},
        )


def member_document(member: CombinedMember) -> dict[str, Any]:
    """A member as stored and shown: {"profile", "channels"} (sorted channels)."""
    return {"profile": member.profile, "channels": sorted(member.channels)}


def rule_document(row: CombinedSessionRule) -> dict[str, Any]:
    """A rule as an invoice freezes it and its evidence shows it."""
    return {"scope": row.scope, "combine": row.combine, "members": list(row.members)}


def rule_from_document(
    id: str, scope: str, combine: str, members: Sequence[dict[str, Any]]
) -> CombinedRule:
    """The domain value of a stored, frozen or evidence rule document (ValueError if bad)."""
    return CombinedRule(
        id=str(id),
        scope=CombineScope(scope),
        combine=CombineMode(combine),
        members=tuple(
            CombinedMember(str(m["profile"]), frozenset(m.get("channels", []))) for m in members
        ),
    )


async def get_combined_rule(*, session: AsyncSession, rule_id: str) -> CombinedSessionRule:
    """The rule; `ProfileNotFound` (a rule id is a profile id) otherwise."""
    row = await session.get(CombinedSessionRule, rule_id)
    if row is None:
        raise ProfileNotFound(f"no combined rule {rule_id!r}", detail={"id": rule_id})
    return row


async def list_combined_rules(*, session: AsyncSession) -> list[CombinedSessionRule]:
    """Every rule, in id order."""
    query = select(CombinedSessionRule).order_by(CombinedSessionRule.id)
    return list(await session.scalars(query))


async def combined_rules(
    *, session: AsyncSession, ids: Iterable[str] | None = None
) -> dict[str, CombinedRule]:
    """Rules by id as domain values (all, or those of `ids`)."""
    query = select(CombinedSessionRule)
    if ids is not None:
        query = query.where(CombinedSessionRule.id.in_(sorted(set(ids))))
    return {
        row.id: rule_from_document(row.id, **rule_document(row))
        for row in await session.scalars(query)
    }


async def freeze_combined_rules(
    *,
    session: AsyncSession,
    catalogs: dict[str, dict[str, Any]],
    sites: dict[str, dict[str, str | None]],
) -> None:
    """Add to each invoice's frozen catalog every combined rule and its devices' sites.

    Nothing is added while no rule exists, so invoices of a catalog without combined rules
    freeze what they always froze.
    """
    rows = await list_combined_rules(session=session)
    if not rows:
        return
    documents = {row.id: rule_document(row) for row in rows}
    for account_id, catalog in catalogs.items():
        catalog["combined"] = documents
        catalog["sites"] = dict(sorted(sites.get(account_id, {}).items()))


class CombinedMemberDecl(BaseModel):
    """A member of a `[[combined_rules]]` entry: a profile and, optionally, its channels."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field(
        description="an existing device profile's id (not a combined rule); its devices' "
        "sessions are combined"
    )
    channels: list[str] = Field(
        default_factory=list,
        max_length=MAX_CHANNELS,
        description="only these channels' sessions; empty or omitted: every channel",
    )


class CombinedRuleDecl(BaseModel):
    """A `[[combined_rules]]` entry of a catalog file (`cloud.catalog.loader`): one billable
    session per site or account combined from several devices' sessions."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="the rule's id, also a device profile's id: a session metric names it in "
        "`profiles` (as its only profile)"
    )
    name: str = Field(description="shown on invoices (the rule's profile's name)")
    scope: CombineScope = Field(
        description="`site`: the account's bound devices of one site together (devices "
        "without a site are in no group); `account`: all its bound devices together"
    )
    combine: CombineMode = Field(
        description="`union`: while ANY member has a session; `intersection`: while EACH "
        "member (group) has one (at least two members)"
    )
    members: list[CombinedMemberDecl] = Field(
        max_length=MAX_MEMBERS, description="the member profiles, each listed once"
    )

    def member_pairs(self) -> list[tuple[str, list[str]]]:
        """The members as `create_combined_rule` takes them."""
        return [(member.profile, member.channels) for member in self.members]


async def apply_combined_rule(*, session: AsyncSession, decl: CombinedRuleDecl) -> bool:
    """Create the declared rule (True), or leave an identical one (False); a stored rule of that
    id with another name, scope, combine or members is `AlreadyExists` naming it and the fields
    (rules never change: an invoice froze the rule it was rated under; declare a new rule)."""
    stored = await session.get(CombinedSessionRule, decl.id)
    if stored is None:
        await create_combined_rule(
            session=session,
            rule_id=decl.id,
            name=decl.name,
            scope=decl.scope.value,
            combine=decl.combine.value,
            members=decl.member_pairs(),
        )
        return True
    rule = build_rule(
        rule_id=decl.id,
        scope=decl.scope.value,
        combine=decl.combine.value,
        members=decl.member_pairs(),
    )
    profile = await session.get(DeviceProfile, decl.id)
    old = {"name": profile.name if profile else None, **rule_document(stored)}
    new = {
        "name": check_name(decl.name),
        "scope": rule.scope.value,
        "combine": rule.combine.value,
        "members": [member_document(m) for m in rule.members],
    }
    changed = [name for name in new if old[name] != new[name]]
    if changed:
        listed = "; ".join(f"{name}: {old[name]!r} -> {new[name]!r}" for name in changed)
        raise AlreadyExists(
            f"combined rule {decl.id!r} already exists with other values ({listed}): a "
            "combined rule never changes, declare a new rule (and a metric naming it)",
            detail={"combined_rule": decl.id, "fields": changed},
        )
    return False
