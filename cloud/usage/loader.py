"""Load what each account used in one billing period, in bulk, as the rating core reads it.

For every account of a run: the bindings overlapping its period (a calendar month in its own time
zone), the bound devices' events with `occurred_at` in the period AND inside the binding (an event
is bound by `occurred_at`), and the current sessions of those devices clipped to period ∩ binding
(a still-open session is clipped at min(as_of, end)). Usage with no binding is not loaded: the
catalog's unbilled report lists it.

A handful of Core queries per call (bindings, devices, events, sessions; device lists in chunks),
grouping in Python, no ORM object per event: an invoice run calls this once per chunk of accounts.

Also the catalog an invoice freezes (`rated_catalogs`: each bound device's profile and each
profile's session rule, as rated) and the lookups by id that read a frozen line back
(`sessions_by_id`, `events_by_key`, `whole_piece`; `cloud.invoices.frozen_usage` owns the
invoice's tables). This package sits below invoices and analytics (layer 7): it reads catalog,
ingest and sessions tables and never an invoice's.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.combined_rules import combined_rules, freeze_combined_rules
from cloud.catalog.models import Binding, Device, DeviceProfile
from cloud.domain import BillableEvent, CloseReason, EventKey, SessionPiece
from cloud.ingest.models import StoredEvent
from cloud.rating.metrics import clip_piece
from cloud.rating.periods import Period, month_period
from cloud.rating.rating import AccountUsage
from cloud.sessions.models import SessionRow

IN_CHUNK = 1000  # device ids per IN (...) list: well under every backend's parameter limit
KEY_CHUNK = 500  # (gateway_id, seq) pairs per IN list
CATALOG_LOOKBACK = timedelta(days=31 * 12 + 1)
"""How far before its period an invoice's catalog reaches: the 12 periods its adjustments may
correct (`cloud.invoices.adjustments.LOOKBACK_PERIODS`), a day more for time zones."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SESSION_COLUMNS = (
    SessionRow.id,
    SessionRow.device_id,
    SessionRow.channel,
    SessionRow.name,
    SessionRow.started_at,
    SessionRow.ended_at,
    SessionRow.close_reason,
)
RULE_COLUMNS = (DeviceProfile.start_on, DeviceProfile.end_on, DeviceProfile.timeout_seconds)


# The columns of a BillableEvent, in its field order (attrs.report: a status report is no usage).
BILLABLE_EVENT_COLUMNS = (
    StoredEvent.gateway_id,
    StoredEvent.seq,
    StoredEvent.device_id,
    StoredEvent.channel,
    StoredEvent.name,
    StoredEvent.kind,
    StoredEvent.quantity,
    StoredEvent.unit,
    StoredEvent.occurred_at,
    StoredEvent.attrs["report"].as_string(),
)


class BillingAccount(Protocol):
    """What the loader needs of an account (an `Account` row or any value with these)."""

    @property
    def id(self) -> str:
        """The account id."""
        ...

    @property
    def time_zone(self) -> str:
        """The IANA time zone its billing months are calendar months in."""
        ...


@dataclass(frozen=True, slots=True)
class BoundInterval:
    """A device billed to an account over [start, end): one binding clipped to the period."""

    account_id: str
    start: datetime
    end: datetime


async def plan_for_parameters(session: AsyncSession) -> None:
    """PostgreSQL: plan this transaction's queries for their parameters.

    asyncpg keeps each connection's statements prepared; from a statement's sixth execution on,
    PostgreSQL may switch to a generic plan, and for this loader's `device_id IN (1000 ids) AND
    occurred_at` range that plan took 35 s instead of 1.6 s (2,000 accounts, 200,000 events:
    bench/thresholds.py). Invoice runs in a long-lived `serve`, the threshold job and analytics
    repeat the same statements, so every load plans its own.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


async def load_period_usage(
    *,
    session: AsyncSession,
    accounts: Sequence[BillingAccount],
    period_label: str,
    as_of: datetime,
) -> dict[str, tuple[Period, AccountUsage]]:
    """Each account's period and usage for the month `period_label` ("2026-11").

    Every account of `accounts` is in the result (with empty usage when nothing was bound).
    `profile_of` maps every device bound to any of the accounts to its profile id.
    A bad label or time zone raises `InvalidBillingInput`.
    """
    periods = {account.id: month_period(period_label, account.time_zone) for account in accounts}
    if not periods:
        return {}
    await plan_for_parameters(session)
    intervals = await _bound_intervals(session=session, periods=periods)
    start = min(period.start for period in periods.values())
    end = max(period.end for period in periods.values())
    devices = sorted(intervals)
    profile_of = await _profiles(session=session, device_ids=devices)
    events = await _bound_events(
        session=session, intervals=intervals, device_ids=devices, start=start, end=end
    )
    pieces = await _bound_pieces(
        session=session,
        intervals=intervals,
        device_ids=devices,
        start=start,
        end=end,
        as_of=as_of,
        profile_of=profile_of,
    )
    rules = await combined_rules(session=session)
    site_of = await _sites(session=session, device_ids=devices) if rules else {}
    return {
        account_id: (
            period,
            AccountUsage(
                pieces=pieces.get(account_id, []),
                events=events.get(account_id, []),
                profile_of=profile_of,
                combined=rules,
                site_of=site_of,
            ),
        )
        for account_id, period in periods.items()
    }


def chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    """`items` in slices of `IN_CHUNK`: each IN (...) list stays under every backend's limit."""
    for index in range(0, len(items), IN_CHUNK):
        yield items[index : index + IN_CHUNK]


