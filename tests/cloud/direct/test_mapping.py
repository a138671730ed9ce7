"""The pure mapping: field lookup, time parsing, SourceMapping validation and make_draft."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from cloud.direct.mapping import (
    Origin,
    RowError,
    SourceMapping,
    TypeRule,
    lookup,
    make_draft,
    parse_time,
)
from shared.events import ClockState, EventKind

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


# -- parse_time -----------------------------------------------------------------------------------


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
    ],
)
def test_parse_time(value: str, zone: ZoneInfo | None, instant: datetime) -> None:
    """Times with an offset keep it; times without one take `zone`; the instant is exact."""
    moment = parse_time(value, field="ts", zone=zone)
    assert moment == instant
    assert moment.utcoffset() is not None


def test_parse_time_keeps_the_given_offset() -> None:
    """The parsed time carries the sender's offset (the event contract converts it to UTC)."""
    assert parse_time("2026-11-01T08:00:00+01:00", field="ts").utcoffset() == timedelta(hours=1)
    assert parse_time("2026-11-01T08:00:00", field="ts", zone=BERLIN).tzinfo is BERLIN


def test_parse_time_takes_datetimes() -> None:
    """An aware datetime is returned as is; a naive one takes `zone`."""
    aware = datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert parse_time(aware, field="ts") is aware
    naive = datetime(2026, 11, 1, 8)
    assert parse_time(naive, field="ts", zone=BERLIN) == datetime(2026, 11, 1, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-11-01T08:00:00", "'2026-11-01T08:00:00' has no UTC offset (add Z or an offset)"),
        (datetime(2026, 11, 1, 8), "datetime.datetime(2026, 11, 1, 8, 0) has no UTC offset "
         "(add Z or an offset)"),
        ("yesterday", "'yesterday' is not an RFC 3339 time"),
        ("2026-13-01T08:00:00Z", "'2026-13-01T08:00:00Z' is not an RFC 3339 time"),
        (None, "a time is required"),
        ("", "a time is required"),
        ("   ", "a time is required"),
        (1700000000, "a time is required"),
    ],
)  # fmt: skip
def test_parse_time_errors(value: Any, reason: str) -> None:
    """A time that cannot be placed is a RowError on the given field."""
    with pytest.raises(RowError) as caught:
        parse_time(value, field="ts")
    assert (caught.value.field, caught.value.reason) == ("ts", reason)


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
        ({"kg": "lots"}, "bin-1", "kg", "quantity 'lots' is not a decimal number"),
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
