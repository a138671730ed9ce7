"""The evidence behind one invoice line: everything needed to re-verify it without our database.

One document holds the invoice header, the line, the metric and plan terms it was rated under,
the session pieces and events it was rated from, and every signed batch holding those events with
all of that batch's events in wire form and the gateway key valid when the batch was received.
It also carries what recomputing the sessions needs: the as-of time the line was rated at (where
still-open sessions were clipped), each device's profile and each profile's session rule as the
invoice froze them when it was rated, and, for a session closed by the next session's start
(`superseded`), that start event. From that alone `cloud.invoices.verify` recomputes the chain,
the signature, every session, the quantity and the amount. Reads are a fixed number of queries
per line (keys in chunks), never one per event. Billed events of archived months are no longer
stored: the document names them under `archived` (with the months archived), and
`verify-invoice --archive DIR` takes their batches from the archive files
(`cloud.archive.evidence`).
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.archive.service import archived_months
from cloud.catalog.models import Account, Metric, PlanVersionRow
from cloud.domain import CloseReason, EventKey
from cloud.errors import InvoiceLineNotFound, InvoiceNotFound
from cloud.gateways.models import Gateway, GatewayKey
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.ingest.service import wire_event
from cloud.invoices.combined_evidence import combined_evidence
from cloud.invoices.exports import format_utc, invoice_header, line_document, metric_units
from cloud.invoices.frozen_usage import invoice_catalog
from cloud.invoices.models import Invoice, InvoiceEvidence, InvoiceLine
from cloud.sessions.models import SessionRow

KEY_CHUNK = 500  # (gateway_id, seq) pairs per IN list


async def line_evidence(*, session: AsyncSession, invoice_id: int, n: int) -> dict[str, Any]:
    """The evidence document of line `n` of an invoice; `InvoiceNotFound`, `InvoiceLineNotFound`."""
    invoice, account, line = await _invoice_line(session=session, invoice_id=invoice_id, n=n)
    rows = list(
        await session.scalars(
            select(InvoiceEvidence)
            .where(InvoiceEvidence.invoice_id == invoice_id, InvoiceEvidence.line_n == n)
            .order_by(InvoiceEvidence.id)
        )
    )
    line_events = [(row.gateway_id, row.seq) for row in rows if row.gateway_id is not None]
    event_keys: list[EventKey] = [(g, int(s)) for g, s in line_events if s is not None]
    sessions = await _sessions(session=session, rows=rows)
    session_devices = {str(item["device_id"]) for item in sessions}
    profiles, rules = await invoice_catalog(
        session=session, invoice_id=invoice_id, device_ids=session_devices
    )
    session_keys = [(str(key[0]), int(key[1])) for item in sessions for key in item["events"]]
    closing = await _superseding_events(
        session=session, sessions=sessions, profiles=profiles, rules=rules, invoice=invoice
    )
    billed_keys = _unique([*event_keys, *session_keys, *closing])
    batches = await _batches(session=session, keys=billed_keys)
    by_key = {
        (event["gateway_id"], event["seq"]): event for batch in batches for event in batch["events"]
    }
    devices = session_devices | {by_key[key]["device_id"] for key in billed_keys if key in by_key}
    profiles, rules = await invoice_catalog(
        session=session, invoice_id=invoice_id, device_ids=devices
    )
    metric = await _metric(session=session, metric_id=line.metric)
    combined = await combined_evidence(
        session=session, invoice_id=invoice_id, metric=metric, device_ids=session_devices
    )
    archived = await _archived(session=session, keys=[k for k in billed_keys if k not in by_key])
    return {
        "invoice": invoice_header(invoice, account),
        "time_zone": account.time_zone,
        "as_of": format_utc(invoice.as_of or invoice.computed_at),
        "line": line_document(line, currency=invoice.currency, unit=await _unit(session, line)),
        "metric": metric,
        "plan_version": await _plan_version(session=session, line=line),
        "corrects": await _corrected(session=session, line=line),
        "device_profiles": profiles,
        "session_rules": rules,
        "line_events": [list(key) for key in event_keys],
        "sessions": sessions,
        "events": [by_key[key] for key in billed_keys if key in by_key],
        "batches": batches,
        **combined,  # a combined-session line: its rule and the member devices' sites
        **archived,  # billed events no longer stored: moved to archive files
    }


async def _archived(*, session: AsyncSession, keys: Sequence[EventKey]) -> dict[str, Any]:
    """`{"archived": ...}` naming billed events that are not stored when months were archived
    (`tollgate-cloud archive`): their batches are in the archive files, which
    `verify-invoice --archive DIR` adds to the evidence. Empty when nothing is missing."""
    if not keys:
        return {}
    months = await archived_months(session)
    if not months:
        return {}
    return {
        "archived": {
            "events": [list(key) for key in keys],
            "months": months,
            "note": (
                f"{len(keys)} billed events are not stored: months {', '.join(months)} were "
                "archived; verify with `tollgate-cloud verify-invoice ID --archive DIR`, DIR "
                "holding the archive files"
            ),
        }
    }


async def _invoice_line(
    *, session: AsyncSession, invoice_id: int, n: int
) -> tuple[Invoice, Account, InvoiceLine]:
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        raise InvoiceNotFound(f"no invoice {invoice_id}", detail={"invoice_id": invoice_id})
    line = await session.get(InvoiceLine, (invoice_id, n))
    if line is None:
        raise InvoiceLineNotFound(
            f"invoice {invoice_id} has no line {n}", detail={"invoice_id": invoice_id, "n": n}
        )
    account = await session.get(Account, invoice.account_id)
    assert account is not None  # a foreign key
    return invoice, account, line


async def _sessions(
    *, session: AsyncSession, rows: Sequence[InvoiceEvidence]
) -> list[dict[str, Any]]:
    pieces = [row for row in rows if row.session_id is not None]
    ids = sorted({row.session_id for row in pieces if row.session_id is not None})
    found = (
        {
            item.id: item
            for item in await session.scalars(select(SessionRow).where(SessionRow.id.in_(ids)))
        }
        if ids
        else {}
    )
    return [_session_piece(found[row.session_id], row) for row in pieces if row.session_id]


def _session_piece(stored: SessionRow, piece: InvoiceEvidence) -> dict[str, Any]:
    return {
        "id": stored.id,
        "device_id": stored.device_id,
        "channel": stored.channel or None,
        "name": stored.name,
        "started_at": format_utc(stored.started_at),
        "ended_at": format_utc(stored.ended_at),
        "last_activity_at": format_utc(stored.last_activity_at),
        "close_reason": stored.close_reason,
        "piece_start": format_utc(piece.piece_start),
        "piece_end": format_utc(piece.piece_end),
        "events": [[str(key[0]), int(key[1])] for key in stored.event_keys],
    }


async def _batches(*, session: AsyncSession, keys: Sequence[EventKey]) -> list[dict[str, Any]]:
    """Every batch holding one of `keys`, each with all its events and its gateway key."""
    batch_ids: set[int] = set()
    for chunk in _chunks(keys, KEY_CHUNK):
        position = tuple_(StoredEvent.gateway_id, StoredEvent.seq)
        batch_ids.update(
            await session.scalars(
                select(StoredEvent.batch_id).where(position.in_(chunk)).distinct()
            )
        )
    if not batch_ids:
        return []
    ordered = sorted(batch_ids)
    headers = list(
        await session.scalars(
            select(ReceivedBatch).where(ReceivedBatch.id.in_(ordered)).order_by(ReceivedBatch.id)
        )
    )
    events: dict[int, list[dict[str, Any]]] = defaultdict(list)
    stored = await session.scalars(
        select(StoredEvent)
        .where(StoredEvent.batch_id.in_(ordered))
        .order_by(StoredEvent.gateway_id, StoredEvent.seq)
    )
    for row in stored:
        events[row.batch_id].append(wire_event(row))
    keys_of = await _gateway_keys(session=session, gateway_ids={b.gateway_id for b in headers})
    return [_batch(header, events[header.id], keys_of[header.gateway_id]) for header in headers]


def _batch(
    header: ReceivedBatch, events: list[dict[str, Any]], keys: Sequence[GatewayKey | Gateway]
) -> dict[str, Any]:
    return {
        "id": header.id,
        "gateway_id": header.gateway_id,
        "first_seq": header.first_seq,
        "last_seq": header.last_seq,
        "prev_hash": header.prev_hash,
        "last_hash": header.last_hash,
        "signature": header.signature,
        "received_at": format_utc(header.received_at),
        "public_key_pem": _key_at(keys, header.received_at),
        "events": events,
    }


async def _gateway_keys(
    *, session: AsyncSession, gateway_ids: set[str]
) -> dict[str, list[GatewayKey | Gateway]]:
    """Each gateway's key history, oldest first, ending with the gateway row (its current key)."""
    found: dict[str, list[GatewayKey | Gateway]] = defaultdict(list)
    ids = sorted(gateway_ids)
    history = await session.scalars(
        select(GatewayKey)
        .where(GatewayKey.gateway_id.in_(ids))
        .order_by(GatewayKey.gateway_id, GatewayKey.valid_from)
    )
    for key in history:
        found[key.gateway_id].append(key)
    for gateway in await session.scalars(select(Gateway).where(Gateway.id.in_(ids))):
        found[gateway.id].append(gateway)
    return found


