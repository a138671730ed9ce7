"""Hypothesis strategies for valid event drafts (every field's shapes within the contract)."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from shared.bounds import INT64_MAX, INT64_MIN
from shared.events import ClockState, EventDraft, EventKind

IDENTIFIERS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:/-]{0,20}\Z")
# Labels: any character but NUL and lone surrogates (non-ASCII, quotes and backslashes included).
LABELS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=64,
)
ZONES = st.one_of(
    st.just(UTC),
    st.integers(min_value=-23 * 60, max_value=23 * 60).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    ),
)
TIMES = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(8999, 12, 30), timezones=ZONES
)
WHOLE_SECONDS = TIMES.map(lambda moment: moment.replace(microsecond=0))
QUANTITIES = st.one_of(
    st.none(),
    st.integers(min_value=-(10**29), max_value=10**29),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20
    ),
    st.sampled_from(["0", "-0", "0.000", "1.50", "1e3", "-2.5E-4", "007", ".5", "5."]),
)
ATTR_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=40,
    ),
)
ATTRS = st.dictionaries(LABELS, ATTR_VALUES, max_size=6)


# What JSON writes without an escape: no quote, backslash or control character (non-ASCII kept).
PLAIN_TEXT = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\', max_codepoint=0x2FFF
)
PLAIN_LABELS = st.text(alphabet=PLAIN_TEXT, min_size=1, max_size=64)
PLAIN_ATTRS = st.dictionaries(
    PLAIN_LABELS,
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
        st.text(alphabet=PLAIN_TEXT, max_size=40),
    ),
    max_size=6,
)


@st.composite
def draft_fields(draw: st.DrawFn, *, plain: bool = False) -> dict[str, Any]:
    """The fields of a valid draft as Python values (times in any zone, quantities any form).

    `plain`: texts JSON writes without an escape (what gateways send, mostly)."""
    labels = PLAIN_LABELS if plain else LABELS
    quantity = draw(QUANTITIES)
    return {
        "device_id": draw(IDENTIFIERS),
        "channel": draw(st.one_of(st.none(), labels)),
        "name": draw(labels),
        "kind": draw(st.sampled_from(list(EventKind))),
        "quantity": str(quantity) if isinstance(quantity, Decimal) else quantity,
        "unit": draw(st.one_of(st.none(), labels)),
        "occurred_at": draw(st.one_of(TIMES, WHOLE_SECONDS)),
        "observed_at": draw(st.one_of(TIMES, WHOLE_SECONDS)),
        "clock": draw(st.sampled_from(list(ClockState))),
        "attrs": draw(PLAIN_ATTRS if plain else ATTRS),
    }


DRAFTS = draft_fields().map(EventDraft.model_validate)
PLAIN_DRAFTS = draft_fields(plain=True).map(EventDraft.model_validate)
