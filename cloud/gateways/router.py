"""HTTP routes of the gateway registry: enrollment and key rotation.

Enrollment (a single-use code) and key rotation (signed by the current key) prove themselves
in their bodies. A gateway's chain head, status and twin are read through cloud/fleet/router.py.
"""

from fastapi import APIRouter

from cloud.api import PUBLIC, DatabaseDep, error_responses
from cloud.gateways.enrollment import enroll, rotate_key
from cloud.gateways.schemas import (
    Enrollment,
    EnrollmentRequest,
    KeyRotation,
    KeyRotationRequest,
)

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
