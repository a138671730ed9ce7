"""Who may use the diagnostics page: sessions, the login rate limit and the CSRF header.

Sessions are random tokens kept in memory with an expiry (a restart logs everyone out, which is
fine for a page a technician opens for minutes). The cookie is HttpOnly and SameSite=Strict;
POSTs also need the `X-Tollgate-CSRF` header, which a cross-site form cannot send. Failed logins
are limited per client address: after `max_failures` in `window` seconds the next attempt is
refused with 429 and Retry-After until the window has passed, so the slow hash is not a way to
burn the gateway's CPU either.
"""

import secrets
import time
from collections import deque
from collections.abc import Callable

SESSION_COOKIE = "tollgate_session"
CSRF_HEADER = "x-tollgate-csrf"
SESSION_SECONDS = 8 * 3600
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
FAILURE_DELAY = 0.5
"""A short fixed pause after a wrong password: slows guessing without a measurable timing hint."""

Clock = Callable[[], float]


class Sessions:
    """Random session tokens with an expiry, in memory."""

    def __init__(self, *, lifetime: float = SESSION_SECONDS, clock: Clock = time.monotonic) -> None:
        self._lifetime = lifetime
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def open(self) -> str:
        """A new session token."""
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._expiry[token] = self._clock() + self._lifetime
        return token

    def valid(self, token: str | None) -> bool:
        """True for a token we issued that has not expired or been closed."""
        if not token:
            return False
        expiry = self._expiry.get(token)
        if expiry is None or expiry <= self._clock():
            self._expiry.pop(token, None)
            return False
        return True

    def close(self, token: str | None) -> None:
        """Log out."""
        if token:
            self._expiry.pop(token, None)

    def _forget_expired(self) -> None:
        now = self._clock()
        for token in [t for t, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[token]


class LoginLimiter:
    """Failed logins per client address over a sliding window."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window: float = FAILURE_WINDOW,
        clock: Clock = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again; 0 when it may try now."""
        failures = self._recent(client)
        if len(failures) < self._max:
            return 0
        return max(1, int(failures[0] + self._window - self._clock()) + 1)

    def failed(self, client: str) -> None:
        """Count a wrong password from `client`."""
        self._recent(client).append(self._clock())

    def succeeded(self, client: str) -> None:
        """A right password clears the client's failures."""
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        return failures
