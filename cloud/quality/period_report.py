"""Per account, the data-quality incidents of a billing period that touch its billed devices:
what an invoice run reports beside its drafts ("2 devices silent, 1 counter reset").

One query over the incidents table joined to the bindings: device incidents (gateway-wide ones
touch no account) seen during the period's window, of devices bound to the account at some time
in the period, whatever their state now. The window is the period (the account's calendar month)
and its grace, up to the run's `now`: late arrivals and seq gaps of the period are usually seen
after its end, before the draft is finalized. Each kind reports its distinct devices and its
occurrences (the sum of the incidents' counts).

Invoices (layer 9) call this; quality never imports invoices.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.models import Binding
from cloud.incidents.models import Incident
from cloud.rating.periods import Period, month_period

CHUNK = 500  # account ids per IN (...)

# How a kind reads after a device count: (one, many).
_PHRASES = {
    "silent_device": ("device silent", "devices silent"),
    "counter_reset": ("counter reset", "counter resets"),
    "counter_wrap": ("counter wrap", "counter wraps"),
    "clock_skew": ("device with clock skew", "devices with clock skew"),
    "late_arrival": ("device with late events", "devices with late events"),
    "low_battery": ("device low on battery", "devices low on battery"),
    "unbound_usage": ("device with unbound usage", "devices with unbound usage"),
    "unbilled_usage": ("device with usage no metric bills", "devices with usage no metric bills"),
}


class KindTally(BaseModel):
    """One kind's incidents for an account: how many devices, how many occurrences."""

    model_config = ConfigDict(frozen=True)

    devices: int
    occurrences: int


class AccountQuality(BaseModel):
    """An account's incidents of the period, by kind, and the sentence that says it."""

    model_config = ConfigDict(frozen=True)

    summary: str
    kinds: dict[str, KindTally]


async def period_report(
    *,
    session: AsyncSession,
    label: str,
    accounts: Sequence[tuple[str, str]],
    now: datetime,
    grace: timedelta,
) -> dict[str, AccountQuality]:
    """The period `label`'s incidents per account (`(id, time_zone)` pairs); accounts with none
    are left out."""
    if not accounts:
        return {}
    periods = {account_id: month_period(label, zone) for account_id, zone in accounts}
    low = min(period.start for period in periods.values())
    high = min(now, max(period.end for period in periods.values()) + grace)
    if high <= low:
        return {}
    devices: dict[str, dict[str, set[str]]] = {}
    occurrences: dict[str, dict[str, int]] = {}
    ids = sorted(periods)
    for start in range(0, len(ids), CHUNK):
        rows = await session.execute(_query(ids[start : start + CHUNK], low, high))
        seen: set[tuple[str, int]] = set()
        for (
            account_id,
            incident_id,
            kind,
            device_id,
            count,
            first,
            last,
            bound_from,
            bound_to,
        ) in rows:
            period = periods[account_id]
            if not _touches(period, now, grace, first, last, bound_from, bound_to):
                continue
            if device_id is None or (account_id, incident_id) in seen:  # two bindings, one device
                continue
            seen.add((account_id, incident_id))
            devices.setdefault(account_id, {}).setdefault(kind, set()).add(device_id)
            tally = occurrences.setdefault(account_id, {})
            tally[kind] = tally.get(kind, 0) + count
    return {
        account_id: _account(by_kind, occurrences[account_id])
        for account_id, by_kind in sorted(devices.items())
    }


def _query(
    account_ids: list[str], low: datetime, high: datetime
) -> Select[str, int, str, str | None, int, datetime, datetime, datetime, datetime | None]:
    return (
        select(
            Binding.account_id,
            Incident.id,
            Incident.kind,
            Incident.device_id,
            Incident.count,
            Incident.first_seen,
            Incident.last_seen,
            Binding.valid_from,
            Binding.valid_to,
        )
        .join(Binding, Binding.device_id == Incident.device_id)
        .where(
            Binding.account_id.in_(account_ids),
            Incident.device_id.is_not(None),
            Incident.first_seen < high,
            Incident.last_seen >= low,
            Binding.valid_from < high,
            or_(Binding.valid_to.is_(None), Binding.valid_to > low),
        )
        .order_by(Binding.account_id, Incident.id)
    )


def _touches(
    period: Period,
    now: datetime,
    grace: timedelta,
    first: datetime,
    last: datetime,
    bound_from: datetime,
    bound_to: datetime | None,
) -> bool:
    """Seen in the account's window, of a device bound to it during the period."""
    window_end = min(now, period.end + grace)
    seen = first < window_end and last >= period.start
    bound = bound_from < period.end and (bound_to is None or bound_to > period.start)
    return seen and bound


def _account(by_kind: dict[str, set[str]], occurrences: dict[str, int]) -> AccountQuality:
    kinds = {
        kind: KindTally(devices=len(by_kind[kind]), occurrences=occurrences[kind])
        for kind in sorted(by_kind)
    }
    ranked = sorted(kinds.items(), key=lambda item: (-item[1].devices, item[0]))
    return AccountQuality(summary=", ".join(_phrase(k, t.devices) for k, t in ranked), kinds=kinds)


def _phrase(kind: str, devices: int) -> str:
    one, many = _PHRASES.get(kind, (f"device with {kind}", f"devices with {kind}"))
    return f"{devices} {one if devices == 1 else many}"
