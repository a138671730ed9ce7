"""Whether the gateway's clock is synchronized, read from the kernel (adjtimex, read-only).

The kernel reports TIME_ERROR while no NTP daemon has disciplined the clock; events then carry
`clock = "unsynced"` so the cloud knows how far `occurred_at` can be trusted.
"""

import ctypes
import ctypes.util
import time

from shared.events import ClockState

_TIME_ERROR = 5
_RECHECK_SECONDS = 60.0


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `modes` (0: read-only) is set, the rest is padding.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 256)]


def read_clock_state() -> ClockState:
    """SYNCED when the kernel says the clock is synchronized, else UNSYNCED."""
    path = ctypes.util.find_library("c")
    if path is None:
        return ClockState.UNSYNCED
    try:
        libc = ctypes.CDLL(path, use_errno=True)
        status = libc.adjtimex(ctypes.byref(_Timex(modes=0)))
    except (OSError, AttributeError):
        return ClockState.UNSYNCED
    return ClockState.UNSYNCED if status in (-1, _TIME_ERROR) else ClockState.SYNCED


class GatewayClock:
    """Caches the clock state and rereads it once a minute (it is on the per-reading path)."""

    def __init__(self) -> None:
        self._state = read_clock_state()
        self._checked_at = time.monotonic()

    @property
    def state(self) -> ClockState:
        """The current clock state, reread at most once a minute."""
        if time.monotonic() - self._checked_at > _RECHECK_SECONDS:
            self._state = read_clock_state()
            self._checked_at = time.monotonic()
        return self._state
