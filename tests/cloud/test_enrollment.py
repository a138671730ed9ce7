"""Enrollment codes, key rotation and revocation through the real collector app (ASGI)."""

from datetime import timedelta

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.db import Database
from cloud.gateways.enrollment import add_site, create_invite, hash_code, make_code, revoke_gateway
from cloud.gateways.models import EnrollmentCode, GatewayKey
from shared.canonical import format_time
from shared.signing import key_rotation_statement, public_key_pem, sign
from tests.cloud.conftest import READER, incident_kinds, make_events, post
from tests.support.batches import T0

SITE = "site-042"


async def invite(db: Database, *, lifetime: timedelta = timedelta(hours=24)) -> str:
    """A fresh code for SITE (the site is created on first use)."""
    async with db.transaction(write=True) as session:
        if not await session.scalar(select(EnrollmentCode.site_id).limit(1)):
            await add_site(session=session, site_id=SITE, name="Depot 42")
        code, _ = await create_invite(session=session, site_id=SITE, lifetime=lifetime)
    return code


async def enroll(client: httpx.AsyncClient, code: str, key: Ed25519PrivateKey) -> httpx.Response:
    """POST /v1/enrollments with the public half of `key`."""
    body = {"code": code, "public_key_pem": public_key_pem(key.public_key()), "hostname": "gw"}
    return await client.post("/v1/enrollments", json=body)


async def rotate(
    client: httpx.AsyncClient, gateway_id: str, *, signer: Ed25519PrivateKey, new: Ed25519PrivateKey
) -> httpx.Response:
    """POST a key rotation to `new`, signed by `signer`."""
    new_pem = public_key_pem(new.public_key())
    issued_at = format_time(T0)
    statement = key_rotation_statement(
        gateway_id=gateway_id, new_public_key_pem=new_pem, issued_at=issued_at
    )
    body = {
        "new_public_key_pem": new_pem,
        "issued_at": issued_at,
        "signature": sign(signer, statement),
    }
    return await client.post(f"/v1/gateways/{gateway_id}/keys", json=body)


async def enrolled(client: httpx.AsyncClient, db: Database, key: Ed25519PrivateKey) -> str:
    """Invite and enroll a gateway with `key`; its assigned id."""
    response = await enroll(client, await invite(db), key)
    assert response.status_code == 201, response.text
    return str(response.json()["gateway_id"])


def error_code(response: httpx.Response) -> str:
    """The collector's error code."""
    return str(response.json()["error"]["code"])


def test_codes_are_high_entropy_and_typo_tolerant() -> None:
    code = make_code()
    assert code.startswith("TG-") and len(code.split("-")) == 5
    assert make_code() != code
    assert hash_code(code) == hash_code(code.lower().replace("-", " "))
    assert hash_code("TG-0000-1111") == hash_code("tg-oooo-ilIL")


async def test_invite_enroll_then_signed_batch_is_accepted(
    client: httpx.AsyncClient, db: Database
) -> None:
    key = Ed25519PrivateKey.generate()
    code = await invite(db)
    response = await enroll(client, code, key)

    assert response.status_code == 201, response.text
    gateway_id = response.json()["gateway_id"]
    assert gateway_id.startswith(f"gw-{SITE}-") and response.json()["site_id"] == SITE
    async with db.transaction() as session:
        stored = await session.get(EnrollmentCode, hash_code(code))
    assert stored is not None and stored.gateway_id == gateway_id  # only the hash is the key
    batch = await post(client, make_events(1, 3, gateway_id=gateway_id), key)
    assert batch.status_code == 200, batch.text
    status = (await client.get(f"/v1/gateways/{gateway_id}", headers=READER)).json()
    assert status["last_seq"] == 3 and status["site_id"] == SITE
    assert status["public_key_pem"] == public_key_pem(key.public_key())


async def test_a_code_enrolls_one_gateway_only(client: httpx.AsyncClient, db: Database) -> None:
    code = await invite(db)
    assert (await enroll(client, code, Ed25519PrivateKey.generate())).status_code == 201

    again = await enroll(client, code, Ed25519PrivateKey.generate())

    assert again.status_code == 409 and error_code(again) == "enrollment_code_used"
    assert "already used" in again.json()["error"]["message"]


