"""What the catalog API accepts and answers (documented in /openapi.json).

Requests refuse unknown fields, so a misspelt field is an error rather than silently ignored.
Ids, names, currencies, time zones and rules are checked again by the services (with
`invalid_billing_input` errors), because the CLI and catalog files reach them without HTTP.
"""

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cloud.catalog.accounts import BILLING_FIELDS, DEFAULT_SERIES, AccountKind
from cloud.catalog.checks import DEVICE_ID_PATTERN, SERIES_PATTERN, SLUG_PATTERN
from cloud.catalog.plan_terms import PlanTerms
from cloud.domain import Aggregation, DurationUnit, MetricField, MetricSource
from cloud.storable_text import RequestBody

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64, examples=["smith-household"])]
DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, max_length=128, examples=["tv-1"])]
Name = Annotated[str, Field(min_length=1, max_length=200)]
EventName = Annotated[str, Field(min_length=1, max_length=64)]
Currency = Annotated[str, Field(min_length=3, max_length=3, examples=["EUR"])]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Berlin"])]
Time = Annotated[
    datetime, Field(description="RFC 3339 with a UTC offset (a time without one is refused)")
]
ItemT = TypeVar("ItemT")


class Request(RequestBody):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Stored(BaseModel):
    """An answer read from a table row."""

    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[ItemT]):
    """One page of a listing in id order; pass `next_after` as `after` for the next page."""

    items: list[ItemT]
    next_after: str | None = Field(description="null on the last page")


class AddressIn(Request):
    """A postal address (EN 16931 BG-8)."""

    lines: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=4
    )
    postcode: str = Field(min_length=1, max_length=16)
    city: str = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2")


class AccountBilling(Request):
    """The buyer's fields of an account, as on its invoices (all optional)."""

    billing_name: Name | None = Field(default=None, description="invoice name (default: name)")
    address: AddressIn | None = None
    country: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="tax country, ISO 3166 alpha-2; null: no VAT is charged",
    )
    vat_id: str | None = Field(
        default=None, min_length=4, max_length=32, examples=["FR40303265045"]
    )
    customer_number: str | None = Field(default=None, min_length=1, max_length=64)
    payment_terms_days: int | None = Field(default=None, ge=0, le=365, description="default 14")
    locale: str | None = Field(
        default=None, max_length=32, description="Babel locale, e.g. de_DE (default: the country's)"
    )

    def billing_fields(self) -> dict[str, Any]:
        """The billing fields this request sets (JSON-ready)."""
        return {
            name: value
            for name, value in self.model_dump(mode="json").items()
            if name in BILLING_FIELDS and name in self.model_fields_set
        }


class AccountCreate(AccountBilling):
    """A new account."""

    id: Slug
    name: Name
    kind: AccountKind
    currency: Currency
    time_zone: TimeZone = Field(description="IANA name: billing periods are its months")
    plan_id: Slug | None = Field(default=None, description="a plan in the same currency")
    invoice_series: str = Field(default=DEFAULT_SERIES, pattern=SERIES_PATTERN)


class AccountUpdate(AccountBilling):
    """Fields to change; `plan_id: null` takes the account off its plan, a billing field set to
    null clears it."""

    name: Name | None = None
    plan_id: Slug | None = None


class AccountOut(Stored):
    """An account."""

    id: str
    name: str
    kind: AccountKind
    currency: str
    time_zone: str
    plan_id: str | None
    invoice_series: str
    created_at: datetime
    billing_name: str | None = None
    address: dict[str, Any] | None = None
    country: str | None = None
    vat_id: str | None = None
    customer_number: str | None = None
    payment_terms_days: int | None = None
    locale: str | None = None


MAX_TIMEOUT_SECONDS = 366 * 86400


class ProfileRule(Request):
    """How a profile's events form sessions, per (device, channel); no `start_on`: no sessions."""

    start_on: list[EventName] = Field(default_factory=list, examples=[["power_on"]])
    end_on: list[EventName] = Field(default_factory=list, examples=[["power_off"]])
    timeout_seconds: int | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description="close a session after this long without activity (at most 366 days)",
    )


