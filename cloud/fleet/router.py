"""HTTP routes of the fleet view: device twins, gateway status and twins, gateway heartbeats.

Reading twins and gateway status needs a reading key; a gateway reads its own chain head with
a signed request (or any reading key reads it); a heartbeat proves itself by its signature.
`devices` must be included before the catalog router (its /v1/devices/{id:path} catch-all).
"""

import asyncio
import functools
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from cloud.api import (
    PUBLIC,
    DatabaseDep,
    GatewayDep,
    ReadDep,
    SettingsDep,
    error_responses,
)
from cloud.fleet.gateway_reads import (
    MAX_GATEWAY_PAGE,
    GatewayView,
    describe_gateway,
    gateway_head,
    list_gateway_twins,
)
from cloud.fleet.heartbeats import (
    HeartbeatOutcome,
    gateway_key,
    store_heartbeat,
    verified_heartbeat,
)
from cloud.fleet.reads import TwinFilter, device_twin, list_twins
from cloud.fleet.schemas import (
    MAX_TWIN_PAGE,
    DeviceTwinOut,
    GatewayTwinOut,
    HeartbeatReceipt,
    TwinPage,
)
from cloud.gateways.models import Gateway
from cloud.gateways.schemas import GatewayHead
from cloud.ingest.body import read_body
from cloud.settings import Limits
from shared.bounds import MAX_HEARTBEAT_BYTES

devices = APIRouter(tags=["fleet"])
gateways = APIRouter(prefix="/v1/gateways", tags=["gateways"])

HEARTBEAT_LIMITS = Limits(
    max_body_bytes=MAX_HEARTBEAT_BYTES, max_inflated_bytes=MAX_HEARTBEAT_BYTES
)
DeviceIdPath = Annotated[str, Path(min_length=1, max_length=128)]
GatewayIdPath = Annotated[str, Path(min_length=1, max_length=128)]


@devices.get("/v1/devices/{device_id:path}/twin", responses=error_responses(401, 403, 404, 422))
async def get_device_twin(
    device_id: DeviceIdPath, db: DatabaseDep, settings: SettingsDep, _: ReadDep
) -> DeviceTwinOut:
    """The device's twin: last seen, channel states, last values, health, the account it is
    bound to now, and its open incidents."""
    async with db.transaction() as session:
        return await device_twin(
            session=session,
            device_id=device_id,
            now=datetime.now(UTC),
            low_battery=settings.low_battery,
        )


@devices.get("/v1/twins", responses=error_responses(401, 403, 422))
async def get_twins(
    db: DatabaseDep,
    settings: SettingsDep,
    _: ReadDep,
    silent: bool | None = None,
    low_battery: bool | None = None,
    state: Literal["active", "inactive"] | None = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    account: Annotated[str | None, Query(max_length=64)] = None,
    gateway: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TWIN_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> TwinPage:
    """Heard devices' twins in device id order (keyset: pass `next_cursor` as `cursor`)."""
    where = TwinFilter(
        silent=silent,
        low_battery=low_battery,
        state=state,
        site=site,
        account=account,
        gateway=gateway,
    )
    async with db.transaction() as session:
        return await list_twins(
            session=session,
            where=where,
            now=datetime.now(UTC),
            low_battery=settings.low_battery,
            limit=limit,
            after=cursor,
        )


@gateways.get("", responses=error_responses(401, 403, 422))
async def get_gateways(
    db: DatabaseDep,
    _: ReadDep,
    status: Literal["online", "offline", "unknown"] | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_GATEWAY_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> list[GatewayTwinOut]:
    """Registered gateways' twins in id order (`cursor`: the last gateway id of a page)."""
    async with db.transaction() as session:
        return await list_gateway_twins(session=session, status=status, limit=limit, after=cursor)


@gateways.post(
    "/{gateway_id:path}/heartbeats",
    responses=error_responses(400, 401, 403, 413, 422),
    dependencies=[PUBLIC],
)
async def post_heartbeat(
    gateway_id: GatewayIdPath, request: Request, db: DatabaseDep, settings: SettingsDep
) -> HeartbeatReceipt:
    """Accept a gateway's signed heartbeat (shared/heartbeat.py); the newest one is kept."""
    body = await read_body(request, limits=HEARTBEAT_LIMITS)
    async with db.transaction() as session:
        key = gateway_key(await session.get(Gateway, gateway_id), gateway_id)
    received_at = datetime.now(UTC)
    # Up to 512 KiB of JSON to verify and validate (tens of ms for 1,000 devices): in a thread,
    # so one gateway's heartbeat does not hold up every other request of the event loop.
    heartbeat = await asyncio.to_thread(
        functools.partial(verified_heartbeat, key, body, gateway_id=gateway_id, now=received_at)
    )
    outcome: HeartbeatOutcome = await db.run_write(
        lambda session: store_heartbeat(
            session, heartbeat, received_at=received_at, low_battery=settings.low_battery
        )
    )
    return HeartbeatReceipt(
        gateway_id=heartbeat.gateway_id,
        sent_at=heartbeat.sent_at,
        received_at=outcome.received_at,
        current=outcome.current,
    )


@gateways.get("/{gateway_id:path}/head", responses=error_responses(404))
async def get_gateway_head(gateway_id: str, db: DatabaseDep, _: GatewayDep) -> GatewayHead:
    """Where the gateway's stored chain ends and its current key: what a fresh outbox resyncs
    onto. The gateway itself may read it with a signed request; so may any reading key."""
    async with db.transaction() as session:
        return await gateway_head(session=session, gateway_id=gateway_id)


@gateways.get("/{gateway_id:path}", responses=error_responses(404))
async def get_gateway(gateway_id: str, db: DatabaseDep, _: ReadDep) -> GatewayView:
    """Where the gateway's stored chain ends (`last_seq`, `last_hash`), its gaps and incidents,
    and its twin: online or offline, its last report and its last heartbeat."""
    async with db.transaction() as session:
        return await describe_gateway(session=session, gateway_id=gateway_id)
