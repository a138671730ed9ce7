"""The ingest log's pure parts: partitions, subjects, message ids and the message codec.

Nothing here does I/O. A gateway's batches all go to one partition
(`zlib.crc32(gateway_id) % partitions`), the subject `tollgate.ingest.<partition>` of the stream,
so that one durable consumer per partition (`sink-<partition>`) sees them in the order the
collectors appended them. A stream other than the default one gets its own subject prefix
(`tollgate.ingest.<stream>.<partition>`): streams on one server may not share subjects, and tests
run their own streams side by side.

A message carries the verified body (the bytes whose signature and internal chain the collector
checked), deflated when it is large, with headers naming its kind and its idempotent id
(`Nats-Msg-Id`): JetStream drops a second append with the same id within its duplicate window,
and the sink's `(gateway_id, seq)` check makes any later one a duplicate too.
"""

import base64
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

DEFAULT_STREAM = "TOLLGATE_INGEST"
SUBJECT_ROOT = "tollgate.ingest"
MSG_ID = "Nats-Msg-Id"
KIND = "Tollgate-Kind"
ENCODING = "Tollgate-Encoding"
SIGNATURE = "Tollgate-Signature"  # a direct message: its source's Ed25519 over the body
DEFLATE = "deflate"
BATCH = "batch"
DIRECT = "direct"
# Bodies above this are deflated before the append: a 1000-event batch is about 400 kB of JSON and
# JetStream refuses messages over the server's max_payload (1 MiB by default).
DEFLATE_ABOVE = 64 * 1024

Kind = Literal["batch", "direct"]


def partition_of(gateway_id: str, partitions: int) -> int:
    """The partition of a gateway's batches."""
    return zlib.crc32(gateway_id.encode()) % partitions


def subject_prefix(stream: str) -> str:
    """The subjects' prefix of a stream: `tollgate.ingest` for the default stream."""
    return SUBJECT_ROOT if stream == DEFAULT_STREAM else f"{SUBJECT_ROOT}.{stream}"


def subject(stream: str, partition: int) -> str:
    """The subject of one partition of a stream."""
    return f"{subject_prefix(stream)}.{partition}"


def durable(partition: int) -> str:
    """The durable pull consumer of one partition, shared by every sink."""
    return f"sink-{partition}"


def batch_msg_id(gateway_id: str, first_seq: int, last_seq: int, last_hash: str) -> str:
    """The idempotent id of a gateway batch: the same batch sent again is the same message."""
    return f"batch:{gateway_id}:{first_seq}-{last_seq}:{last_hash}"


def direct_msg_id(source_id: str, digest: str) -> str:
    """The idempotent id of a direct append: its source and the digest of its records."""
    return f"direct:{source_id}:{digest}"


def refusals_bucket(stream: str) -> str:
    """The KV bucket of a stream's sink refusals (one record per gateway)."""
    return f"{stream}_REFUSALS"


def refusal_key(gateway_id: str) -> str:
    """A KV key for a gateway id: KV keys allow `[-/_=.A-Za-z0-9]`, gateway ids more."""
    return "gw." + base64.urlsafe_b64encode(gateway_id.encode()).decode("ascii").rstrip("=")


def encode_body(
    body: bytes, *, kind: Kind, msg_id: str, signature: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """The payload and headers of a message carrying `body` (and its signature, if any)."""
    headers = {MSG_ID: msg_id, KIND: kind}
    if signature is not None:
        headers[SIGNATURE] = signature
    if len(body) > DEFLATE_ABOVE:
        headers[ENCODING] = DEFLATE
        return zlib.compress(body, 1), headers
    return body, headers


def decode_body(payload: bytes, headers: dict[str, str] | None) -> tuple[str, bytes]:
    """The kind and the body of a message (`ValueError` if it is not one of ours)."""
    headers = headers or {}
    kind = headers.get(KIND)
    if kind not in (BATCH, DIRECT):
        raise ValueError(f"not an ingest log message (kind {kind!r})")
    if headers.get(ENCODING) == DEFLATE:
        return kind, zlib.decompress(payload)
    return kind, payload


@dataclass(frozen=True)
class SinkRefusal:
    """A batch the sink refused against the stored chain, kept until its gateway next posts."""

    gateway_id: str
    code: str
    message: str
    first_seq: int
    last_seq: int
    detail: dict[str, Any]

    def encode(self) -> bytes:
        """The KV value."""
        return orjson.dumps(self.__dict__)

    @classmethod
    def decode(cls, value: bytes) -> "SinkRefusal":
        """The record from its KV value."""
        fields = orjson.loads(value)
        return cls(
            gateway_id=str(fields["gateway_id"]),
            code=str(fields["code"]),
            message=str(fields["message"]),
            first_seq=int(fields["first_seq"]),
            last_seq=int(fields["last_seq"]),
            detail=dict(fields.get("detail") or {}),
        )

    def answer_detail(self) -> dict[str, Any]:
        """The detail of the 409 the gateway's next batch gets."""
        return {
            **self.detail,
            "at": "sink",
            "gateway_id": self.gateway_id,
            "refused_first_seq": self.first_seq,
            "refused_last_seq": self.last_seq,
            "this_batch": "queued",
        }