class ProfileCreate(ProfileRule):
    """A new device profile."""

    id: Slug
    name: Name
    expected_interval_seconds: int | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description="its devices report at least this often, else silent_device; null: unchecked",
    )


class ProfileOut(Stored):
    """A device profile and its session rule."""

    id: str
    name: str
    start_on: list[str]
    end_on: list[str]
    timeout_seconds: int | None
    expected_interval_seconds: int | None
    created_at: datetime


class DeviceCreate(Request):
    """A new device: its id is the `device_id` its events carry."""

    id: DeviceId
    name: Name
    profile_id: Slug
    site_id: str | None = Field(default=None, max_length=64)


class DeviceUpdate(Request):
    """Fields to change; a new profile recomputes the device's sessions; `site_id: null` clears."""

    name: Name | None = None
    profile_id: Slug | None = None
    site_id: str | None = Field(default=None, max_length=64)


class DeviceOut(Stored):
    """A device."""

    id: str
    name: str
    profile_id: str
    site_id: str | None
    created_at: datetime


class BindingCreate(Request):
    """Bill the device to an account over [valid_from, valid_to)."""

    account_id: Slug
    valid_from: Time
    valid_to: Time | None = Field(default=None, description="null: until further notice")
    move: bool = Field(
        default=False,
        description="end the device's open binding at valid_from (a device changing account)",
    )


class BindingUpdate(Request):
    """When the binding ends (null: open-ended); it may not come to overlap another."""

    valid_to: Time | None


class BindingOut(Stored):
    """A binding of a device to an account over [valid_from, valid_to)."""

    id: int
    device_id: str
    account_id: str
    valid_from: datetime
    valid_to: datetime | None
    created_at: datetime


class MetricCreate(Request):
    """A new metric (see `cloud.domain.MetricSpec`)."""

    id: Slug
    name: Name
    source: MetricSource
    aggregation: Aggregation
    field: MetricField | None = Field(default=None, description="what sum, max and latest read")
    profiles: list[Slug] = Field(default_factory=list, description="only these profiles' devices")
    names: list[EventName] = Field(default_factory=list, description="only these event names")
    unit: str | None = Field(default=None, max_length=64, description="only events in this unit")
    duration_unit: DurationUnit = DurationUnit.HOUR


class MetricOut(Stored):
    """A metric."""

    id: str
    name: str
    source: MetricSource
    aggregation: Aggregation
    field: MetricField | None
    profiles: list[str]
    names: list[str]
    unit: str | None
    duration_unit: DurationUnit
    created_at: datetime


class MetricUpdate(Request):
    """Fields of a metric to change (the others stay); refused once a finalized invoice used it."""

    name: Name | None = None
    source: MetricSource | None = None
    aggregation: Aggregation | None = None
    field: MetricField | None = None
    profiles: list[Slug] | None = Field(default=None, max_length=100)
    names: list[EventName] | None = Field(default=None, max_length=100)
    unit: str | None = Field(default=None, max_length=64)
    duration_unit: DurationUnit | None = None


class MetricCreatedOut(MetricOut):
    """A metric just created or changed, with warnings (e.g. it matches no recent event)."""

    warnings: list[str] = Field(default_factory=list)


class SiteOut(Stored):
    """A site."""

    id: str
    name: str
    created_at: datetime


class PlanCreate(Request):
    """A new plan; its terms come as versions (POST /v1/plans/{id}/versions)."""

    id: Slug
    name: Name
    currency: Currency


class PlanVersionOut(BaseModel):
    """One version of a plan's terms, effective from `effective_from`."""

    version: int
    effective_from: datetime
    terms: PlanTerms
    created_at: datetime


class PlanVersionCreatedOut(PlanVersionOut):
    """A version just appended, with warnings about its charges."""

    warnings: list[str] = Field(default_factory=list)


class PlanOut(BaseModel):
    """A plan with its versions, by `effective_from`."""

    id: str
    name: str
    currency: str
    created_at: datetime
    versions: list[PlanVersionOut]


class UnbilledDeviceOut(Stored):
    """A device's events that no binding covers (`known`: the device is in the catalog)."""

    device_id: str
    known: bool
    event_count: int
    first_at: datetime
    last_at: datetime
    names: list[str]
