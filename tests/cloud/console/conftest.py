"""Console fixtures: argon2id at its lowest cost, so that a test's logins take milliseconds.

The hash is still argon2id through the same code (`cloud.console.users.hasher`); only its
time and memory parameters are small. The browser test (tests/e2e/test_console_browser.py)
logs in to a real `tollgate-cloud serve` with the production parameters.
"""

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from cloud.console import users


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id with time cost 1 and 1 MiB of memory for the tests of this folder."""
    quick = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(users, "hasher", lambda: quick)
    users._dummy_hash.cache_clear()
    yield
    users._dummy_hash.cache_clear()
