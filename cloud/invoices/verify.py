"""Re-verify an invoice from its evidence documents alone (pure: no database, no HTTP).

Trust model: the verifier trusts the gateway public keys that the evidence carries, unless the
caller pins keys per gateway (`trusted_keys`); everything else is recomputed: each batch's hash
chain and Ed25519 signature, that every billed event is one of those signed events unchanged, that
the sessions are made of their device's signed events and lie inside the line's part, the line's
quantity (`measure`), its amount (`price` + `round_money`), base fee proration, the minimum top-up,
adjustments naming a real line, and the total as the sum of the lines.

`invoice` is the export document (`cloud.invoices.exports.invoice_document`), `evidence` one
document per line (`cloud.invoices.evidence.line_evidence`).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from cloud.catalog.plan_terms import load_stored_terms, plan_version
from cloud.domain import (
    Aggregation,
    BillableEvent,
    CloseReason,
    DurationUnit,
    EventKey,
    LineKind,
    MetricField,
    MetricSource,
    MetricSpec,
    PlanVersion,
    SessionPiece,
)
from cloud.errors import CollectorError
from cloud.rating.metrics import measure
from cloud.rating.money import round_money
from cloud.rating.pricing import price
from shared.chain import verify_chain
from shared.errors import ChainBroken, InvalidSignature
from shared.events import UsageEvent
from shared.signing import batch_header, load_public_key, verify


@dataclass(frozen=True, slots=True)
class Check:
    """One verification step: which line (None: the whole invoice), what, and its outcome."""

    line: int | None
    what: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """A failed check: the line it concerns (None: the invoice), what failed and why."""

    line: int | None
    what: str
    detail: str


def verify_invoice(
    invoice: Mapping[str, Any],
    evidence: Sequence[Mapping[str, Any]],
    *,
    trusted_keys: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Every problem found; an empty list means the invoice verifies from its evidence."""
    return [
        Problem(check.line, check.what, check.detail)
        for check in check_invoice(invoice, evidence, trusted_keys=trusted_keys)
        if not check.ok
    ]


