"""Enrollment and keys: sites, single-use enrollment codes, key rotation and revocation.

The billing team invites a gateway for a site (`create_invite`): the code is printed once and only
its SHA-256 is stored. The gateway makes its key pair itself and sends the public half with the
code (`enroll`); the cloud assigns its id. Later the gateway rotates its key with a statement
signed by its current key (`rotate_key`); the old key stays in `gateway_keys` with a `valid_to`,
so batches it signs are told apart (`key_retired`) from forged ones. A revoked gateway's batches
and rotations are refused (`gateway_revoked`).
"""

import hashlib
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.errors import (
    EnrollmentCodeExpired,
    EnrollmentCodeUnknown,
    EnrollmentCodeUsed,
    GatewayRevoked,
    InvalidBatchSignature,
    InvalidRegistration,
    KeyRetired,
    SiteExists,
    SiteNotFound,
    UnknownGateway,
)
from cloud.gateways.models import EnrollmentCode, Gateway, GatewayKey, Site
from cloud.gateways.schemas import Enrollment, EnrollmentRequest, KeyRotation, KeyRotationRequest
from cloud.gateways.service import normalize_public_key, register_gateway
from shared import errors as contract
from shared.signing import key_rotation_statement, load_public_key, verify

log = logging.getLogger(__name__)

# Crockford base32: no I, L, O, U, so a code read aloud or off a screen is hard to mistype.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_GROUPS = 4  # 16 symbols: 80 bits, guessing one is hopeless even without rate limits
CODE_PREFIX = "TG"
_SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CODE_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def make_code() -> str:
    """A fresh enrollment code, `TG-XXXX-XXXX-XXXX-XXXX`."""
    symbols = "".join(secrets.choice(CODE_ALPHABET) for _ in range(4 * CODE_GROUPS))
    groups = [symbols[i : i + 4] for i in range(0, len(symbols), 4)]
    return "-".join([CODE_PREFIX, *groups])


def hash_code(code: str) -> str:
    """SHA-256 of the code's symbols: case, dashes, spaces and O/I/L typos do not matter."""
    symbols = re.sub(r"[\s-]", "", code.upper())
    symbols = symbols.removeprefix(CODE_PREFIX).translate(_CODE_TYPOS)
    return hashlib.sha256(symbols.encode("ascii", "replace")).hexdigest()


async def add_site(*, session: AsyncSession, site_id: str, name: str) -> Site:
    """Create a site; `SiteExists` if the id is taken."""
    if not _SITE_ID.match(site_id):
        raise InvalidRegistration(
            f"invalid site id {site_id!r}: 1 to 64 letters, digits, '_', '.' or '-'"
        )
    if not 0 < len(name.strip()) <= 200:
        raise InvalidRegistration("a site name is 1 to 200 characters")
    site = Site(id=site_id, name=name.strip(), created_at=datetime.now(UTC))
    session.add(site)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise SiteExists(f"site {site_id!r} already exists") from exc
    return site


async def create_invite(
    *, session: AsyncSession, site_id: str, lifetime: timedelta
) -> tuple[str, datetime]:
    """A single-use enrollment code for the site and when it expires; only its hash is stored."""
    if await session.get(Site, site_id) is None:
        raise SiteNotFound(f"no site {site_id!r}: add it with `tollgate-cloud site add`")
    code = make_code()
    now = datetime.now(UTC)
    expires_at = now + lifetime
    session.add(
        EnrollmentCode(
            code_hash=hash_code(code), site_id=site_id, created_at=now, expires_at=expires_at
        )
    )
    await session.flush()
    return code, expires_at


async def enroll(*, session: AsyncSession, request: EnrollmentRequest) -> Enrollment:
    """Spend an enrollment code on a new gateway with the given public key; its assigned id."""
    invite = await session.scalar(
        select(EnrollmentCode)
        .where(EnrollmentCode.code_hash == hash_code(request.code))
        .with_for_update()
    )
    if invite is None:
        raise EnrollmentCodeUnknown("enrollment code is not known: check it was typed right")
    if invite.used_at is not None:
        raise EnrollmentCodeUsed(
            f"enrollment code was already used at {invite.used_at.isoformat()}: "
            "ask for a new one (a code enrolls one gateway)",
            detail={"site_id": invite.site_id},
        )
    now = datetime.now(UTC)
    if invite.expires_at <= now:
        raise EnrollmentCodeExpired(
            f"enrollment code expired at {invite.expires_at.isoformat()}: ask for a new one",
            detail={"site_id": invite.site_id},
        )
    gateway = await register_gateway(
        session=session,
        gateway_id=f"gw-{invite.site_id}-{secrets.token_hex(4)}",
        public_key=request.public_key_pem.encode("utf-8"),
        site_id=invite.site_id,
        hostname=request.hostname,
    )
    invite.used_at = now
    invite.gateway_id = gateway.id
    log.info("gateway %s enrolled for site %s", gateway.id, invite.site_id)
    return Enrollment(gateway_id=gateway.id, site_id=invite.site_id, enrolled_at=now)


