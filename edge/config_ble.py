"""The `[ble]` radio section and `driver = "ble-lock"` devices of the site config."""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from edge.config_types import Duration, Name, Section


def _check_backend(spec: str) -> str:
    from edge.ble.backends import bleak_backend  # imports bumble: only for sites with [ble]

    bleak_backend(spec)  # ValueError names the accepted forms
    return spec


class BleConfig(Section):
    """The gateway's BLE radio: which bleak backend, how many locks connected at once.

    `backend` is "bluez" (bleak's default on Linux) or "bumble:<transport>" (Bumble's host
    stack on a USB dongle, a UART controller or the simulator's virtual air), see
    `edge.ble.backends`.
    """

    backend: Annotated[str, AfterValidator(_check_backend)] = "bluez"
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
