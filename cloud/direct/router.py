"""HTTP routes of direct ingestion.

`POST /v1/events` and `POST /v1/imports` take an ingest key (scope `ingest:<source>`); imports
also take an admin key. Creating sources and their keys needs an admin key, reading them any
reading key.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from cloud.api import (
    AdminDep,
    DatabaseDep,
    ImportDep,
    IngestDep,
    ReadDep,
    SettingsDep,
    error_responses,
)
from cloud.direct import cloudevents
from cloud.direct.files import guess_format, parse_format
from cloud.direct.schemas import (
    EventsReceipt,
    ImportReport,
    IssuedIngestKey,
    SourceCreate,
    SourceView,
)
from cloud.direct.service import (
    add_source,
    create_ingest_key,
    describe_source,
    import_file,
    ingest_cloudevents,
    list_sources,
)
from cloud.errors import Forbidden
from cloud.ingest.body import read_body
from cloud.metrics import count_stored, timed_batch
from cloud.storable_text import RequestBody

router = APIRouter(prefix="/v1", tags=["direct ingestion"])
AUTH = (401, 403)

CLOUDEVENTS_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One CloudEvent (structured mode) or a JSON array of them (batch mode); "
        "`subject` names the device, `type` and `data` are mapped by the source's mapping.",
        "content": {
            cloudevents.STRUCTURED: {"schema": {"type": "object"}},
            cloudevents.BATCH: {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}
IMPORT_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file itself (CSV with a header row, or JSON Lines); may be gzipped.",
        "content": {"text/csv": {}, "application/x-ndjson": {}},
    }
}


@router.post(
    "/events",
    openapi_extra=CLOUDEVENTS_REQUEST_BODY,
    responses={
        **error_responses(400, *AUTH, 404, 413, 415, 422, 503),
        202: {"model": EventsReceipt, "description": "appended to the ingest log (`--bus`)"},
    },
    response_model_exclude_unset=True,  # `queued` only when set (true, by the bus)
)
async def post_events(
    request: Request,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    caller: IngestDep,
) -> EventsReceipt:
    """Store CloudEvents 1.0 (structured or batch JSON), idempotent by `(source, id)`.

    With the ingest log (`serve --bus`) the mapped events are appended to the log and answered
    202 with `queued: true`; a sink stores them."""
    assert caller.source_id is not None  # an ingest key, by the route's rule
    with timed_batch():  # latency, and refusals by error code (cloud.metrics)
        body = await read_body(request, limits=settings.limits)
        receipt = await ingest_cloudevents(
            db=db,
            source_id=caller.source_id,
            content_type=request.headers.get("content-type"),
            body=body,
            limits=settings.limits,
            append=getattr(request.app.state, "append_direct", None),  # the bus's (cloud.app)
        )
        if receipt.queued:  # counted by the bus (count_queued)
            response.status_code = 202
            return receipt
        count_stored(
            stored=receipt.stored, duplicates=receipt.duplicates, rejected=len(receipt.rejected)
        )
        return receipt


@router.post(
    "/imports",
    openapi_extra=IMPORT_REQUEST_BODY,
    responses={
        **error_responses(400, *AUTH, 404, 413, 422, 503),
        202: {"model": ImportReport, "description": "appended to the ingest log (`--bus`)"},
    },
)
async def post_import(
    request: Request,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    caller: ImportDep,
    source: Annotated[str, Query(max_length=64, description="the source the file belongs to")],
    filename: Annotated[str, Query(min_length=1, max_length=255)] = "upload.csv",
    file_format: Annotated[str | None, Query(alias="format", description="csv or jsonl")] = None,
    dry_run: bool = False,
) -> ImportReport:
    """Import a CSV or JSON Lines file: good rows stored once, each bad row reported.

    With the ingest log (`serve --bus`) the mapped rows are appended to the log and answered 202
    with `queued: true`; a sink stores them. A dry run never goes to the log."""
    if caller.source_id not in (None, source):
        raise Forbidden(
            f"an ingest key of source {caller.source_id!r} cannot import for source {source!r}",
            detail={"role": caller.scope, "source": source},
        )
    body = await read_body(request, limits=settings.limits)
    report = await import_file(
        db=db,
        source_id=source,
        data=body,
        filename=filename,
        file_format=guess_format(filename) if file_format is None else parse_format(file_format),
        dry_run=dry_run,
        append=getattr(request.app.state, "append_direct", None),  # the bus's (cloud.app)
    )
    if report.queued:
        response.status_code = 202
    return report


@router.post("/sources", status_code=201, responses=error_responses(*AUTH, 409, 422))
async def post_source(body: SourceCreate, db: DatabaseDep, _: AdminDep) -> SourceView:
    """Create a direct source with its mapping (and its sealing key)."""
    async with db.transaction(write=True) as session:
        await add_source(session=session, spec=body)
    async with db.transaction() as session:
        return await describe_source(session=session, source_id=body.id)


@router.get("/sources", responses=error_responses(*AUTH))
async def get_sources(db: DatabaseDep, _: ReadDep) -> list[SourceView]:
    """Every direct source with its data quality."""
    async with db.transaction() as session:
        return [
            await describe_source(session=session, source_id=source_id)
            for source_id in await list_sources(session=session)
        ]


@router.get("/sources/{source_id}", responses=error_responses(*AUTH, 404))
async def get_source(source_id: str, db: DatabaseDep, _: ReadDep) -> SourceView:
    """A direct source, its stored events and its data-quality incidents by kind."""
    async with db.transaction() as session:
        return await describe_source(session=session, source_id=source_id)


class KeyRequest(RequestBody):
    """Who the new ingest key is for."""

    name: str = Field(min_length=1, max_length=200)


@router.post("/sources/{source_id}/keys", status_code=201, responses=error_responses(*AUTH, 404))
async def post_source_key(
    source_id: str, body: KeyRequest, db: DatabaseDep, _: AdminDep
) -> IssuedIngestKey:
    """An ingest key for this source; its secret is in this answer only."""
    async with db.transaction(write=True) as session:
        issued = await create_ingest_key(session=session, source_id=source_id, name=body.name)
    return IssuedIngestKey(
        id=issued.id,
        name=issued.name,
        scope=issued.scope,
        prefix=issued.prefix,
        secret=issued.secret,
    )
