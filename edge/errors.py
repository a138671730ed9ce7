"""Errors of the edge agent, one tree (like `httpx/_exceptions.py`).

    GatewayError
     ├── ConfigError            the site config is invalid (names file, line, device and field)
     ├── DriverError            a device could not be read
     │    ├── DeviceUnreachable   no connection to the device
     │    │    └── PortHeld          another process has the serial port open (and locked)
     │    ├── DeviceTimeout       the device did not answer in time
     │    └── FrameError          the device answered with something we cannot decode
     ├── BadReading             a reading the normalizer cannot turn into an event (counted)
     ├── LibraryMismatch        an installed library lacks an internal one of our adapters
     │                          relies on (edge.drivers.*_internals): not retried
     ├── OutboxError            the outbox database failed
     │    ├── OutboxFull          the disk budget is reached (DESIGN guarantee 3)
     │    └── OutboxCorrupt       the database file is damaged (it gets quarantined)
     └── ForwardError           a batch could not be delivered
          ├── TransientForwardError   worth retrying (network, 502/503/504, 429)
          │    └── ServerFault          the collector failed on it (500): retried a bounded
          │                             number of times, then dead-lettered
          └── BatchRejected           the collector refused it (4xx about the batch, or 500
                                      too often): dead-lettered, not retried

Third-party exceptions (pymodbus, sqlite3, httpx) are caught at the boundary and re-raised as
one of these with `raise ... from exc`.
"""


class GatewayError(Exception):
    """Root of every error the edge agent raises on purpose."""


class ConfigError(GatewayError):
    """The site config is invalid."""


class DriverError(GatewayError):
    """A device could not be read."""


class DeviceUnreachable(DriverError):
    """No connection to the device."""


class PortHeld(DeviceUnreachable):
    """Another process holds the serial port (our exclusive open found it locked)."""

    def __init__(self, port: str, *, holder: int | None) -> None:
        who = f" (pid {holder})" if holder is not None else ""
        super().__init__(f"serial port {port}: held by another process{who}")
        self.port = port
        self.holder = holder


class DeviceTimeout(DriverError):
    """The device did not answer in time."""


class FrameError(DriverError):
    """The device answered with something that cannot be decoded."""


class BadReading(GatewayError):
    """A reading the normalizer cannot turn into an event: counted in the device's health."""


class LibraryMismatch(GatewayError):
    """An installed library no longer has the internal an adapter of ours relies on.

    Raised by the adapters in `edge.drivers.*_internals` when they first touch a library object,
    naming the adapter, the library and its installed version; no driver retries it (a new
    connection would meet the same library), so the agent stops with that message.
    """


class OutboxError(GatewayError):
    """The outbox database failed."""


class OutboxFull(OutboxError):
    """The outbox reached its disk budget; sources that keep their own log are paused."""


class OutboxCorrupt(OutboxError):
    """The outbox database file is damaged."""


class ForwardError(GatewayError):
    """A batch could not be delivered to the collector."""


class TransientForwardError(ForwardError):
    """A delivery failure worth retrying (network error, 5xx, 429)."""


class ServerFault(TransientForwardError):
    """The collector failed on the batch (500): retried `max_server_errors` times at most."""

    def __init__(self, message: str, *, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class BatchRejected(ForwardError):
    """The collector refused the batch (or failed on it too often); it is dead-lettered."""

    def __init__(self, message: str, *, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
