"""The pure mapping: field lookup, time parsing, SourceMapping validation and make_draft."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from cloud.direct.mapping import (
    AmbiguousTimes,
    MissingTimes,
    Origin,
    RowError,
    SourceMapping,
    TypeRule,
    lookup,
    make_draft,
)
from cloud.direct.times import parse_file_time, parse_rfc3339
from shared.events import ClockState, EventKind
from tests.cloud.direct.conftest import quantity_reason

BERLIN = ZoneInfo("Europe/Berlin")
POUR = {"type": "com.acme.pour", "name": "pour", "kind": "measurement", "quantity": "kg"}
START = {"type": "com.acme.start", "name": "start", "kind": "activation"}
FILES = {"device": "meter", "time": "ts"}


# -- lookup ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "path", "value"),
    [
        ({"kg": "1.5"}, "kg", "1.5"),
        ({"a": {"b": {"c": 2}}}, "a.b.c", 2),
        ({"a": {"b": {"c": 2}}}, "a.b", {"c": 2}),
        ({"a.b": 1, "a": {"b": 2}}, "a.b", 1),
        ({"a": {"b": 0}}, "a.b", 0),
        ({"a": {"b": 2}}, "a.c", None),
        ({"a": 5}, "a.b", None),
        ({"a": [10, 20]}, "a.0", None),
        ({"a": {"b": None}}, "a.b", None),
        ({}, "kg", None),
    ],
    ids=[
        "key",
        "nested",
        "object",
        "exact-key-first",
        "falsy-kept",
        "missing-leaf",
        "through-scalar",
        "no-list-index",
        "null",
        "empty",
    ],
)
def test_lookup(record: dict[str, Any], path: str, value: Any) -> None:
    """An exact key wins; else a dotted path into objects; anything else is None."""
    assert lookup(record, path) == value


# -- file times -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "zone", "instant"),
    [
        ("2026-11-01T08:00:00+01:00", None, datetime(2026, 11, 1, 7, tzinfo=UTC)),
        ("2026-11-01T08:00:00-05:30", None, datetime(2026, 11, 1, 13, 30, tzinfo=UTC)),
        ("2026-11-01T08:00:00Z", None, datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T08:00:00.123456Z", None, datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=UTC)),
        ("  2026-11-01T08:00:00Z ", None, datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T08:00:00Z", BERLIN, datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T08:00:00", BERLIN, datetime(2026, 11, 1, 7, tzinfo=UTC)),
        ("2026-07-01T08:00:00", BERLIN, datetime(2026, 7, 1, 6, tzinfo=UTC)),
        ("2026-11-01 08:00:00", ZoneInfo("UTC"), datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-10-25T01:59:59", BERLIN, datetime(2026, 10, 24, 23, 59, 59, tzinfo=UTC)),
        ("2026-10-25T03:00:00", BERLIN, datetime(2026, 10, 25, 2, tzinfo=UTC)),
        ("2026-03-29T01:59:59", BERLIN, datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)),
        ("2026-03-29T03:00:00", BERLIN, datetime(2026, 3, 29, 1, tzinfo=UTC)),
    ],
    ids=[
        "offset",
        "negative-offset",
        "z",
        "fraction",
        "spaces",
        "offset-wins-over-zone",
        "naive-winter",
        "naive-summer",
        "space-separator",
        "before-fall-back",
        "after-fall-back",
        "before-spring-forward",
        "after-spring-forward",
    ],
)
def test_parse_file_time(value: str, zone: ZoneInfo | None, instant: datetime) -> None:
    """Times with an offset keep their instant; times without one are wall time in `zone`."""
    placed = parse_file_time(value, field="ts", zone=zone)
    assert placed.moment.tzinfo is UTC
    assert placed == (instant, None)


def test_parse_file_time_takes_datetimes() -> None:
    """An aware datetime is placed as is; a naive one is wall time in `zone`."""
    aware = datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert parse_file_time(aware, field="ts").moment == aware
    naive = datetime(2026, 11, 1, 8)
    assert parse_file_time(naive, field="ts", zone=BERLIN).moment == datetime(
        2026, 11, 1, 7, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-11-01T08:00:00", "'2026-11-01T08:00:00' has no UTC offset "
         "(set files.time_zone in the mapping)"),
        (datetime(2026, 11, 1, 8), "datetime.datetime(2026, 11, 1, 8, 0) has no UTC offset "
         "(set files.time_zone in the mapping)"),
        ("yesterday", "'yesterday' is not an RFC 3339 time"),
        ("2026-13-01T08:00:00Z", "'2026-13-01T08:00:00Z' is not an RFC 3339 time"),
        ("x" * 100, "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… is not an RFC 3339 time"),
        ("0001-01-01T00:00:00+01:00",
         "'0001-01-01T00:00:00+01:00': time is outside the supported range"),
        ("9999-12-31T23:59:59-01:00",
         "'9999-12-31T23:59:59-01:00': time is outside the supported range"),
        ("1969-12-31T23:59:59Z", "'1969-12-31T23:59:59Z': time must lie in [1970, 9000)"),
        ("9000-01-01T00:00:00Z", "'9000-01-01T00:00:00Z': time must lie in [1970, 9000)"),
        (None, "a time is required"),
        ("", "a time is required"),
        ("   ", "a time is required"),
        (1700000000, "a time is required"),
    ],
)  # fmt: skip
def test_parse_file_time_errors(value: Any, reason: str) -> None:
    """A time that cannot be placed (or lies outside 1970..9000) is a RowError on the field."""
    with pytest.raises(RowError) as caught:
        parse_file_time(value, field="ts")
    assert (caught.value.field, caught.value.reason) == ("ts", reason)


def test_local_time_outside_the_range_is_refused() -> None:
    """Wall time in a zone that leaves datetime's range is refused, not an OverflowError."""
    with pytest.raises(RowError) as caught:
        parse_file_time("0001-01-01T00:00:00", field="ts", zone=BERLIN)
    assert caught.value.reason == "'0001-01-01T00:00:00': time is outside the supported range"


