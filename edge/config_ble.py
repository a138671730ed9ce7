"""The `[ble]` radio section and `driver = "ble-lock"` devices of the site config."""

from typing import Annotated, Literal

from pydantic import Field

from edge.config_types import Duration, Name, Section


class BleConfig(Section):
    """The gateway's BLE radio: which bleak backend, how many locks connected at once."""

    backend: str = "bluez"
    max_connections: Annotated[int, Field(ge=1, le=16)] = 3


class BleLockDeviceConfig(Section):
    """One battery BLE lock, known by the lock id it advertises."""

    id: Name
    driver: Literal["ble-lock"]
    lock_id: Annotated[int, Field(ge=0, le=2**32 - 1)]
    reconnect_initial: Duration = 5.0
    reconnect_max: Duration = 600.0

    @property
    def address(self) -> str:
        """Where the device is, for logs and the diagnostics page."""
        return f"lock:{self.lock_id}"