def check_invoice(
    invoice: Mapping[str, Any],
    evidence: Sequence[Mapping[str, Any]],
    *,
    trusted_keys: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every check made, passed or failed, in order (the CLI prints them)."""
    checks = _invoice_checks(invoice, evidence)
    lines = {int(line["n"]): line for line in invoice.get("lines", [])}
    for document in evidence:
        checks.extend(_line_checks(invoice, lines, document, trusted_keys or {}))
    return checks


# --- invoice level ----------------------------------------------------------------------------


def _invoice_checks(
    invoice: Mapping[str, Any], evidence: Sequence[Mapping[str, Any]]
) -> list[Check]:
    lines = list(invoice.get("lines", []))
    amounts = [_decimal(line.get("amount")) for line in lines]
    total = _decimal(invoice.get("total"))
    summed = sum((a for a in amounts if a is not None), Decimal(0))
    covered = sorted(int(doc["line"]["n"]) for doc in evidence)
    wanted = sorted(int(line["n"]) for line in lines)
    return [
        Check(
            None,
            "total equals the sum of the line amounts",
            total is not None and None not in amounts and total == summed,
            f"total {invoice.get('total')}, lines sum to {summed}",
        ),
        Check(
            None,
            "every line has its evidence",
            covered == wanted,
            f"lines {wanted}, evidence for {covered}",
        ),
    ]


# --- one line ---------------------------------------------------------------------------------


def _line_checks(
    invoice: Mapping[str, Any],
    lines: Mapping[int, Mapping[str, Any]],
    document: Mapping[str, Any],
    trusted_keys: Mapping[str, str],
) -> list[Check]:
    line = document["line"]
    n = int(line["n"])
    checks = [_same_line(invoice, lines.get(n), document)]
    signed, batch_checks = _verify_batches(n, document.get("batches", []), trusted_keys)
    checks.extend(batch_checks)
    events = {_key(event): event for event in document.get("events", [])}
    checks.extend(_billed_events_signed(n, events, signed))
    checks.extend(_line_events_present(n, line, document, events))
    checks.extend(_session_checks(n, line, document.get("sessions", []), events))
    kind = line["kind"]
    if kind == LineKind.USAGE:
        checks.append(_usage_amount(n, invoice, line, document, events))
    elif kind == LineKind.BASE_FEE:
        checks.append(_base_fee(n, invoice, line, document))
    elif kind == LineKind.MINIMUM:
        checks.append(_minimum(n, invoice, line, document))
    elif kind == LineKind.ADJUSTMENT:
        checks.extend(_adjustment(n, invoice, line, document, events))
    return checks


def _same_line(
    invoice: Mapping[str, Any], listed: Mapping[str, Any] | None, document: Mapping[str, Any]
) -> Check:
    n = int(document["line"]["n"])
    header = document.get("invoice", {})
    try:
        same = (
            listed is not None
            and header.get("id") == invoice.get("id")
            and header.get("currency") == invoice.get("currency")
            and _comparable(listed) == _comparable(document["line"])
        )
    except (ValueError, TypeError):  # a time that does not parse
        same = False
    return Check(n, "evidence is about this invoice line", same, f"invoice {invoice.get('id')}")


_LINE_TIMES = ("part_start", "part_end")
_LINE_DECIMALS = ("quantity", "billable", "amount")


def _comparable(line: Mapping[str, Any]) -> dict[str, Any]:
    """A line with times and decimals parsed, so that `Z`/`+00:00` and `1.6`/`1.60` compare equal
    (the invoice may come from the export or from `GET /v1/invoices/{id}`)."""
    values = dict(line)
    for key in _LINE_TIMES:
        values[key] = _time(str(values.get(key)))
    for key in _LINE_DECIMALS:
        values[key] = _decimal(values.get(key))
    return values


def _verify_batches(
    n: int, batches: Sequence[Mapping[str, Any]], trusted_keys: Mapping[str, str]
) -> tuple[dict[EventKey, Mapping[str, Any]], list[Check]]:
    """Events of the batches whose chain and signature verify, and one check per batch."""
    signed: dict[EventKey, Mapping[str, Any]] = {}
    checks: list[Check] = []
    for batch in batches:
        name = f"batch {batch.get('gateway_id')} {batch.get('first_seq')}..{batch.get('last_seq')}"
        chain_problem = _chain_problem(batch)
        checks.append(
            Check(n, f"{name}: chain recomputes", chain_problem is None, chain_problem or "")
        )
        pem = trusted_keys.get(str(batch.get("gateway_id")), batch.get("public_key_pem"))
        signature_problem = _signature_problem(batch, pem)
        checks.append(
            Check(
                n, f"{name}: signature verifies", signature_problem is None, signature_problem or ""
            )
        )
        if chain_problem is None and signature_problem is None:
            signed.update((_key(event), event) for event in batch["events"])
    return signed, checks


def _chain_problem(batch: Mapping[str, Any]) -> str | None:
    try:
        events = [UsageEvent.model_validate(event) for event in batch["events"]]
        first, last = int(batch["first_seq"]), int(batch["last_seq"])
        seqs = [event.seq for event in events]
        if seqs != list(range(first, last + 1)):
            return f"events carry seq {seqs[:3]}..., the header says {first}..{last}"
        if any(event.gateway_id != batch["gateway_id"] for event in events):
            return "an event belongs to another gateway"
        end = verify_chain(events, prev_hash=batch["prev_hash"])
    except (ValidationError, ChainBroken, KeyError, TypeError, ValueError) as exc:
        return str(exc).splitlines()[0]
    if end != batch["last_hash"]:
        return f"chain ends at {end[:12]}..., the header says {str(batch['last_hash'])[:12]}..."
    return None


def _signature_problem(batch: Mapping[str, Any], pem: object) -> str | None:
    try:
        key = load_public_key(str(pem).encode("ascii"))
        header = batch_header(
            gateway_id=batch["gateway_id"],
            first_seq=int(batch["first_seq"]),
            last_seq=int(batch["last_seq"]),
            prev_hash=batch["prev_hash"],
            last_hash=batch["last_hash"],
        )
        verify(key, header, str(batch["signature"]))
    except (InvalidSignature, ValueError, KeyError, TypeError) as exc:
        return str(exc).splitlines()[0] or type(exc).__name__
    return None


def _billed_events_signed(
    n: int,
    events: Mapping[EventKey, Mapping[str, Any]],
    signed: Mapping[EventKey, Mapping[str, Any]],
) -> list[Check]:
    unsigned = [key for key, event in events.items() if dict(signed.get(key, {})) != dict(event)]
    return [
        Check(
            n,
            f"all {len(events)} billed events are signed batch events, unchanged",
            not unsigned,
            "" if not unsigned else f"not in a verified batch or altered: {_keys_text(unsigned)}",
        )
    ]


def _line_events_present(
    n: int,
    line: Mapping[str, Any],
    document: Mapping[str, Any],
    events: Mapping[EventKey, Mapping[str, Any]],
) -> list[Check]:
    keys = [(str(g), int(s)) for g, s in document.get("line_events", [])]
    if not keys:
        return []
    part_start, part_end = _time(line["part_start"]), _time(line["part_end"])
    missing = [key for key in keys if key not in events]
    outside = [
        key
        for key in keys
        if key in events and not part_start <= _time(events[key]["occurred_at"]) < part_end
    ]
    return [
        Check(
            n,
            f"the line's {len(keys)} events are in the evidence",
            not missing,
            "" if not missing else f"missing: {_keys_text(missing)}",
        ),
        Check(
            n,
            "the line's events occurred inside its part",
            not outside,
            "" if not outside else f"outside: {_keys_text(outside)}",
        ),
    ]


def _session_checks(
    n: int,
    line: Mapping[str, Any],
    sessions: Sequence[Mapping[str, Any]],
    events: Mapping[EventKey, Mapping[str, Any]],
) -> list[Check]:
    if not sessions:
        return []
    part = (_time(line["part_start"]), _time(line["part_end"]))
    foreign = [key for item in sessions for key in _foreign_events(item, events)]
    untimed = [str(item["id"]) for item in sessions if not _timed_by_events(item, events)]
    outside = [str(item["id"]) for item in sessions if not _piece_inside(item, part)]
    return [
        Check(
            n,
            f"the {len(sessions)} sessions are made of their device's evidence events",
            not foreign,
            "" if not foreign else f"not evidence events of the device: {_keys_text(foreign)}",
        ),
        Check(
            n,
            "each session starts (and ends) at its events' times",
            not untimed,
            "" if not untimed else f"sessions: {', '.join(untimed)}",
        ),
        Check(
            n,
            "session pieces lie inside the line's part and their session",
            not outside,
            "" if not outside else f"sessions outside: {', '.join(outside)}",
        ),
    ]


def _foreign_events(
    item: Mapping[str, Any], events: Mapping[EventKey, Mapping[str, Any]]
) -> list[EventKey]:
    """The session's event keys that are not evidence events of its device and channel."""
    keys = [(str(g), int(s)) for g, s in item["events"]]
    return [
        key
        for key in keys
        if key not in events
        or events[key]["device_id"] != item["device_id"]
        or events[key].get("channel") != item.get("channel")
    ]


def _timed_by_events(item: Mapping[str, Any], events: Mapping[EventKey, Mapping[str, Any]]) -> bool:
    """started_at is its first event's time; a deactivated or timed-out one ends at its last."""
    times = [
        _time(events[key]["occurred_at"])
        for key in ((str(g), int(s)) for g, s in item["events"])
        if key in events
    ]
    if not times or _time(item["started_at"]) != times[0]:
        return False
    if item["close_reason"] in (CloseReason.DEACTIVATED, CloseReason.TIMED_OUT):
        return item.get("ended_at") is not None and _time(item["ended_at"]) == max(times)
    return True


def _piece_inside(item: Mapping[str, Any], part: tuple[datetime, datetime]) -> bool:
    start, end = _time(item["piece_start"]), _time(item["piece_end"])
    ended = item.get("ended_at")
    in_session = _time(item["started_at"]) <= start and (ended is None or end <= _time(ended))
    return part[0] <= start <= end <= part[1] and in_session


# --- amounts ----------------------------------------------------------------------------------


def _usage_amount(
    n: int,
    invoice: Mapping[str, Any],
    line: Mapping[str, Any],
    document: Mapping[str, Any],
    events: Mapping[EventKey, Mapping[str, Any]],
) -> Check:
    what = "quantity and amount recompute from the evidence"
    try:
        quantity, billable, amount = _rate_usage(invoice, line, document, events)
    except (KeyError, StopIteration, TypeError, ValueError, CollectorError) as exc:
        return Check(n, what, False, f"cannot recompute: {type(exc).__name__}: {exc}")
    ok = (
        quantity == _decimal(line.get("quantity"))
        and billable == _decimal(line.get("billable"))
        and amount == _decimal(line.get("amount"))
    )
    detail = (
        f"quantity {quantity} (stored {line.get('quantity')}), billable {billable} "
        f"(stored {line.get('billable')}), amount {amount} (stored {line.get('amount')})"
    )
    return Check(n, what, ok, detail)


def _rate_usage(
    invoice: Mapping[str, Any],
    line: Mapping[str, Any],
    document: Mapping[str, Any],
    events: Mapping[EventKey, Mapping[str, Any]],
) -> tuple[Decimal, Decimal, Decimal]:
    """The line's quantity, billable units and rounded amount, measured and priced again."""
    spec = metric_spec(document["metric"])
    terms = _plan(document, invoice)
    charge = next(c for c in terms.charges if c.metric == line["metric"])
    profile_of: dict[str, str] = dict(document.get("device_profiles", {}))
    keys = [(str(g), int(s)) for g, s in document.get("line_events", [])]
    measured = measure(
        spec,
        pieces=[_piece(item, profile_of) for item in document.get("sessions", [])],
        events=[billable_event(events[key]) for key in keys if key in events],
        profile_of=profile_of,
    )
    priced = price(charge, measured.value)
    return measured.value, priced.billable, round_money(priced.amount, str(invoice["currency"]))


def _base_fee(
    n: int, invoice: Mapping[str, Any], line: Mapping[str, Any], document: Mapping[str, Any]
) -> Check:
    what = "base fee recomputes from the terms, prorated by time"
    try:
        terms = _plan(document, invoice)
        part, period = proration(line, invoice)
        amount = round_money(terms.base_fee * part / period, str(invoice["currency"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError, CollectorError) as exc:
        return Check(n, what, False, f"cannot recompute: {type(exc).__name__}: {exc}")
    stored = _decimal(line.get("amount"))
    detail = f"{terms.base_fee} x {part}/{period} = {amount} (stored {line.get('amount')})"
    return Check(n, what, amount == stored, detail)


def _minimum(
    n: int, invoice: Mapping[str, Any], line: Mapping[str, Any], document: Mapping[str, Any]
) -> Check:
    what = "minimum top-up recomputes from the terms and the other lines of its part"
    try:
        terms = _plan(document, invoice)
        part, period = proration(line, invoice)
        floor = round_money(terms.minimum_amount * part / period, str(invoice["currency"]))
        charged = sum(
            (
                Decimal(other["amount"])
                for other in invoice["lines"]
                if other["kind"] in (LineKind.BASE_FEE, LineKind.USAGE)
                and other.get("plan_id") == line.get("plan_id")
                and other.get("plan_version") == line.get("plan_version")
                and other["part_start"] == line["part_start"]
            ),
            Decimal(0),
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError, CollectorError) as exc:
        return Check(n, what, False, f"cannot recompute: {type(exc).__name__}: {exc}")
    amount = max(Decimal(0), floor - charged)
    detail = f"minimum {floor} - charged {charged} = {amount} (stored {line.get('amount')})"
    return Check(n, what, amount == _decimal(line.get("amount")), detail)


def _adjustment(
    n: int,
    invoice: Mapping[str, Any],
    line: Mapping[str, Any],
    document: Mapping[str, Any],
    events: Mapping[EventKey, Mapping[str, Any]],
) -> list[Check]:
    """It names a real invoice (and line), is new minus previous, and a usage one recomputes."""
    corrected = document.get("corrects") or {}
    target_line = (corrected.get("line") or {}).get("n")
    names = corrected.get("invoice_id") == line.get("corrects_invoice_id") and (
        target_line == line.get("corrects_line")
    )
    target = f"invoice {line.get('corrects_invoice_id')} line {line.get('corrects_line')}"
    checks = [
        Check(n, "adjustment names an existing invoice line", bool(corrected) and names, target)
    ]
    detail = line.get("detail") or {}
    new, previous = _decimal(detail.get("new_amount")), _decimal(detail.get("previous_amount"))
    amount = _decimal(line.get("amount"))
    difference_ok = (
        new is not None and previous is not None and amount is not None and new - previous == amount
    )
    checks.append(
        Check(
            n,
            "adjustment is the new amount minus the amount billed before",
            difference_ok,
            f"{new} - {previous} (stored {amount})",
        )
    )
    if detail.get("corrected_kind") == LineKind.USAGE and line.get("quantity") is not None:
        checks.append(_adjusted_usage(n, invoice, line, document, events, new))
    return checks


def _adjusted_usage(
    n: int,
    invoice: Mapping[str, Any],
    line: Mapping[str, Any],
    document: Mapping[str, Any],
    events: Mapping[EventKey, Mapping[str, Any]],
    new: Decimal | None,
) -> Check:
    what = "the corrected usage recomputes from the evidence"
    try:
        quantity, _, amount = _rate_usage(invoice, line, document, events)
    except (KeyError, StopIteration, TypeError, ValueError, CollectorError) as exc:
        return Check(n, what, False, f"cannot recompute: {type(exc).__name__}: {exc}")
    ok = quantity == _decimal(line.get("quantity")) and amount == new
    detail = f"quantity {quantity} (stored {line.get('quantity')}), amount {amount} (new {new})"
    return Check(n, what, ok, detail)


def proration(line: Mapping[str, Any], invoice: Mapping[str, Any]) -> tuple[int, int]:
    """The line's part and the billing period in microseconds (amount x part / period)."""
    part = _time(line["part_end"]) - _time(line["part_start"])
    period = _time(invoice["period_end"]) - _time(invoice["period_start"])
    return _microseconds(part), _microseconds(period)


# --- evidence back into domain values ---------------------------------------------------------


def metric_spec(document: Mapping[str, Any]) -> MetricSpec:
    """The metric of an evidence document as the domain value."""
    field = document.get("field")
    return MetricSpec(
        id=str(document["id"]),
        source=MetricSource(document["source"]),
        aggregation=Aggregation(document["aggregation"]),
        field=None if field is None else MetricField(field),
        profiles=frozenset(document.get("profiles", [])),
        names=frozenset(document.get("names", [])),
        unit=document.get("unit"),
        duration_unit=DurationUnit(document.get("duration_unit", DurationUnit.HOUR)),
    )


def billable_event(wire: Mapping[str, Any]) -> BillableEvent:
    """A wire event as billing reads it."""
    quantity = wire.get("quantity")
    return BillableEvent(
        gateway_id=str(wire["gateway_id"]),
        seq=int(wire["seq"]),
        device_id=str(wire["device_id"]),
        channel=wire.get("channel"),
        name=str(wire["name"]),
        kind=str(wire["kind"]),
        quantity=None if quantity is None else Decimal(str(quantity)),
        unit=wire.get("unit"),
        occurred_at=_time(wire["occurred_at"]),
    )


def _piece(item: Mapping[str, Any], profile_of: Mapping[str, str]) -> SessionPiece:
    started_at, ended = _time(item["started_at"]), item.get("ended_at")
    piece_start = _time(item["piece_start"])
    return SessionPiece(
        session_id=int(item["id"]),
        device_id=str(item["device_id"]),
        channel=item.get("channel"),
        name=str(item["name"]),
        profile=profile_of.get(str(item["device_id"]), ""),
        started_at=started_at,
        ended_at=None if ended is None else _time(ended),
        close_reason=CloseReason(item["close_reason"]),
        piece_start=piece_start,
        piece_end=_time(item["piece_end"]),
        is_start=piece_start == started_at,
    )


def _plan(document: Mapping[str, Any], invoice: Mapping[str, Any]) -> PlanVersion:
    stored = document["plan_version"]
    terms = load_stored_terms(stored["terms"], effective_from=_time(stored["effective_from"]))
    return plan_version(
        terms,
        plan_id=str(stored["plan_id"]),
        version=int(stored["version"]),
        currency=str(invoice["currency"]),
    )


def _key(event: Mapping[str, Any]) -> EventKey:
    return (str(event["gateway_id"]), int(event["seq"]))


def _keys_text(keys: Iterable[EventKey]) -> str:
    listed = [f"{g}/{s}" for g, s in keys]
    return ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no offset")
    return moment


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _microseconds(delta: Any) -> int:
    return int((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
