"""The archive file of one month: gzip JSON Lines that verify offline (no database).

    {"kind": "archive", "format": 1, "month": "2026-09", "part": 1, "created_at": ...,
     "event_count": N, "batch_count": M, "gateway_count": G}
    {"kind": "gateway", "gateway_id": ..., "public_key_pem": <current>, "keys": [
        {"public_key_pem": ..., "valid_from": ..., "valid_to": ...}, ...]}       one per gateway
    {"kind": "batch", "id": ..., "gateway_id": ..., "first_seq": ..., "last_seq": ...,
     "prev_hash": ..., "last_hash": ..., "signature": ..., "received_at": ...,
     "public_key_pem": <the key valid when it was received>, "events": [wire events]}
    {"kind": "end", "event_count": N, "batch_count": M}

A batch line is the signed header of a batch that brought one of the month's events, and every
event of its run `first_seq..last_seq` in wire form (`UsageEvent.to_wire()`), including those of
other months, so that its chain recomputes from `prev_hash` to the signed `last_hash`. A batch
line is shaped as the evidence documents' batches (`cloud.invoices.evidence`), so
`verify-invoice --archive` hands it to the verifier as it is. The month's events are the events
of the batch lines that occurred in the month; the header and the end line count them, so a
truncated or spliced file does not verify.

`verify_archive` recomputes every batch's chain and checks its Ed25519 signature under the key
the file names for it, which must be one of its gateway's keys (current or retired) listed in the
file, valid when the batch was received; it trusts the keys in the file unless `trusted_keys`
pins a gateway's key.
"""

import gzip
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from cloud.errors import CollectorError
from shared.chain import verify_chain
from shared.errors import ChainBroken, InvalidSignature
from shared.events import UsageEvent
from shared.signing import batch_header, load_public_key, verify

FORMAT = 1
SUFFIX = ".jsonl.gz"
EventKey = tuple[str, int]


class ArchiveInvalid(CollectorError):
    """An archive file that cannot be read or does not verify; the message says why."""

    status = 422
    code = "archive_invalid"


@dataclass(slots=True)
class ArchiveContents:
    """What one archive file holds."""

    header: dict[str, Any]
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None

    @property
    def month(self) -> str:
        """`YYYY-MM`."""
        return str(self.header.get("month"))

    def month_events(self) -> dict[EventKey, dict[str, Any]]:
        """The month's events (those of its batches that occurred in the month), by key."""
        found: dict[EventKey, dict[str, Any]] = {}
        for batch in self.batches:
            for event in batch.get("events", []):
                if wire_month(event) == self.month:
                    found[(str(event["gateway_id"]), int(event["seq"]))] = event
        return found

    def events(self) -> dict[EventKey, dict[str, Any]]:
        """Every event the file holds (its batches' runs), by key."""
        return {
            (str(event["gateway_id"]), int(event["seq"])): event
            for batch in self.batches
            for event in batch.get("events", [])
        }


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    """A verified file: its month, part, counts and SHA-256."""

    month: str
    part: int
    event_count: int
    batch_count: int
    gateway_count: int
    sha256: str


def file_name(month: str, part: int) -> str:
    """`events-YYYY-MM.jsonl.gz` for part 1, `events-YYYY-MM.partN.jsonl.gz` after."""
    return f"events-{month}{'' if part == 1 else f'.part{part}'}{SUFFIX}"


