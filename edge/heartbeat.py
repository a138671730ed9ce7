"""The agent's signed heartbeat: the gateway's own health, sent to the collector.

Built from what the status page already gathers (outbox stats, cloud link, device health with
its last values, clock), plus the agent version, a boot id and the uptime; signed with the key
the forwarder signs batches with now (`Forwarder.current_key`, so a rotated key is used at once)
and posted to `/v1/gateways/{id}/heartbeats` (`shared.heartbeat` is the contract).

When: the first right after start; then, once `[cloud] heartbeat_interval` has passed since the
last one, at once when no batch is going out, or after the next batch is acknowledged when one
is (a busy link carries it with its traffic), but never more than one more interval later.

A heartbeat never holds up forwarding: it runs in its own task with its own request, never
touches the outbox beyond reading its stats, and a failure is counted in the status and logged
once per change of reason; the next one is tried an interval later. Only a plain snapshot is
taken on the event loop; validating, signing and encoding it run in a thread.
"""

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.forwarder import LinkHealth
from edge.health import DeviceHealth
from edge.outbox import OutboxStats
from shared.bounds import (
    INT64_MAX,
    INT64_MIN,
    MAX_HEARTBEAT_BYTES,
    MAX_HEARTBEAT_DEVICES,
    MAX_HEARTBEAT_ERROR_KINDS,
    check_text,
)
from shared.canonical import dump_canonical
from shared.events import ClockState
from shared.heartbeat import (
    DeviceReport,
    Heartbeat,
    encode_envelope,
    sign_heartbeat,
)

log = logging.getLogger(__name__)

# Room left in MAX_HEARTBEAT_BYTES for the envelope around the heartbeat and its signature.
ENVELOPE_ROOM = 1024
UNSYNCED_DETAIL = "the kernel reports the clock unsynchronized (adjtimex): no NTP discipline"


def heartbeat_path(gateway_id: str) -> str:
    """Where the collector receives this gateway's heartbeats."""
    return f"/v1/gateways/{gateway_id}/heartbeats"


def agent_version() -> str:
    """The installed tollgate version (what the twin shows as the agent's)."""
    try:
        return metadata.version("tollgate")[:64]
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Sources:
    """What the agent knows about itself right now (the status page's sources)."""

    stats: OutboxStats
    link: LinkHealth
    devices: Mapping[str, DeviceHealth]
    clock: ClockState


def build_heartbeat(
    sources: Sources,
    *,
    gateway_id: str,
    now: datetime,
    boot_id: str,
    uptime_s: int,
    version: str,
) -> Heartbeat:
    """The heartbeat of `sources` at `now`, trimmed to fit MAX_HEARTBEAT_BYTES (pure)."""
    fields = heartbeat_fields(
        sources, gateway_id=gateway_id, now=now, boot_id=boot_id, uptime_s=uptime_s, version=version
    )
    return fit(Heartbeat.model_validate(fields))


def heartbeat_fields(
    sources: Sources,
    *,
    gateway_id: str,
    now: datetime,
    boot_id: str,
    uptime_s: int,
    version: str,
) -> dict[str, Any]:
    """A snapshot of `sources` in the heartbeat's shape, as plain values (validated once, later).

    Cheap (a dict per device): the agent takes it on its event loop, where the health objects
    change, and validates, signs and encodes it in a thread.
    """
    devices = sorted(
        (device_fields(health) for health in sources.devices.values()),
        key=lambda d: (d["state"] == "ok", -d["consecutive_failures"]),  # failing first
    )
    return {
        "gateway_id": gateway_id,
        "sent_at": now,
        "boot_id": boot_id,
        "uptime_s": max(0, uptime_s),
        "agent_version": version,
        "outbox": _outbox_fields(sources.stats, now),
        "cloud_link": {
            "last_success_at": sources.link.last_success,
            "consecutive_failures": sources.link.consecutive_failures,
        },
        "clock": {
            "state": sources.clock,
            "detail": UNSYNCED_DETAIL if sources.clock is ClockState.UNSYNCED else None,
        },
        "devices_total": len(devices),
        "devices": devices[:MAX_HEARTBEAT_DEVICES],
    }


def seal_heartbeat(fields: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The request body for a `heartbeat_fields` snapshot: validated, fitted, signed, encoded."""
    return encode_envelope(sign_heartbeat(key, fit(Heartbeat.model_validate(fields))))


def fit(heartbeat: Heartbeat, limit: int = MAX_HEARTBEAT_BYTES - ENVELOPE_ROOM) -> Heartbeat:
    """`heartbeat` if its canonical bytes fit `limit`; else its devices trimmed until they do.

    Devices are already worst first, so the ones that stay are those a technician needs; the
    collector learns how many were left out from `devices_total`.
    """
    if len(dump_canonical(heartbeat.content())) <= limit:
        return heartbeat
    base = len(dump_canonical(heartbeat.model_copy(update={"devices": ()}).content()))
    kept: list[DeviceReport] = []
    used = base
    for device in heartbeat.devices:
        size = len(dump_canonical(device.model_dump(mode="json"))) + 1  # and its comma
        if used + size > limit:
            break
        kept.append(device)
        used += size
    return heartbeat.model_copy(update={"devices": tuple(kept)})


def _outbox_fields(stats: OutboxStats, now: datetime) -> dict[str, Any]:
    oldest = _parse_time(stats.oldest_unsent)
    # A device clock ahead of the gateway's can make the oldest event "newer" than now: age 0.
    age = None if oldest is None else max(0, int((now - oldest).total_seconds()))
    return {
        "backlog_events": max(0, stats.backlog),
        "oldest_unsent_at": oldest,
        "oldest_unsent_age_s": age,
        "dead_letters": stats.dead_letters,
        "used_bytes": stats.used_bytes,
        "budget_bytes": stats.budget_bytes,
    }


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def device_fields(health: DeviceHealth) -> dict[str, Any]:
    """One device's report as plain values: error and protocol counts summed per kind (the
    most frequent MAX_HEARTBEAT_ERROR_KINDS), last values kept only with the contract's type."""
    counts: Counter[str] = Counter()
    for kind, count in (*health.errors.items(), *health.protocol.items()):
        if count > 0 and _label(kind) is not None:
            counts[kind] += count
    return {
        "device_id": health.device_id,
        "state": health.state[:64] or "unknown",
        "last_success_at": health.last_success,
        "consecutive_failures": health.consecutive_failures,
        "errors": {
            kind: min(count, INT64_MAX)
            for kind, count in counts.most_common(MAX_HEARTBEAT_ERROR_KINDS)
        },
        "last_values": _last_values(health.last_values),
    }


