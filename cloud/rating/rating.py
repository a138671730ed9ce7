"""Rating: one account's usage over one billing period, priced under its plan versions.

The period is cut into parts, one per plan version in force (`plan_parts`). Each part gives, in
this order: a base fee line (prorated by real elapsed seconds, so a 743-hour DST month prorates
by 743 hours), one usage line per charge in plan order (also when zero: the customer sees it),
and a minimum line topping the part up to its prorated minimum amount. Every line is rounded to
the currency's minor unit once; the invoice total is the sum of the lines.

Pure: the caller loads the usage (pieces clipped to the period and each device's binding, events
inside the period and bound to the account) and writes the lines.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import cast

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
from cloud.rating.metrics import check_metric, clip_piece, measure
from cloud.rating.money import check_currency, round_money
from cloud.rating.pricing import Priced, price

ZERO = Decimal(0)
_DURATION_LABEL = {DurationUnit.SECOND: "s", DurationUnit.MINUTE: "min", DurationUnit.HOUR: "h"}


@dataclass(frozen=True, slots=True)
class AccountUsage:
    """An account's usage in one period: pieces clipped to the period and bindings, events."""

    pieces: Sequence[SessionPiece]
    events: Sequence[BillableEvent]
    profile_of: Mapping[str, str]  # device_id -> profile id


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
) -> list[RatedLine]:
    """Every line of one account's invoice for [period_start, period_end), rounded."""
    _check_inputs(currency, period_start, period_end, versions, metrics)
    period = _microseconds(period_end - period_start)
    lines: list[RatedLine] = []
    for version, part_start, part_end in plan_parts(versions, period_start, period_end):
        whole = part_start == period_start and part_end == period_end
        part_usage = usage if whole else _part_usage(usage, part_start, part_end)
        factor_parts = (_microseconds(part_end - part_start), period)
        lines.extend(
            _rate_part(currency, version, metrics, part_usage, part_start, part_end, factor_parts)
        )
    return lines


def _check_inputs(
    currency: str,
    period_start: datetime,
    period_end: datetime,
    versions: Sequence[PlanVersion],
    metrics: Mapping[str, MetricSpec],
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
        _check_version(currency, version, metrics)


def _check_version(currency: str, version: PlanVersion, metrics: Mapping[str, MetricSpec]) -> None:
    where = {"plan": version.plan_id, "version": version.version}
    if version.currency != currency:
        raise InvalidBillingInput(
            f"plan {version.plan_id!r} v{version.version} is priced in {version.currency}, "
            f"the account is billed in {currency}",
            detail={**where, "plan_currency": version.currency, "currency": currency},
        )
    for charge in version.charges:
        spec = metrics.get(charge.metric)
        if spec is None:
            raise InvalidBillingInput(
                f"plan {version.plan_id!r} v{version.version} charges unknown metric "
                f"{charge.metric!r}",
                detail={**where, "metric": charge.metric},
            )
        check_metric(spec)


def _part_usage(usage: AccountUsage, start: datetime, end: datetime) -> AccountUsage:
    clipped = (clip_piece(piece, start, end) for piece in usage.pieces)
    return AccountUsage(
        pieces=[piece for piece in clipped if piece is not None],
        events=[event for event in usage.events if start <= event.occurred_at < end],
        profile_of=usage.profile_of,
    )


def _rate_part(
    currency: str,
    version: PlanVersion,
    metrics: Mapping[str, MetricSpec],
    usage: AccountUsage,
    start: datetime,
    end: datetime,
    factor_parts: tuple[int, int],
) -> list[RatedLine]:
    lines: list[RatedLine] = []
    if version.base_fee > ZERO:
        lines.append(_base_fee_line(currency, version, start, end, factor_parts))
    for charge in version.charges:
        lines.append(
            _usage_line(currency, version, metrics[charge.metric], charge, usage, start, end)
        )
    minimum = _minimum_line(currency, version, lines, start, end, factor_parts)
    if minimum is not None:
        lines.append(minimum)
    return lines


def _base_fee_line(
    currency: str,
    version: PlanVersion,
    start: datetime,
    end: datetime,
    factor_parts: tuple[int, int],
) -> RatedLine:
    part, period = factor_parts
    amount = round_money(version.base_fee * part / period, currency)
    description = f"Base fee, plan {version.plan_id} v{version.version}"
    if part != period:
        description += f", prorated {_hours(part)} h of {_hours(period)} h"
    return RatedLine(
        kind=LineKind.BASE_FEE,
        description=description,
        amount=amount,
        part_start=start,
        part_end=end,
        plan_id=version.plan_id,
        plan_version=version.version,
        detail={"base_fee": str(version.base_fee), **_factor_detail(factor_parts)},
    )


def _usage_line(
    currency: str,
    version: PlanVersion,
    spec: MetricSpec,
    charge: Charge,
    usage: AccountUsage,
    start: datetime,
    end: datetime,
) -> RatedLine:
    measurement = measure(
        spec, pieces=usage.pieces, events=usage.events, profile_of=usage.profile_of
    )
    priced = price(charge, measurement.value)
    return RatedLine(
        kind=LineKind.USAGE,
        description=_usage_description(spec, charge, measurement, priced),
        amount=round_money(priced.amount, currency),
        part_start=start,
        part_end=end,
        plan_id=version.plan_id,
        plan_version=version.version,
        metric=spec.id,
        quantity=measurement.value,
        billable=priced.billable,
        detail={**priced.detail, "quantity": str(measurement.value), "exact": str(priced.amount)},
        measurement=measurement,
    )


def _minimum_line(
    currency: str,
    version: PlanVersion,
    lines: list[RatedLine],
    start: datetime,
    end: datetime,
    factor_parts: tuple[int, int],
) -> RatedLine | None:
    part, period = factor_parts
    minimum = round_money(version.minimum_amount * part / period, currency)
    subtotal = sum((line.amount for line in lines), ZERO)
    if minimum <= subtotal:
        return None
    return RatedLine(
        kind=LineKind.MINIMUM,
        description=(
            f"Minimum amount {minimum} {currency}, plan {version.plan_id} v{version.version}: "
            f"top-up from {subtotal} {currency}"
        ),
        amount=minimum - subtotal,
        part_start=start,
        part_end=end,
        plan_id=version.plan_id,
        plan_version=version.version,
        detail={
            "minimum_amount": str(version.minimum_amount),
            "prorated_minimum": str(minimum),
            "subtotal": str(subtotal),
            **_factor_detail(factor_parts),
        },
    )


def _factor(factor_parts: tuple[int, int]) -> Decimal:
    part, period = factor_parts
    return Decimal(part) / Decimal(period)


def _factor_detail(factor_parts: tuple[int, int]) -> dict[str, object]:
    part, period = factor_parts
    return {
        "factor": str(_factor(factor_parts)),
        "part_seconds": str(Decimal(part) / 1_000_000),
        "period_seconds": str(Decimal(period) / 1_000_000),
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
    return " + ".join(_step_text(step) for step in steps)


def _step_text(step: dict[str, str | None]) -> str:
    text = f"{_plain(Decimal(step['units'] or 0))} x {step['unit_price']}"
    if Decimal(step["flat_fee"] or 0):
        text += f" + {step['flat_fee']} flat"
    return text


def _plain(value: Decimal) -> str:
    """A quantity for reading: no exponent, no trailing zeros (12.500000 -> 12.5)."""
    return format(value.normalize(), "f")


def _hours(microseconds: int) -> str:
    return _plain((Decimal(microseconds) / 3_600_000_000).quantize(Decimal("0.01")))


def _microseconds(duration: timedelta) -> int:
    return (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds
