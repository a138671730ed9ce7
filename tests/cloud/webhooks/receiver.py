"""A real webhook receiver for tests and the bench: a Starlette app under uvicorn on loopback.

Every request is checked with `standardwebhooks.Webhook(secret).verify` (the library a receiver
would use); a request that does not verify is kept apart (`refused`) and answered 400. The
receiver can answer 500 on purpose (`failing = True`), and can be stopped and started again on
the same port (the port is closed meanwhile: connections are refused, as for a receiver down).
"""

import asyncio
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.waiting import eventually, free_port

PATH = "/hooks"


@dataclass(frozen=True, slots=True)
class Received:
    """One verified request: its `webhook-id` and the parsed body."""

    webhook_id: str
    body: dict[str, Any]


@dataclass
class Receiver:
    """The receiver's state: what it verified and what it refused. Start with `async with`."""

    secret: str = ""
    failing: bool = False
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Where endpoints should point."""
        return f"http://127.0.0.1:{self.port}{PATH}"

    def ids(self) -> list[str]:
        """The webhook-ids received, in order (duplicates kept)."""
        return [item.webhook_id for item in self.received]

    async def start(self) -> None:
        """Listen on `port` (again)."""
        assert self._task is None, "receiver already running"
        config = uvicorn.Config(
            Starlette(routes=[Route(PATH, self._handle, methods=["POST"])]),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(), name=f"receiver:{self.port}")
        server = self._server
        await eventually(lambda: server.started, what=f"receiver on port {self.port}")

    async def stop(self) -> None:
        """Close the port (deliveries to it now fail to connect)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = None
        self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError as error:
            self.refused.append(f"{request.headers.get('webhook-id')}: {error}")
            return JSONResponse({"refused": str(error)}, status_code=400)
        if self.failing:
            return JSONResponse({"error": "receiver is failing on purpose"}, status_code=500)
        self.received.append(Received(request.headers["webhook-id"], orjson.loads(body)))
        return JSONResponse({"ok": True})