def _key_at(keys: Sequence[GatewayKey | Gateway], received_at: datetime) -> str:
    """The PEM of the key valid at `received_at`; the gateway's current key when none matches."""
    for key in keys:
        if (
            isinstance(key, GatewayKey)
            and key.valid_from <= received_at
            and (key.valid_to is None or received_at < key.valid_to)
        ):
            return key.public_key_pem
    return keys[-1].public_key_pem


async def _metric(*, session: AsyncSession, metric_id: str | None) -> dict[str, Any] | None:
    row = None if metric_id is None else await session.get(Metric, metric_id)
    if row is None:
        return None
    return {
        "id": row.id,
        "name": row.name,
        "source": row.source,
        "aggregation": row.aggregation,
        "field": row.field,
        "profiles": sorted(row.profiles),
        "names": sorted(row.names),
        "unit": row.unit,
        "duration_unit": row.duration_unit,
    }


async def _plan_version(*, session: AsyncSession, line: InvoiceLine) -> dict[str, Any] | None:
    if line.plan_id is None or line.plan_version is None:
        return None
    row = await session.get(PlanVersionRow, (line.plan_id, line.plan_version))
    if row is None:
        return None
    return {
        "plan_id": row.plan_id,
        "version": row.version,
        "effective_from": format_utc(row.effective_from),
        "terms": row.terms,
    }


