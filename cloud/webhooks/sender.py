"""One delivery attempt over HTTP: the Standard Webhooks request, signed, POSTed with httpx.

An attempt is up to `quick_tries` POSTs (tenacity): a connection failure, a timeout, a 5xx or a
429 is tried again at once after a short wait; a 2xx, a 4xx or a URL httpx cannot use ends it.
Every POST is signed anew (the timestamp header is the time it is sent, what receivers check
against their clock), always with the message id as `webhook-id`, so a receiver can drop
duplicates. This module does no database work: delivery.py records what it answers.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from cloud.webhooks.models import RESPONSE_EXCERPT_BYTES
from cloud.webhooks.policy import DeliveryPolicy, is_transient

USER_AGENT = "tollgate-webhooks/1"
MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What to send for one claimed delivery."""

    delivery_id: int
    endpoint_id: int
    message_id: str
    url: str
    secret: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Try:
    """One POST: when, the status (None when no answer came) or the error, and how long."""

    at: datetime
    status: int | None
    error: str | None
    excerpt: str | None
    duration_ms: int
    transient: bool

    @property
    def succeeded(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        """`HTTP 500` or the error, for logs and disable reasons."""
        return f"HTTP {self.status}" if self.status is not None else str(self.error)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The POSTs of one attempt, the last one deciding it."""

    outgoing: Outgoing
    tries: tuple[Try, ...]

    @property
    def last(self) -> Try:
        """The POST that ended the attempt."""
        return self.tries[-1]


def signed_headers(outgoing: Outgoing, sent_at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers (webhook-id, -timestamp, -signature) for a POST now."""
    signature = Webhook(outgoing.secret).sign(outgoing.message_id, sent_at, outgoing.body)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": outgoing.message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }


async def attempt_delivery(
    client: httpx.AsyncClient, outgoing: Outgoing, policy: DeliveryPolicy
) -> Attempt:
    """Send `outgoing`, retrying transient failures quickly; every POST made, in order."""
    tries: list[Try] = []
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.quick_tries),
        wait=wait_exponential(multiplier=policy.quick_wait_seconds, max=2.0),
        retry=retry_if_result(lambda made: made.transient),
        retry_error_callback=_give_up,  # out of quick tries: the last Try says why
    )
    async for attempt in retrying:
        with attempt:  # post_once never raises: the Try is the attempt's result
            made = await post_once(client, outgoing)
            tries.append(made)
        attempt.retry_state.set_result(made)
    return Attempt(outgoing=outgoing, tries=tuple(tries))


def _give_up(state: RetryCallState) -> None:
    del state


async def post_once(client: httpx.AsyncClient, outgoing: Outgoing) -> Try:
    """One signed POST; never raises: a failure is a Try with its error."""
    at = datetime.now(UTC)
    started = time.perf_counter()
    try:
        async with client.stream(
            "POST", outgoing.url, content=outgoing.body, headers=signed_headers(outgoing, at)
        ) as response:
            excerpt = await read_excerpt(response)
    except httpx.UnsupportedProtocol as exc:
        return _failed(at, started, exc, transient=False)
    except httpx.TransportError as exc:
        return _failed(at, started, exc, transient=True)
    except Exception as exc:
        # e.g. a host name httpx cannot encode (IDNA): this delivery's failure, logged and
        # retried by the backoff, never the end of the whole round
        return _failed(at, started, exc, transient=False)
    return Try(
        at=at,
        status=response.status_code,
        error=None,
        excerpt=excerpt,
        duration_ms=_elapsed_ms(started),
        transient=is_transient(response.status_code),
    )


async def read_excerpt(response: httpx.Response) -> str:
    """The first KiB of the answer as storable text (never the whole of a large body)."""
    chunks = bytearray()
    async for chunk in response.aiter_bytes():
        chunks += chunk
        if len(chunks) >= RESPONSE_EXCERPT_BYTES:
            break
    text = bytes(chunks[:RESPONSE_EXCERPT_BYTES]).decode("utf-8", errors="replace")
    return text.replace("\x00", "\ufffd")


def _failed(at: datetime, started: float, exc: Exception, *, transient: bool) -> Try:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Try(
        at=at,
        status=None,
        error=reason[:MAX_ERROR_CHARS].replace("\x00", "\ufffd"),
        excerpt=None,
        duration_ms=_elapsed_ms(started),
        transient=transient,
    )


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
