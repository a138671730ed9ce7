"""Errors of the cloud collector, one tree (like `httpx/_exceptions.py`).

    CollectorError                  status  code
     ├── MalformedRequest            400
     │    ├── MalformedJson          400    malformed_json      the body is not JSON
     │    └── MalformedBody          400    malformed_body      bad gzip, bad Content-Length, ...
     ├── BodyTooLarge                413    body_too_large      too many bytes, inflated or not,
     │                                                          or too many events in one batch
     ├── InvalidBatch                422    invalid_batch       JSON that is not a valid Batch
     ├── InvalidParameters           422    invalid_parameters  bad query or path parameters
     ├── UnknownGateway              403    unknown_gateway     no gateway registered with that id
     ├── GatewayRevoked              403    gateway_revoked     the gateway was revoked
     ├── InvalidBatchSignature       401    invalid_signature   Ed25519 signature does not verify
     ├── KeyRetired                  401    key_retired         signed with a key rotated away
     ├── ChainBroken                 409    chain_broken        a hash does not link or recompute
     ├── SeqConflict                 409    seq_conflict        a stored seq, another hash
     ├── GatewayNotFound             404    gateway_not_found
     ├── GatewayExists               409    gateway_exists
     ├── InvalidRegistration         422    invalid_registration  bad gateway id or public key
     ├── SiteNotFound                404    site_not_found
     ├── SiteExists                  409    site_exists
     ├── EnrollmentCodeUnknown       404    enrollment_code_unknown  no such code (or mistyped)
     ├── EnrollmentCodeUsed          409    enrollment_code_used     a code enrolls one gateway
     ├── EnrollmentCodeExpired       410    enrollment_code_expired
     ├── Unauthorized                401    unauthorized        no credential, or a dead one
     │                                                          (unknown, revoked, expired key;
     │                                                          stale or wrong gateway signature;
     │                                                          dead share link): detail.missing
     ├── Forbidden                   403    forbidden           a live key of another role:
     │                                                          detail.role, detail.required
     ├── InvalidBillingInput         422    invalid_billing_input  a billing document that cannot
     │    │                                                     be used (time zone, currency, ...)
     │    ├── RatingOutOfBounds      422    rating_out_of_bounds  a price, quantity or amount
     │    │                                                     beyond the rating bounds
     │    └── InvalidCredit          422    invalid_credit      an unknown or zero line to credit
     ├── BillingNotFound             404
     │    ├── AccountNotFound        404    account_not_found
     │    ├── ProfileNotFound        404    profile_not_found
     │    ├── DeviceNotFound         404    device_not_found
     │    ├── MetricNotFound         404    metric_not_found
     │    ├── PlanNotFound           404    plan_not_found
     │    ├── BindingNotFound        404    binding_not_found
     │    ├── InvoiceNotFound        404    invoice_not_found
     │    ├── InvoiceLineNotFound    404    invoice_line_not_found
     │    ├── ThresholdNotFound      404    threshold_not_found
     │    ├── CreditNoteNotFound     404    credit_note_not_found
     │    └── InvoiceRunNotFound     404    invoice_run_not_found   (cloud/invoices/run_queue.py)
     ├── BillingConflict             409
     │    ├── AlreadyExists          409    already_exists      an account, profile, device,
     │    │                                                     metric, plan or plan version
     │    ├── BindingOverlap         409    binding_overlap     a device bound twice at once
     │    ├── InvoiceFinalized       409    invoice_finalized   finalized invoices never change
     │    ├── InvoiceNotFinalized    409    invoice_not_finalized  only final invoices are credited
     │    ├── LineAlreadyCredited    409    line_already_credited  a line is credited at most once
     │    ├── GraceNotOver           409    grace_not_over      finalizing early needs force
     │    ├── EInvoiceNotReady       409    einvoice_not_ready  a draft or no seller: no Factur-X
     │    └── CatalogInUse           409    catalog_in_use      a metric, profile rule or plan
     │                                                          version a finalized invoice used
     ├── UnsupportedMediaType        415    unsupported_media_type  a Content-Type this route
     │                                                          does not take (CloudEvents binary)
     ├── InvalidEvent                422    invalid_event       a structured CloudEvent that
     │                                                          cannot be stored (detail names why)
     ├── InvalidImport               422    invalid_import      a file that cannot be imported at
     │                                                          all (missing column, bad header)
     ├── InvalidSource               422    invalid_source      a source id or mapping we cannot use
     ├── SourceNotFound              404    source_not_found
     ├── SourceExists                409    source_exists       the id or a CloudEvents source URI
     │                                                          is taken
     ├── IncidentNotFound            404    incident_not_found
     ├── IncidentTransition          409    incident_transition  acknowledging or resolving an
     │                                                          incident its state does not allow
     ├── WebhookEndpointNotFound     404    webhook_endpoint_not_found
     ├── WebhookDeliveryNotFound     404    webhook_delivery_not_found
     ├── DeliveryNotReplayable       409    delivery_not_replayable  a delivery still pending
     ├── BusUnavailable              503    bus_unavailable     the ingest log did not confirm
     │                                                          an append: retry (bus/collector.py)
     ├── WorkersStopped              503    invoice_workers_stopped  every worker of a run
     │                                                          stopped, chunks left (run_queue.py)
     ├── ArchiveRefused              409    archive_refused     month not closed, a draft over it,
     │                                                          a late event (archive/service.py)
     ├── ArchiveInvalid              422    archive_invalid     an archive file that does not read
     │                                                          or verify (archive/files.py)
     └── InvalidSettings             -      -                   a database URL we cannot use

Services raise these and never `HTTPException`; `cloud.answers` maps them to their status with the
body `{"error": {"id": ..., "code": ..., "message": ..., "detail": {...}}}` (the id is also in the
log line of the answer). What escapes every handler is answered there too: 500 `internal_error`,
or 503 `database_unavailable` when the database cannot be reached. Errors of `shared` (the event
contract) are caught at the ingest boundary and re-raised as ours with `raise ... from exc`.
"""

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar


