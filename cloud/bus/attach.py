"""The app's choice of path: with `settings.bus_url` the collector appends to the log."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloud.bus.collector import LogAppender
from cloud.bus.connection import BusConfig, open_bus
from cloud.bus.direct import DirectAppender
from cloud.settings import Settings


@asynccontextmanager
async def bus_path(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """For the app's lifespan: open the log and put its `accept` callables on `app.state`.

    Without a bus nothing is set, and the routes store in this process as before."""
    if settings.bus_url is None:
        yield
        return
    async with open_bus(BusConfig.of(settings)) as bus:
        appender = LogAppender(bus)
        app.state.bus = bus
        app.state.accept_batch = appender.accept_batch
        app.state.append_direct = DirectAppender(bus).append_direct
        try:
            yield
        finally:
            del app.state.accept_batch, app.state.append_direct