def _last_values(values: Mapping[str, object]) -> dict[str, Any] | None:
    """Battery, firmware and clock offset, each kept only when it has the contract's type."""
    report = {
        "battery": _int_within(values.get("battery"), 0, 100),
        "firmware": _label(values.get("firmware")),
        "clock_offset_ms": _int_within(values.get("clock_offset_ms"), INT64_MIN, INT64_MAX),
    }
    return None if all(value is None for value in report.values()) else report


def _int_within(value: object, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def _label(value: object) -> str | None:
    """`value` if it is text the contract takes as a label (1..64 storable characters)."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return None
    try:
        return check_text(value)
    except ValueError:
        return None


@dataclass
class HeartbeatHealth:
    """The heartbeats as the status page shows them."""

    sent: int = 0
    failed: int = 0
    last_sent_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None  # the first failure after the last success
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class HeartbeatSender:
    """Sends the gateway's heartbeat at the interval, riding after batch acks when busy."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        gateway_id: str,
        key: Callable[[], Ed25519PrivateKey],
        sources: Callable[[], Awaitable[Sources]],
        interval: float,
        timeout: float,
        busy: Callable[[], bool] = lambda: False,
        ride_limit: float | None = None,
    ) -> None:
        self._client = client
        self._gateway_id = gateway_id
        self._key = key
        self._sources = sources
        self._interval = interval
        self._timeout = timeout
        self._busy = busy
        # How long a due heartbeat waits for a batch ack: one more interval unless told.
        self._ride_limit = interval if ride_limit is None else ride_limit
        self._acked = asyncio.Event()
        self._started = time.monotonic()
        self._version = agent_version()
        self._failing_because: str | None = None
        self.health = HeartbeatHealth()

    def batch_delivered(self) -> None:
        """A batch was acknowledged: a due heartbeat goes out now (never waits on this call)."""
        self._acked.set()

    async def run(self) -> None:
        """Send a heartbeat now and then at the interval, until cancelled."""
        while True:
            await self.send_once()
            await asyncio.sleep(self._interval)
            if self._busy():
                await self._after_next_ack()

    async def _after_next_ack(self) -> None:
        # A batch is going out: ride after its ack, but at most one more interval later (a
        # batch retried forever must not silence the heartbeat that reports it).
        self._acked.clear()
        try:
            async with asyncio.timeout(self._ride_limit):
                await self._acked.wait()
        except TimeoutError:
            pass

    async def send_once(self) -> bool:
        """Build, sign and post one heartbeat; whether the collector took it (never raises)."""
        try:
            body = await self._body()
            response = await self._client.post(
                heartbeat_path(self._gateway_id),
                content=body,
                timeout=self._timeout,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            self._failed(type(exc).__name__, f"{type(exc).__name__}: {exc}")
            return False
        except Exception as exc:  # building it failed: counted and logged, the agent goes on
            self._failed(f"build {type(exc).__name__}", f"{type(exc).__name__}: {exc}")
            return False
        if response.status_code >= 300:
            self._failed(
                f"HTTP {response.status_code}",
                f"HTTP {response.status_code}: {response.text[:500]}",
            )
            return False
        self._succeeded()
        return True

    async def _body(self) -> bytes:
        # The snapshot on the loop (the health objects change there), the rest in a thread: a
        # thousand devices cost tens of milliseconds to validate and sign.
        fields = heartbeat_fields(
            await self._sources(),
            gateway_id=self._gateway_id,
            now=datetime.now(UTC),
            boot_id=self.health.boot_id,
            uptime_s=int(time.monotonic() - self._started),
            version=self._version,
        )
        return await asyncio.to_thread(seal_heartbeat, fields, self._key())

    def _failed(self, reason: str, message: str) -> None:
        self.health.failed += 1
        self.health.last_error = message
        self.health.last_error_at = datetime.now(UTC)
        if self.health.consecutive_failures == 0:
            self.health.failing_since = self.health.last_error_at
        self.health.consecutive_failures += 1
        if reason != self._failing_because:
            self._failing_because = reason
            log.warning(
                "heartbeat not delivered; batches are not affected, next one at the interval",
                extra={"fields": {"reason": reason, "error": message}},
            )

    def _succeeded(self) -> None:
        if self._failing_because is not None:
            log.info(
                "heartbeat delivered again",
                extra={"fields": {"failed": self.health.consecutive_failures}},
            )
            self._failing_because = None
        self.health.sent += 1
        self.health.consecutive_failures = 0
        self.health.failing_since = None
        self.health.last_sent_at = datetime.now(UTC)