async def _bound_intervals(
    *, session: AsyncSession, periods: dict[str, Period]
) -> dict[str, list[BoundInterval]]:
    """device_id -> the intervals it is billed to one of the accounts, clipped to their period."""
    start = min(period.start for period in periods.values())
    end = max(period.end for period in periods.values())
    intervals: dict[str, list[BoundInterval]] = defaultdict(list)
    for account_ids in chunks(sorted(periods)):
        query = select(
            Binding.device_id, Binding.account_id, Binding.valid_from, Binding.valid_to
        ).where(
            Binding.account_id.in_(account_ids),
            Binding.valid_from < end,
            or_(Binding.valid_to.is_(None), Binding.valid_to > start),
        )
        for device_id, account_id, valid_from, valid_to in (await session.execute(query)).all():
            period = periods[account_id]
            lo = max(valid_from, period.start)
            hi = period.end if valid_to is None else min(valid_to, period.end)
            if lo < hi:
                intervals[device_id].append(BoundInterval(account_id, lo, hi))
    return dict(intervals)


async def _profiles(*, session: AsyncSession, device_ids: Sequence[str]) -> dict[str, str]:
    profile_of: dict[str, str] = {}
    for chunk in chunks(device_ids):
        query = select(Device.id, Device.profile_id).where(Device.id.in_(chunk))
        profile_of.update((await session.execute(query)).all())
    return profile_of


async def _sites(*, session: AsyncSession, device_ids: Sequence[str]) -> dict[str, str | None]:
    """device_id -> its site (a combined rule of scope site combines per site)."""
    site_of: dict[str, str | None] = {}
    for chunk in chunks(device_ids):
        query = select(Device.id, Device.site_id).where(Device.id.in_(chunk))
        site_of.update((await session.execute(query)).all())
    return site_of


async def _bound_events(
    *,
    session: AsyncSession,
    intervals: dict[str, list[BoundInterval]],
    device_ids: Sequence[str],
    start: datetime,
    end: datetime,
) -> dict[str, list[BillableEvent]]:
    """account_id -> its bound events, in the total order."""
    events: dict[str, list[BillableEvent]] = defaultdict(list)
    columns = BILLABLE_EVENT_COLUMNS
    for chunk in chunks(device_ids):
        query = select(*columns).where(
            StoredEvent.device_id.in_(chunk),
            StoredEvent.occurred_at >= start,
            StoredEvent.occurred_at < end,
        )
        for row in await session.execute(query):
            occurred_at = row[8]
            for interval in intervals[row[2]]:
                if interval.start <= occurred_at < interval.end:
                    events[interval.account_id].append(BillableEvent(*row))
                    break
    for account_events in events.values():
        account_events.sort(key=event_order)
    return events


def event_order(event: BillableEvent) -> tuple[datetime, str, int]:
    """The total order of events (occurred_at, gateway, seq): what rating reads them in."""
    return event.order


async def _bound_pieces(
    *,
    session: AsyncSession,
    intervals: dict[str, list[BoundInterval]],
    device_ids: Sequence[str],
    start: datetime,
    end: datetime,
    as_of: datetime,
    profile_of: dict[str, str],
) -> dict[str, list[SessionPiece]]:
    """account_id -> the current sessions' pieces inside its bindings and period."""
    pieces: dict[str, list[SessionPiece]] = defaultdict(list)
    for chunk in chunks(device_ids):
        query = select(*SESSION_COLUMNS).where(
            SessionRow.current.is_(True),
            SessionRow.device_id.in_(chunk),
            SessionRow.started_at < end,
            or_(SessionRow.ended_at.is_(None), and_(SessionRow.ended_at >= start)),
        )
        for row in await session.execute(query):
            whole = whole_piece(row, profile=profile_of.get(row[1], ""), as_of=as_of)
            for interval in intervals[row[1]]:
                piece = clip_piece(whole, interval.start, interval.end)
                if piece is not None:
                    pieces[interval.account_id].append(piece)
    for account_pieces in pieces.values():
        account_pieces.sort(key=piece_order)
    return pieces


