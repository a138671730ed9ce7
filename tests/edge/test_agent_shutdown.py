"""Shutdown survives tasks that swallow a cancellation (asyncio.wait_for on Python 3.11 can)."""

import asyncio

from edge.agent import stop_tasks


async def test_a_task_that_swallowed_a_cancel_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what a racing wait_for does: the cancel is lost

    task = asyncio.create_task(stubborn())
    polite = asyncio.create_task(asyncio.sleep(30))
    await asyncio.sleep(0)
    await stop_tasks([task, polite])
    assert task.cancelled() and polite.cancelled()
    assert swallowed == 1
