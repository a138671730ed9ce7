"""HTTP routes of the gateway registry: `GET /v1/gateways/{gateway_id}`."""

from fastapi import APIRouter

from cloud.api import DatabaseDep, error_responses
from cloud.gateways.schemas import GatewayStatus
from cloud.gateways.service import describe_gateway

router = APIRouter(prefix="/v1/gateways", tags=["gateways"])


@router.get("/{gateway_id:path}", responses=error_responses(404))
async def get_gateway(gateway_id: str, db: DatabaseDep) -> GatewayStatus:
    """Where the gateway's stored chain ends (`last_seq`, `last_hash`), its gaps and incidents."""
    async with db.transaction() as session:
        return await describe_gateway(session=session, gateway_id=gateway_id)