def whole_piece(
    row: tuple[int, str, str, str, datetime, datetime | None, str], *, profile: str, as_of: datetime
) -> SessionPiece:
    """The whole session as one piece; a still-open one lasts until `as_of`."""
    session_id, device_id, channel, name, started_at, ended_at, reason = row
    stop = ended_at if ended_at is not None else max(started_at, as_of)
    return SessionPiece(
        session_id=session_id,
        device_id=device_id,
        channel=channel or None,
        name=name,
        profile=profile,
        started_at=started_at,
        ended_at=ended_at,
        close_reason=CloseReason(reason),
        piece_start=started_at,
        piece_end=stop,
        is_start=True,
    )


def piece_order(piece: SessionPiece) -> tuple[datetime, int]:
    """Pieces by start, then session id: a stable order for rating and evidence."""
    return (piece.piece_start, piece.session_id)


# --- what an invoice freezes and reads back ----------------------------------------------------


async def rated_catalogs(
    *, session: AsyncSession, periods: Sequence[tuple[str, Period]]
) -> dict[str, dict[str, Any]]:
    """account_id -> the catalog its invoice of `period` is rated with, to freeze on it.

    `{"devices": {device_id: profile_id}, "profiles": {profile_id: rule}}` over every device
    bound to the account from `CATALOG_LOOKBACK` before the period to its end (its lines and
    the adjustments' lines), a rule being `{"start_on", "end_on", "timeout_seconds"}`.
    """
    catalogs: dict[str, dict[str, Any]] = {
        account_id: {"devices": {}, "profiles": {}} for account_id, _ in periods
    }
    if not periods:
        return catalogs
    start = min(period.start for _, period in periods) - CATALOG_LOOKBACK
    end = max(period.end for _, period in periods)
    columns = (Binding.account_id, Device.id, DeviceProfile.id, *RULE_COLUMNS, Device.site_id)
    sites: dict[str, dict[str, str | None]] = {}
    for account_ids in chunks(sorted(catalogs)):
        query = (
            select(*columns)
            .join(Device, Device.id == Binding.device_id)
            .join(DeviceProfile, DeviceProfile.id == Device.profile_id)
            .where(
                Binding.account_id.in_(account_ids),
                Binding.valid_from < end,
                or_(Binding.valid_to.is_(None), Binding.valid_to > start),
            )
        )
        for (
            account_id,
            device_id,
            profile_id,
            start_on,
            end_on,
            timeout,
            site,
        ) in await session.execute(query):
            catalog = catalogs[account_id]
            catalog["devices"][device_id] = profile_id
            catalog["profiles"][profile_id] = frozen_rule(start_on, end_on, timeout)
            sites.setdefault(account_id, {})[device_id] = site
    await freeze_combined_rules(session=session, catalogs=catalogs, sites=sites)
    return catalogs


def frozen_rule(
    start_on: Sequence[str], end_on: Sequence[str], timeout_seconds: int | None
) -> dict[str, Any]:
    """A profile's session rule as an invoice freezes it (and its evidence shows it)."""
    return {
        "start_on": sorted(start_on),
        "end_on": sorted(end_on),
        "timeout_seconds": timeout_seconds,
    }


SessionTuple = tuple[int, str, str, str, datetime, datetime | None, str]


async def sessions_by_id(*, session: AsyncSession, ids: Sequence[int]) -> dict[int, SessionTuple]:
    """Stored sessions by id (current or not: an invoice names the one it was rated from)."""
    found: dict[int, SessionTuple] = {}
    for index in range(0, len(ids), IN_CHUNK):
        query = select(*SESSION_COLUMNS).where(SessionRow.id.in_(ids[index : index + IN_CHUNK]))
        for id_, device_id, channel, name, started_at, ended_at, reason in await session.execute(
            query
        ):
            found[id_] = (id_, device_id, channel, name, started_at, ended_at, reason)
    return found


async def events_by_key(
    *, session: AsyncSession, keys: Sequence[EventKey]
) -> dict[EventKey, BillableEvent]:
    """Stored events by (gateway_id, seq), as BillableEvents."""
    columns = BILLABLE_EVENT_COLUMNS
    found: dict[EventKey, BillableEvent] = {}
    position = tuple_(StoredEvent.gateway_id, StoredEvent.seq)
    for index in range(0, len(keys), KEY_CHUNK):
        query = select(*columns).where(position.in_(keys[index : index + KEY_CHUNK]))
        for row in await session.execute(query):
            event = BillableEvent(*row)
            found[(event.gateway_id, event.seq)] = event
    return found
