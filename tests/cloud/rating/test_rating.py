"""Rating a period: known answers by hand for lines, parts, proration, minimums and bad input."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from cloud.domain import (
    Aggregation,
    BillableEvent,
    Charge,
    CloseReason,
    LineKind,
    MetricField,
    MetricSource,
    MetricSpec,
    PlanVersion,
    PriceModel,
    RatedLine,
    SessionPiece,
    Tier,
)
from cloud.errors import InvalidBillingInput
from cloud.rating.rating import AccountUsage, plan_parts, rate_period

D = Decimal
NOV = datetime(2026, 11, 1, tzinfo=UTC)  # November 2026 in UTC: 30 days = 720 h
DEC = datetime(2026, 12, 1, tzinfo=UTC)

METRICS = {
    "stream_hours": MetricSpec(
        id="stream_hours",
        source=MetricSource.SESSIONS,
        aggregation=Aggregation.SUM,
        field=MetricField.DURATION,
        profiles=frozenset({"camera"}),
    ),
    "streams": MetricSpec(
        id="streams",
        source=MetricSource.SESSIONS,
        aggregation=Aggregation.COUNT,
        profiles=frozenset({"camera"}),
    ),
    "unlocks": MetricSpec(
        id="unlocks",
        source=MetricSource.SESSIONS,
        aggregation=Aggregation.COUNT,
        profiles=frozenset({"lock"}),
    ),
    "energy": MetricSpec(
        id="energy",
        source=MetricSource.EVENTS,
        aggregation=Aggregation.SUM,
        field=MetricField.QUANTITY,
        unit="kWh",
    ),
}
PROFILE_OF = {"cam1": "camera", "lock1": "lock", "meter1": "meter"}

STREAMING = Charge(
    metric="stream_hours",
    model=PriceModel.STANDARD,
    description="Camera streaming (hours)",
    included_units=D(10),
    unit_price=D("0.50"),
)
ENERGY = Charge(
    metric="energy",
    model=PriceModel.GRADUATED,
    description="Energy",
    tiers=(Tier(D(100), D("0.20")), Tier(None, D("0.15"))),
)
UNLOCKS = Charge(
    metric="unlocks", model=PriceModel.PACKAGE, package_size=D(10), package_price=D("1.00")
)


def version(
    number: int,
    effective_from: datetime,
    *charges: Charge,
    base_fee: str = "0",
    minimum: str = "0",
    currency: str = "EUR",
) -> PlanVersion:
    return PlanVersion(
        plan_id="home",
        version=number,
        effective_from=effective_from,
        currency=currency,
        base_fee=D(base_fee),
        minimum_amount=D(minimum),
        charges=charges,
    )


_ids = iter(range(1, 10_000))


def session(device: str, profile: str, start: datetime, hours: float) -> SessionPiece:
    end = start + timedelta(hours=hours)
    return SessionPiece(
        session_id=next(_ids),
        device_id=device,
        channel=None,
        name="start",
        profile=profile,
        started_at=start,
        ended_at=end,
        close_reason=CloseReason.DEACTIVATED,
        piece_start=start,
        piece_end=end,
        is_start=True,
    )


_seqs = iter(range(1, 10_000))


def reading(at: datetime, kwh: str) -> BillableEvent:
    return BillableEvent(
        gateway_id="gw1",
        seq=next(_seqs),
        device_id="meter1",
        channel=None,
        name="energy",
        kind="reading",
        quantity=D(kwh),
        unit="kWh",
        occurred_at=at,
    )


def day(n: int, hour: int = 0) -> datetime:
    return NOV + timedelta(days=n - 1, hours=hour)


def rate(
    versions: list[PlanVersion],
    pieces: list[SessionPiece],
    events: list[BillableEvent],
    *,
    start: datetime = NOV,
    end: datetime = DEC,
    currency: str = "EUR",
) -> list[RatedLine]:
    usage = AccountUsage(pieces=pieces, events=events, profile_of=PROFILE_OF)
    return rate_period(
        currency=currency,
        period_start=start,
        period_end=end,
        versions=versions,
        metrics=METRICS,
        usage=usage,
    )


def amounts(lines: list[RatedLine]) -> list[tuple[LineKind, str | None, Decimal]]:
    return [(line.kind, line.metric, line.amount) for line in lines]


# Usage of one November: 12.5 camera hours, 120.5 kWh, 11 unlocks.
CAMERA = [session("cam1", "camera", day(3, 8), 10), session("cam1", "camera", day(20, 18), 2.5)]
LOCK = [session("lock1", "lock", day(n, 7), 0.1) for n in range(1, 12)]
READINGS = [reading(day(2), "100"), reading(day(28, 23), "20.5")]
NOVEMBER = CAMERA + LOCK


def test_one_version_one_month() -> None:
    plan = version(1, datetime(2026, 1, 1, tzinfo=UTC), STREAMING, ENERGY, UNLOCKS, base_fee="9.90")
    lines = rate([plan], NOVEMBER, READINGS)
    assert amounts(lines) == [
        (LineKind.BASE_FEE, None, D("9.90")),  # whole month: factor 1
        (LineKind.USAGE, "stream_hours", D("1.25")),  # 12.5 h - 10 included = 2.5 x 0.50
        (LineKind.USAGE, "energy", D("23.08")),  # 100 x 0.20 + 20.5 x 0.15 = 23.075 -> half-up
        (LineKind.USAGE, "unlocks", D("2.00")),  # 11 unlocks: 2 started packages x 1.00
    ]
    assert sum(line.amount for line in lines) == D("36.23")
    base, streaming, energy, unlocks = lines
    assert base.detail["factor"] == "1"
    assert streaming.description == "Camera streaming (hours), 12.5 h: 10 included, 2.5 x 0.50"
    assert (streaming.quantity, streaming.billable) == (D("12.5"), D("2.5"))
    assert energy.description == "Energy, 120.5 kWh: 100 x 0.20 + 20.5 x 0.15"
    assert energy.detail["exact"] == "23.075"
    assert unlocks.description == "unlocks, 11 sessions: 2 x 1.00 (packages of 10)"
    for line in lines:
        assert (line.part_start, line.part_end, line.plan_id, line.plan_version) == (
            NOV,
            DEC,
            "home",
            1,
        )


def test_usage_lines_carry_their_evidence() -> None:
    plan = version(1, NOV, STREAMING, ENERGY, UNLOCKS)
    streaming, energy, unlocks = rate([plan], NOVEMBER, READINGS)
    assert streaming.measurement is not None and energy.measurement is not None
    assert streaming.measurement.sessions == tuple(CAMERA)
    assert energy.measurement.events == tuple(event.key for event in READINGS)
    assert unlocks.measurement is not None and unlocks.measurement.sessions == tuple(LOCK)


def test_zero_usage_still_shows_every_charge() -> None:
    plan = version(1, NOV, STREAMING, ENERGY, UNLOCKS)
    lines = rate([plan], [], [])
    assert amounts(lines) == [
        (LineKind.USAGE, "stream_hours", D("0.00")),
        (LineKind.USAGE, "energy", D("0.00")),
        (LineKind.USAGE, "unlocks", D("0.00")),
    ]
    assert lines[0].description == "Camera streaming (hours), 0 h: 10 included, nothing billable"
    assert lines[1].description == "Energy, 0 kWh: nothing billable"


@pytest.mark.parametrize(
    ("minimum", "top_up"),
    [
        ("50.00", "13.77"),  # usage 36.23 below the minimum: 50.00 - 36.23
        ("36.23", None),  # exactly the minimum: no line
        ("30.00", None),  # above it: no line
    ],
)
def test_minimum_amount(minimum: str, top_up: str | None) -> None:
    plan = version(1, NOV, STREAMING, ENERGY, UNLOCKS, base_fee="9.90", minimum=minimum)
    lines = rate([plan], NOVEMBER, READINGS)
    if top_up is None:
        assert [line.kind for line in lines].count(LineKind.MINIMUM) == 0
        return
    assert amounts(lines)[-1] == (LineKind.MINIMUM, None, D(top_up))
    assert sum(line.amount for line in lines) == D(minimum)
    assert lines[-1].detail["subtotal"] == "36.23"


def test_plan_change_mid_period() -> None:
    # v1 until 16 Nov 00:00 UTC, v2 from then: two parts of 15 days = 360 h of 720 h each.
    v1 = version(1, datetime(2026, 10, 1, tzinfo=UTC), *_change_charges("0.50"), base_fee="30.00")
    v2 = version(2, day(16), *_change_charges("0.40"), base_fee="60.00", minimum="80.00")
    crossing = session("cam1", "camera", day(15, 22), 4)  # 2 h in each part, starts in part 1
    pieces = [
        session("cam1", "camera", day(3), 10),
        crossing,
        session("cam1", "camera", day(20), 5),
    ]
    events = [reading(day(10), "5"), reading(day(16), "3")]  # the second at the change: part 2
    lines = rate([v1, v2], pieces, events)
    assert amounts(lines) == [
        (LineKind.BASE_FEE, None, D("15.00")),  # 30.00 x 360/720
        (LineKind.USAGE, "stream_hours", D("6.00")),  # (10 + 2) h x 0.50
        (LineKind.USAGE, "streams", D("0.20")),  # 2 starts x 0.10
        (LineKind.USAGE, "energy", D("1.50")),  # 5 kWh x 0.30
        (LineKind.BASE_FEE, None, D("30.00")),  # 60.00 x 360/720
        (LineKind.USAGE, "stream_hours", D("2.80")),  # (2 + 5) h x 0.40
        (LineKind.USAGE, "streams", D("0.10")),  # 1 start (the crossing one counted in part 1)
        (LineKind.USAGE, "energy", D("0.90")),  # 3 kWh x 0.30
        (LineKind.MINIMUM, None, D("6.20")),  # 80.00 x 0.5 = 40.00 - (30 + 2.8 + 0.1 + 0.9)
    ]
    assert [line.plan_version for line in lines] == [1, 1, 1, 1, 2, 2, 2, 2, 2]
    assert {(line.part_start, line.part_end) for line in lines[:4]} == {(NOV, day(16))}
    assert {(line.part_start, line.part_end) for line in lines[4:]} == {(day(16), DEC)}
    assert lines[0].detail["factor"] == "0.5"
    assert lines[0].description == "Base fee, plan home v1, prorated 360 h of 720 h"
    part_two_streams = lines[5].measurement
    assert part_two_streams is not None
    assert [(p.piece_start, p.piece_end, p.is_start) for p in part_two_streams.sessions] == [
        (day(16), day(16, 2), False),
        (day(20), day(20, 5), True),
    ]


def _change_charges(unit_price: str) -> tuple[Charge, ...]:
    return (
        Charge(metric="stream_hours", model=PriceModel.STANDARD, unit_price=D(unit_price)),
        Charge(metric="streams", model=PriceModel.STANDARD, unit_price=D("0.10")),
        Charge(metric="energy", model=PriceModel.STANDARD, unit_price=D("0.30")),
    )


def test_plan_change_in_berlin_dst_month_prorates_by_real_hours() -> None:
    # March 2026 in Europe/Berlin: 28 Feb 23:00Z to 31 Mar 22:00Z = 743 h (clocks go forward
    # on 29 March). v2 from 16 March 00:00 Berlin (15 Mar 23:00Z): part 1 is 15 days = 360 h,
    # part 2 is 383 h. 74.30 / 743 = 0.10 an hour: 36.00 + 38.30 = the whole 74.30.
    # (A naive 31 x 24 = 744 h month would give 74.30 x 360/744 = 35.95.)
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 1, tzinfo=berlin).astimezone(UTC)
    end = datetime(2026, 4, 1, tzinfo=berlin).astimezone(UTC)
    change = datetime(2026, 3, 16, tzinfo=berlin).astimezone(UTC)
    assert end - start == timedelta(hours=743)
    v1 = version(1, datetime(2026, 1, 1, tzinfo=UTC), base_fee="74.30")
    v2 = version(2, change, base_fee="74.30")
    lines = rate([v1, v2], [], [], start=start, end=end)
    assert amounts(lines) == [
        (LineKind.BASE_FEE, None, D("36.00")),
        (LineKind.BASE_FEE, None, D("38.30")),
    ]
    assert lines[0].detail["part_seconds"] == "1296000"  # 360 x 3600
    assert lines[0].detail["period_seconds"] == "2674800"  # 743 x 3600
    assert lines[1].detail["part_seconds"] == "1378800"  # 383 x 3600


def test_plan_change_in_new_york_dst_month() -> None:
    # November 2026 in America/New_York: 1 Nov 04:00Z (EDT) to 1 Dec 05:00Z (EST) = 721 h.
    # v2 from 16 Nov 00:00 EST (05:00Z): part 1 = 15 days + the extra hour = 361 h, part 2 = 360 h.
    # 72.10 / 721 = 0.10 an hour: 36.10 + 36.00.
    new_york = ZoneInfo("America/New_York")
    start = datetime(2026, 11, 1, tzinfo=new_york).astimezone(UTC)
    end = datetime(2026, 12, 1, tzinfo=new_york).astimezone(UTC)
    change = datetime(2026, 11, 16, tzinfo=new_york).astimezone(UTC)
    v1 = version(1, datetime(2026, 1, 1, tzinfo=UTC), base_fee="72.10")
    v2 = version(2, change, base_fee="72.10")
    lines = rate([v1, v2], [], [], start=start, end=end)
    assert [line.amount for line in lines] == [D("36.10"), D("36.00")]


@pytest.mark.parametrize(
    ("currency", "fee", "first", "second"),
    [
        ("EUR", "10.00", "3.33", "6.67"),  # 10 x 1/3 = 3.333.. ; 10 x 2/3 = 6.666.. -> 6.67
        ("JPY", "1000", "333", "667"),  # no minor unit: 333.33.. and 666.66.. -> 667
        ("KWD", "1.000", "0.333", "0.667"),  # three decimals
    ],
)
def test_each_line_rounded_to_the_currency(
    currency: str, fee: str, first: str, second: str
) -> None:
    # v2 from 11 Nov: parts of 10 and 20 days of 30
    v1 = version(1, NOV, base_fee=fee, currency=currency)
    v2 = version(2, day(11), base_fee=fee, currency=currency)
    lines = rate([v1, v2], [], [], currency=currency)
    assert [str(line.amount) for line in lines] == [first, second]


def test_time_before_the_first_version_is_not_rated() -> None:
    # v1 from 11 Nov: one part of 20 days of 30; 30.00 x 2/3 = 20.00; usage before is ignored.
    plan = version(1, day(11), STREAMING, ENERGY, base_fee="30.00")
    before = session("cam1", "camera", day(5), 20)
    straddling = session("cam1", "camera", day(10, 20), 16)  # 4 h before, 12 h inside
    lines = rate([plan], [before, straddling], [reading(day(5), "50"), reading(day(12), "7")])
    assert amounts(lines) == [
        (LineKind.BASE_FEE, None, D("20.00")),
        (LineKind.USAGE, "stream_hours", D("1.00")),  # 12 h - 10 included = 2 x 0.50
        (LineKind.USAGE, "energy", D("1.40")),  # 7 kWh x 0.20
    ]
    assert lines[0].part_start == day(11)


def test_no_version_in_force_gives_no_lines() -> None:
    assert rate([version(1, DEC, STREAMING, base_fee="9.90")], NOVEMBER, READINGS) == []
    assert rate([], NOVEMBER, READINGS) == []


# --- plan_parts ---------------------------------------------------------------------------------


def test_plan_parts_takes_the_latest_version_in_force() -> None:
    v1, v2 = (
        version(1, datetime(2026, 9, 1, tzinfo=UTC)),
        version(2, datetime(2026, 10, 1, tzinfo=UTC)),
    )
    v3, v4 = version(3, day(10)), version(4, DEC)  # v4 starts at the end: not in this period
    parts = plan_parts([v4, v3, v1, v2], NOV, DEC)
    assert [(v.version, s, e) for v, s, e in parts] == [(2, NOV, day(10)), (3, day(10), DEC)]


def test_plan_parts_same_instant_higher_version_wins() -> None:
    parts = plan_parts([version(2, day(5)), version(1, day(5))], NOV, DEC)
    assert [(v.version, s, e) for v, s, e in parts] == [(2, day(5), DEC)]


def test_plan_parts_version_at_the_start() -> None:
    parts = plan_parts([version(1, datetime(2026, 1, 1, tzinfo=UTC)), version(2, NOV)], NOV, DEC)
    assert [(v.version, s, e) for v, s, e in parts] == [(2, NOV, DEC)]


# --- bad input ----------------------------------------------------------------------------------


def test_unknown_metric_is_refused() -> None:
    plan = version(1, NOV, Charge(metric="liters", model=PriceModel.STANDARD, unit_price=D(1)))
    with pytest.raises(InvalidBillingInput, match="unknown metric 'liters'") as caught:
        rate([plan], NOVEMBER, READINGS)
    assert caught.value.detail == {"plan": "home", "version": 1, "metric": "liters"}


def test_currency_mismatch_is_refused() -> None:
    plan = version(1, NOV, STREAMING, currency="USD")
    with pytest.raises(InvalidBillingInput, match="priced in USD, the account is billed in EUR"):
        rate([plan], NOVEMBER, READINGS)


def test_unknown_currency_is_refused() -> None:
    plan = version(1, NOV, STREAMING, currency="XYZ")
    with pytest.raises(InvalidBillingInput, match="unknown currency 'XYZ'"):
        rate([plan], NOVEMBER, READINGS, currency="XYZ")


def test_bad_metric_spec_is_refused() -> None:
    bad = MetricSpec(id="energy", source=MetricSource.EVENTS, aggregation=Aggregation.SUM)
    plan = version(1, NOV, ENERGY)
    usage = AccountUsage(pieces=[], events=READINGS, profile_of=PROFILE_OF)
    with pytest.raises(InvalidBillingInput, match="sum needs a field"):
        rate_period(
            currency="EUR",
            period_start=NOV,
            period_end=DEC,
            versions=[plan],
            metrics={"energy": bad},
            usage=usage,
        )


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (DEC, NOV, "must end after it starts"),
        (NOV, NOV, "must end after it starts"),
        (NOV.replace(tzinfo=None), DEC, "aware"),
    ],
)
def test_bad_period_is_refused(start: datetime, end: datetime, message: str) -> None:
    with pytest.raises(InvalidBillingInput, match=message):
        rate([version(1, NOV, STREAMING)], [], [], start=start, end=end)
