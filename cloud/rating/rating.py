"""Rating: one account's usage over one billing period, priced under its plan versions.

The period is cut into parts, one per plan version in force (`plan_parts`). Each part gives, in
this order: a base fee line (prorated by real elapsed seconds, so a 743-hour DST month prorates
by 743 hours), one usage line per charge in plan order (also when zero: the customer sees it),
and a minimum line topping the part up to its prorated minimum amount. Every line is rounded to
the currency's minor unit once; the invoice total is the sum of the lines.

Exact: everything runs in the exact context of `cloud.rating.arithmetic`. Every number of a plan
(fees, prices, included units, tier bounds, package sizes) must have at most 30 digits each
side of the point, and every line's exact amount must lie inside +-10^18; anything beyond, and
anything that cannot be computed exactly, is `RatingOutOfBounds` naming the account, plan,
version and charge. The base fee and minimum are prorated with `prorate`, the one documented
rounding besides `round_money`.

Pure: the caller loads the usage (pieces clipped to the period and each device's binding, events
inside the period and bound to the account) and writes the lines.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any, cast

from cloud.domain import (
    Aggregation,
    BillableEvent,
    Charge,
    DurationUnit,
    LineKind,
    Measurement,
    MetricField,
    MetricSource,
    MetricSpec,
    PlanVersion,
    PriceModel,
    RatedLine,
    SessionPiece,
)
from cloud.errors import InvalidBillingInput
from cloud.rating.arithmetic import EXACT, check_amount, check_number, divide_half_up, exact
from cloud.rating.combine import CombinedRule
from cloud.rating.metrics import check_metric, clip_piece, measure
from cloud.rating.money import add_amounts, check_currency, prorate, round_money
from cloud.rating.pricing import Priced, price

ZERO = Decimal(0)
_BASE_FEE = "base fee"
_MINIMUM = "minimum amount"
# The proration factor in a line's detail is for reading only (the amount is prorated from the
# part and period themselves): 28 digits half-even, as it always read.
_FACTOR_DISPLAY = Context(
    prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_DURATION_LABEL = {DurationUnit.SECOND: "s", DurationUnit.MINUTE: "min", DurationUnit.HOUR: "h"}


@dataclass(frozen=True, slots=True)
class AccountUsage:
    """An account's usage in one period: pieces clipped to the period and bindings, events."""

    pieces: Sequence[SessionPiece]
    events: Sequence[BillableEvent]
    profile_of: Mapping[str, str]  # device_id -> profile id
    # Combined session rules by id and each bound device's site (`cloud.rating.combine`).
    combined: Mapping[str, CombinedRule] = field(default_factory=dict)
    site_of: Mapping[str, str | None] = field(default_factory=dict)


def plan_parts(
    versions: Sequence[PlanVersion], start: datetime, end: datetime
) -> list[tuple[PlanVersion, datetime, datetime]]:
    """[start, end) cut by plan version: (version, part start, part end), in time order.

    The version in force at `start` is the latest with effective_from <= start; each later one
    with effective_from inside (start, end) starts a new part. Time before the first version is
    in no part (it is not rated). Of two versions effective at the same instant the higher
    version number wins.
    """
    parts: list[tuple[PlanVersion, datetime, datetime]] = []
    current: PlanVersion | None = None
    current_start = start
    for version in sorted(versions, key=lambda v: (v.effective_from, v.version)):
        if version.effective_from >= end:
            break
        if version.effective_from > current_start and current is not None:
            parts.append((current, current_start, version.effective_from))
        current, current_start = version, max(start, version.effective_from)
    if current is not None and current_start < end:
        parts.append((current, current_start, end))
    return parts


def rate_period(
    *,
    currency: str,
    period_start: datetime,
    period_end: datetime,
    versions: Sequence[PlanVersion],
    metrics: Mapping[str, MetricSpec],
    usage: AccountUsage,
    account_id: str | None = None,
) -> list[RatedLine]:
    """Every line of one account's invoice for [period_start, period_end), rounded.

    `account_id`, when given, is named in every `RatingOutOfBounds`.
    """
    account: dict[str, object] = {} if account_id is None else {"account_id": account_id}
    with exact(account):
        _check_inputs(currency, period_start, period_end, versions, metrics, account)
        period = _microseconds(period_end - period_start)
        lines: list[RatedLine] = []
        for version, part_start, part_end in plan_parts(versions, period_start, period_end):
            whole = part_start == period_start and part_end == period_end
            part_usage = usage if whole else _part_usage(usage, part_start, part_end)
            part = _Part(
                currency=currency,
                version=version,
                start=part_start,
                end=part_end,
                length=_microseconds(part_end - part_start),
                period=period,
                where={**account, "plan": version.plan_id, "version": version.version},
            )
            lines.extend(_rate_part(part, metrics, part_usage))
        return lines


