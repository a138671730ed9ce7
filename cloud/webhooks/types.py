"""The event types a webhook endpoint can subscribe to (the names receivers see as `type`)."""

import enum


class EventType(enum.StrEnum):
    """Every event the collector sends out; an endpoint subscribes to a subset."""

    INCIDENT_OPENED = "incident.opened"
    INCIDENT_RESOLVED = "incident.resolved"
    GATEWAY_OFFLINE = "gateway.offline"
    GATEWAY_ONLINE = "gateway.online"
    USAGE_THRESHOLD_REACHED = "usage.threshold_reached"
    INVOICE_DRAFTED = "invoice.drafted"
    INVOICE_FINALIZED = "invoice.finalized"
    CREDIT_NOTE_ISSUED = "credit_note.issued"
