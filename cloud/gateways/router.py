"""HTTP routes of the gateway registry: status, chain head, enrollment and key rotation.

Enrollment (a single-use code) and key rotation (signed by the current key) prove themselves
in their bodies; the chain head takes the gateway's signed request or a reading key; the full
status (gaps, incidents) needs a reading key.
"""

from fastapi import APIRouter

from cloud.api import PUBLIC, DatabaseDep, GatewayDep, ReadDep, error_responses
from cloud.gateways.enrollment import enroll, rotate_key
from cloud.gateways.schemas import (
    Enrollment,
    EnrollmentRequest,
    GatewayHead,
    GatewayStatus,
    KeyRotation,
    KeyRotationRequest,
)
from cloud.gateways.service import describe_gateway, gateway_head

router = APIRouter(prefix="/v1/gateways", tags=["gateways"])
enrollments = APIRouter(prefix="/v1/enrollments", tags=["gateways"])


@enrollments.post(
    "", status_code=201, responses=error_responses(404, 409, 410, 422), dependencies=[PUBLIC]
)
async def post_enrollment(request: EnrollmentRequest, db: DatabaseDep) -> Enrollment:
    """Spend a single-use enrollment code on a gateway's public key; answers its assigned id."""
    async with db.transaction(write=True) as session:
        return await enroll(session=session, request=request)


@router.post(
    "/{gateway_id:path}/keys", responses=error_responses(401, 403, 422), dependencies=[PUBLIC]
)
async def post_key(gateway_id: str, request: KeyRotationRequest, db: DatabaseDep) -> KeyRotation:
    """Make a new key current; the request is signed with the gateway's current key."""
    async with db.transaction(write=True) as session:
        return await rotate_key(session=session, gateway_id=gateway_id, request=request)


@router.get("/{gateway_id:path}/head", responses=error_responses(404))
async def get_gateway_head(gateway_id: str, db: DatabaseDep, _: GatewayDep) -> GatewayHead:
    """Where the gateway's stored chain ends and its current key: what a fresh outbox resyncs
    onto. The gateway itself may read it with a signed request; so may any reading key."""
    async with db.transaction() as session:
        return await gateway_head(session=session, gateway_id=gateway_id)


@router.get("/{gateway_id:path}", responses=error_responses(404))
async def get_gateway(gateway_id: str, db: DatabaseDep, _: ReadDep) -> GatewayStatus:
    """Where the gateway's stored chain ends (`last_seq`, `last_hash`), its gaps and incidents."""
    async with db.transaction() as session:
        return await describe_gateway(session=session, gateway_id=gateway_id)
