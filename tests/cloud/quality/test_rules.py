"""The pure detection rules and the seq-range arithmetic (no database)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cloud.domain import (
    Aggregation,
    Charge,
    MetricField,
    MetricSource,
    MetricSpec,
    PlanVersion,
    PriceModel,
)
from cloud.incidents.evidence import merge_evidence
from cloud.quality import gap_ranges
from cloud.quality.rules import (
    AccountTerms,
    BoundSpan,
    Catalog,
    ProfileSessions,
    Thresholds,
    find,
)
from shared.chain import seal
from shared.events import GENESIS_HASH, ClockState, EventDraft, EventKind, UsageEvent

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
DEFAULTS = Thresholds()
WATER = MetricSpec(
    id="water",
    source=MetricSource.EVENTS,
    aggregation=Aggregation.SUM,
    field=MetricField.QUANTITY,
    names=frozenset({"water"}),
    unit="l",
)
STREAM = MetricSpec(
    id="stream",
    source=MetricSource.SESSIONS,
    aggregation=Aggregation.SUM,
    field=MetricField.DURATION,
    profiles=frozenset({"camera"}),
)
VERSION = PlanVersion(
    plan_id="basic",
    version=1,
    effective_from=datetime(2026, 10, 1, tzinfo=UTC),
    currency="EUR",
    charges=(
        Charge(metric="water", model=PriceModel.STANDARD, unit_price=Decimal("0.01")),
        Charge(metric="stream", model=PriceModel.STANDARD, unit_price=Decimal("0.5")),
    ),
)
CATALOG = Catalog(
    profile_of={"meter-1": "meter", "cam-1": "camera", "loose-1": "meter", "nop-1": "meter"},
    bindings={
        "meter-1": [BoundSpan("acme", datetime(2026, 10, 1, tzinfo=UTC), None)],
        "cam-1": [BoundSpan("acme", datetime(2026, 10, 1, tzinfo=UTC), None)],
        "nop-1": [BoundSpan("noplan", datetime(2026, 10, 1, tzinfo=UTC), None)],
    },
    accounts={
        "acme": AccountTerms("Europe/Berlin", (VERSION,)),
        "noplan": AccountTerms("UTC", ()),
    },
    metrics={"water": WATER, "stream": STREAM},
    sessions={"camera": ProfileSessions(frozenset({"start"}), frozenset({"stop"}))},
)


def event(
    device: str,
    name: str = "water",
    *,
    unit: str | None = "l",
    at: datetime = NOW - timedelta(minutes=1),
    attrs: dict[str, str | bool | int | None] | None = None,
    clock: ClockState = ClockState.SYNCED,
    seq: int = 1,
) -> UsageEvent:
    """One sealed event at `seq`."""
    draft = EventDraft(
        device_id=device,
        name=name,
        kind=EventKind.ACTIVITY,
        quantity=Decimal(1) if unit else None,
        unit=unit,
        occurred_at=at,
        observed_at=at,
        clock=clock,
        attrs=attrs or {},
    )
    return seal(draft, gateway_id="gw", seq=seq, prev_hash=GENESIS_HASH)


def kinds(events: list[UsageEvent], thresholds: Thresholds = DEFAULTS) -> set[tuple[str, str]]:
    """The (kind, device) of every finding."""
    found = find(events, received_at=NOW, catalog=CATALOG, thresholds=thresholds)
    return {(f.kind.value, f.device_id) for f in found}


def test_billed_usage_of_both_metric_sources_finds_nothing() -> None:
    billed = [
        event("meter-1"),
        event("cam-1", "start", unit=None),
        event("cam-1", "stop", unit=None),
    ]

    assert kinds(billed) == set()


def test_what_no_metric_counts_is_unbilled() -> None:
    assert kinds([event("meter-1", unit="L")]) == {("unbilled_usage", "meter-1")}
    assert kinds([event("cam-1", "motion", unit=None)]) == {("unbilled_usage", "cam-1")}
    assert kinds([event("nop-1")]) == {("unbilled_usage", "nop-1")}  # no plan version in force
    (no_unit,) = find(
        [event("cam-1", "motion", unit=None)], received_at=NOW, catalog=CATALOG, thresholds=DEFAULTS
    )
    assert no_unit.detail.endswith("counts 'motion' without a unit (seq 1)"), no_unit.detail


def test_status_reports_are_not_usage() -> None:
    report = {"report": "status"}

    assert (
        kinds([event("meter-1", unit="L", attrs=report), event("loose-1", attrs=report)]) == set()
    )


def test_behind_is_only_checked_when_set_and_only_for_synced_clocks() -> None:
    old = NOW - timedelta(hours=2)
    events = [event("x-1", at=old), event("x-2", at=old, clock=ClockState.UNSYNCED)]
    behind = Thresholds(clock_behind_after=timedelta(hours=1))

    assert kinds(events) == set()
    assert kinds(events, behind) == {("clock_skew", "x-1")}


def test_ahead_within_the_threshold_is_fine() -> None:
    assert kinds([event("x-1", at=NOW + timedelta(minutes=4))]) == set()
    assert kinds([event("x-1", at=NOW + timedelta(minutes=6))]) == {("clock_skew", "x-1")}


def test_one_finding_per_kind_and_device_naming_every_seq() -> None:
    events = [event("meter-1", unit="L", seq=n) for n in (4, 5, 9)]

    (finding,) = find(events, received_at=NOW, catalog=CATALOG, thresholds=Thresholds())

    assert finding.seqs == (4, 5, 9) and "3 event(s) of meter-1" in finding.detail
    assert finding.evidence(7) == {
        "batch_id": 7,
        "seqs": [4, 5, 9],
        "readings": list(finding.readings),
    }


@pytest.mark.parametrize(
    ("ranges", "filled", "left"),
    [
        ([(4, 7)], [(4, 5)], [(6, 7)]),
        ([(4, 7)], [(5, 6)], [(4, 4), (7, 7)]),
        ([(4, 7), (10, 12)], [(1, 20)], []),
        ([(4, 7)], [(8, 9)], [(4, 7)]),
    ],
)
def test_subtract(
    ranges: list[tuple[int, int]], filled: list[tuple[int, int]], left: list[tuple[int, int]]
) -> None:
    assert gap_ranges.subtract(ranges, filled) == left


def test_runs_union_skipped() -> None:
    assert gap_ranges.runs([5, 1, 2, 3, 7, 6]) == [(1, 3), (5, 7)]
    assert gap_ranges.union([(5, 6), (1, 2), (3, 3), (9, 9)]) == [(1, 3), (5, 6), (9, 9)]
    assert gap_ranges.union([(5, 6), (1, 4), (2, 3)]) == [(1, 6)]
    assert gap_ranges.skipped(None, 1) is None
    assert gap_ranges.skipped(None, 4) == (1, 3)
    assert gap_ranges.skipped(9, 10) is None
    assert gap_ranges.count([(1, 3), (7, 7)]) == 4


def test_evidence_merge_keeps_new_scalars_and_the_newest_list_items() -> None:
    merged = merge_evidence({"seqs": [1, 2], "batch_id": 1}, {"seqs": [2, 3], "batch_id": 2})

    assert merged == {"seqs": [1, 2, 3], "batch_id": 2}
    assert merge_evidence(None, None) is None


def test_late_arrival_tolerates_forwarding_latency_at_the_month_end() -> None:
    month_end = datetime(2026, 11, 30, 23, tzinfo=UTC)  # midnight in Berlin
    last_minute = event("meter-1", at=month_end - timedelta(minutes=1))

    def late(received: datetime) -> bool:
        found = find([last_minute], received_at=received, catalog=CATALOG, thresholds=DEFAULTS)
        return any(f.kind.value == "late_arrival" for f in found)

    assert not late(month_end + timedelta(minutes=59))
    assert late(month_end + timedelta(hours=1))
    assert not find(
        [last_minute],
        received_at=month_end + timedelta(hours=2),
        catalog=CATALOG,
        thresholds=Thresholds(late_arrival_after=timedelta(hours=3)),
    )
