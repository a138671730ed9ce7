"""The billing vocabulary shared by the pure core (sessions, metrics, pricing, rating).

Everything here is a frozen value: no I/O, no database. The store turns rows into these values,
the pure modules compute with them, and the invoice service writes their results back.

Ordering: events are totally ordered by `BillableEvent.order` = (occurred_at, gateway_id, seq).
That order, not arrival order, drives sessionization, so the same events in any arrival order
give the same sessions.
"""

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

EventKey = tuple[str, int]
"""An event's identity: (gateway_id, seq)."""

OrderKey = tuple[datetime, str, int]
"""An event's place in the total order: (occurred_at, gateway_id, seq)."""


@dataclass(frozen=True, slots=True)
class BillableEvent:
    """A stored raw event, as billing reads it (see `cloud.ingest.models.StoredEvent`)."""

    gateway_id: str
    seq: int
    device_id: str
    channel: str | None
    name: str
    kind: str
    quantity: Decimal | None
    unit: str | None
    occurred_at: datetime
    report: str | None = None  # `attrs["report"]`: "status" when it confirms a state

    @property
    def key(self) -> EventKey:
        """Its identity."""
        return (self.gateway_id, self.seq)

    @property
    def order(self) -> OrderKey:
        """Its place in the total order."""
        return (self.occurred_at, self.gateway_id, self.seq)


class CloseReason(enum.StrEnum):
    """Why a session ended."""

    DEACTIVATED = "deactivated"  # an `end_on` event closed it
    TIMED_OUT = "timed_out"  # no activity for longer than the rule's timeout
    SUPERSEDED = "superseded"  # a new `start_on` event arrived while it was open
    STILL_OPEN = "still_open"  # open as of the computation time


@dataclass(frozen=True, slots=True)
class SessionRule:
    """How a device profile's events form sessions, per (device_id, channel)."""

    start_on: frozenset[str]
    end_on: frozenset[str]
    timeout: timedelta | None = None


@dataclass(frozen=True, slots=True)
class ComputedSession:
    """A session as the sessionizer computes it (no database id yet).

    `ended_at` is the closing event's time (deactivated, superseded: the superseding start
    event's time), the last activity's time (timed_out), or None (still_open). `events` are the
    keys of every event of the session in order, from the start event to the last activity
    (including the `end_on` event when deactivated; never the superseding start event).
    """

    device_id: str
    channel: str | None
    name: str  # the start event's name
    started_at: datetime
    ended_at: datetime | None
    last_activity_at: datetime
    close_reason: CloseReason
    start_order: OrderKey
    events: tuple[EventKey, ...]


@dataclass(frozen=True, slots=True)
class SessionPiece:
    """The part of a stored session inside one billing interval and one binding.

    `piece_start`/`piece_end` clip the session to [interval start, interval end); a still-open
    session is clipped at min(as_of, interval end). `is_start` is true for the piece holding the
    session's start (the one piece `count` counts).
    """

    session_id: int
    device_id: str
    channel: str | None
    name: str
    profile: str
    started_at: datetime
    ended_at: datetime | None
    close_reason: CloseReason
    piece_start: datetime
    piece_end: datetime
    is_start: bool

    @property
    def duration(self) -> timedelta:
        """How long the piece lasts."""
        return self.piece_end - self.piece_start


class MetricSource(enum.StrEnum):
    """What a metric aggregates."""

    SESSIONS = "sessions"
    EVENTS = "events"


class Aggregation(enum.StrEnum):
    """How a metric aggregates."""

    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"  # distinct devices
    LATEST = "latest"  # the value of the last item in the total order


class MetricField(enum.StrEnum):
    """Which value `sum`, `max` and `latest` read."""

    DURATION = "duration"  # sessions only
    QUANTITY = "quantity"  # events only


class DurationUnit(enum.StrEnum):
    """The unit a duration metric is expressed in (exact Decimal division of seconds)."""

    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A billable metric. Empty `profiles`/`names` mean all; `unit` filters event units."""

    id: str
    source: MetricSource
    aggregation: Aggregation
    field: MetricField | None = None
    profiles: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    unit: str | None = None
    duration_unit: DurationUnit = DurationUnit.HOUR


@dataclass(frozen=True, slots=True)
class Measurement:
    """A metric's value over one interval, and exactly the items that made it."""

    value: Decimal
    sessions: tuple[SessionPiece, ...] = ()
    events: tuple[EventKey, ...] = ()


class PriceModel(enum.StrEnum):
    """How a charge turns billable units into an amount."""

    STANDARD = "standard"  # units x unit_price
    GRADUATED = "graduated"  # each unit at the price of the tier it falls in
    VOLUME = "volume"  # every unit at the price of the tier the total falls in
    PACKAGE = "package"  # ceil(units / package_size) x package_price


class TaxClass(enum.StrEnum):
    """What a charge (or a plan's base fee and minimum) is taxed as, in the buyer's tax country:
    the country's rate of that class in force at the end of the service period."""

    STANDARD = "standard"
    REDUCED = "reduced"
    ZERO = "zero"


@dataclass(frozen=True, slots=True)
class Tier:
    """Units in (previous up_to, up_to] (None: no upper bound), a unit price and a flat fee.

    When the charge has a `block_size`, `unit_price` is the price of one block of that many
    units (the document calls it `block_price`).
    """

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Charge:
    """One priced metric of a plan version."""

    metric: str
    model: PriceModel
    description: str = ""
    included_units: Decimal = Decimal(0)
    unit_price: Decimal | None = None  # standard
    tiers: tuple[Tier, ...] = ()  # graduated, volume
    package_size: Decimal | None = None  # package
    package_price: Decimal | None = None  # package
    block_size: Decimal | None = None  # graduated, volume: tiers price blocks of this many units
    tax_category: TaxClass = TaxClass.STANDARD  # the VAT class of its usage lines


@dataclass(frozen=True, slots=True)
class PlanVersion:
    """A plan's terms from `effective_from` on (until the next version's `effective_from`)."""

    plan_id: str
    version: int
    effective_from: datetime
    currency: str
    base_fee: Decimal = Decimal(0)
    minimum_amount: Decimal = Decimal(0)
    charges: tuple[Charge, ...] = ()
    tax_category: TaxClass = TaxClass.STANDARD  # the VAT class of the base fee and minimum


class LineKind(enum.StrEnum):
    """What an invoice line is for."""

    BASE_FEE = "base_fee"
    USAGE = "usage"
    MINIMUM = "minimum"  # top-up to the plan's minimum amount
    ADJUSTMENT = "adjustment"  # a correction of a finalized invoice's line


@dataclass(frozen=True, slots=True)
class RatedLine:
    """A line as rating computes it: amount already rounded to the currency's minor unit.

    `quantity` is the metric value, `billable` what remained after included units; `detail` is a
    JSON-ready explanation (tiers applied, proration factor, unit price).
    """

    kind: LineKind
    description: str
    amount: Decimal
    part_start: datetime
    part_end: datetime
    plan_id: str | None = None
    plan_version: int | None = None
    metric: str | None = None
    quantity: Decimal | None = None
    billable: Decimal | None = None
    detail: dict[str, object] = field(default_factory=dict)
    measurement: Measurement | None = None
