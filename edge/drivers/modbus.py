"""ModbusDriver: reads the register points of one Modbus TCP device into `Reading`s.

The driver is the boundary between pymodbus and the agent: every pymodbus outcome becomes either a
list of readings or one of our `DriverError`s (the mapping is in `_read_registers`), like
`map_httpcore_exceptions()` in httpx. No pymodbus exception leaves this module.

A driver is used once: `async with ModbusDriver(config) as driver` connects, `poll()` reads, exit
closes. Reconnecting is the agent's job (a loop with tenacity backoff around a new driver), so the
pymodbus client's own reconnect task is switched off (`reconnect_delay=0`). The timeout and retries
of the config go to pymodbus exactly as configured.
"""

import enum
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from edge.codecs.registers import decode_registers
from edge.config import ModbusDeviceConfig, PointConfig
from edge.errors import DeviceTimeout, DeviceUnreachable, DriverError, FrameError
from edge.readings import Reading

# Function codes of the requests (Modbus Application Protocol v1.1b3, 6.3 and 6.4).
_FUNCTION_CODES = {"holding": 0x03, "input": 0x04}


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class ModbusDriver:
    """Polls the configured points of one Modbus TCP device; one instance per connection."""

    def __init__(self, config: ModbusDeviceConfig) -> None:
        self._config = config
        self._state = _State.UNOPENED
        self._client: AsyncModbusTcpClient | None = None

    @property
    def config(self) -> ModbusDeviceConfig:
        """The device this driver reads."""
        return self._config

    async def __aenter__(self) -> Self:
        """Connect to the device; raises `DeviceUnreachable` if it cannot."""
        if self._state is not _State.UNOPENED:
            raise RuntimeError(
                f"ModbusDriver for {self._config.id!r} is {self._state.value}: "
                "a driver can be entered only once, create a new one to reconnect"
            )
        self._state = _State.OPEN
        self._client = self._build_client()
        try:
            connected = await self._client.connect()
        except (ModbusException, OSError) as exc:
            self._close()
            raise DeviceUnreachable(f"{self._where()}: cannot connect: {exc}") from exc
        if not connected:
            self._close()
            raise DeviceUnreachable(
                f"{self._where()}: cannot connect (refused, unreachable or no answer within "
                f"{self._config.timeout:g}s)"
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the connection."""
        self._close()

    async def poll(self) -> list[Reading]:
        """Read every configured point, table by table, and return them in config order."""
        if self._state is not _State.OPEN:
            raise RuntimeError(f"ModbusDriver for {self._config.id!r} is {self._state.value}")
        values: dict[str, Reading] = {}
        for table in _FUNCTION_CODES:
            for point in (p for p in self._config.point if p.table == table):
                values[point.name] = await self._read_point(point)
        return [values[point.name] for point in self._config.point]

    async def _read_point(self, point: PointConfig) -> Reading:
        registers = await self._read_registers(point)
        try:
            value = decode_registers(registers, type=point.type, word_order=point.word_order)
        except FrameError as exc:
            raise FrameError(f"{self._where(point)}: {exc}") from exc
        return Reading(
            device_id=self._config.id,
            point=point.name,
            value=value,
            observed_at=datetime.now(UTC),
        )

    async def _read_registers(self, point: PointConfig) -> list[int]:
        """One request; every pymodbus outcome is mapped to registers or a `DriverError` here."""
        client = self._client
        assert client is not None
        if not client.connected:
            raise DeviceUnreachable(f"{self._where(point)}: connection is closed")
        try:
            response = await self._request(client, point)(
                point.address, count=point.register_count, device_id=self._config.unit
            )
        except ConnectionException as exc:
            raise DeviceUnreachable(f"{self._where(point)}: not connected") from exc
        except ModbusIOException as exc:
            # pymodbus raises this when no answer came after all retries; a connection the
            # device dropped meanwhile looks the same, so tell the two apart by the socket.
            if not client.connected:
                raise DeviceUnreachable(f"{self._where(point)}: connection lost") from exc
            attempts = self._config.retries + 1
            raise DeviceTimeout(
                f"{self._where(point)}: no answer within {self._config.timeout:g}s "
                f"({attempts} attempt{'s' if attempts > 1 else ''})"
            ) from exc
        except ModbusException as exc:
            raise DriverError(f"{self._where(point)}: request failed: {exc}") from exc
        except OSError as exc:
            raise DeviceUnreachable(f"{self._where(point)}: {exc}") from exc
        return self._check_response(point, response)

    def _check_response(self, point: PointConfig, response: ModbusPDU) -> list[int]:
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise FrameError(
                f"{self._where(point)}: device answered Modbus exception code {code} "
                f"({_exception_name(code)})"
            )
        expected = _FUNCTION_CODES[point.table]
        if response.function_code != expected:
            raise FrameError(
                f"{self._where(point)}: answer has function code {response.function_code}, "
                f"expected {expected}"
            )
        registers = list(response.registers)
        if len(registers) != point.register_count:
            raise FrameError(
                f"{self._where(point)}: asked for {point.register_count} register(s), "
                f"got {len(registers)}"
            )
        return registers

    def _request(
        self, client: AsyncModbusTcpClient, point: PointConfig
    ) -> Callable[..., Awaitable[ModbusPDU]]:
        if point.table == "holding":
            return client.read_holding_registers
        return client.read_input_registers

    def _build_client(self) -> AsyncModbusTcpClient:
        return AsyncModbusTcpClient(
            self._config.host,
            port=self._config.port,
            name=self._config.id,
            timeout=self._config.timeout,
            retries=self._config.retries,
            reconnect_delay=0,  # the agent reconnects, with its own backoff
        )

    def _close(self) -> None:
        self._state = _State.CLOSED
        if self._client is not None:
            self._client.close()
            self._client = None

    def _where(self, point: PointConfig | None = None) -> str:
        device = f"device {self._config.id!r} at {self._config.host}:{self._config.port}"
        if point is None:
            return device
        return (
            f"{device} unit {self._config.unit}, {point.table} register {point.address} "
            f"(point {point.name!r})"
        )


def _exception_name(code: int | None) -> str:
    try:
        return ExcCodes(code).name if code is not None else "missing"
    except ValueError:
        return "unknown"