class CollectorError(Exception):
    """Root of every error the collector raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "collector_error"

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}

    def to_body(self) -> dict[str, Any]:
        """The JSON error body the API answers with."""
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


class MalformedRequest(CollectorError):
    """The request body cannot be read as a document at all."""

    status = 400
    code = "malformed_body"


class MalformedJson(MalformedRequest):
    """The body is not valid JSON."""

    code = "malformed_json"


class MalformedBody(MalformedRequest):
    """The body's framing is wrong: bad gzip stream, bad Content-Length, unknown encoding."""

    code = "malformed_body"


class BodyTooLarge(CollectorError):
    """The body, compressed or inflated, or the number of events in it, exceeds a limit."""

    status = 413
    code = "body_too_large"


class InvalidBatch(CollectorError):
    """The JSON is not a valid batch; `detail["errors"]` names each location."""

    status = 422
    code = "invalid_batch"


class InvalidParameters(CollectorError):
    """A query or path parameter is invalid; `detail["errors"]` names each location."""

    status = 422
    code = "invalid_parameters"


class UnknownGateway(CollectorError):
    """A batch claims a gateway that is not registered."""

    status = 403
    code = "unknown_gateway"


class GatewayRevoked(CollectorError):
    """A batch or key rotation from a gateway that was revoked."""

    status = 403
    code = "gateway_revoked"


class InvalidBatchSignature(CollectorError):
    """The batch signature does not verify under the registered gateway key."""

    status = 401
    code = "invalid_signature"


class KeyRetired(CollectorError):
    """Signed with a key the gateway has rotated away from."""

    status = 401
    code = "key_retired"


class ChainBroken(CollectorError):
    """An event's hash does not recompute, or the batch does not link to the stored chain."""

    status = 409
    code = "chain_broken"


class SeqConflict(CollectorError):
    """A seq that is already stored arrives with a different hash."""

    status = 409
    code = "seq_conflict"


class GatewayNotFound(CollectorError):
    """No gateway is registered with that id."""

    status = 404
    code = "gateway_not_found"


class GatewayExists(CollectorError):
    """A gateway with that id is already registered."""

    status = 409
    code = "gateway_exists"


class InvalidRegistration(CollectorError):
    """A gateway cannot be registered: its id or its public key is not acceptable."""

    status = 422
    code = "invalid_registration"


class SiteNotFound(CollectorError):
    """No site with that id."""

    status = 404
    code = "site_not_found"


class SiteExists(CollectorError):
    """A site with that id already exists."""

    status = 409
    code = "site_exists"


class EnrollmentCodeUnknown(CollectorError):
    """No enrollment code matches (never issued, or mistyped)."""

    status = 404
    code = "enrollment_code_unknown"


class EnrollmentCodeUsed(CollectorError):
    """The enrollment code has already enrolled a gateway."""

    status = 409
    code = "enrollment_code_used"


class EnrollmentCodeExpired(CollectorError):
    """The enrollment code expired before it was used."""

    status = 410
    code = "enrollment_code_expired"


class Unauthorized(CollectorError):
    """No API key, or one that is unknown or revoked."""

    status = 401
    code = "unauthorized"


class Forbidden(CollectorError):
    """The API key is valid but its scope does not allow this request."""

    status = 403
    code = "forbidden"


class InvalidBillingInput(CollectorError):
    """A billing document (account, plan, metric, binding, period) that cannot be used."""

    status = 422
    code = "invalid_billing_input"


class RatingOutOfBounds(InvalidBillingInput):
    """A price, quantity or amount too large (or too precise) to be rated exactly; `detail` names
    the account, plan, version and charge where known."""

    code = "rating_out_of_bounds"


class BillingNotFound(CollectorError):
    """A billing object that does not exist."""

    status = 404
    code = "not_found"


class AccountNotFound(BillingNotFound):
    """No account with that id."""

    code = "account_not_found"


class ProfileNotFound(BillingNotFound):
    """No device profile with that id."""

    code = "profile_not_found"


class DeviceNotFound(BillingNotFound):
    """No device with that id."""

    code = "device_not_found"


