"""Collector settings: where the database is and how much one request may carry."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from cloud.errors import InvalidSettings
from shared.bounds import MAX_EVENTS_PER_BATCH

if TYPE_CHECKING:  # pydantic and stdnum: not for every command's start (issue 18)
    from cloud.seller import Seller

DB_ENV = "TOLLGATE_DB"
# The JetStream ingest log (cloud/bus): servers of one cluster, its stream and partitions.
BUS_ENV = "TOLLGATE_BUS"
BUS_PARTITIONS_ENV = "TOLLGATE_BUS_PARTITIONS"
BUS_REPLICAS_ENV = "TOLLGATE_BUS_REPLICAS"
BUS_STREAM_ENV = "TOLLGATE_BUS_STREAM"
DEFAULT_BUS_PARTITIONS = 8
DEFAULT_BUS_REPLICAS = 3
DEFAULT_BUS_STREAM = "TOLLGATE_INGEST"
INVOICE_GRACE_ENV = "TOLLGATE_INVOICE_GRACE"
PUBLIC_URL_ENV = "TOLLGATE_PUBLIC_URL"
BACKGROUND_JOBS_ENV = "TOLLGATE_BACKGROUND_JOBS"
SWEEP_INTERVAL_ENV = "TOLLGATE_SWEEP_INTERVAL"
GATEWAY_OFFLINE_AFTER_ENV = "TOLLGATE_GATEWAY_OFFLINE_AFTER"
THRESHOLD_INTERVAL_ENV = "TOLLGATE_THRESHOLD_INTERVAL"
DEFAULT_THRESHOLD_INTERVAL = timedelta(minutes=5)  # each check rates the period so far
LOW_BATTERY_ENV = "TOLLGATE_LOW_BATTERY"
CLOCK_SKEW_AFTER_ENV = "TOLLGATE_CLOCK_SKEW_AFTER"
CLOCK_BEHIND_AFTER_ENV = "TOLLGATE_CLOCK_BEHIND_AFTER"
LATE_ARRIVAL_AFTER_ENV = "TOLLGATE_LATE_ARRIVAL_AFTER"
# Forwarding latency tolerated at a month's end before an event of that month is a late arrival.
DEFAULT_LATE_ARRIVAL_AFTER = timedelta(hours=1)
DEFAULT_CLOCK_SKEW_AFTER = timedelta(minutes=5)  # an event this far ahead of receipt: clock_skew
DEFAULT_LOW_BATTERY = 20  # percent: a device reporting less has a low_battery incident
DEFAULT_SWEEP_INTERVAL = timedelta(seconds=30)
DEFAULT_GATEWAY_OFFLINE_AFTER = timedelta(minutes=5)
DEFAULT_INVOICE_GRACE = timedelta(days=5)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIB = 1024 * 1024

# Plain URLs are accepted for convenience; the collector only speaks the async drivers.
_DRIVER_PREFIXES = {
    "sqlite://": "sqlite+aiosqlite://",
    "sqlite+aiosqlite://": "sqlite+aiosqlite://",
    "postgresql://": "postgresql+asyncpg://",
    "postgres://": "postgresql+asyncpg://",
    "postgresql+asyncpg://": "postgresql+asyncpg://",
}


def normalize_db_url(url: str) -> str:
    """Map `sqlite:///...` and `postgresql://...` to their async drivers; refuse anything else."""
    for prefix, driver in _DRIVER_PREFIXES.items():
        if url.startswith(prefix):
            return driver + url[len(prefix) :]
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise InvalidSettings(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://HOST/DB"
    )


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """`"5d"`, `"36h"`, `"30m"`, `"0s"` as a timedelta (zero allowed); `InvalidSettings` else."""
    match = re.fullmatch(r"(\d{1,9})\s*([smhd])", text.strip())
    if match is None:
        raise InvalidSettings(
            f"{what} {text!r}: use a whole number and s, m, h or d (e.g. 5d or 36h)"
        )
    return timedelta(seconds=int(match[1]) * _DURATION_UNITS[match[2]])


@dataclass(frozen=True)
class Limits:
    """How much one ingest request may carry."""

    max_body_bytes: int = 8 * MIB
    max_inflated_bytes: int = 64 * MIB
    max_batch_events: int = MAX_EVENTS_PER_BATCH

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_inflated_bytes", "max_batch_events"):
            if getattr(self, name) < 1:
                raise InvalidSettings(f"{name} must be at least 1")
        if self.max_batch_events > MAX_EVENTS_PER_BATCH:
            raise InvalidSettings(
                f"max_batch_events must be at most {MAX_EVENTS_PER_BATCH} (the event contract's)"
            )


@dataclass(frozen=True)
class Settings:
    """Everything `create_app` and the CLI need to run a collector."""

    # No default file: "" is no database (the CLI refuses it, `cloud.cli_support`); tests and
    # code that open one pass it.
    db_url: str = ""
    limits: Limits = field(default_factory=Limits)
    invoice_grace: timedelta = DEFAULT_INVOICE_GRACE  # drafts stay open this long after the month
    public_url: str = ""  # the collector as customers reach it (absolute links in pages)
    # Background jobs (cloud/scheduler.py) run in `serve`; Settings() in tests runs none, so no
    # sweep changes a test's data behind its back (tests call the jobs themselves).
    background_jobs: bool = False
    sweep_interval: timedelta = DEFAULT_SWEEP_INTERVAL
    gateway_offline_after: timedelta = DEFAULT_GATEWAY_OFFLINE_AFTER
    threshold_interval: timedelta = DEFAULT_THRESHOLD_INTERVAL
    low_battery: int = DEFAULT_LOW_BATTERY  # percent (0..100)
    clock_skew_after: timedelta = DEFAULT_CLOCK_SKEW_AFTER
    # A synced event received this long after it occurred is clock_skew; None: not checked
    # (an outbox backlog delivers synced events late by design).
    clock_behind_after: timedelta | None = None
    late_arrival_after: timedelta = DEFAULT_LATE_ARRIVAL_AFTER
    # The seller on invoices ($TOLLGATE_SELLER names its TOML file); None: not configured (the
    # invoice documents say "seller": null). Settings() in tests has none unless given.
    seller: Seller | None = None
    # The ingest log (`--bus`, $TOLLGATE_BUS): comma-separated nats:// servers of one JetStream
    # cluster; None is the one-process path (the collector stores what it accepts).
    bus_url: str | None = None
    bus_partitions: int = DEFAULT_BUS_PARTITIONS
    bus_replicas: int = DEFAULT_BUS_REPLICAS
    bus_stream: str = DEFAULT_BUS_STREAM

    def __post_init__(self) -> None:
        _check_bus(self)
        if self.db_url:
            object.__setattr__(self, "db_url", normalize_db_url(self.db_url))
        if self.invoice_grace < timedelta(0):
            raise InvalidSettings("invoice_grace must not be negative")
        if self.sweep_interval <= timedelta(0) or self.gateway_offline_after <= timedelta(0):
            raise InvalidSettings("sweep_interval and gateway_offline_after must be positive")
        if self.threshold_interval <= timedelta(0):
            raise InvalidSettings("threshold_interval must be positive")
        if isinstance(self.low_battery, bool) or not 0 <= self.low_battery <= 100:
            raise InvalidSettings(
                f"low_battery must be a percentage 0..100, got {self.low_battery}"
            )
        if self.public_url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", self.public_url):
            raise InvalidSettings(
                f"public URL {self.public_url!r}: use http(s)://host[:port][/path]"
            )

    @classmethod
    def load(
        cls, *, db: str | None = None, limits: Limits | None = None, bus: str | None = None
    ) -> Settings:
        """Settings from `--db`, else `$TOLLGATE_DB`, else no database ("": there is no default
        file); the invoice grace period from `$TOLLGATE_INVOICE_GRACE` ("5d", "36h"), else 5
        days."""
        url = db or os.environ.get(DB_ENV) or ""
        grace_text = os.environ.get(INVOICE_GRACE_ENV)
        grace = (
            DEFAULT_INVOICE_GRACE
            if not grace_text
            else parse_duration(grace_text, what=f"${INVOICE_GRACE_ENV}")
        )
        public_url = os.environ.get(PUBLIC_URL_ENV, "").rstrip("/")
        return cls(
            db_url=url,
            limits=limits or Limits(),
            invoice_grace=grace,
            public_url=public_url,
            background_jobs=_switch(BACKGROUND_JOBS_ENV, default=True),
            sweep_interval=_duration(SWEEP_INTERVAL_ENV, DEFAULT_SWEEP_INTERVAL),
            gateway_offline_after=_duration(
                GATEWAY_OFFLINE_AFTER_ENV, DEFAULT_GATEWAY_OFFLINE_AFTER
            ),
            threshold_interval=_duration(THRESHOLD_INTERVAL_ENV, DEFAULT_THRESHOLD_INTERVAL),
            low_battery=_percent(LOW_BATTERY_ENV, DEFAULT_LOW_BATTERY),
            clock_skew_after=_duration(CLOCK_SKEW_AFTER_ENV, DEFAULT_CLOCK_SKEW_AFTER),
            clock_behind_after=_optional_duration(CLOCK_BEHIND_AFTER_ENV),
            late_arrival_after=_duration(LATE_ARRIVAL_AFTER_ENV, DEFAULT_LATE_ARRIVAL_AFTER),
            seller=_seller(),
            bus_url=bus or os.environ.get(BUS_ENV) or None,
            bus_partitions=_count(BUS_PARTITIONS_ENV, DEFAULT_BUS_PARTITIONS),
            bus_replicas=_count(BUS_REPLICAS_ENV, DEFAULT_BUS_REPLICAS),
            bus_stream=os.environ.get(BUS_STREAM_ENV, "").strip() or DEFAULT_BUS_STREAM,
        )


def _check_bus(settings: Settings) -> None:
    if settings.bus_url is not None and not all(
        re.fullmatch(r"nats://[^\s/,]+", server.strip()) for server in settings.bus_url.split(",")
    ):
        raise InvalidSettings(
            f"bus {settings.bus_url!r}: use nats://HOST:PORT[,nats://HOST:PORT...] (one cluster)"
        )
    if not 1 <= settings.bus_partitions <= 1024:
        raise InvalidSettings(f"bus partitions must be 1..1024, got {settings.bus_partitions}")
    if not 1 <= settings.bus_replicas <= 5:
        raise InvalidSettings(f"bus replicas must be 1..5, got {settings.bus_replicas}")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", settings.bus_stream):
        raise InvalidSettings(f"bus stream {settings.bus_stream!r}: use letters, digits, _ and -")


def _count(env: str, default: int) -> int:
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise InvalidSettings(f"${env} {text!r}: use a whole number")
    return int(text)


def _seller() -> Seller | None:
    from cloud.seller import SELLER_ENV, load_seller

    path = os.environ.get(SELLER_ENV, "").strip()
    return load_seller(path) if path else None


def _duration(env: str, default: timedelta) -> timedelta:
    text = os.environ.get(env)
    return default if not text else parse_duration(text, what=f"${env}")


def _optional_duration(env: str) -> timedelta | None:
    text = os.environ.get(env)
    return None if not text else parse_duration(text, what=f"${env}")


def _percent(env: str, default: int) -> int:
    text = os.environ.get(env, "").strip().rstrip("%")
    if not text:
        return default
    if not text.isdigit() or int(text) > 100:
        raise InvalidSettings(f"${env} {text!r}: use a percentage 0..100 (20 or 20%)")
    return int(text)


def _switch(env: str, *, default: bool) -> bool:
    text = os.environ.get(env, "").strip().lower()
    if not text:
        return default
    if text in {"on", "true", "1", "yes"}:
        return True
    if text in {"off", "false", "0", "no"}:
        return False
    raise InvalidSettings(f"${env} {text!r}: use on or off")
