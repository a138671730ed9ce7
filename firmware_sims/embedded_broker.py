"""An embedded MQTT broker (amqtt) for the demo when no broker is configured.

Production sites and the test suite use a real broker (Mosquitto); this one lives in the
simulator's process, keeps sessions in memory only and listens on loopback.
"""

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from edge.lifecycle import Lifecycle

if TYPE_CHECKING:
    from amqtt.broker import Broker

QUIET_LOGGERS = ("amqtt", "transitions")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class EmbeddedBroker:
    """An amqtt broker on 127.0.0.1 (a free port unless given), anonymous, in this process."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, plugins: dict[str, Any] | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.plugins = plugins or {}
        """More amqtt plugins by dotted path, with their settings (topic filters, for example)."""
        self._broker: Broker | None = None
        self._lifecycle = Lifecycle("EmbeddedBroker")

    @property
    def url(self) -> str:
        """Where clients connect: `mqtt://host:port`."""
        return f"mqtt://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        """Start listening."""
        self._lifecycle.enter()
        from amqtt.broker import Broker  # the `sims` extra: only the demo needs it

        for name in QUIET_LOGGERS:  # amqtt logs every connection at INFO
            logging.getLogger(name).setLevel(logging.WARNING)
        self.port = self.port or free_port(self.host)
        self._broker = Broker(self._config())
        await self._broker.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker and close every connection."""
        self._lifecycle.close()
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
                **self.plugins,
            },
        }


@asynccontextmanager
async def broker_url(configured: str | None) -> AsyncIterator[str]:
    """The configured broker's URL, or an embedded broker's while the context is open."""
    if configured:
        yield configured
        return
    async with EmbeddedBroker() as broker:
        yield broker.url
