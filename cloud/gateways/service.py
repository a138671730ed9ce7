"""Register gateways and find them (their chain status and twin: cloud/fleet/gateway_reads.py)."""

from datetime import UTC, datetime

from cryptography.exceptions import UnsupportedAlgorithm
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.errors import GatewayExists, GatewayNotFound, InvalidRegistration
from cloud.gateways.models import Gateway, GatewayKey
from shared.events import Identifier
from shared.signing import load_public_key, public_key_pem

_GATEWAY_ID = TypeAdapter(Identifier)


def normalize_public_key(pem: bytes) -> str:
    """The key as canonical PEM text, or `InvalidRegistration` unless it is an Ed25519 key."""
    try:
        return public_key_pem(load_public_key(pem))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        reason = str(exc).split(". ")[0]  # cryptography appends a FAQ link to its messages
        raise InvalidRegistration(f"not an Ed25519 public key in PEM form: {reason}") from exc


def check_gateway_id(gateway_id: str) -> str:
    """The id if it is a valid gateway identifier, else `InvalidRegistration`."""
    try:
        return _GATEWAY_ID.validate_python(gateway_id)
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"]
        raise InvalidRegistration(f"invalid gateway id {gateway_id!r}: {message}") from exc


async def register_gateway(
    *,
    session: AsyncSession,
    gateway_id: str,
    public_key: bytes,
    site_id: str | None = None,
    hostname: str | None = None,
) -> Gateway:
    """Enroll a gateway with its PEM Ed25519 public key; `GatewayExists` if the id is taken."""
    now = datetime.now(UTC)
    gateway = Gateway(
        id=check_gateway_id(gateway_id),
        public_key_pem=normalize_public_key(public_key),
        registered_at=now,
        site_id=site_id,
        hostname=hostname,
    )
    session.add(gateway)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise GatewayExists(f"gateway {gateway_id!r} is already registered") from exc
    session.add(
        GatewayKey(gateway_id=gateway.id, public_key_pem=gateway.public_key_pem, valid_from=now)
    )
    return gateway


async def find_gateway(*, session: AsyncSession, gateway_id: str) -> Gateway | None:
    """The registered gateway with that id, if any."""
    return await session.get(Gateway, gateway_id)


async def registered_gateway(*, session: AsyncSession, gateway_id: str) -> Gateway:
    """The registered gateway with that id; `GatewayNotFound` if none."""
    gateway = await find_gateway(session=session, gateway_id=gateway_id)
    if gateway is None:
        raise GatewayNotFound(
            f"no gateway {gateway_id!r} is registered", detail={"gateway_id": gateway_id}
        )
    return gateway