@dataclass(frozen=True, slots=True)
class _Part:
    """One part of the period under one plan version; `where` names it in errors."""

    currency: str
    version: PlanVersion
    start: datetime
    end: datetime
    length: int  # microseconds of the part
    period: int  # microseconds of the whole period
    where: dict[str, object]

    def line(self, kind: LineKind, description: str, amount: Decimal, **more: Any) -> RatedLine:
        """A line of this part."""
        return RatedLine(
            kind=kind,
            description=description,
            amount=amount,
            part_start=self.start,
            part_end=self.end,
            plan_id=self.version.plan_id,
            plan_version=self.version.version,
            **more,
        )


def _check_inputs(
    currency: str,
    period_start: datetime,
    period_end: datetime,
    versions: Sequence[PlanVersion],
    metrics: Mapping[str, MetricSpec],
    account: Mapping[str, object],
) -> None:
    check_currency(currency)
    if period_start.tzinfo is None or period_end.tzinfo is None:
        raise InvalidBillingInput("the period bounds must be aware datetimes (UTC)")
    if period_end <= period_start:
        raise InvalidBillingInput(
            "the period must end after it starts",
            detail={"start": period_start.isoformat(), "end": period_end.isoformat()},
        )
    for version in versions:
        _check_version(currency, version, metrics, account)


def _check_version(
    currency: str,
    version: PlanVersion,
    metrics: Mapping[str, MetricSpec],
    account: Mapping[str, object],
) -> None:
    where = {"plan": version.plan_id, "version": version.version}
    if version.currency != currency:
        raise InvalidBillingInput(
            f"plan {version.plan_id!r} v{version.version} is priced in {version.currency}, "
            f"the account is billed in {currency}",
            detail={**where, "plan_currency": version.currency, "currency": currency},
        )
    located = {**account, **where}
    check_number(version.base_fee, what=_BASE_FEE, where=located)
    check_number(version.minimum_amount, what=_MINIMUM, where=located)
    for charge in version.charges:
        spec = metrics.get(charge.metric)
        if spec is None:
            raise InvalidBillingInput(
                f"plan {version.plan_id!r} v{version.version} charges unknown metric "
                f"{charge.metric!r}",
                detail={**where, "metric": charge.metric},
            )
        check_metric(spec)
        _check_charge_numbers(charge, {**located, "charge": charge.metric})


def _check_charge_numbers(charge: Charge, where: Mapping[str, object]) -> None:
    """Every number of the charge within the bounds that keep its arithmetic exact."""
    numbers: list[tuple[str, Decimal | None]] = [
        ("included_units", charge.included_units),
        ("unit_price", charge.unit_price),
        ("package_size", charge.package_size),
        ("package_price", charge.package_price),
        ("block_size", charge.block_size),
    ]
    for n, tier in enumerate(charge.tiers, start=1):
        numbers += [
            (f"tier {n} up_to", tier.up_to),
            (f"tier {n} unit_price", tier.unit_price),
            (f"tier {n} flat_fee", tier.flat_fee),
        ]
    for what, value in numbers:
        if value is not None:
            check_number(value, what=what, where=where)


def _part_usage(usage: AccountUsage, start: datetime, end: datetime) -> AccountUsage:
    clipped = (clip_piece(piece, start, end) for piece in usage.pieces)
    return AccountUsage(
        pieces=[piece for piece in clipped if piece is not None],
        events=[event for event in usage.events if start <= event.occurred_at < end],
        profile_of=usage.profile_of,
        combined=usage.combined,
        site_of=usage.site_of,
    )


def _rate_part(
    part: _Part, metrics: Mapping[str, MetricSpec], usage: AccountUsage
) -> list[RatedLine]:
    lines: list[RatedLine] = []
    if part.version.base_fee > ZERO:
        lines.append(_base_fee_line(part))
    for charge in part.version.charges:
        lines.append(_usage_line(part, metrics[charge.metric], charge, usage))
    minimum = _minimum_line(part, lines)
    if minimum is not None:
        lines.append(minimum)
    return lines


def _base_fee_line(part: _Part) -> RatedLine:
    version = part.version
    where = {**part.where, "charge": _BASE_FEE}
    with exact(where):
        amount = prorate(version.base_fee, part.length, part.period, part.currency)
    check_amount(amount, what="the prorated base fee", where=where)
    description = f"Base fee, plan {version.plan_id} v{version.version}"
    if part.length != part.period:
        description += f", prorated {_hours(part.length)} h of {_hours(part.period)} h"
    return part.line(
        LineKind.BASE_FEE,
        description,
        amount,
        detail={"base_fee": str(version.base_fee), **_factor_detail(part)},
    )


