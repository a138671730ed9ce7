"""The pure parts: backoff, the disable rule, the lease, message ids, receiver URLs, the body."""

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from cloud.webhooks.delivery import message_body
from cloud.webhooks.endpoints import new_endpoint_secret
from cloud.webhooks.message_ids import message_time_millis, new_message_id
from cloud.webhooks.policy import (
    DEFAULT_POLICY,
    DeliveryPolicy,
    disable_reason,
    is_transient,
    retry_delay,
)
from cloud.webhooks.schemas import check_receiver_url
from cloud.webhooks.sender import Outgoing, signed_headers

NOW = datetime(2026, 12, 1, tzinfo=UTC)
S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)


def test_backoff_grows_is_capped_and_ends_after_the_stated_attempts() -> None:
    delays = [retry_delay(n) for n in range(1, 11)]

    assert delays == [5 * S, 30 * S, 2 * M, 10 * M, 1 * H, 4 * H, 8 * H, 8 * H, 8 * H, None]
    assert sum((d for d in delays if d), timedelta()) > 24 * H  # ~29 h of trying in all


def test_the_endpoint_is_disabled_only_when_both_count_and_time_are_passed() -> None:
    def reason(failures: int, since: timedelta) -> str | None:
        return disable_reason(
            failures=failures, failing_since=NOW - since, now=NOW, last_failure="HTTP 503"
        )

    assert reason(500, 23 * H) is None  # a burst of failures within a day: keep trying
    assert reason(9, 48 * H) is None  # a quiet endpoint, few attempts: keep trying
    text = reason(10, 24 * H)
    assert text is not None and "10 delivery attempts" in text and "HTTP 503" in text


def test_the_lease_outlasts_the_worst_round() -> None:
    worst = (
        -(-DEFAULT_POLICY.batch_size // DEFAULT_POLICY.concurrency)
        * DEFAULT_POLICY.quick_tries
        * DEFAULT_POLICY.timeout_seconds
    )
    assert DEFAULT_POLICY.lease > timedelta(seconds=worst)
    assert replace(DEFAULT_POLICY, batch_size=400).lease > DEFAULT_POLICY.lease


def test_a_policy_without_attempts_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        DeliveryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="concurrency"):
        DeliveryPolicy(concurrency=0)


@pytest.mark.parametrize(
    ("status", "again"),
    [(None, True), (500, True), (503, True), (429, True), (400, False), (404, False), (301, False)],
)
def test_what_is_tried_again_within_an_attempt(status: int | None, again: bool) -> None:
    assert is_transient(status) is again


def test_message_ids_sort_by_time_and_carry_it() -> None:
    ids = [new_message_id(NOW + n * timedelta(milliseconds=1)) for n in range(50)]

    assert ids == sorted(ids) and len(set(ids)) == 50
    assert all(i.startswith("msg_") and len(i) == 30 for i in ids)
    assert message_time_millis(ids[3]) == int(NOW.timestamp() * 1000) + 3
    with pytest.raises(ValueError, match="not a message id"):
        message_time_millis("msg_lowercase-is-not-crockford")


def test_a_secret_is_32_random_bytes_the_library_accepts() -> None:
    secret = new_endpoint_secret()

    assert secret.startswith("whsec_") and secret != new_endpoint_secret()
    assert len(Webhook(secret)._whsecret) == 32


def test_signed_headers_verify_with_the_library() -> None:
    secret = new_endpoint_secret()
    body = message_body("gateway.offline", NOW, {"gateway_id": "gw-1"})
    outgoing = Outgoing(1, 1, new_message_id(NOW), "http://x/", secret, body)

    headers = signed_headers(outgoing, datetime.now(UTC))

    assert Webhook(secret).verify(body, headers)["data"] == {"gateway_id": "gw-1"}
    assert headers["webhook-id"] == outgoing.message_id
    with pytest.raises(Exception, match="signature"):
        Webhook(new_endpoint_secret()).verify(body, headers)


def test_the_body_is_the_standard_webhooks_shape() -> None:
    assert message_body("invoice.drafted", NOW, {"invoice_id": 7}) == (
        b'{"type":"invoice.drafted","timestamp":"2026-12-01T00:00:00.000Z","data":{"invoice_id":7}}'
    )


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/hooks", "https://hooks.example.com/t?x=1", "http://[::1]:9/"],
)
def test_receiver_urls_accepted(url: str) -> None:
    assert check_receiver_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("http:///path", "no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com:port/", "not a URL"),
        ("http://[::1/", "not a URL"),
        ("http://example.com:0/", "1..65535"),
        ("http://xn--/", "can send to"),
    ],
)
def test_receiver_urls_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        check_receiver_url(url)