REPEATED = "2026-10-25T02:30:00"  # Berlin shows 02:00-03:00 twice: CEST (+02:00), then CET
SKIPPED = "2026-03-29T02:30:00"  # Berlin moves from 02:00 CET to 03:00 CEST


def test_a_repeated_local_time_is_refused_by_default() -> None:
    """The fall-back hour happens twice: without a rule the row is refused, naming both."""
    with pytest.raises(RowError) as caught:
        parse_file_time(REPEATED, field="ts", zone=BERLIN)
    assert (caught.value.field, caught.value.reason) == (
        "ts",
        "02:30 on 2026-10-25 happens twice in Europe/Berlin (at +02:00 and +01:00); "
        "add an offset or set files.ambiguous_times",
    )


def test_a_skipped_local_time_is_refused_by_default() -> None:
    """The spring-forward hour does not exist: without a rule the row is refused."""
    for ambiguous in AmbiguousTimes:  # the rule for repeated times does not apply to it
        with pytest.raises(RowError) as caught:
            parse_file_time(SKIPPED, field="ts", zone=BERLIN, ambiguous=ambiguous)
        assert caught.value.reason == (
            "02:30 on 2026-03-29 does not exist in Europe/Berlin (the clocks skip it); "
            "add an offset or set files.missing_times"
        )


def test_seconds_are_named_in_the_refusal() -> None:
    """A repeated time with seconds names them."""
    with pytest.raises(RowError) as caught:
        parse_file_time("2026-10-25T02:59:59.5", field="ts", zone=BERLIN)
    assert caught.value.reason.startswith("02:59:59.500000 on 2026-10-25 happens twice")


@pytest.mark.parametrize(
    ("value", "ambiguous", "missing", "instant", "rule"),
    [
        (REPEATED, AmbiguousTimes.EARLIER, MissingTimes.REFUSE,
         datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "ambiguous_times = earlier"),
        (REPEATED, AmbiguousTimes.LATER, MissingTimes.REFUSE,
         datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "ambiguous_times = later"),
        (SKIPPED, AmbiguousTimes.REFUSE, MissingTimes.SHIFT_FORWARD,
         datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "missing_times = shift_forward"),
    ],
    ids=["earlier", "later", "shift-forward"],
)  # fmt: skip
def test_a_rule_resolves_a_local_time_and_says_so(
    value: str,
    ambiguous: AmbiguousTimes,
    missing: MissingTimes,
    instant: datetime,
    rule: str,
) -> None:
    """earlier is the summer-time reading, later the winter-time one; shift_forward reads a
    skipped time with the offset before the change (02:30 is 03:30 CEST); the note says so."""
    placed = parse_file_time(value, field="ts", zone=BERLIN, ambiguous=ambiguous, missing=missing)
    assert placed == (instant, {"local_time": value, "local_time_rule": rule})


