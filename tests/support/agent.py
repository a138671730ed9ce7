"""The real agent in the test's own process, stopped the way SIGTERM stops it."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from edge.agent import Agent
from edge.config import SiteConfig, parse_config

STARTUP_SECONDS = 30


@asynccontextmanager
async def running_agent(config: SiteConfig | str) -> AsyncIterator[Agent]:
    """Run an agent on `config` (a SiteConfig or TOML text) until the block ends."""
    site = parse_config(config, source="test") if isinstance(config, str) else config
    agent = Agent(site)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            started = asyncio.create_task(agent.started.wait())
            await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
        if task.done():
            task.result()  # it failed while starting: show why
        yield agent
    finally:
        stop.set()
        await task
