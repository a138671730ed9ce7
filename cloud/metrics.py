"""The Prometheus metrics of every collector process: one module, the default registry.

The objects are module level so that whoever does the thing counts it where it happens: the
ingest routes (one-process path and direct ingest), the bus's collector and sinks, the invoice
runs. They are read in the text exposition format by `GET /metrics` on the collector (`scrape`)
and on a sink's `--metrics-port` (`serve_metrics`).

    collector   tollgate_ingest_batches_total{outcome}     stored | queued | refused
                tollgate_ingest_events_total{outcome}      stored | duplicate | queued
                tollgate_ingest_refusals_total{reason}     the error code of the refusal
                tollgate_ingest_batch_seconds              request to answer (Histogram)
    sink        tollgate_sink_batches_total{outcome}       stored | duplicate | refused
                tollgate_sink_events_total                 events stored
                tollgate_sink_store_seconds                one message to its commit (Histogram)
                tollgate_sink_consumer_lag{partition}      messages pending + unacked
    invoices    tollgate_invoice_run_accounts_total{outcome}
"""

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client import start_http_server as _start_http_server

# Request to answer: a batch of up to a few thousand events is verified and stored in
# milliseconds to a second; the buckets reach past the edge's HTTP timeout.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

# The collector: POST /v1/batches and the direct ingest routes.
INGEST_BATCHES = Counter(
    "tollgate_ingest_batches",
    "Batches answered by the collector, by outcome: stored (one-process path), queued (appended "
    "to the ingest log, stored later by a sink) or refused (an error answer).",
    ["outcome"],
)
INGEST_EVENTS = Counter(
    "tollgate_ingest_events",
    "Events in accepted batches, by outcome: stored (new), duplicate (a seq already stored, "
    "answered as delivered), queued (appended to the ingest log).",
    ["outcome"],
)
INGEST_REFUSALS = Counter(
    "tollgate_ingest_refusals",
    "Batches refused by the collector, by reason: the error code of the JSON error body "
    "(invalid_signature, chain_broken, body_too_large, ...).",
    ["reason"],
)
INGEST_BATCH_SECONDS = Histogram(
    "tollgate_ingest_batch_seconds",
    "Time from a batch request reaching the ingest route to its answer, accepted or refused.",
    unit="seconds",
    buckets=LATENCY_BUCKETS,
)

# The sinks: consumers of the ingest log that store batches exactly once.
SINK_BATCHES = Counter(
    "tollgate_sink_batches",
    "Log messages handled by a sink, by outcome: stored, duplicate (already stored, acked "
    "without a write) or refused (a batch that no longer verifies, acked and recorded).",
    ["outcome"],
)
SINK_EVENTS = Counter(
    "tollgate_sink_events",
    "Events stored by a sink (new events only, duplicates excluded).",
)
SINK_STORE_SECONDS = Histogram(
    "tollgate_sink_store_seconds",
    "Time for a sink to store one log message, from fetch to commit.",
    unit="seconds",
    buckets=LATENCY_BUCKETS,
)
SINK_CONSUMER_LAG = Gauge(
    "tollgate_sink_consumer_lag",
    "Messages of a partition not yet stored: pending in its durable consumer plus delivered "
    "and not yet acked.",
    ["partition"],
)

# Invoice runs.
INVOICE_RUN_ACCOUNTS = Counter(
    "tollgate_invoice_run_accounts",
    "Accounts handled by invoice runs, by outcome.",
    ["outcome"],
)


def scrape() -> tuple[bytes, str]:
    """The default registry in the text exposition format, with its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


def serve_metrics(port: int, host: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
    """Serve the default registry over HTTP on host:port (a sink's `--metrics-port`) from a
    daemon thread; the caller stops it with `server.shutdown()` and `server.server_close()`.
    Loopback by default: a sink has no credentials to check, the host that scrapes it is chosen."""
    return _start_http_server(port, addr=host)