class MetricNotFound(BillingNotFound):
    """No metric with that id."""

    code = "metric_not_found"


class PlanNotFound(BillingNotFound):
    """No plan with that id."""

    code = "plan_not_found"


class BindingNotFound(BillingNotFound):
    """No binding with that id."""

    code = "binding_not_found"


class InvoiceNotFound(BillingNotFound):
    """No invoice with that id."""

    code = "invoice_not_found"


class InvoiceLineNotFound(BillingNotFound):
    """The invoice has no line with that number."""

    code = "invoice_line_not_found"


class ThresholdNotFound(BillingNotFound):
    """No usage threshold with that id."""

    code = "threshold_not_found"


class BillingConflict(CollectorError):
    """The request conflicts with what is stored."""

    status = 409
    code = "conflict"


class AlreadyExists(BillingConflict):
    """An account, profile, device, metric, plan or plan version with that id exists."""

    code = "already_exists"


class BindingOverlap(BillingConflict):
    """The new binding overlaps another binding of the same device."""

    code = "binding_overlap"


class InvoiceFinalized(BillingConflict):
    """A finalized invoice is immutable: nothing may change it."""

    code = "invoice_finalized"


class CatalogInUse(BillingConflict):
    """A finalized invoice was rated with this metric, profile rule or plan version: it cannot
    change (detail names the invoice); create a new one instead."""

    code = "catalog_in_use"


class CreditNoteNotFound(BillingNotFound):
    """No credit note with that id."""

    code = "credit_note_not_found"


class InvalidCredit(InvalidBillingInput):
    """A credit note cannot be issued as asked (an unknown or zero line, nothing left to credit)."""

    code = "invalid_credit"


class InvoiceNotFinalized(BillingConflict):
    """Only a finalized invoice can be credited; a draft is corrected by re-running it."""

    code = "invoice_not_finalized"


class LineAlreadyCredited(BillingConflict):
    """An invoice line is credited at most once (whole lines only)."""

    code = "line_already_credited"


class GraceNotOver(BillingConflict):
    """A draft finalized before its grace period ends needs `force`."""

    code = "grace_not_over"


class EInvoiceNotReady(BillingConflict):
    """A Factur-X e-invoice needs a finalized invoice with seller, buyer and tax data."""

    code = "einvoice_not_ready"


class UnsupportedMediaType(CollectorError):
    """The request's Content-Type is not one this route accepts."""

    status = 415
    code = "unsupported_media_type"


class InvalidEvent(CollectorError):
    """A single structured CloudEvent that cannot be stored; `detail` has the field and reason."""

    status = 422
    code = "invalid_event"


class InvalidImport(CollectorError):
    """A file that cannot be imported at all: unknown format, unreadable header, missing column."""

    status = 422
    code = "invalid_import"


class InvalidSource(CollectorError):
    """A direct source's id or mapping that cannot be used."""

    status = 422
    code = "invalid_source"


class SourceNotFound(CollectorError):
    """No direct source with that id."""

    status = 404
    code = "source_not_found"


class SourceExists(CollectorError):
    """A direct source with that id, or another source owning that CloudEvents URI, exists."""

    status = 409
    code = "source_exists"


class IncidentNotFound(CollectorError):
    """No data-quality incident with that id."""

    status = 404
    code = "incident_not_found"


class IncidentTransition(CollectorError):
    """The incident's state does not allow that step (resolving a resolved one, say)."""

    status = 409
    code = "incident_transition"


class InvalidHeartbeat(CollectorError):
    """A heartbeat envelope that is not JSON, not the contract's shape, or another gateway's."""

    status = 422
    code = "invalid_heartbeat"


class InvalidHeartbeatSignature(CollectorError):
    """The heartbeat's signature does not verify under the gateway's current key."""

    status = 401
    code = "invalid_heartbeat_signature"


class StaleHeartbeat(CollectorError):
    """A heartbeat whose `sent_at` is too far from the collector's clock (a replay, or a skew)."""

    status = 401
    code = "stale_heartbeat"


class DeviceTwinNotFound(CollectorError):
    """The collector has heard nothing of that device (no event, no heartbeat report)."""

    status = 404
    code = "device_twin_not_found"


class WebhookEndpointNotFound(CollectorError):
    """No webhook endpoint with that id."""

    status = 404
    code = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(CollectorError):
    """No webhook delivery with that id."""

    status = 404
    code = "webhook_delivery_not_found"


class DeliveryNotReplayable(CollectorError):
    """A delivery still pending (being tried) cannot be replayed; only a finished one."""

    status = 409
    code = "delivery_not_replayable"


class InvalidSettings(CollectorError):
    """The collector settings cannot be used (for instance an unsupported database URL)."""


class TaxRateMissing(InvalidBillingInput):
    """No VAT rate is in force for (country, category) on the date an invoice needs it; `detail`
    names the country, the category and the date (the account's run outcome is `failed`)."""

    code = "tax_rate_missing"


def error_locations(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors reduced to where (`loc`), what (`msg`) and which check failed (`type`)."""
    return [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]} for error in errors
    ]
