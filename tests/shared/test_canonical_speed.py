"""The fast canonical bytes are the reference bytes: `content_bytes` and `format_time`.

The reference implementations are kept here as they were before the speedup (isoformat, and
`dump_canonical` over `event_content`); every random event and time must give the same bytes.
"""

import hashlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.canonical import dump_canonical, format_time
from shared.chain import canonical_bytes, content_bytes, seal, verify_chain
from shared.events import GENESIS_HASH, EventDraft, event_content
from tests.shared.strategies import DRAFTS, TIMES, WHOLE_SECONDS


def reference_format_time(moment: datetime) -> str:
    """format_time before orjson wrote it."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")[:26] + "Z"


@settings(max_examples=500, deadline=None)
@given(st.one_of(TIMES, WHOLE_SECONDS, st.datetimes(timezones=st.just(UTC))))
def test_format_time_writes_what_isoformat_wrote(moment: datetime) -> None:
    assert format_time(moment) == reference_format_time(moment)


@settings(max_examples=300, deadline=None)
@given(DRAFTS, st.integers(min_value=1, max_value=2**62))
def test_content_bytes_are_the_canonical_dump_of_the_content(draft: EventDraft, seq: int) -> None:
    reference = dump_canonical(event_content(draft, gateway_id="gw-1", seq=seq))

    assert content_bytes(draft, gateway_id="gw-1", seq=seq) == reference


@settings(max_examples=50, deadline=None)
@given(st.lists(DRAFTS, min_size=1, max_size=8))
def test_sealed_chain_verifies_and_hashes_the_reference_bytes(drafts: list[EventDraft]) -> None:
    prev_hash = GENESIS_HASH
    events = []
    for seq, draft in enumerate(drafts, start=1):
        event = seal(draft, gateway_id="gw-1", seq=seq, prev_hash=prev_hash)
        reference = dump_canonical(event.content())
        assert canonical_bytes(event) == reference
        assert event.hash == hashlib.sha256(bytes.fromhex(prev_hash) + reference).hexdigest()
        events.append(event)
        prev_hash = event.hash

    assert verify_chain(events, prev_hash=GENESIS_HASH) == prev_hash