def _usage_line(part: _Part, spec: MetricSpec, charge: Charge, usage: AccountUsage) -> RatedLine:
    where = {**part.where, "charge": charge.metric}
    with exact(where):
        measurement = measure(
            spec,
            pieces=usage.pieces,
            events=usage.events,
            profile_of=usage.profile_of,
            combined=usage.combined,
            site_of=usage.site_of,
        )
        priced = price(charge, measurement.value)
        check_amount(priced.amount, what="the amount", where=where)
        amount = round_money(priced.amount, part.currency)
    return part.line(
        LineKind.USAGE,
        _usage_description(spec, charge, measurement, priced),
        amount,
        metric=spec.id,
        quantity=measurement.value,
        billable=priced.billable,
        detail={**priced.detail, "quantity": str(measurement.value), "exact": str(priced.amount)},
        measurement=measurement,
    )


def _minimum_line(part: _Part, lines: list[RatedLine]) -> RatedLine | None:
    version, currency = part.version, part.currency
    where = {**part.where, "charge": _MINIMUM}
    with exact(where):
        minimum = prorate(version.minimum_amount, part.length, part.period, currency)
        check_amount(minimum, what="the prorated minimum amount", where=where)
        subtotal = add_amounts(line.amount for line in lines)
        if minimum <= subtotal:
            return None
        top_up = minimum - subtotal
    return part.line(
        LineKind.MINIMUM,
        (
            f"Minimum amount {minimum} {currency}, plan {version.plan_id} v{version.version}: "
            f"top-up from {subtotal} {currency}"
        ),
        top_up,
        detail={
            "minimum_amount": str(version.minimum_amount),
            "prorated_minimum": str(minimum),
            "subtotal": str(subtotal),
            **_factor_detail(part),
        },
    )


def _factor_detail(part: _Part) -> dict[str, object]:
    return {
        "factor": str(_FACTOR_DISPLAY.divide(part.length, part.period)),
        "part_seconds": str(EXACT.divide(part.length, 1_000_000)),
        "period_seconds": str(EXACT.divide(part.period, 1_000_000)),
    }


def _usage_description(
    spec: MetricSpec, charge: Charge, measurement: Measurement, priced: Priced
) -> str:
    """E.g. "Camera streaming (hours), 12.5 h: 10 included, 2.5 x 0.50"."""
    name = charge.description or spec.id
    head = f"{name}, {_plain(measurement.value)}{_unit_label(spec)}"
    terms = []
    if charge.included_units > ZERO:
        terms.append(f"{_plain(charge.included_units)} included")
    terms.append(_price_text(charge, priced) if priced.billable > ZERO else "nothing billable")
    return f"{head}: {', '.join(terms)}"


def _unit_label(spec: MetricSpec) -> str:
    if spec.field is MetricField.DURATION:
        return f" {_DURATION_LABEL[spec.duration_unit]}"
    if spec.aggregation in (Aggregation.COUNT, Aggregation.UNIQUE_COUNT):
        if spec.aggregation is Aggregation.UNIQUE_COUNT:
            return " devices"
        return " sessions" if spec.source is MetricSource.SESSIONS else " events"
    return f" {spec.unit}" if spec.unit else ""


def _price_text(charge: Charge, priced: Priced) -> str:
    if charge.model is PriceModel.STANDARD:
        return f"{_plain(priced.billable)} x {charge.unit_price}"
    if charge.model is PriceModel.PACKAGE:
        packages = priced.detail["packages"]
        size = _plain(charge.package_size or ZERO)
        return f"{packages} x {charge.package_price} (packages of {size})"
    steps = cast(list[dict[str, str | None]], priced.detail["steps"])
    text = " + ".join(_step_text(step) for step in steps)
    if charge.block_size is not None:  # e.g. "(blocks of 10, a started block billed whole)"
        text += f" (blocks of {_plain(charge.block_size)}, a started block billed whole)"
    return text


def _step_text(step: dict[str, str | None]) -> str:
    if "blocks" in step:  # a block-priced tier: "3 blocks x 0.50"
        text = f"{step['blocks']} blocks x {step['block_price']}"
    else:
        text = f"{_plain(Decimal(step['units'] or 0))} x {step['unit_price']}"
    if Decimal(step["flat_fee"] or 0):
        text += f" + {step['flat_fee']} flat"
    return text


def _plain(value: Decimal) -> str:
    """A quantity for reading: no exponent, no trailing zeros (12.500000 -> 12.5)."""
    return format(value.normalize(EXACT), "f")


def _hours(microseconds: int) -> str:
    """Microseconds as hours for reading: 2 places, half-up, in integers."""
    hundredths = divide_half_up(microseconds * 100, 3_600_000_000)
    return _plain(Decimal(hundredths).scaleb(-2, context=EXACT))


def _microseconds(duration: timedelta) -> int:
    return (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds
