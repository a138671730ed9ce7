"""Session rules: a device profile's `start_on`, `end_on` and timeout as a `SessionRule`.

In the catalog because a rule is part of a profile: the catalog checks it when a profile is made
or changed (`check_rule`), and sessions read it (`rule_of`) without the catalog importing them.
"""

from collections.abc import Sequence
from datetime import timedelta

from cloud.catalog.models import DeviceProfile
from cloud.domain import SessionRule
from cloud.errors import InvalidBillingInput


def session_rule(profile: DeviceProfile) -> SessionRule | None:
    """The profile's rule, or None when it has no `start_on` (its devices form no sessions)."""
    return rule_of(
        start_on=profile.start_on, end_on=profile.end_on, timeout_seconds=profile.timeout_seconds
    )


def rule_of(
    *, start_on: Sequence[str], end_on: Sequence[str], timeout_seconds: int | None
) -> SessionRule | None:
    """A rule from its stored parts, or None when `start_on` is empty."""
    if not start_on:
        return None
    timeout = None if timeout_seconds is None else timedelta(seconds=timeout_seconds)
    return SessionRule(start_on=frozenset(start_on), end_on=frozenset(end_on), timeout=timeout)


def check_rule(start_on: Sequence[str], end_on: Sequence[str], timeout_seconds: int | None) -> None:
    """Refuse a rule that cannot work: `InvalidBillingInput` naming the problem.

    An event name in both lists, `end_on` without `start_on`, an empty name, or a timeout that
    is not a positive number of seconds.
    """
    empty = [name for name in [*start_on, *end_on] if not name.strip()]
    if empty:
        raise InvalidBillingInput("event names in start_on/end_on must not be empty")
    both = sorted(set(start_on) & set(end_on))
    if both:
        raise InvalidBillingInput(
            f"event name(s) {', '.join(both)} in both start_on and end_on",
            detail={"names": both},
        )
    if end_on and not start_on:
        raise InvalidBillingInput("end_on needs start_on: no session could ever start")
    if timeout_seconds is not None and (isinstance(timeout_seconds, bool) or timeout_seconds <= 0):
        raise InvalidBillingInput(
            f"timeout_seconds must be a positive number of seconds, got {timeout_seconds}",
            detail={"timeout_seconds": timeout_seconds},
        )
