"""Serves the diagnostics app inside the agent: uvicorn on a socket we bind ourselves.

Binding here rather than in uvicorn means a port that is taken (another agent, a stale process)
costs the page only: uvicorn would `sys.exit` the whole agent, and billing matters more than the
page. It also gives the bound address when the config asks for port 0 (tests). uvicorn's own
signal handling is switched off: SIGTERM belongs to the agent, which stops the page with the rest.
"""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from edge import config
from edge.errors import ConfigError

log = logging.getLogger(__name__)

GRACEFUL_SECONDS = 1


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:8080`) -> (host, port); a clear ConfigError otherwise.

    A loaded config has checked it already (`edge.config.parse_listen`); this is for callers
    that build a server from a bare string.
    """
    try:
        return config.parse_listen(listen)
    except ValueError as exc:
        raise ConfigError(f"[diagnostics] listen: {exc}") from None


class _AgentServer(uvicorn.Server):
    """uvicorn without its signal handlers (the agent owns SIGTERM and SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave the process's signal handlers alone."""
        yield


class DiagnosticsServer:
    """The page's HTTP server: `bind()`, then `run()` as a task, `stop()` to end it."""

    def __init__(self, app: ASGIApp, listen: str) -> None:
        self._host, self._port = parse_listen(listen)
        self._server = _AgentServer(
            uvicorn.Config(
                app,
                lifespan="off",
                log_config=None,
                access_log=False,
                http="h11",
                ws="none",
                timeout_graceful_shutdown=GRACEFUL_SECONDS,
            )
        )
        self._socket: socket.socket | None = None
        self.address: tuple[str, int] | None = None
        """Where the page listens, once bound (None when binding failed)."""

    def bind(self) -> bool:
        """Bind and listen; log and return False when the address is unusable."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(100)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            log.error(
                "diagnostics page not served: cannot listen",
                extra={"fields": {"listen": f"{self._host}:{self._port}", "error": str(exc)}},
            )
            return False
        self._socket = sock
        self.address = sock.getsockname()[:2]
        log.info("diagnostics page listening", extra={"fields": {"url": self.url}})
        return True

    @property
    def url(self) -> str | None:
        """The page's base URL, once bound."""
        if self.address is None:
            return None
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def run(self) -> None:
        """Serve until `stop()`; a cancellation also stops the server before it returns."""
        if self._socket is None:
            return
        serving = asyncio.ensure_future(self._server.serve(sockets=[self._socket]))
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            self.stop()
            await _finish(serving)
            raise

    def stop(self) -> None:
        """Ask the server to close its connections and return."""
        self._server.should_exit = True

    def close(self) -> None:
        """Release the socket (uvicorn closes it too; this covers a server that never ran)."""
        if self._socket is not None:
            self._socket.close()


async def _finish(task: "asyncio.Future[None]") -> None:
    # Let the shutdown finish even if the caller is cancelled again meanwhile (stop_tasks
    # cancels twice): an abandoned uvicorn task would outlive the agent.
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()
