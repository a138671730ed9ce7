"""The Prometheus metrics of every collector process: one module, the default registry.

The objects are module level so that whoever does the thing counts it where it happens: the
ingest routes (one-process path and direct ingest), the bus's collector and sinks, the invoice
runs. They are read in the text exposition format by `GET /metrics` on the collector (`scrape`)
and on a sink's `--metrics-port` (`serve_metrics`).

    collector   tollgate_ingest_batches_total{outcome}     stored | queued | refused
                tollgate_ingest_events_total{outcome}      stored | duplicate | queued |
                                                           rejected (a direct record refused)
                tollgate_ingest_refusals_total{reason}     the error code of the refusal
                tollgate_ingest_batch_seconds              request to answer (Histogram)
    sink        tollgate_sink_batches_total{outcome}       stored | duplicate | refused
                tollgate_sink_events_total                 events stored
                tollgate_sink_store_seconds                one message to its commit (Histogram)
                tollgate_sink_consumer_lag{partition}      messages pending + unacked
    invoices    tollgate_invoice_run_accounts_total{outcome}
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import start_http_server as _start_http_server

from cloud.errors import CollectorError

# No `*_created` gauge beside every counter and histogram: the process start time says as much.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client 0.26

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
    "Accounts of finished invoice runs, by the run report's outcome (drafted, updated, "
    "finalized, skipped, nothing_to_bill).",
    ["outcome"],
)


# Every outcome is a series from the start (at 0), so a rate over it never starts from nothing.
for _outcome in ("stored", "queued", "refused"):
    INGEST_BATCHES.labels(_outcome)
for _outcome in ("stored", "duplicate", "queued", "rejected"):
    INGEST_EVENTS.labels(_outcome)
for _outcome in ("stored", "duplicate", "refused"):
    SINK_BATCHES.labels(_outcome)


@contextmanager
def timed_batch() -> Iterator[None]:
    """Around the handling of one ingest request: observe its latency, and count it refused
    under its error code when it raises (`internal_error` for what is not a CollectorError:
    the collector answers those 500 or 503). Acceptance is counted by the route that knows
    the outcome: `count_stored` or `count_queued`."""
    started = time.perf_counter()
    try:
        yield
    except CollectorError as exc:
        count_refusal(exc.code)
        raise
    except Exception:
        count_refusal("internal_error")
        raise
    finally:
        INGEST_BATCH_SECONDS.observe(time.perf_counter() - started)


def count_refusal(code: str) -> None:
    """One refused ingest request, by the error code of its answer."""
    INGEST_BATCHES.labels("refused").inc()
    INGEST_REFUSALS.labels(code).inc()


def count_stored(*, stored: int, duplicates: int, rejected: int = 0) -> None:
    """One request stored in this process: its new, already stored and refused records."""
    INGEST_BATCHES.labels("stored").inc()
    INGEST_EVENTS.labels("stored").inc(stored)
    INGEST_EVENTS.labels("duplicate").inc(duplicates)
    INGEST_EVENTS.labels("rejected").inc(rejected)


def count_queued(*, events: int) -> None:
    """One request appended to the ingest log (stored later by a sink), with its events."""
    INGEST_BATCHES.labels("queued").inc()
    INGEST_EVENTS.labels("queued").inc(events)


def scrape() -> tuple[bytes, str]:
    """The default registry in the text exposition format, with its content type.

    `generate_latest` writes the classic format (names escaped to underscores), which is text
    version 0.0.4: that is the content type answered, as prometheus-client's own server does
    (its CONTENT_TYPE_LATEST, 1.0.0, is for a scraper that asks for it; Prometheus 2 and 3
    both read 0.0.4)."""
    return generate_latest(), CONTENT_TYPE_PLAIN_0_0_4


def serve_metrics(port: int, host: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
    """Serve the default registry over HTTP on host:port (a sink's `--metrics-port`) from a
    daemon thread; the caller stops it with `server.shutdown()` and `server.server_close()`.
    Loopback by default: a sink has no credentials to check, the host that scrapes it is chosen."""
    return _start_http_server(port, addr=host)
