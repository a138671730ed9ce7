"""Re-verify an invoice from its evidence documents alone (pure: no database, no HTTP).

Trust model: the verifier trusts the gateway public keys that the evidence carries, unless the
caller pins keys per gateway (`trusted_keys`); everything else is recomputed: each batch's hash
chain and Ed25519 signature, that every billed event is one of those signed events unchanged, that
the sessions are made of their device's signed events and lie inside the line's part, that every
session (its start, end, close reason and events) is what `sessionize` makes of the signed events
under the session rules and as-of time the evidence carries (a still-open session's piece ends by
the as-of time), the line's quantity (`measure`; a combined-session line combines its member
pieces again under the rule its evidence carries), its amount (`price` + `round_money`), base fee
proration, the minimum top-up, adjustments naming a real line, the total as the sum of the
lines, and the VAT totals (`tax_total`, `gross_total` and the document's `totals`) as EN 16931's
`vat_totals` over the lines' amounts, tax categories and rates.

`invoice` is the export document (`cloud.invoices.exports.invoice_document`), `evidence` one
document per line (`cloud.invoices.evidence.line_evidence`).
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from cloud.catalog.combined_rules import rule_from_document
from cloud.catalog.plan_terms import load_stored_terms, plan_version
from cloud.domain import (
    Aggregation,
    BillableEvent,
    CloseReason,
    ComputedSession,
    DurationUnit,
    EventKey,
    LineKind,
    MetricField,
    MetricSource,
    MetricSpec,
    PlanVersion,
    SessionPiece,
    SessionRule,
)
from cloud.errors import CollectorError
from cloud.invoices.vat import TaxedAmount, VatTotals, format_rate, vat_totals
from cloud.rating.metrics import measure
from cloud.rating.money import prorate, round_money
from cloud.rating.pricing import price
from cloud.sessions.sessionizer import sessionize
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
        *_vat_checks(invoice, lines),
    ]


# The invoice's stated VAT totals, as `GET /v1/invoices/{id}` and the export document name them.
_VAT_STATED = (("tax_total", "tax"), ("gross_total", "gross"))


def _vat_checks(invoice: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]) -> list[Check]:
    """The invoice's VAT and gross totals equal `vat_totals` over its lines (EN 16931: tax per
    category and rate, rounded once each); none for a document that states no VAT totals."""
    stated = _stated_vat(invoice)
    if not stated:
        return []
    what = "VAT and gross totals equal the VAT breakdown of the lines"
    try:
        computed = _computed_vat(lines, str(invoice.get("currency")))
    except (CollectorError, ValueError, TypeError) as exc:
        return [Check(None, what, False, f"the lines' VAT cannot be computed: {exc}")]
    untaxed = all(line.get("tax_category") is None for line in lines)
    wrong = [
        f"{name} {value}, computed {getattr(computed, field)}"
        for name, field, value in stated
        if not (value is None and untaxed) and _decimal(value) != getattr(computed, field)
    ]
    breakdown = "; ".join(
        f"{sub.category} {format_rate(sub.rate)} %: {sub.taxable} -> {sub.tax}"
        for sub in computed.subtotals
    )
    detail = ", ".join(wrong) if wrong else f"tax {computed.tax}, gross {computed.gross}"
    return [Check(None, what, not wrong, f"{detail} (lines: {breakdown or 'none'})")]


def _stated_vat(invoice: Mapping[str, Any]) -> list[tuple[str, str, object]]:
    """(name, VatTotals field, stated value) of every VAT total the invoice document states."""
    stated: list[tuple[str, str, object]] = [
        (name, field, invoice[name]) for name, field in _VAT_STATED if name in invoice
    ]
    totals = invoice.get("totals")
    if isinstance(totals, Mapping):
        stated.extend((f"totals.{field}", field, totals.get(field)) for field in ("tax", "gross"))
    return stated


def _computed_vat(lines: Sequence[Mapping[str, Any]], currency: str) -> VatTotals:
    """`vat_totals` of the lines (a line drafted before VAT, no category: "O" at 0)."""
    taxed = []
    for line in lines:
        net = _decimal(line.get("amount"))
        rate = _decimal(line.get("tax_rate"))
        if net is None:
            raise ValueError(f"line {line.get('n')} has no amount")
        category = str(line.get("tax_category") or "O")
        taxed.append(TaxedAmount(net=net, category=category, rate=rate or Decimal(0)))
    return vat_totals(taxed, currency)


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
    checks.extend(_archived_check(n, document))
    signed, batch_checks = _verify_batches(n, document.get("batches", []), trusted_keys)
    checks.extend(batch_checks)
    events = {_key(event): event for event in document.get("events", [])}
    checks.extend(_billed_events_signed(n, events, signed))
    checks.extend(_line_events_present(n, line, document, events))
    checks.extend(_as_of_check(n, invoice, document))
    checks.extend(_session_checks(n, line, document, events, signed))
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


def _archived_check(n: int, document: Mapping[str, Any]) -> list[Check]:
    """Billed events the evidence says were archived must be back in it (`--archive DIR`)."""
    archived = document.get("archived")
    if not isinstance(archived, Mapping):
        return []
    present = {_key(event) for event in document.get("events", [])}
    listed = [(str(g), int(s)) for g, s in archived.get("events", [])]
    absent = [key for key in listed if key not in present]
    return [
        Check(
            n,
            f"the {len(listed)} archived billed events are in the evidence",
            not absent,
            ""
            if not absent
            else f"{len(absent)} archived (months {', '.join(archived.get('months', []))}), "
            f"not in the evidence: {_keys_text(absent)}; verify with --archive DIR",
        )
    ]


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
_LINE_DECIMALS = ("quantity", "billable", "amount", "tax_rate")  # tax_rate: "19" == 19.00


def _comparable(line: Mapping[str, Any]) -> dict[str, Any]:
    """A line with times and decimals parsed, so that `Z`/`+00:00` and `1.6`/`1.60` compare equal
    (the invoice may come from the export or from `GET /v1/invoices/{id}`)."""
    values = dict(line)
    # `unit` is how a document labels the quantity (from the metric), not rated data; the
    # `GET /v1/invoices/{id}` answer has no such label
    values.pop("unit", None)
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


def _as_of_check(n: int, invoice: Mapping[str, Any], document: Mapping[str, Any]) -> list[Check]:
    """The evidence's as-of time is its invoice's (when the invoice document names one)."""
    if invoice.get("as_of") is None:  # GET /v1/invoices/{id} does not carry it
        return []
    try:
        same = _time(str(document.get("as_of"))) == _time(str(invoice["as_of"]))
    except (TypeError, ValueError):
        same = False
    detail = f"evidence {document.get('as_of')}, invoice {invoice['as_of']}"
    return [Check(n, "the evidence is as of the invoice's as-of time", same, detail)]


def _session_checks(
    n: int,
    line: Mapping[str, Any],
    document: Mapping[str, Any],
    events: Mapping[EventKey, Mapping[str, Any]],
    signed: Mapping[EventKey, Mapping[str, Any]],
) -> list[Check]:
    sessions: Sequence[Mapping[str, Any]] = document.get("sessions", [])
    if not sessions:
        return []
    part = (_time(line["part_start"]), _time(line["part_end"]))
    as_of = _optional_time(document.get("as_of"))
    foreign = [key for item in sessions for key in _foreign_events(item, events)]
    differences = _session_differences(document, sessions, signed, as_of)
    outside = [str(item["id"]) for item in sessions if not _piece_inside(item, part, as_of)]
    return [
        Check(
            n,
            f"the {len(sessions)} sessions are made of their device's evidence events",
            not foreign,
            "" if not foreign else f"not evidence events of the device: {_keys_text(foreign)}",
        ),
        Check(
            n,
            "each session recomputes from the signed events under its profile's rules",
            not differences,
            "; ".join(differences[:5])
            + (f"; and {len(differences) - 5} more" if len(differences) > 5 else ""),
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


Pair = tuple[str, str | None]


def _session_differences(
    document: Mapping[str, Any],
    sessions: Sequence[Mapping[str, Any]],
    signed: Mapping[EventKey, Mapping[str, Any]],
    as_of: datetime | None,
) -> list[str]:
    """What differs between each session and its recomputation, one text per session.

    A session is determined by its start event and the events after it (a start event always
    opens a session), so each (device, channel) is sessionized once from its earliest evidence
    session's start over the signed events, under the rule of the device's profile.
    """
    if as_of is None:
        return ["the evidence carries no as-of time to recompute still-open sessions at"]
    by_pair: dict[Pair, list[BillableEvent]] = defaultdict(list)
    try:
        for wire in signed.values():
            event = billable_event(wire)
            by_pair[(event.device_id, event.channel)].append(event)
    except (KeyError, TypeError, ValueError) as exc:
        return [f"a signed event does not read as an event: {exc}"]
    recomputed: dict[EventKey, ComputedSession] = {}
    problems: list[str] = []
    for pair, items in _sessions_by_pair(sessions).items():
        rule, why = _session_rule(document, pair[0])
        if rule is None:
            problems.extend(f"session {item.get('id')}: {why}" for item in items)
            continue
        starts = [_start_key(item) for item in items]
        floors = [event.order for event in _events_at(by_pair[pair], starts)]
        if not floors:
            continue
        tail = [event for event in by_pair[pair] if event.order >= min(floors)]
        for computed in sessionize(tail, rule, as_of=as_of):
            recomputed[computed.events[0]] = computed
    for item in sessions:
        start = _start_key(item)
        problem = _session_difference(item, None if start is None else recomputed.get(start))
        if problem is not None:
            problems.append(f"session {item.get('id')}: {problem}")
    return problems


def _sessions_by_pair(sessions: Sequence[Mapping[str, Any]]) -> dict[Pair, list[Mapping[str, Any]]]:
    grouped: dict[Pair, list[Mapping[str, Any]]] = defaultdict(list)
    for item in sessions:
        grouped[(str(item["device_id"]), item.get("channel"))].append(item)
    return grouped


def _start_key(item: Mapping[str, Any]) -> EventKey | None:
    keys = item.get("events") or []
    return (str(keys[0][0]), int(keys[0][1])) if keys else None


def _events_at(events: Sequence[BillableEvent], keys: Sequence[EventKey | None]) -> list[Any]:
    wanted = {key for key in keys if key is not None}
    return [event for event in events if (event.gateway_id, event.seq) in wanted]


def _session_rule(document: Mapping[str, Any], device_id: str) -> tuple[SessionRule | None, str]:
    """The rule of the device's profile from the evidence, or None and why."""
    profile = (document.get("device_profiles") or {}).get(device_id)
    stored = (document.get("session_rules") or {}).get(profile)
    if stored is None:
        return None, f"the evidence carries no session rule for profile {profile!r}"
    try:
        timeout = stored.get("timeout_seconds")
        rule = SessionRule(
            start_on=frozenset(str(name) for name in stored["start_on"]),
            end_on=frozenset(str(name) for name in stored["end_on"]),
            timeout=None if timeout is None else timedelta(seconds=int(timeout)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return None, f"profile {profile!r} has an unreadable session rule ({exc})"
    if not rule.start_on:
        return None, f"profile {profile!r} forms no sessions (no start_on)"
    return rule, ""


def _session_difference(item: Mapping[str, Any], computed: ComputedSession | None) -> str | None:
    """How the evidence session differs from its recomputation (None: it does not)."""
    if computed is None:
        return "no session starts at its first event in the signed events"
    try:
        ended = item.get("ended_at")
        stored = {
            "name": item["name"],
            "started_at": _time(item["started_at"]),
            "ended_at": None if ended is None else _time(ended),
            "close_reason": item["close_reason"],
            "events": [(str(g), int(s)) for g, s in item["events"]],
        }
    except (KeyError, TypeError, ValueError) as exc:
        return f"unreadable ({exc})"
    again = {
        "name": computed.name,
        "started_at": computed.started_at,
        "ended_at": computed.ended_at,
        "close_reason": computed.close_reason.value,
        "events": list(computed.events),
    }
    differing = [
        f"{field} {_shown(stored[field])} (recomputed {_shown(again[field])})"
        for field in stored
        if stored[field] != again[field]
    ]
    return ", ".join(differing) if differing else None


def _shown(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return _keys_text(value)
    return str(value)


def _piece_inside(
    item: Mapping[str, Any], part: tuple[datetime, datetime], as_of: datetime | None
) -> bool:
    start, end = _time(item["piece_start"]), _time(item["piece_end"])
    ended = item.get("ended_at")
    in_session = _time(item["started_at"]) <= start and (ended is None or end <= _time(ended))
    if item.get("close_reason") == CloseReason.STILL_OPEN:  # clipped at the as-of time
        in_session = in_session and as_of is not None and end <= max(start, as_of)
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
    combined = document.get("combined_rule")
    measured = measure(
        spec,
        pieces=[_piece(item, profile_of) for item in document.get("sessions", [])],
        events=[billable_event(events[key]) for key in keys if key in events],
        profile_of=profile_of,
        combined={} if combined is None else {combined["id"]: rule_from_document(**combined)},
        site_of=dict(document.get("device_sites", {})),
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
        amount = prorate(terms.base_fee, part, period, str(invoice["currency"]))
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
        floor = prorate(terms.minimum_amount, part, period, str(invoice["currency"]))
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
        report=_report(wire.get("attrs")),
    )


def _report(attrs: object) -> str | None:
    """`attrs["report"]` ("status": the event confirms a state, see the sessionizer)."""
    report = attrs.get("report") if isinstance(attrs, Mapping) else None
    return None if report is None else str(report)


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


def _optional_time(value: object) -> datetime | None:
    try:
        return None if value is None else _time(str(value))
    except ValueError:
        return None


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _microseconds(delta: Any) -> int:
    return int((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
