"""The incident sink's events reach a real receiver: what another domain emits in its own
transaction is delivered, signed, in the Standard Webhooks shape (both backends)."""

import pytest

from cloud.db import Database
from cloud.incidents.models import IncidentKind
from cloud.incidents.sink import record_incident, resolve_incidents
from cloud.webhooks.delivery import deliver_due
from cloud.webhooks.types import EventType
from tests.cloud.webhooks.conftest import FAST, T0, add_endpoint, deliveries
from tests.cloud.webhooks.receiver import Receiver


async def test_an_incident_opened_and_resolved_arrives_as_two_events(database: Database) -> None:
    async with Receiver() as receiver:
        _, receiver.secret = await add_endpoint(
            database, receiver.url, EventType.INCIDENT_OPENED, EventType.INCIDENT_RESOLVED
        )
        await database.run_write(
            lambda s: record_incident(
                s, kind=IncidentKind.SILENT_DEVICE, gateway_id="gw-1", device_id="lock-7",
                detail="no report for 2 h", at=T0,
            )
        )  # fmt: skip
        await database.run_write(
            lambda s: resolve_incidents(
                s, kind=IncidentKind.SILENT_DEVICE, gateway_id="gw-1", device_ids=["lock-7"],
                reason="data came back", at=T0,
            )
        )  # fmt: skip
        report = await deliver_due(database, T0, policy=FAST)

    assert report.succeeded == 2 and receiver.refused == []
    by_type = {item.body["type"]: item.body["data"] for item in receiver.received}
    assert by_type.keys() == {"incident.opened", "incident.resolved"}
    assert by_type["incident.opened"]["device_id"] == "lock-7"
    assert by_type["incident.resolved"]["state"] == "resolved"


async def test_an_incident_rolled_back_sends_nothing(database: Database) -> None:
    await add_endpoint(database, "http://127.0.0.1:9/hooks")

    def open_then_fail(session: object) -> None:
        record_incident(
            session,  # type: ignore[arg-type]
            kind=IncidentKind.SILENT_DEVICE,
            gateway_id="gw-1",
            device_id="lock-8",
            detail="x",
        )
        raise RuntimeError("the sweep failed")

    with pytest.raises(RuntimeError, match="sweep failed"):
        await database.run_write(open_then_fail)
    assert await deliveries(database) == []