def test_a_rule_leaves_ordinary_times_alone() -> None:
    """Outside the DST changes the rules change nothing and note nothing."""
    placed = parse_file_time(
        "2026-10-25T03:30:00",
        field="ts",
        zone=BERLIN,
        ambiguous=AmbiguousTimes.LATER,
        missing=MissingTimes.SHIFT_FORWARD,
    )
    assert placed == (datetime(2026, 10, 25, 2, 30, tzinfo=UTC), None)


# -- CloudEvents times (RFC 3339 only) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "instant"),
    [
        ("2026-11-01T08:00:00Z", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01t08:00:00z", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T08:00:00+01:00", datetime(2026, 11, 1, 7, tzinfo=UTC)),
        ("2026-11-01T08:00:00-00:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T08:00:00.5Z", datetime(2026, 11, 1, 8, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-01T08:00:00.123456Z", datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-01T08:00:00.123456000Z", datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=UTC)),
        ("2028-02-29T23:59:59-23:59", datetime(2028, 3, 1, 23, 58, 59, tzinfo=UTC)),
    ],
    ids=["z", "lower-case", "offset", "unknown-offset", "tenths", "micro", "zero-nanos", "leap"],
)
def test_parse_rfc3339(value: str, instant: datetime) -> None:
    """RFC 3339 §5.6 date-times, T/Z in either case; nothing finer than microseconds lost."""
    assert parse_rfc3339(value, field="time") == (instant, None)


def test_nanoseconds_are_kept_as_text() -> None:
    """A fraction finer than microseconds is truncated to them and the text is kept."""
    value = "2026-11-01T08:00:00.123456789Z"
    assert parse_rfc3339(value, field="time") == (
        datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=UTC),
        {"ce_time": value},
    )


RFC3339_HINT = "is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM)"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-11-01 08:00:00Z", f"'2026-11-01 08:00:00Z' {RFC3339_HINT}"),
        ("2026-11-01T08:00Z", f"'2026-11-01T08:00Z' {RFC3339_HINT}"),
        ("2026-11-01T08:00:00+0100", f"'2026-11-01T08:00:00+0100' {RFC3339_HINT}"),
        ("2026-11-01T08:00:00+01", f"'2026-11-01T08:00:00+01' {RFC3339_HINT}"),
        ("20261101T080000Z", f"'20261101T080000Z' {RFC3339_HINT}"),
        ("2026-11-01", f"'2026-11-01' {RFC3339_HINT}"),
        ("2026-11-01T08:00:00.Z", f"'2026-11-01T08:00:00.Z' {RFC3339_HINT}"),
        ("2026-11-01T08:00:00,5Z", f"'2026-11-01T08:00:00,5Z' {RFC3339_HINT}"),
        (" 2026-11-01T08:00:00Z", f"' 2026-11-01T08:00:00Z' {RFC3339_HINT}"),
        ("\u0662026-11-01T08:00:00Z", f"'\u0662026-11-01T08:00:00Z' {RFC3339_HINT}"),
        ("yesterday", f"'yesterday' {RFC3339_HINT}"),
        ("2026-11-01T08:00:00", "'2026-11-01T08:00:00' has no UTC offset "
         "(RFC 3339 needs Z or an offset)"),
        ("2026-02-29T08:00:00Z", "'2026-02-29T08:00:00Z' is not a valid date and time"),
        ("2026-11-01T24:00:00Z", "'2026-11-01T24:00:00Z' is not a valid date and time"),
        ("2026-11-01T08:00:00+24:00", "'2026-11-01T08:00:00+24:00' is not a valid date and time"),
        ("2026-11-01T08:00:00+01:60", "'2026-11-01T08:00:00+01:60' is not a valid date and time"),
        ("2016-12-31T23:59:60Z", "'2016-12-31T23:59:60Z' is a leap second, which cannot be stored"),
        ("0001-01-01T00:00:00+01:00",
         "'0001-01-01T00:00:00+01:00': time is outside the supported range"),
        ("1900-01-01T00:00:00Z", "'1900-01-01T00:00:00Z': time must lie in [1970, 9000)"),
        ("", "a time is required"),
        (None, "a time is required"),
        (1700000000, "a time is required"),
    ],
)  # fmt: skip
def test_parse_rfc3339_errors(value: Any, reason: str) -> None:
    """Anything but an RFC 3339 date-time within 1970..9000 is refused on the field."""
    with pytest.raises(RowError) as caught:
        parse_rfc3339(value, field="time")
    assert (caught.value.field, caught.value.reason) == ("time", reason)