async def _corrected(*, session: AsyncSession, line: InvoiceLine) -> dict[str, Any] | None:
    """The invoice an adjustment corrects, with the corrected line (None: a line it lacked)."""
    if line.corrects_invoice_id is None:
        return None
    invoice = await session.get(Invoice, line.corrects_invoice_id)
    if invoice is None:
        return None
    target = None
    if line.corrects_line is not None:
        target = await session.get(InvoiceLine, (line.corrects_invoice_id, line.corrects_line))
        if target is None:
            return None
    return {
        "invoice_id": invoice.id,
        "series": invoice.series,
        "number": invoice.number,
        "period": invoice.period,
        "status": invoice.status,
        "line": None
        if target is None
        else line_document(target, currency=invoice.currency, unit=await _unit(session, target)),
    }


async def _superseding_events(
    *,
    session: AsyncSession,
    sessions: Sequence[dict[str, Any]],
    profiles: dict[str, str],
    rules: dict[str, dict[str, Any]],
    invoice: Invoice,
) -> list[EventKey]:
    """The start event that closed each `superseded` session: its pair's first event after the
    session's last one, at its end and named in the rule's `start_on`, received by the time the
    invoice was computed (one query for all, in chunks of ends)."""
    closed = [item for item in sessions if item["close_reason"] == CloseReason.SUPERSEDED]
    if not closed:
        return []
    ends = sorted({_parse(item["ended_at"]) for item in closed})
    devices = sorted({str(item["device_id"]) for item in closed})
    candidates: list[tuple[str, str | None, datetime, str, int, str]] = []
    for index in range(0, len(ends), KEY_CHUNK):
        query = select(
            StoredEvent.device_id,
            StoredEvent.channel,
            StoredEvent.occurred_at,
            StoredEvent.gateway_id,
            StoredEvent.seq,
            StoredEvent.name,
        ).where(
            StoredEvent.device_id.in_(devices),
            StoredEvent.occurred_at.in_(ends[index : index + KEY_CHUNK]),
            StoredEvent.received_at <= invoice.computed_at,
        )
        candidates.extend(
            (d, c, o, g, int(q), n) for d, c, o, g, q, n in await session.execute(query)
        )
    found = []
    for item in closed:
        rule = rules.get(profiles.get(str(item["device_id"]), ""), {})
        own = {(str(g), int(q)) for g, q in item["events"]}
        end = _parse(item["ended_at"])
        after = [
            (occurred_at, gateway_id, seq)
            for device_id, channel, occurred_at, gateway_id, seq, name in candidates
            if device_id == item["device_id"]
            and (channel or None) == item["channel"]
            and occurred_at == end
            and name in rule.get("start_on", [])
            and (gateway_id, seq) not in own
        ]
        if after:  # the first in the total order (a later one would belong to the next session)
            _, gateway_id, seq = min(after)
            found.append((gateway_id, seq))
    return found


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _unique(keys: Iterable[EventKey]) -> list[EventKey]:
    return sorted(set(keys))


def _chunks(keys: Sequence[EventKey], size: int) -> Iterable[list[EventKey]]:
    for start in range(0, len(keys), size):
        yield list(keys[start : start + size])


async def _unit(session: AsyncSession, line: InvoiceLine) -> str | None:
    """The line's unit as its export shows it (`cloud.invoices.exports.metric_unit`)."""
    units = await metric_units(session=session, metric_ids={line.metric})
    return units.get(line.metric)
