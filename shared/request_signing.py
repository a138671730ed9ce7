"""Signed gateway requests: a gateway proves who it is with its own Ed25519 key.

A request that is not a batch (today only `GET /v1/gateways/{id}/head`, the chain position a
fresh outbox resyncs onto) carries three headers: the gateway id, the moment it was signed (RFC
3339 UTC) and the base64 signature of the canonical statement `{gateway_id, method, path,
signed_at}`. The collector accepts it within `MAX_SKEW_SECONDS` of its own clock. A captured
request can be replayed only within that window, and only to read what it already read.
"""

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.canonical import dump_canonical, format_time
from shared.signing import sign

GATEWAY_HEADER = "Tollgate-Gateway"
SIGNED_AT_HEADER = "Tollgate-Signed-At"
SIGNATURE_HEADER = "Tollgate-Signature"
MAX_SKEW_SECONDS = 300


def request_statement(*, gateway_id: str, method: str, path: str, signed_at: str) -> bytes:
    """Canonical bytes of a gateway's request, what its signature covers."""
    return dump_canonical(
        {"gateway_id": gateway_id, "method": method.upper(), "path": path, "signed_at": signed_at}
    )


def signed_request_headers(
    key: Ed25519PrivateKey, *, gateway_id: str, method: str, path: str, now: datetime
) -> dict[str, str]:
    """The headers that make a request to `path` a signed request of `gateway_id`."""
    signed_at = format_time(now)
    statement = request_statement(
        gateway_id=gateway_id, method=method, path=path, signed_at=signed_at
    )
    return {
        GATEWAY_HEADER: gateway_id,
        SIGNED_AT_HEADER: signed_at,
        SIGNATURE_HEADER: sign(key, statement),
    }