# -- SourceMapping --------------------------------------------------------------------------------


def mapping_errors(document: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    """The (location, message) of each error validating `document` as a SourceMapping."""
    with pytest.raises(ValidationError) as caught:
        SourceMapping.model_validate(document)
    return [(e["loc"], e["msg"]) for e in caught.value.errors()]


def test_minimal_mapping_has_defaults() -> None:
    """One type rule is enough: no URIs, device clock, no file columns."""
    mapping = SourceMapping.model_validate({"types": [POUR]})
    assert (mapping.ce_sources, mapping.clock, mapping.files) == ((), ClockState.DEVICE, None)
    assert mapping.types[0] == TypeRule(
        type="com.acme.pour", name="pour", kind=EventKind.MEASUREMENT, quantity="kg"
    )


def test_duplicate_type_rule_is_refused() -> None:
    """Two rules for one type are refused."""
    assert mapping_errors({"types": [POUR, {**POUR, "name": "other"}]}) == [
        ((), "Value error, each type may have one rule only")
    ]


def test_duplicate_uri_is_refused() -> None:
    """A CloudEvents source URI listed twice is refused."""
    document = {"ce_sources": ["urn:a", "urn:a"], "types": [POUR]}
    assert mapping_errors(document) == [((), "Value error, ce_sources lists a URI twice")]


def test_files_need_a_type_column_with_several_rules() -> None:
    """With several rules a file must say which column holds the type; with one it need not."""
    assert mapping_errors({"files": FILES, "types": [POUR, START]}) == [
        ((), "Value error, files.type is required when there is more than one type rule")
    ]
    with_column = SourceMapping.model_validate(
        {"files": {**FILES, "type": "kind"}, "types": [POUR, START]}
    )
    assert with_column.files is not None and with_column.files.type == "kind"
    single = SourceMapping.model_validate({"files": FILES, "types": [POUR]})
    assert single.rule_for(None).type == "com.acme.pour"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "Europe/"])
def test_unknown_time_zone_is_refused(zone: str) -> None:
    """files.time_zone must name a real IANA zone."""
    document = {"files": {**FILES, "time_zone": zone}, "types": [POUR]}
    assert mapping_errors(document) == [
        (("files", "time_zone"), f"Value error, unknown time zone {zone!r}")
    ]


def test_known_time_zone_is_kept() -> None:
    """A real zone is accepted as given."""
    mapping = SourceMapping.model_validate(
        {"files": {**FILES, "time_zone": "Europe/Berlin"}, "types": [POUR]}
    )
    assert mapping.files is not None and mapping.files.time_zone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("document", "loc"),
    [
        ({"types": []}, ("types",)),
        ({}, ("types",)),
        ({"types": [POUR], "colour": "red"}, ("colour",)),
        ({"types": [{**POUR, "kind": "spill"}]}, ("types", 0, "kind")),
        ({"types": [{**POUR, "extra": 1}]}, ("types", 0, "extra")),
        ({"types": [POUR], "ce_sources": [""]}, ("ce_sources", 0)),
        ({"types": [POUR], "files": {"device": "meter"}}, ("files", "time")),
    ],
    ids=["no-rules", "no-types", "extra-key", "bad-kind", "extra-rule-key", "empty-uri", "no-time"],
)
def test_malformed_mapping_names_the_field(document: dict[str, Any], loc: tuple[Any, ...]) -> None:
    """A malformed mapping is refused, its first error at the location of the fault."""
    assert mapping_errors(document)[0][0] == loc


