"""Verifying a gateway's signed request (see `shared.request_signing`)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers

from cloud.errors import Unauthorized
from cloud.gateways.models import Gateway, GatewayKey
from shared.errors import InvalidSignature
from shared.request_signing import (
    GATEWAY_HEADER,
    MAX_SKEW_SECONDS,
    SIGNATURE_HEADER,
    SIGNED_AT_HEADER,
    request_statement,
)
from shared.signing import load_public_key, verify

MAX_SKEW = timedelta(seconds=MAX_SKEW_SECONDS)


def signed_gateway_id(headers: Headers) -> str | None:
    """The gateway a request claims to be signed by, if it carries the header."""
    return headers.get(GATEWAY_HEADER)


async def verify_gateway_request(
    *, session: AsyncSession, headers: Headers, method: str, path: str, now: datetime | None = None
) -> str:
    """The id of the gateway whose current key signed this request; else Unauthorized."""
    gateway_id = headers.get(GATEWAY_HEADER, "")
    signed_at = headers.get(SIGNED_AT_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not (gateway_id and signed_at and signature):
        raise _refused(
            f"a signed gateway request needs {GATEWAY_HEADER}, {SIGNED_AT_HEADER} and "
            f"{SIGNATURE_HEADER}",
            "gateway_signature",
        )
    _check_fresh(signed_at, now or datetime.now(UTC))
    gateway = await session.get(Gateway, gateway_id[:128])
    if gateway is None or gateway.revoked_at is not None:
        raise _refused(f"gateway {gateway_id[:128]!r} is unknown or revoked", "live_gateway")
    statement = request_statement(
        gateway_id=gateway_id, method=method, path=path, signed_at=signed_at
    )
    try:
        verify(load_public_key(gateway.public_key_pem.encode("ascii")), statement, signature)
    except InvalidSignature as exc:
        retired = await _signed_by_retired_key(
            session=session, gateway_id=gateway.id, statement=statement, signature=signature
        )
        reason = "a key the gateway has rotated away from" if retired else "no key of the gateway"
        raise _refused(f"the request is signed by {reason}", "current_gateway_key") from exc
    return gateway.id


def _check_fresh(signed_at: str, now: datetime) -> None:
    try:
        moment = datetime.fromisoformat(signed_at)
    except ValueError as exc:
        raise _refused(f"{SIGNED_AT_HEADER} is not an RFC 3339 time", "gateway_signature") from exc
    if moment.tzinfo is None or abs(moment - now) > MAX_SKEW:
        raise _refused(
            f"{SIGNED_AT_HEADER} must be within {MAX_SKEW_SECONDS} s of the collector's clock",
            "fresh_signature",
        )


async def _signed_by_retired_key(
    *, session: AsyncSession, gateway_id: str, statement: bytes, signature: str
) -> bool:
    rows = await session.scalars(
        select(GatewayKey.public_key_pem).where(
            GatewayKey.gateway_id == gateway_id, GatewayKey.valid_to.is_not(None)
        )
    )
    for pem in rows:
        try:
            verify(load_public_key(pem.encode("ascii")), statement, signature)
        except InvalidSignature:
            continue
        return True
    return False


def _refused(message: str, missing: str) -> Unauthorized:
    return Unauthorized(message, detail={"missing": missing})
