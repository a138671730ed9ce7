"""Failed console logins per client address and per login name, in this process's memory.

Five failures within a minute for an address or a name refuse the next attempts until the oldest
of those failures is a minute old (429 with Retry-After). The count is per collector process:
with N processes a guesser gets at most 5 x N tries a minute per name, each costing an argon2
verification. The table is bounded: past `max_keys` keys the stalest are forgotten.
"""

import math
from collections import deque
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0
MAX_FAILURES = 5
MAX_KEYS = 10_000


@dataclass
class LoginLimiter:
    """Recent failure times (monotonic seconds) per key (`addr:...`, `name:...`)."""

    window: float = WINDOW_SECONDS
    max_failures: int = MAX_FAILURES
    max_keys: int = MAX_KEYS
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, keys: list[str], now: float) -> int | None:
        """Whole seconds until `keys` may try again, or None if none of them is limited."""
        waits = [self._wait(key, now) for key in keys]
        longest = max((wait for wait in waits if wait is not None), default=None)
        return None if longest is None else max(1, math.ceil(longest))

    def failed(self, keys: list[str], now: float) -> None:
        """Count one failure for each key."""
        for key in keys:
            times = self._failures.pop(key, None) or deque(maxlen=self.max_failures)
            times.append(now)
            self._failures[key] = times  # re-inserted: the dict's order is staleness
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, key: str) -> None:
        """Forget a key's failures (a name that logged in)."""
        self._failures.pop(key, None)

    def _wait(self, key: str, now: float) -> float | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        if len(times) < self.max_failures:
            return None
        return times[0] + self.window - now
