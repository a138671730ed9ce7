"""Incremental refreshes over events arriving in random batches == one sessionize of them all.

On both backends, through the real ingest path: a hypothesis property with few examples (each
example is a new gateway and device in the same database).
"""

import asyncio
import itertools
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.catalog.session_rules import rule_of
from cloud.db import Database
from cloud.domain import BillableEvent
from cloud.schema import migrate
from cloud.sessions.service import refresh_sessions
from cloud.sessions.sessionizer import sessionize
from tests.cloud.sessions.support import LOCK, add_device, add_profile, at, current
from tests.support.usage import GatewayFeed, usage

EXAMPLE = itertools.count(1)
Draft = tuple[str, float, str | None]  # name, minute, channel

DRAFTS = st.lists(
    st.tuples(
        st.sampled_from(["opened", "closed", "jolt"]),
        st.integers(0, 40).map(lambda n: n * 2.5),  # a coarse grid: equal times happen
        st.sampled_from([None, "left"]),
    ),
    min_size=4,
    max_size=25,
)


async def run_example(url: str, arrival: list[Draft], cuts: list[int]) -> None:
    n = next(EXAMPLE)
    device, gateway = f"lock-h{n}", f"gw-h{n}"
    async with Database(url) as db:
        await migrate(db.engine)
        await add_profile(db, f"lock-h{n}", LOCK)
        await add_device(db, device, f"lock-h{n}")
        feed = await GatewayFeed(gateway).register(db)
        bounds = [0, *cuts, len(arrival)]
        as_of = at(0)
        for step, (a, b) in enumerate(itertools.pairwise(bounds)):
            if a < b:
                await feed.send(
                    db, [usage(device, nm, at(m), channel=c) for nm, m, c in arrival[a:b]]
                )
            as_of = at(100 + 3 * step)  # refreshes move forward in time
            await refresh_sessions(db=db, as_of=as_of)
        stored = await current(db, device)
    events = [
        BillableEvent(
            e.gateway_id,
            e.seq,
            e.device_id,
            e.channel,
            e.name,
            e.kind.value,
            e.quantity,
            e.unit,
            e.occurred_at,
        )
        for e in feed.sent
    ]
    rule = rule_of(start_on=["opened"], end_on=["closed"], timeout_seconds=600)
    assert rule is not None
    expected = []
    for channel in (None, "left"):
        expected += sessionize([e for e in events if e.channel == channel], rule, as_of=as_of)

    def key(s: object) -> tuple[str, datetime, tuple[str, int]]:
        return (s.channel or "", s.started_at, s.events[0])  # type: ignore[attr-defined]

    got = [
        (s.channel, s.name, s.started_at, s.ended_at, s.last_activity_at, s.close_reason, s.events)
        for s in sorted(stored, key=key)
    ]
    want = [
        (s.channel, s.name, s.started_at, s.ended_at, s.last_activity_at, s.close_reason, s.events)
        for s in sorted(expected, key=key)
    ]
    assert got == want


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drafts=DRAFTS, data=st.data())
def test_incremental_refresh_equals_one_shot(
    db_url: str, drafts: list[Draft], data: st.DataObject
) -> None:
    arrival = data.draw(st.permutations(drafts))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrival)), min_size=1, max_size=4)))
    asyncio.run(run_example(db_url, arrival, cuts))
