"""What an invoice was rated from, read back: its frozen catalog and each line's usage.

`invoice_catalog` answers (device -> profile, profile -> rule) from the catalog frozen on the
invoice row; `frozen_line_usage` rebuilds each line's session pieces and events from its evidence
rows, for the page's charts. The invoice tables are read here, the sessions and events through
`cloud.usage.loader`, so the usage read model never imports invoices.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.models import Device, DeviceProfile
from cloud.domain import BillableEvent, SessionPiece
from cloud.invoices.models import Invoice, InvoiceEvidence
from cloud.usage.loader import (
    EPOCH,
    RULE_COLUMNS,
    chunks,
    event_order,
    events_by_key,
    frozen_rule,
    piece_order,
    sessions_by_id,
    whole_piece,
)


async def invoice_catalog(
    *, session: AsyncSession, invoice_id: int, device_ids: Iterable[str]
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(device -> profile, profile -> rule) of these devices as the invoice was rated.

    An invoice rated before its catalog was frozen (migration 0008) gets today's catalog.
    """
    wanted = sorted(set(device_ids))
    frozen = await session.scalar(select(Invoice.rated_catalog).where(Invoice.id == invoice_id))
    if frozen is not None:
        devices = {d: str(frozen["devices"][d]) for d in wanted if d in frozen["devices"]}
        rules = {p: frozen["profiles"][p] for p in sorted(set(devices.values()))}
        return devices, rules
    devices, rules = {}, {}
    for chunk in chunks(wanted):
        query = (
            select(Device.id, DeviceProfile.id, *RULE_COLUMNS)
            .join(DeviceProfile, DeviceProfile.id == Device.profile_id)
            .where(Device.id.in_(chunk))
        )
        for device_id, profile_id, start_on, end_on, timeout in await session.execute(query):
            devices[device_id] = profile_id
            rules[profile_id] = frozen_rule(start_on, end_on, timeout)
    return devices, dict(sorted(rules.items()))


@dataclass(frozen=True, slots=True)
class FrozenUsage:
    """What one invoice line was rated from, read back through its evidence rows."""

    pieces: list[SessionPiece]
    events: list[BillableEvent]
    profile_of: dict[str, str]


async def frozen_line_usage(*, session: AsyncSession, invoice_id: int) -> dict[int, FrozenUsage]:
    """line n -> its session pieces (bounds from the evidence rows) and events, in order.

    Sessions and events are never changed or deleted, so this is what the line was rated from
    whatever arrived or was recomputed since; profiles are the invoice's frozen catalog.
    """
    rows = (
        await session.execute(
            select(
                InvoiceEvidence.line_n,
                InvoiceEvidence.session_id,
                InvoiceEvidence.piece_start,
                InvoiceEvidence.piece_end,
                InvoiceEvidence.gateway_id,
                InvoiceEvidence.seq,
            ).where(InvoiceEvidence.invoice_id == invoice_id)
        )
    ).all()
    stored = await sessions_by_id(
        session=session, ids=sorted({row[1] for row in rows if row[1] is not None})
    )
    events = await events_by_key(
        session=session,
        keys=sorted({(str(row[4]), int(row[5])) for row in rows if row[5] is not None}),
    )
    devices = {row[1] for row in stored.values()} | {e.device_id for e in events.values()}
    profile_of, _ = await invoice_catalog(
        session=session, invoice_id=invoice_id, device_ids=devices
    )
    usage: dict[int, FrozenUsage] = defaultdict(lambda: FrozenUsage([], [], profile_of))
    for n, session_id, piece_start, piece_end, gateway_id, seq in rows:
        line = usage[n]
        if session_id is not None and piece_start is not None and piece_end is not None:
            whole = whole_piece(
                stored[session_id], profile=profile_of.get(stored[session_id][1], ""), as_of=EPOCH
            )
            line.pieces.append(
                replace(
                    whole,
                    piece_start=piece_start,
                    piece_end=piece_end,
                    is_start=piece_start == whole.started_at,
                )
            )
        elif gateway_id is not None and seq is not None:
            line.events.append(events[(gateway_id, seq)])
    for line in usage.values():
        line.pieces.sort(key=piece_order)
        line.events.sort(key=event_order)
    return dict(usage)
