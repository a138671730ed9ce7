"""Who may use the diagnostics page: sessions, the login rate limit and the CSRF header.

Sessions are random tokens kept in memory with an expiry (a restart logs everyone out, which is
fine for a page a technician opens for minutes). The cookie is HttpOnly and SameSite=Strict;
POSTs also need the `X-Tollgate-CSRF` header, which a cross-site form cannot send. Failed logins
are limited per client address: after `max_failures` in `window` seconds the next attempt is
refused with 429 and Retry-After until the window has passed, so the slow hash is not a way to
burn the gateway's CPU either.

`/metrics` is for Prometheus, which cannot log in: it sends the technician password with HTTP
Basic (`basic_auth` in a scrape config). The slow hash is checked once per password;
`ScrapeCredentials` remembers a keyed digest of the one that verified, so a scrape every few
seconds costs an HMAC, not scrypt's 32 MiB.
"""

import base64
import binascii
import hashlib
import hmac
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
    """Random session tokens with an expiry, in memory, each bound to the stored password hash it
    was opened under: a new password (`tollgate-edge technician set-password`) ends the sessions
    of the old one at their next request."""

    def __init__(self, *, lifetime: float = SESSION_SECONDS, clock: Clock = time.monotonic) -> None:
        self._lifetime = lifetime
        self._clock = clock
        self._open: dict[str, tuple[float, str]] = {}

    def open(self, stored: str) -> str:
        """A new session token for a login that verified against `stored`."""
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._open[token] = (self._clock() + self._lifetime, stored)
        return token

    def valid(self, token: str | None, stored: str) -> bool:
        """True for a token we issued under `stored` that has not expired or been closed."""
        if not token:
            return False
        expiry, opened_under = self._open.get(token, (0.0, ""))
        if expiry <= self._clock() or opened_under != stored:
            self._open.pop(token, None)
            return False
        return True

    def close(self, token: str | None) -> None:
        """Log out."""
        if token:
            self._open.pop(token, None)

    def _forget_expired(self) -> None:
        now = self._clock()
        for token in [t for t, (expiry, _stored) in self._open.items() if expiry <= now]:
            del self._open[token]


def basic_password(authorization: str | None) -> str | None:
    """The password of an `Authorization: Basic` header (the user name is not checked: there is
    one technician), None when there is no such header or it does not decode."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, colon, password = decoded.partition(":")
    return password if colon else None


class ScrapeCredentials:
    """The last password that verified against the stored hash, as a keyed digest in memory.

    A new stored hash (the password was changed) forgets it: the old password then has to pass
    the slow check again, and fails it.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._known: tuple[str, bytes] | None = None

    def known(self, stored: str, password: str) -> bool:
        """True when `password` is the one remembered for `stored`."""
        if self._known is None or self._known[0] != stored:
            return False
        return hmac.compare_digest(self._known[1], self._digest(password))

    def remember(self, stored: str, password: str) -> None:
        """`password` verified against `stored`."""
        self._known = (stored, self._digest(password))

    def _digest(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()


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
