"""The forwarder: leases runs from the outbox and delivers them as signed, gzipped batches.

A batch goes out when `batch_max_events` are waiting or the oldest waiting event is
`batch_max_wait` old. What the collector's answer means decides what happens to the batch:

- about the link or the server's state (network errors, 408, 425, 429, 502, 503, 504 and any
  other 5xx but 500): retried with tenacity's exponential backoff between `retry_initial` and
  `retry_max`, forever: the outbox keeps the events;
- about the gateway or the endpoint, not the batch (401 and 403: unknown gateway, revoked, bad
  or retired key; 404, 405, 407, 421: not the collector's batch endpoint): they would refuse
  every batch alike, so they are retried the same way instead of dead-lettering the whole
  backlog; the error shows in the logs and the health;
- 500 (the collector failed on this batch; its body says `internal_error` with an `error_id`):
  retried with backoff until the batch has had `max_server_errors` of them, then dead-lettered
  with the last answer: a batch whose content breaks the collector must not stop the gateway;
- any other 4xx (400, 409, 413, 415, 422, ...) is about the batch: dead-lettered at once;
- but a 409 whose detail says `"at": "sink"` and `"this_batch": "queued"` is news about an
  earlier batch: a collector on the ingest log (`serve --bus`) queued that one (202) and its
  sink then refused it against the stored chain (an incident in the cloud). This batch was
  queued all the same, so it is delivered: acked, not dead-lettered; the refusal is logged and
  shown in the link's health (`sink_refusals`, `last_sink_refusal`).

A dead-lettered batch keeps its events and the collector's answer (`Outbox.dead_letter`), and
forwarding goes on with the next batch; the cloud shows the gap in `missing_ranges`.

Given `key_path`, the forwarder reloads the gateway key when the file changes (its mtime and
inode, checked before each batch is signed and before each retry), so a `tollgate-edge
rotate-key` next to the running agent takes effect with the next batch, and a batch refused
with 401 `key_retired` goes out again signed with the new key.
"""

import asyncio
import contextlib
import gzip
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from edge.config import ForwarderConfig
from edge.errors import BatchRejected, ConfigError, ServerFault, TransientForwardError
from edge.keys import load_gateway_key
from edge.outbox import Lease, Outbox
from shared.events import GENESIS_HASH
from shared.request_signing import signed_request_headers
from shared.signing import batch_header, sign

log = logging.getLogger(__name__)

# Answers about the link, the server's state, the gateway or the endpoint: never the batch.
RETRYABLE_STATUS = frozenset({401, 403, 404, 405, 407, 408, 421, 425, 429})
SERVER_ERROR_STATUS = 500  # the collector failed on this batch: retried `max_server_errors` times
CONFLICT_STATUS = 409  # refused against the stored chain (or, at: sink, an earlier batch was)
BATCHES_PATH = "/v1/batches"
GZIP_LEVEL = 6


@dataclass
class LinkHealth:
    """The cloud link as the diagnostics page shows it."""

    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    batches_sent: int = 0
    events_sent: int = 0
    dead_lettered: int = 0
    last_dead_letter: str | None = None
    sink_refusals: int = 0  # earlier batches the collector queued, then refused when storing
    last_sink_refusal: str | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None  # the first failure after the last success
    refusals: dict[int, int] = field(default_factory=dict)


def encode_batch(lease: Lease, *, gateway_id: str, key: Ed25519PrivateKey) -> bytes:
    """The signed batch document, with the stored event bytes spliced in unchanged."""
    header = batch_header(
        gateway_id=gateway_id,
        first_seq=lease.first_seq,
        last_seq=lease.last_seq,
        prev_hash=lease.prev_hash,
        last_hash=lease.last_hash,
    )
    # The signed header is itself a JSON object: extend it with the signature and the events.
    signature = orjson.dumps(sign(key, header))
    return (
        header[:-1] + b',"signature":' + signature + b',"events":[' + b",".join(lease.wires) + b"]}"
    )