def write_archive(path: Path, contents: ArchiveContents) -> str:
    """Write the file durably (a temporary name, fsync, rename, fsync of the directory); its
    SHA-256. An existing file of that name (left by an interrupted run) is replaced."""
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as raw:
        with gzip.GzipFile(fileobj=_Hashing(raw, digest), mode="wb", mtime=0) as out:
            for line in _lines(contents):
                out.write(orjson.dumps(line) + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    partial.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return digest.hexdigest()


def read_archive(path: Path) -> ArchiveContents:
    """The file's lines, checked for shape (not verified: see `verify_archive`)."""
    try:
        with gzip.open(path, "rb") as stream:
            lines = [orjson.loads(line) for line in stream if line.strip()]
    except (OSError, EOFError, orjson.JSONDecodeError) as exc:
        raise ArchiveInvalid(f"{path}: not a readable archive file: {exc}") from exc
    if not lines or not isinstance(lines[0], dict) or lines[0].get("kind") != "archive":
        raise ArchiveInvalid(f"{path}: does not start with an archive header")
    contents = ArchiveContents(header=lines[0])
    if contents.header.get("format") != FORMAT:
        raise ArchiveInvalid(f"{path}: format {contents.header.get('format')!r}, not {FORMAT}")
    for number, line in enumerate(lines[1:], start=2):
        kind = line.get("kind") if isinstance(line, dict) else None
        if contents.end is not None:
            raise ArchiveInvalid(f"{path}: line {number} after the end line")
        if kind == "gateway":
            contents.gateways[str(line.get("gateway_id"))] = line
        elif kind == "batch":
            contents.batches.append(line)
        elif kind == "end":
            contents.end = line
        else:
            raise ArchiveInvalid(f"{path}: line {number} is not a gateway, batch or end line")
    if contents.end is None:
        raise ArchiveInvalid(f"{path}: no end line (the file is truncated)")
    return contents


def verify_archive(
    path: Path, *, trusted_keys: Mapping[str, str] | None = None
) -> tuple[ArchiveSummary, ArchiveContents]:
    """Verify a file offline; its summary and contents, or `ArchiveInvalid` naming the problem."""
    contents = read_archive(path)
    problems = archive_problems(contents, trusted_keys=trusted_keys or {})
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ArchiveInvalid(f"{path}: {shown}{more}")
    header = contents.header
    summary = ArchiveSummary(
        month=contents.month,
        part=int(header.get("part", 1)),
        event_count=int(header["event_count"]),
        batch_count=int(header["batch_count"]),
        gateway_count=len(contents.gateways),
        sha256=file_sha256(path),
    )
    return summary, contents


def archive_problems(contents: ArchiveContents, *, trusted_keys: Mapping[str, str]) -> list[str]:
    """Every reason the contents do not verify (empty: they do)."""
    problems: list[str] = []
    header, end = contents.header, contents.end or {}
    for batch in contents.batches:
        name = f"batch {batch.get('gateway_id')} {batch.get('first_seq')}..{batch.get('last_seq')}"
        problem = batch_problem(batch, contents.gateways, trusted_keys)
        if problem is not None:
            problems.append(f"{name}: {problem}")
    seen: dict[EventKey, Any] = {}
    for batch in contents.batches:
        for event in batch.get("events", []):
            key = (str(event.get("gateway_id")), int(event.get("seq", -1)))
            if seen.setdefault(key, event) != event:
                problems.append(f"event {key[0]} {key[1]} differs between two batches")
    month_count = len(contents.month_events())
    batch_count = len(contents.batches)
    for where, counts in (("header", header), ("end line", end)):
        if counts.get("event_count") != month_count:
            problems.append(
                f"the {where} says {counts.get('event_count')} events of {contents.month}, "
                f"the batches hold {month_count}"
            )
        if counts.get("batch_count") != batch_count:
            problems.append(
                f"the {where} says {counts.get('batch_count')} batches, the file has {batch_count}"
            )
    return problems


def batch_problem(
    batch: Mapping[str, Any],
    gateways: Mapping[str, Mapping[str, Any]],
    trusted_keys: Mapping[str, str],
) -> str | None:
    """Why one batch line does not verify: its run, chain, key or signature; None if it does."""
    try:
        events = [UsageEvent.model_validate(event) for event in batch["events"]]
        first, last = int(batch["first_seq"]), int(batch["last_seq"])
        if [event.seq for event in events] != list(range(first, last + 1)):
            return f"its events are not the run {first}..{last}"
        if any(event.gateway_id != batch["gateway_id"] for event in events):
            return "an event belongs to another gateway"
        end = verify_chain(events, prev_hash=str(batch["prev_hash"]))
        if end != batch["last_hash"]:
            return f"the chain ends at {end[:12]}..., the header says {batch['last_hash']}"
        gateway_id = str(batch["gateway_id"])
        pem = trusted_keys.get(gateway_id)
        if pem is None:
            pem = str(batch["public_key_pem"])
            if pem not in _keys_valid_at(gateways.get(gateway_id), _time(batch["received_at"])):
                return "its key is not one of its gateway's keys when it was received"
        header = batch_header(
            gateway_id=gateway_id,
            first_seq=first,
            last_seq=last,
            prev_hash=str(batch["prev_hash"]),
            last_hash=str(batch["last_hash"]),
        )
        verify(load_public_key(pem.encode("ascii")), header, str(batch["signature"]))
    except (ValidationError, ChainBroken, InvalidSignature, KeyError, TypeError, ValueError) as exc:
        return str(exc).splitlines()[0] or type(exc).__name__
    return None


def key_at(keys: Sequence[Mapping[str, Any]], current: str, received_at: datetime) -> str:
    """The PEM valid at `received_at` among a gateway's key history; its current key if none."""
    for key in keys:
        start, end = _time(key["valid_from"]), key.get("valid_to")
        if start <= received_at and (end is None or received_at < _time(end)):
            return str(key["public_key_pem"])
    return current


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def format_time(moment: datetime) -> str:
    """UTC ISO 8601 with `Z`, microseconds kept."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def wire_month(event: Mapping[str, Any]) -> str:
    """The UTC month (`YYYY-MM`) of a wire event's `occurred_at`."""
    return _time(event["occurred_at"]).astimezone(UTC).strftime("%Y-%m")


def _keys_valid_at(gateway: Mapping[str, Any] | None, received_at: datetime) -> set[str]:
    if gateway is None:
        return set()
    keys = list(gateway.get("keys", []))
    return {key_at(keys, str(gateway.get("public_key_pem")), received_at)} | {
        str(key["public_key_pem"])
        for key in keys
        if _time(key["valid_from"]) <= received_at
        and (key.get("valid_to") is None or received_at < _time(key["valid_to"]))
    }


def _time(value: object) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no offset")
    return moment


def _lines(contents: ArchiveContents) -> Iterator[dict[str, Any]]:
    yield contents.header
    yield from contents.gateways.values()
    yield from contents.batches
    yield {
        "kind": "end",
        "event_count": contents.header["event_count"],
        "batch_count": contents.header["batch_count"],
    }


class _Hashing:
    """A binary file that hashes what is written through it."""

    def __init__(self, raw: Any, digest: "hashlib._Hash") -> None:
        self._raw = raw
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        written: int = self._raw.write(data)
        return written

    def flush(self) -> None:
        self._raw.flush()
