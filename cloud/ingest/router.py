"""HTTP routes of ingest: `POST /v1/batches` and `GET /v1/events`."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from cloud.api import PUBLIC, DatabaseDep, ReadDep, SettingsDep, error_responses
from cloud.ingest.body import check_content_type, read_body
from cloud.ingest.cursor import EventCursor
from cloud.ingest.schemas import BATCH_REQUEST_BODY, EventPage, EventQuery, IngestReceipt
from cloud.ingest.service import ingest_batch, list_events
from cloud.metrics import count_stored, timed_batch
from shared.events import UtcTime

router = APIRouter(prefix="/v1", tags=["ingest"])


@router.post(
    "/batches",
    openapi_extra=BATCH_REQUEST_BODY,
    responses={
        **error_responses(400, 401, 403, 409, 413, 415, 422, 503),
        202: {"model": IngestReceipt, "description": "appended to the ingest log (`--bus`)"},
    },
    response_model_exclude_unset=True,  # `queued` only when set (true, by the bus)
    dependencies=[PUBLIC],  # the body is signed by the gateway's key
)
async def post_batch(
    request: Request, response: Response, db: DatabaseDep, settings: SettingsDep
) -> IngestReceipt:
    """Verify a gateway's signed batch and store its new events (idempotent by gateway and seq).

    With the ingest log (`serve --bus`) the verified batch is appended to the log and answered
    202 with `queued: true` once a quorum of its replicas has it; a sink stores it."""
    with timed_batch():  # latency, and refusals by error code (cloud.metrics)
        check_content_type(request.headers)
        body = await read_body(
            request, limits=settings.limits, max_events=settings.limits.max_batch_events
        )
        accept = getattr(request.app.state, "accept_batch", None)  # the bus's, if any (cloud.app)
        receipt = await ingest_batch(db=db, body=body, limits=settings.limits, accept=accept)
        if receipt.queued:  # counted by the bus (count_queued)
            response.status_code = 202
            return receipt
        count_stored(stored=receipt.stored, duplicates=receipt.duplicates)
        return receipt


@router.get("/events", responses=error_responses(422))
async def get_events(
    db: DatabaseDep,
    _: ReadDep,
    gateway_id: Annotated[str | None, Query(max_length=128)] = None,
    device_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[UtcTime | None, Query(description="RFC 3339, inclusive")] = None,
    until: Annotated[UtcTime | None, Query(description="RFC 3339, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> EventPage:
    """Stored events in `(gateway_id, seq)` order, filtered by gateway, device and occurred_at."""
    after = None if cursor is None else EventCursor.decode(cursor)
    query = EventQuery(
        gateway_id=gateway_id,
        device_id=device_id,
        since=since,
        until=until,
        limit=limit,
        after=after,
    )
    async with db.transaction() as session:
        return await list_events(session=session, query=query)
