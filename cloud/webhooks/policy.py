"""When a delivery is tried again, when it gives up, and when an endpoint is disabled (pure).

- Within one attempt, a connection failure, a timeout, a 5xx or a 429 is tried again at once a
  few times (`quick_tries`, tenacity, short exponential waits): a receiver restarting or a load
  balancer hiccup costs no backoff.
- An attempt that still fails reschedules the delivery: `backoff[k - 1]` after the k-th failed
  attempt (5 s, 30 s, 2 min, 10 min, 1 h, 4 h, then 8 h, the cap), and after `max_attempts`
  (10: about 29 hours of trying) the delivery is `failed` (replay puts it back).
- An endpoint is disabled when BOTH hold: at least `disable_after_failures` attempts in a row
  failed (10) and none has succeeded for `disable_after` (24 h). The count alone would disable
  a healthy endpoint after one bad minute under a burst of messages; the time alone would
  disable a quiet endpoint after two unlucky attempts a day apart.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from math import ceil

_BACKOFF = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=4),
    timedelta(hours=8),
)


@dataclass(frozen=True)
class DeliveryPolicy:
    """The retry, disable and concurrency settings of `deliver_due` (defaults above)."""

    backoff: tuple[timedelta, ...] = field(default=_BACKOFF)
    max_attempts: int = 10
    disable_after_failures: int = 10
    disable_after: timedelta = timedelta(hours=24)
    timeout_seconds: float = 10.0
    quick_tries: int = 3
    quick_wait_seconds: float = 0.25
    concurrency: int = 16
    batch_size: int = 100
    max_rounds: int = 50

    def __post_init__(self) -> None:
        if not self.backoff or self.max_attempts < 1 or self.quick_tries < 1:
            raise ValueError("a delivery policy needs a backoff, attempts and tries")
        if self.concurrency < 1 or self.batch_size < 1 or self.max_rounds < 1:
            raise ValueError("concurrency, batch size and rounds must be at least 1")

    @property
    def lease(self) -> timedelta:
        """How long a claimed round may take before another collector takes its deliveries.

        The worst case of one round: every delivery timing out on every quick try, the round's
        deliveries `concurrency` at a time, plus a minute of slack for the database.
        """
        per_try = self.timeout_seconds + self.quick_wait_seconds * 2**self.quick_tries
        waves = ceil(self.batch_size / self.concurrency)
        return timedelta(seconds=waves * self.quick_tries * per_try + 60)


DEFAULT_POLICY = DeliveryPolicy()


def retry_delay(attempts: int, policy: DeliveryPolicy = DEFAULT_POLICY) -> timedelta | None:
    """The wait after the `attempts`-th failed attempt; None when the delivery is out of them."""
    if attempts >= policy.max_attempts:
        return None
    return policy.backoff[min(attempts, len(policy.backoff)) - 1]


def disable_reason(
    *,
    failures: int,
    failing_since: datetime,
    now: datetime,
    last_failure: str,
    policy: DeliveryPolicy = DEFAULT_POLICY,
) -> str | None:
    """Why the endpoint is disabled now, or None while it may keep trying."""
    failing_for = now - failing_since
    if failures < policy.disable_after_failures or failing_for < policy.disable_after:
        return None
    return (
        f"{failures} delivery attempts in a row failed and none succeeded since "
        f"{failing_since.isoformat(timespec='seconds')} ({_hours(failing_for)}); "
        f"last: {last_failure}"
    )


def is_transient(status: int | None) -> bool:
    """A status worth trying again at once: none (connection failure, timeout), 5xx or 429."""
    return status is None or status >= 500 or status == 429


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} h"
