"""What the fleet API answers: device twins, their list, gateway twins and heartbeat receipts."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

MAX_TWIN_PAGE = 1000
MAX_OPEN_INCIDENTS = 100  # open incidents shown with one twin


class OpenIncident(BaseModel):
    """An open or acknowledged incident of the device."""

    id: int
    kind: str
    state: str
    detail: str
    first_seen: datetime
    last_seen: datetime
    count: int


class DeviceTwinOut(BaseModel):
    """A device as the collector last heard of it, and the account it is bound to now."""

    device_id: str
    heard: bool = Field(description="false: a catalog device nothing has been received from")
    gateway_id: str | None = Field(description="the gateway its last report came through")
    profile_id: str | None = Field(description="its catalog profile; null: not in the catalog")
    site_id: str | None
    account_id: str | None = Field(description="the account it is bound to now (bindings)")
    last_occurred_at: datetime | None
    last_received_at: datetime | None
    last_seq: int | None
    state: Literal["active", "inactive"] | None = Field(
        description="active: some channel is active; null: no activation or deactivation yet"
    )
    channels: dict[str, Any] = Field(description="{channel: {state, since, event, at}}")
    points: dict[str, Any] = Field(description="{event name: {quantity, unit, at}}")
    counter: dict[str, Any] | None = Field(
        description="{counter name: {raw, at, last_wrap_at, last_reset_at}}"
    )
    battery: int | None = Field(description="percent, from the gateway's heartbeat")
    firmware: str | None
    clock_offset_ms: int | None = Field(description="lock clock minus gateway clock")
    health: dict[str, Any] | None = Field(description="the last heartbeat's report of it")
    health_at: datetime | None
    silent: bool = Field(description="the silence sweep found it unheard for too long")
    silent_since: datetime | None
    low_battery: bool
    updated_at: datetime | None
    open_incidents: list[OpenIncident] = Field(
        default_factory=list, description=f"at most {MAX_OPEN_INCIDENTS}, newest first"
    )


class TwinPage(BaseModel):
    """One page of device twins in device id order."""

    items: list[DeviceTwinOut]
    next_cursor: str | None = Field(description="pass as cursor= for the next page; null: last")


class GatewayTwinOut(BaseModel):
    """A gateway's reports: when it last reported, whether it is online, its last heartbeat."""

    gateway_id: str
    status: Literal["online", "offline", "unknown"] = Field(
        description="unknown: it never reported"
    )
    status_since: datetime | None
    last_report_at: datetime | None
    last_batch_at: datetime | None
    last_heartbeat_at: datetime | None = Field(description="when the collector received it")
    heartbeat: dict[str, Any] | None = Field(description="the newest verified heartbeat")


class HeartbeatReceipt(BaseModel):
    """The collector accepted a heartbeat."""

    gateway_id: str
    sent_at: datetime
    received_at: datetime
    current: bool = Field(description="false: older than the stored one, so not kept")