class Forwarder:
    """Delivers the outbox to the collector, in order, at most one batch in flight."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        client: httpx.AsyncClient,
        gateway_id: str,
        key: Ed25519PrivateKey,
        config: ForwarderConfig,
        on_ack: Callable[[], Awaitable[None]] | None = None,
        key_path: Path | None = None,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._gateway_id = gateway_id
        self._key = key
        self._key_path = key_path
        self._key_stamp = self._stamp_of_key()
        self._config = config
        self._on_ack = on_ack
        self._wake = asyncio.Event()
        self.health = LinkHealth()
        self.busy = False
        """True while batches are going out (the heartbeat then waits for the next ack)."""

    def _backoff(self) -> wait_exponential_jitter:
        # retry_initial * 2**n plus up to retry_initial of jitter, capped at retry_max.
        return wait_exponential_jitter(
            multiplier=self._config.retry_initial,
            max=self._config.retry_max,
            jitter=self._config.retry_initial,
        )

    def _stamp_of_key(self) -> tuple[int, int] | None:
        if self._key_path is None:
            return None
        try:
            info = self._key_path.stat()
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns

    def reload_key(self) -> bool:
        """Load the key file again if it changed since it was read; whether it did."""
        stamp = self._stamp_of_key()
        if stamp is None or stamp == self._key_stamp:
            return False
        assert self._key_path is not None
        try:
            self._key = load_gateway_key(self._key_path)
        except ConfigError as exc:
            log.error("gateway key changed but cannot be read; keeping the old one: %s", exc)
            return False
        self._key_stamp = stamp
        log.info("gateway key reloaded", extra={"fields": {"path": str(self._key_path)}})
        return True

    def current_key(self) -> Ed25519PrivateKey:
        """The key batches are signed with now (the file reread if it changed): the heartbeat's."""
        self.reload_key()
        return self._key

    def notify(self) -> None:
        """New events were committed: reconsider sending."""
        self._wake.set()

    async def run(self) -> None:
        """Forward forever (until cancelled)."""
        while True:
            await self._wait_for_batch()
            await self.forward_pending()

    async def _wait_for_batch(self) -> None:
        # Send when a full batch waits, else once the oldest waiting event is batch_max_wait old.
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            backlog = await self._outbox.backlog()
            if backlog >= self._config.batch_max_events:
                return
            if backlog > 0:
                deadline = deadline or loop.time() + self._config.batch_max_wait
                if loop.time() >= deadline:
                    return
            self._wake.clear()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def forward_pending(self) -> int:
        """Send everything waiting now, batch after batch; return how many events went out.

        One request is in flight at a time, so the collector receives the runs in order; the
        next batch is leased, encoded and compressed while the current one is on the wire.
        """
        self.busy = True
        try:
            return await self._forward_all()
        finally:
            self.busy = False

    async def _forward_all(self) -> int:
        await self._ensure_synced()
        sent = 0
        current = await self._prepare()
        while current is not None:
            lease, body, signed_with = current
            delivery = asyncio.create_task(self._deliver_with_retry(lease, body, signed_with))
            try:
                upcoming = await self._prepare()
                await delivery
            except BaseException:
                delivery.cancel()
                await asyncio.gather(delivery, return_exceptions=True)
                # Rewinding to this lease also gives back the one prepared after it.
                await self._outbox.release(lease)
                raise
            sent += lease.last_seq - lease.first_seq + 1
            current = upcoming
        return sent

    async def _prepare(self) -> tuple[Lease, bytes, Ed25519PrivateKey] | None:
        lease = await self._outbox.lease(self._config.batch_max_events)
        if lease is None:
            return None
        key = self.current_key()
        return lease, await self._encode(lease, key), key

    async def _encode(self, lease: Lease, key: Ed25519PrivateKey) -> bytes:
        document = encode_batch(lease, gateway_id=self._gateway_id, key=key)
        # zlib releases the GIL, so compressing in a thread overlaps with the request in flight.
        return await asyncio.to_thread(gzip.compress, document, GZIP_LEVEL)

    async def _deliver_with_retry(
        self, lease: Lease, body: bytes, signed_with: Ed25519PrivateKey
    ) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientForwardError),
            wait=self._backoff(),
            before_sleep=lambda state: log.warning(
                "batch delivery failed; retrying",
                extra={
                    "fields": {
                        "first_seq": lease.first_seq,
                        "last_seq": lease.last_seq,
                        "attempt": state.attempt_number,
                        "error": str(state.outcome.exception()) if state.outcome else None,
                    }
                },
            ),
            reraise=True,
        )
        server_errors = 0
        try:
            async for attempt in retrying:
                with attempt:
                    # Rotated while this batch waited (whoever reread the file: the next
                    # batch's preparation, the heartbeat): sign it anew.
                    if self.current_key() is not signed_with:
                        signed_with = self._key
                        body = await self._encode(lease, signed_with)
                    try:
                        await self._deliver(body)
                    except ServerFault as exc:
                        server_errors += 1
                        if server_errors >= self._config.max_server_errors:
                            raise BatchRejected(
                                f"collector failed on the batch {server_errors} times",
                                status=exc.status,
                                body=exc.body,
                            ) from exc
                        raise
        except BatchRejected as exc:
            await self._dead_letter(lease, exc, attempts=server_errors)
            return
        await self._outbox.ack(lease)
        self._record_success(lease)
        if self._on_ack is not None:
            await self._on_ack()

    async def _dead_letter(self, lease: Lease, refusal: BatchRejected, *, attempts: int) -> None:
        await self._outbox.dead_letter(lease, status=refusal.status, reason=refusal.body)
        self.health.dead_lettered += 1
        self.health.last_dead_letter = (
            f"seq {lease.first_seq}..{lease.last_seq}: HTTP {refusal.status}: {refusal.body[:200]}"
        )
        log.error(
            "collector refused a batch; dead-lettered, forwarding goes on",
            extra={
                "fields": {
                    "first_seq": lease.first_seq,
                    "last_seq": lease.last_seq,
                    "status": refusal.status,
                    "server_errors": attempts,
                    "reason": refusal.body,
                }
            },
        )

    async def _deliver(self, body: bytes) -> None:
        try:
            response = await self._client.post(
                BATCHES_PATH,
                content=body,
                timeout=self._config.request_timeout,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
        except httpx.HTTPError as exc:
            self._record_failure(f"{type(exc).__name__}: {exc}")
            raise TransientForwardError(f"cannot reach the collector: {exc!r}") from exc
        self._classify(response)

    def _classify(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        if status == CONFLICT_STATUS and self._note_sink_refusal(response):
            return  # this batch was queued: delivered
        self._record_failure(f"HTTP {status}: {response.text[:500]}")
        self.health.refusals[status] = self.health.refusals.get(status, 0) + 1
        if status == SERVER_ERROR_STATUS:
            raise ServerFault(
                f"collector failed on the batch ({status}): {response.text[:500]}",
                status=status,
                body=response.text[:4000],
            )
        if status >= 500 or status in RETRYABLE_STATUS:
            raise TransientForwardError(f"collector answered {status}: {response.text[:500]}")
        raise BatchRejected(
            f"collector refused the batch with {status}", status=status, body=response.text[:4000]
        )

    async def _ensure_synced(self) -> None:
        # A fresh outbox learns where the gateway's chain stands in the cloud before sending.
        if await self._outbox.is_synced():
            return
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TransientForwardError),
            wait=self._backoff(),
        ):
            with attempt:
                last_seq, last_hash = await self._cloud_chain_position()
        await self._outbox.resync(cloud_last_seq=last_seq, cloud_last_hash=last_hash)

    async def _cloud_chain_position(self) -> tuple[int, str]:
        try:
            path = f"/v1/gateways/{self._gateway_id}/head"
            headers = signed_request_headers(
                self._key,
                gateway_id=self._gateway_id,
                method="GET",
                path=path,
                now=datetime.now(UTC),
            )
            response = await self._client.get(
                path, headers=headers, timeout=self._config.request_timeout
            )
        except httpx.HTTPError as exc:
            self._record_failure(f"{type(exc).__name__}: {exc}")
            raise TransientForwardError(f"cannot reach the collector: {exc!r}") from exc
        if response.status_code != 200:
            self._record_failure(f"chain position: HTTP {response.status_code}")
            raise TransientForwardError(
                f"collector does not know gateway {self._gateway_id!r} yet "
                f"({response.status_code}): enroll it with `tollgate-edge enroll`"
            )
        document = response.json()
        if document.get("last_seq") is None:
            return 0, GENESIS_HASH
        return int(document["last_seq"]), str(document["last_hash"])

    def _note_sink_refusal(self, response: httpx.Response) -> bool:
        """Whether the answer is a sink refusal of an earlier batch (this one queued); noted."""
        try:
            error = orjson.loads(response.content)["error"]
            detail = error["detail"]
            if detail.get("at") != "sink" or detail.get("this_batch") != "queued":
                return False
            refused = f"{int(detail['refused_first_seq'])}..{int(detail['refused_last_seq'])}"
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return False
        self.health.sink_refusals += 1
        self.health.last_sink_refusal = f"seq {refused}: {str(error.get('code'))[:40]}"
        log.error(
            "the collector refused an earlier batch when storing it (see its incidents); "
            "this batch was queued",
            extra={"fields": {"refused": refused, "reason": response.text[:4000]}},
        )
        return True

    def _record_success(self, lease: Lease) -> None:
        self.health.last_success = datetime.now(UTC)
        self.health.batches_sent += 1
        self.health.events_sent += lease.last_seq - lease.first_seq + 1
        self.health.consecutive_failures = 0
        self.health.failing_since = None

    def _record_failure(self, message: str) -> None:
        self.health.last_error = message
        self.health.last_error_at = datetime.now(UTC)
        if self.health.consecutive_failures == 0:
            self.health.failing_since = self.health.last_error_at
        self.health.consecutive_failures += 1