def test_rule_for_an_unknown_type() -> None:
    """A type without a rule is a RowError on `type`."""
    mapping = SourceMapping.model_validate({"types": [POUR, START]})
    assert mapping.rule_for("com.acme.start").name == "start"
    with pytest.raises(RowError) as caught:
        mapping.rule_for("com.acme.spill")
    assert (caught.value.field, caught.value.reason) == (
        "type",
        "no mapping for type 'com.acme.spill'",
    )


# -- make_draft -----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 10, tzinfo=UTC)
ORIGIN = Origin("import", "t1", {"import_file": "a.csv", "import_row": 2})


def draft_of(record: dict[str, Any], rule: dict[str, Any] = POUR, device: Any = "bin-1") -> Any:
    """make_draft of `record` under `rule`, device column 'meter'."""
    return make_draft(
        rule=TypeRule.model_validate(rule),
        record=record,
        device_id=device,
        occurred_at=NOW - timedelta(hours=1),
        observed_at=NOW,
        clock=ClockState.DEVICE,
        origin=ORIGIN,
        device_field="meter",
    )


def test_draft_takes_the_rule_and_the_record() -> None:
    """Name, kind and unit come from the rule, quantity and channel from the record."""
    rule = {**POUR, "quantity": "m.kg", "unit": "kg", "channel": "line"}
    draft = draft_of({"m": {"kg": "2.50"}, "line": 3}, rule)
    assert (draft.name, draft.kind, draft.unit, draft.channel) == (
        "pour",
        EventKind.MEASUREMENT,
        "kg",
        "3",
    )
    assert draft.quantity == Decimal("2.5")
    assert draft.occurred_at == datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert draft.attrs == {
        "origin": "import",
        "origin_id": "t1",
        "import_file": "a.csv",
        "import_row": 2,
    }


def test_rule_without_quantity_ignores_the_record() -> None:
    """A rule without a quantity field gives an event without a quantity."""
    draft = draft_of({"kg": "5"}, START)
    assert (draft.name, draft.kind, draft.quantity) == ("start", EventKind.ACTIVATION, None)


@pytest.mark.parametrize(
    ("record", "device", "field", "reason"),
    [
        ({}, "bin-1", "kg", "a quantity is required for type 'com.acme.pour'"),
        ({"kg": ""}, "bin-1", "kg", "a quantity is required for type 'com.acme.pour'"),
        ({"kg": 1.5}, "bin-1", "kg",
         "quantity must be a decimal string or an integer, not a float"),
        ({"kg": "lots"}, "bin-1", "kg", quantity_reason("lots")),
        ({"kg": "1_000"}, "bin-1", "kg", quantity_reason("1_000")),
        ({"kg": "\u0661\u0662"}, "bin-1", "kg", quantity_reason("\u0661\u0662")),
        ({"kg": " 1"}, "bin-1", "kg", quantity_reason(" 1")),
        ({"kg": "1e30"}, "bin-1", "kg", quantity_reason("1e30")),
        ({"kg": 10**30}, "bin-1", "kg", quantity_reason(10**30)),
        ({"kg": "1e-31"}, "bin-1", "kg", quantity_reason("1e-31")),
        ({"kg": "1e999999"}, "bin-1", "kg", quantity_reason("1e999999")),
        ({"kg": "NaN"}, "bin-1", "kg", quantity_reason("NaN")),
        ({"kg": "1"}, "bin 1", "meter", "String should match pattern '^[A-Za-z0-9][\\w.:/-]*$'"),
        ({"kg": "1"}, "", "meter", "String should have at least 1 character"),
    ],
)  # fmt: skip
def test_draft_errors_name_the_source_field(
    record: dict[str, Any], device: str, field: str, reason: str
) -> None:
    """A record the rule cannot take is a RowError naming the source's own field."""
    with pytest.raises(RowError) as caught:
        draft_of(record, device=device)
    assert (caught.value.field, caught.value.reason) == (field, reason)