async def active_gateway(*, session: AsyncSession, gateway_id: str, lock: bool = False) -> Gateway:
    """The gateway if it is registered and not revoked; `UnknownGateway` or `GatewayRevoked`."""
    gateway = await session.get(Gateway, gateway_id, with_for_update=lock)
    if gateway is None:
        raise UnknownGateway(
            f"gateway {gateway_id!r} is not registered", detail={"gateway_id": gateway_id}
        )
    if gateway.revoked_at is not None:
        raise GatewayRevoked(
            f"gateway {gateway_id!r} was revoked at {gateway.revoked_at.isoformat()}"
            + (f": {gateway.revoke_reason}" if gateway.revoke_reason else ""),
            detail={"gateway_id": gateway_id},
        )
    return gateway


async def retired_keys(*, session: AsyncSession, gateway_id: str) -> list[str]:
    """The PEM keys a gateway has rotated away from, newest first."""
    rows = await session.scalars(
        select(GatewayKey.public_key_pem)
        .where(GatewayKey.gateway_id == gateway_id, GatewayKey.valid_to.is_not(None))
        .order_by(GatewayKey.valid_from.desc())
    )
    return list(rows)


def signed_by_any(pems: list[str], message: bytes, signature: str) -> bool:
    """Whether one of the keys signed `message`."""
    for pem in pems:
        try:
            verify(load_public_key(pem.encode("ascii")), message, signature)
        except contract.InvalidSignature:
            continue
        return True
    return False


async def rotate_key(
    *, session: AsyncSession, gateway_id: str, request: KeyRotationRequest
) -> KeyRotation:
    """Make the new key current if the statement verifies under the current key."""
    gateway = await active_gateway(session=session, gateway_id=gateway_id, lock=True)
    statement = key_rotation_statement(
        gateway_id=gateway_id,
        new_public_key_pem=request.new_public_key_pem,
        issued_at=request.issued_at,
    )
    if not signed_by_any([gateway.public_key_pem], statement, request.signature):
        old = await retired_keys(session=session, gateway_id=gateway_id)
        if signed_by_any(old, statement, request.signature):
            raise KeyRetired(
                f"key rotation for {gateway_id!r} is signed with a retired key",
                detail={"gateway_id": gateway_id},
            )
        raise InvalidBatchSignature(
            f"key rotation for {gateway_id!r} does not verify under its current key",
            detail={"gateway_id": gateway_id},
        )
    new_pem = normalize_public_key(request.new_public_key_pem.encode("utf-8"))
    known = await session.scalars(
        select(GatewayKey.public_key_pem).where(GatewayKey.gateway_id == gateway_id)
    )
    if new_pem in set(known):
        raise InvalidRegistration("that key was used by this gateway before: make a new one")
    now = datetime.now(UTC)
    current = await session.scalars(
        select(GatewayKey).where(GatewayKey.gateway_id == gateway_id, GatewayKey.valid_to.is_(None))
    )
    for key in current:
        key.valid_to = now
    session.add(GatewayKey(gateway_id=gateway_id, public_key_pem=new_pem, valid_from=now))
    gateway.public_key_pem = new_pem
    log.info("gateway %s rotated its key", gateway_id)
    return KeyRotation(gateway_id=gateway_id, valid_from=now)


async def revoke_gateway(*, session: AsyncSession, gateway_id: str, reason: str | None) -> Gateway:
    """Refuse the gateway's batches and rotations from now on; `UnknownGateway`."""
    gateway = await active_gateway(session=session, gateway_id=gateway_id, lock=True)
    gateway.revoked_at = datetime.now(UTC)
    gateway.revoke_reason = reason
    return gateway
