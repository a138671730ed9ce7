"""The pymodbus internals the Modbus driver touches: a client's per-request limits, and why its
serial port did not open.

`RequestLimits`. Several units on one RS-485 port share one pymodbus client
(`edge.drivers.modbus`), and each unit has its own `timeout` and `retries`. pymodbus keeps both
per client, not per request: the client constructors take `timeout=` and `retries=` once, the
read methods (`read_holding_registers(address, *, count, device_id, no_response_expected)`)
take neither, and no public setter exists (`set_max_no_responses` sets only the disconnect
threshold). Checked against pymodbus 3.16.1, the current release. So `RequestLimits` sets them
on the client's transaction manager, `client.ctx` (`pymodbus.transaction.TransactionManager`),
which reads `ctx.comm_params.timeout_connect` as each attempt's wait for an answer and
`ctx.retries` as the number of attempts after the first (`TransactionManager.execute`). The
client's own `client.comm_params` is a different object there (the manager keeps a copy), so
setting it would change nothing.

`OpenFailure`. pymodbus 3.16.1 opens an RTU client's port exclusively by itself
(`pymodbus.transport.serialtransport.SerialTransport` calls pyserial's `serial_for_url(...,
exclusive=True)`: an flock, so a second opener is refused), but `connect()` only returns False:
`ModbusProtocol.connect` catches the `OSError` (pyserial's `SerialException`, with the errno),
logs it and drops it, and no public API hands it over (`trace_connect=` gets a bool). The
driver needs it to say why (held by another process, no such device, permission denied), so
`OpenFailure` wraps the manager's `ctx.call_create`, the coroutine factory `connect()` awaits to
open the port, and keeps the `OSError` it raised. Nothing else changes: the same call, the same
exception, re-raised for pymodbus to catch.

Both checks run when the adapter is built, before the client connects: a pymodbus whose client
lacks `ctx`, or whose manager lacks those attributes or holds them with another type, raises
`LibraryMismatch` naming the adapter and the installed version, instead of an `AttributeError`
deep in a poll (or a reason silently lost). `tests/edge/test_library_adapters.py` checks the
behaviour on real clients (a real pymodbus server; a pseudo-terminal another process holds), so
an upgrade that keeps the attributes but stops using them fails there.

CRC errors are counted without internals: `trace_packet=`, a documented client parameter, sees
every received byte string (`edge.drivers.modbus`).
"""

from collections.abc import Callable, Coroutine
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, cast

from pymodbus.client.base import ModbusBaseClient

from edge.errors import LibraryMismatch

if TYPE_CHECKING:  # typing only: a pymodbus that moves it fails the check below, not the import
    from pymodbus.transaction import TransactionManager

CHECKED_WITH = "3.16.1"
"""The pymodbus release these adapters were written and checked against."""


class RequestLimits:
    """The timeout and retries of the next requests of one pymodbus client (touches `ctx`)."""

    def __init__(self, client: ModbusBaseClient) -> None:
        """Check the client's internals now; raises `LibraryMismatch` when they do not fit."""
        manager = _transaction_manager(client, "RequestLimits")
        retries = getattr(manager, "retries", None)
        if not isinstance(retries, int) or isinstance(retries, bool):
            raise _mismatch(
                "RequestLimits", f"`ctx.retries` is {retries!r}, not the int retry count"
            )
        comm_params = getattr(manager, "comm_params", None)
        timeout = getattr(comm_params, "timeout_connect", None)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool):
            raise _mismatch(
                "RequestLimits", f"`ctx.comm_params.timeout_connect` is {timeout!r}, not seconds"
            )
        self._manager = manager

    def set(self, *, timeout: float, retries: int) -> None:
        """Each attempt waits `timeout` seconds for an answer; `retries` attempts follow."""
        self._manager.comm_params.timeout_connect = timeout
        self._manager.retries = retries


class OpenFailure:
    """The `OSError` behind a pymodbus client's last failed `connect()` (touches `ctx`).

    `error` is None before the first attempt, and after one that opened the port or failed
    another way (pymodbus's own connect timeout).
    """

    def __init__(self, client: ModbusBaseClient) -> None:
        """Check the client's internals and wrap its opener; raises `LibraryMismatch`."""
        manager = _transaction_manager(client, "OpenFailure")
        create = getattr(manager, "call_create", None)
        if not callable(create):
            raise _mismatch(
                "OpenFailure", f"`ctx.call_create` is {create!r}, not the connect coroutine factory"
            )
        self.error: OSError | None = None
        self._create: Callable[[], Coroutine[Any, Any, Any]] = create
        manager.call_create = self._open

    async def _open(self) -> Any:
        self.error = None
        try:
            return await self._create()
        except OSError as exc:  # pyserial's SerialException is one; pymodbus catches it next
            self.error = exc
            raise


def _transaction_manager(client: object, adapter: str) -> "TransactionManager":
    manager = getattr(client, "ctx", None)
    if manager is None:
        raise _mismatch(adapter, f"{type(client).__name__} has no `ctx` (its transaction manager)")
    return cast("TransactionManager", manager)


def _mismatch(adapter: str, what: str) -> LibraryMismatch:
    return LibraryMismatch(
        f"edge.drivers.pymodbus_internals.{adapter} does not fit pymodbus "
        f"{_installed()}: {what} (checked with pymodbus {CHECKED_WITH}; see the module "
        f"docstring for what it touches and why)"
    )


def _installed() -> str:
    try:
        return version("pymodbus")
    except Exception:  # importlib.metadata.PackageNotFoundError: an odd install, say so
        return "(version unknown)"