async def test_expired_and_wrong_codes_are_refused(client: httpx.AsyncClient, db: Database) -> None:
    expired = await invite(db, lifetime=timedelta(seconds=-1))

    late = await enroll(client, expired, Ed25519PrivateKey.generate())
    wrong = await enroll(client, make_code(), Ed25519PrivateKey.generate())

    assert late.status_code == 410 and error_code(late) == "enrollment_code_expired"
    assert wrong.status_code == 404 and error_code(wrong) == "enrollment_code_unknown"
    # A refused code is not spent: nothing was registered.
    async with db.transaction() as session:
        stored = await session.get(EnrollmentCode, hash_code(expired))
    assert stored is not None and stored.used_at is None


async def test_a_bad_public_key_is_refused_and_leaves_the_code_unused(
    client: httpx.AsyncClient, db: Database
) -> None:
    code = await invite(db)
    response = await client.post(
        "/v1/enrollments", json={"code": code, "public_key_pem": "not a key"}
    )
    assert response.status_code == 422 and error_code(response) == "invalid_registration"
    assert (await enroll(client, code, Ed25519PrivateKey.generate())).status_code == 201


async def test_rotation_retires_the_old_key(client: httpx.AsyncClient, db: Database) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    gateway_id = await enrolled(client, db, old)
    assert (await post(client, make_events(1, 2, gateway_id=gateway_id), old)).status_code == 200

    rotated = await rotate(client, gateway_id, signer=old, new=new)

    assert rotated.status_code == 200, rotated.text
    events = make_events(1, 4, gateway_id=gateway_id)[2:]  # seqs 3 and 4
    refused = await post(client, events, old)
    assert refused.status_code == 401 and error_code(refused) == "key_retired"
    assert "retired key" in refused.json()["error"]["message"]
    assert (await post(client, events, new)).status_code == 200
    assert await incident_kinds(db) == ["key_retired"]
    async with db.transaction() as session:
        history = list(
            await session.scalars(
                select(GatewayKey)
                .where(GatewayKey.gateway_id == gateway_id)
                .order_by(GatewayKey.id)
            )
        )
    assert [key.public_key_pem for key in history] == [
        public_key_pem(old.public_key()),
        public_key_pem(new.public_key()),
    ]
    assert history[0].valid_to == history[1].valid_from and history[1].valid_to is None
    # The old key can neither rotate again nor bring back a key used before.
    again = await rotate(client, gateway_id, signer=old, new=Ed25519PrivateKey.generate())
    assert again.status_code == 401 and error_code(again) == "key_retired"
    back = await rotate(client, gateway_id, signer=new, new=old)
    assert back.status_code == 422 and error_code(back) == "invalid_registration"


async def test_a_rotation_signed_with_another_key_is_refused(
    client: httpx.AsyncClient, db: Database
) -> None:
    key, intruder = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    gateway_id = await enrolled(client, db, key)

    response = await rotate(client, gateway_id, signer=intruder, new=intruder)

    assert response.status_code == 401 and error_code(response) == "invalid_signature"
    status = (await client.get(f"/v1/gateways/{gateway_id}", headers=READER)).json()
    assert status["public_key_pem"] == public_key_pem(key.public_key())
    assert (await post(client, make_events(1, 1, gateway_id=gateway_id), key)).status_code == 200
    unknown = await rotate(client, "gw-nobody", signer=key, new=intruder)
    assert unknown.status_code == 403 and error_code(unknown) == "unknown_gateway"


async def test_a_revoked_gateway_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    key = Ed25519PrivateKey.generate()
    gateway_id = await enrolled(client, db, key)
    async with db.transaction(write=True) as session:
        await revoke_gateway(session=session, gateway_id=gateway_id, reason="stolen")

    batch = await post(client, make_events(1, 2, gateway_id=gateway_id), key)
    rotation = await rotate(client, gateway_id, signer=key, new=Ed25519PrivateKey.generate())

    assert batch.status_code == 403 and error_code(batch) == "gateway_revoked"
    assert "stolen" in batch.json()["error"]["message"]
    assert rotation.status_code == 403 and error_code(rotation) == "gateway_revoked"
    assert await incident_kinds(db) == ["gateway_revoked"]
    status = (await client.get(f"/v1/gateways/{gateway_id}", headers=READER)).json()
    assert status["revoked_at"] is not None and status["revoke_reason"] == "stolen"
    assert status["event_count"] == 0
