"""The one pymodbus internal the Modbus driver touches: a client's per-request limits.

Several units on one RS-485 port share one pymodbus client (`edge.drivers.modbus`), and each
unit has its own `timeout` and `retries`. pymodbus keeps both per client, not per request: the
client constructors take `timeout=` and `retries=` once, the read methods
(`read_holding_registers(address, *, count, device_id, no_response_expected)`) take neither, and
no public setter exists (`set_max_no_responses` sets only the disconnect threshold). Checked
against pymodbus 3.16.1, the current release. So `RequestLimits` sets them on the client's
transaction manager, `client.ctx` (`pymodbus.transaction.TransactionManager`), which reads
`ctx.comm_params.timeout_connect` as each attempt's wait for an answer and `ctx.retries` as the
number of attempts after the first (`TransactionManager.execute`). The client's own
`client.comm_params` is a different object there (the manager keeps a copy), so setting it would
change nothing.

The check runs when `RequestLimits` is built, before the client connects: a pymodbus whose
client lacks `ctx`, or whose manager lacks those attributes or holds them with another type,
raises `LibraryMismatch` naming this adapter and the installed version, instead of an
`AttributeError` deep in a poll. `tests/edge/test_library_adapters.py` checks the behaviour on a
real client against a real pymodbus server, so an upgrade that keeps the attributes but stops
reading them fails there.

CRC errors are counted without internals: `trace_packet=`, a documented client parameter, sees
every received byte string (`edge.drivers.modbus`).
"""

from importlib.metadata import version
from typing import TYPE_CHECKING, cast

from pymodbus.client.base import ModbusBaseClient

from edge.errors import LibraryMismatch

if TYPE_CHECKING:  # typing only: a pymodbus that moves it fails the check below, not the import
    from pymodbus.transaction import TransactionManager

CHECKED_WITH = "3.16.1"
"""The pymodbus release this adapter was written and checked against."""


class RequestLimits:
    """The timeout and retries of the next requests of one pymodbus client (touches `ctx`)."""

    def __init__(self, client: ModbusBaseClient) -> None:
        """Check the client's internals now; raises `LibraryMismatch` when they do not fit."""
        self._manager = _transaction_manager(client)

    def set(self, *, timeout: float, retries: int) -> None:
        """Each attempt waits `timeout` seconds for an answer; `retries` attempts follow."""
        self._manager.comm_params.timeout_connect = timeout
        self._manager.retries = retries


def _transaction_manager(client: object) -> "TransactionManager":
    manager = getattr(client, "ctx", None)
    if manager is None:
        raise _mismatch(f"{type(client).__name__} has no `ctx` (its transaction manager)")
    retries = getattr(manager, "retries", None)
    if not isinstance(retries, int) or isinstance(retries, bool):
        raise _mismatch(f"`ctx.retries` is {retries!r}, not the int retry count")
    comm_params = getattr(manager, "comm_params", None)
    timeout = getattr(comm_params, "timeout_connect", None)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        raise _mismatch(f"`ctx.comm_params.timeout_connect` is {timeout!r}, not seconds")
    return cast("TransactionManager", manager)


def _mismatch(what: str) -> LibraryMismatch:
    return LibraryMismatch(
        f"edge.drivers.pymodbus_internals.RequestLimits does not fit pymodbus "
        f"{_installed()}: {what} (checked with pymodbus {CHECKED_WITH}; see the module "
        f"docstring for what it touches and why)"
    )


def _installed() -> str:
    try:
        return version("pymodbus")
    except Exception:  # importlib.metadata.PackageNotFoundError: an odd install, say so
        return "(version unknown)"
