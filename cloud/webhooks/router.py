"""HTTP routes of outgoing webhooks (admin only: they hold receiver URLs and signing secrets).

POST   /v1/webhooks/endpoints                 register a receiver (answers its secret once)
GET    /v1/webhooks/endpoints                 every endpoint (no secret)
GET    /v1/webhooks/endpoints/{id}            one endpoint (no secret)
DELETE /v1/webhooks/endpoints/{id}            delete it with its deliveries and their log
POST   /v1/webhooks/endpoints/{id}/enable     deliver again (waiting deliveries due now)
POST   /v1/webhooks/endpoints/{id}/disable    stop delivering (deliveries wait)
GET    /v1/webhooks/deliveries                the log: ?endpoint=&state=&limit=
POST   /v1/webhooks/deliveries/{id}/replay    send a finished delivery again (409 if pending)
"""

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api import MAX_ROW_ID, AdminDep, DatabaseDep, RowId, error_responses
from cloud.webhooks.deliveries import list_deliveries, replay_delivery
from cloud.webhooks.endpoints import (
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    get_endpoint,
    list_endpoints,
)
from cloud.webhooks.models import DeliveryState
from cloud.webhooks.schemas import (
    DeletedOut,
    DeliveryList,
    DeliveryOut,
    EndpointCreate,
    EndpointCreated,
    EndpointList,
    EndpointOut,
    ReplayOut,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
NOT_FOUND = error_responses(404)


@router.post("/endpoints", status_code=201)
async def post_endpoint(body: EndpointCreate, db: DatabaseDep, _: AdminDep) -> EndpointCreated:
    """Register a receiver for some event types; its signing secret is answered only now."""
    async with db.transaction(write=True) as session:
        made = await create_endpoint(
            session=session,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
        )
    return EndpointCreated(**EndpointOut.of(made.endpoint).model_dump(), secret=made.secret)


@router.get("/endpoints")
async def get_endpoints(db: DatabaseDep, _: AdminDep) -> EndpointList:
    """Every endpoint, oldest first (no secret)."""
    async with db.transaction() as session:
        rows = await list_endpoints(session=session)
    return EndpointList(endpoints=[EndpointOut.of(row) for row in rows])


@router.get("/endpoints/{endpoint_id}", responses=NOT_FOUND)
async def get_one_endpoint(endpoint_id: RowId, db: DatabaseDep, _: AdminDep) -> EndpointOut:
    """One endpoint, with its failure count and why it was disabled (no secret)."""
    async with db.transaction() as session:
        return EndpointOut.of(await get_endpoint(session=session, endpoint_id=endpoint_id))


@router.delete("/endpoints/{endpoint_id}", responses=NOT_FOUND)
async def delete_one_endpoint(endpoint_id: RowId, db: DatabaseDep, _: AdminDep) -> DeletedOut:
    """Delete the endpoint, its deliveries and their log."""
    async with db.transaction(write=True) as session:
        gone = await delete_endpoint(session=session, endpoint_id=endpoint_id)
    return DeletedOut(id=endpoint_id, deliveries_deleted=gone)


@router.post("/endpoints/{endpoint_id}/enable", responses=NOT_FOUND)
async def post_enable(endpoint_id: RowId, db: DatabaseDep, _: AdminDep) -> EndpointOut:
    """Deliver to the endpoint again; its waiting deliveries are due at once."""
    async with db.transaction(write=True) as session:
        return EndpointOut.of(await enable_endpoint(session=session, endpoint_id=endpoint_id))


@router.post("/endpoints/{endpoint_id}/disable", responses=NOT_FOUND)
async def post_disable(endpoint_id: RowId, db: DatabaseDep, caller: AdminDep) -> EndpointOut:
    """Stop delivering to the endpoint; its deliveries wait until it is enabled."""
    async with db.transaction(write=True) as session:
        row = await disable_endpoint(
            session=session, endpoint_id=endpoint_id, reason=f"disabled by {caller.label}"
        )
        return EndpointOut.of(row)


@router.get("/deliveries")
async def get_deliveries(
    db: DatabaseDep,
    _: AdminDep,
    endpoint: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    state: Annotated[DeliveryState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryList:
    """The newest deliveries (of one endpoint, in one state), each with its attempts log."""
    async with db.transaction() as session:
        entries = await list_deliveries(
            session=session, endpoint_id=endpoint, state=state, limit=limit
        )
    return DeliveryList(deliveries=[DeliveryOut.of(entry) for entry in entries])


@router.post(
    "/deliveries/{delivery_id}/replay", responses=error_responses(404, 409), status_code=202
)
async def post_replay(delivery_id: RowId, db: DatabaseDep, _: AdminDep) -> ReplayOut:
    """Send a failed or succeeded delivery again, with the same message id."""
    async with db.transaction(write=True) as session:
        row = await replay_delivery(session=session, delivery_id=delivery_id)
        return ReplayOut(
            id=row.id,
            message_id=row.message_id,
            state=row.state,
            next_attempt_at=row.next_attempt_at,
        )
