"""The outbox: SQLite in WAL mode with synchronous=FULL, where every event is durable before
anything upstream is told so.

- `append` seals drafts into the hash chain (`seq` + SHA-256) and stores them with the new counter
  values in ONE transaction (group commit: many events, one fsync).
- The forwarder `lease`s the oldest unsent run, then `ack`s it (deleted) or `dead_letter`s it
  (moved, with the collector's reason); a lease that is neither is `release`d and re-sent.
- Dedupe keys: drafts from sources that redeliver (a BLE lock's log, an MQTT broker) carry a
  key stored in the same transaction; `delivered_keys` tells the writer which ones are already
  held, so a redelivery after a crash between commit and acknowledge is stored once. Keys are
  kept for `DEDUPE_RETENTION_S` (a source redelivers within hours, not weeks).
- A disk budget: when used pages reach `budget_bytes`, `append` raises `OutboxFull` and writes
  nothing (DESIGN guarantee 3); the caller pauses sources that keep their own log.
- A database that SQLite reports as damaged is renamed aside (quarantined, never deleted) and a
  fresh one is started (guarantee 4).
- A fresh database does not know where the gateway's chain stands in the cloud, so it starts
  "unsynced": its events get provisional seqs until `resync` renumbers the unsent ones on top of
  the collector's last seq and hash. This keeps a re-installed or quarantined gateway from reusing
  seqs the cloud already holds.

sqlite3 is blocking, so all database work runs on one dedicated thread (which also satisfies
sqlite3's one-connection-one-thread rule).
"""

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import orjson

from edge.errors import OutboxCorrupt, OutboxError, OutboxFull
from shared.canonical import format_time
from shared.chain import link
from shared.events import GENESIS_HASH, EventDraft, UsageEvent, event_content

log = logging.getLogger(__name__)
T = TypeVar("T")
SPLIT_HEADROOM_PAGES = 4
DEDUPE_RETENTION_S = 30 * 24 * 3600.0
KEY_QUERY_CHUNK = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    wire BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    acked_seq INTEGER NOT NULL,
    synced INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    device_id TEXT NOT NULL,
    point TEXT NOT NULL,
    value INTEGER NOT NULL,
    observed_at TEXT NOT NULL,
    PRIMARY KEY (device_id, point)
);
CREATE TABLE IF NOT EXISTS delivered (
    key TEXT PRIMARY KEY,
    stored_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivered_by_age ON delivered (stored_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    events BLOB NOT NULL,
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class CounterValue:
    """The last value of one counter point, stored with the event it produced."""

    device_id: str
    point: str
    value: int
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class Lease:
    """A contiguous run of unsent events handed to the forwarder."""

    first_seq: int
    last_seq: int
    prev_hash: str
    last_hash: str
    wires: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the diagnostics page and the logs show about the outbox."""

    last_seq: int
    acked_seq: int
    backlog: int
    oldest_unsent: str | None
    used_bytes: int
    file_bytes: int
    budget_bytes: int
    synced: bool
    dead_letters: int


class Outbox:
    """The durable, hash-chained event buffer of one gateway."""

    def __init__(self, path: Path, *, gateway_id: str, budget_bytes: int) -> None:
        self.path = path
        self.gateway_id = gateway_id
        self.budget_bytes = budget_bytes
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._leased_through = 0
        self._page_size = 4096
        self.quarantined: list[Path] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._executor is not None:
            raise RuntimeError("outbox is already open")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        try:
            await self._run(self._open)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("outbox is not open: use `async with Outbox(...)`")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except (sqlite3.DatabaseError, OutboxCorrupt) as exc:
            self._quarantine(reason=str(exc))
            self._db = self._connect()
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._leased_through = self._chain_row()[2]

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise OutboxCorrupt(f"integrity check failed: {check}")
            db.executescript(SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO chain (id, last_seq, last_hash, acked_seq, synced) "
                "VALUES (1, 0, ?, 0, 0)",
                (GENESIS_HASH,),
            )
        except BaseException:
            db.close()
            raise
        return db

    def _quarantine(self, *, reason: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                target = Path(f"{self.path}.corrupt-{stamp}{suffix}")
                source.rename(target)
                if not suffix:
                    self.quarantined.append(target)
        log.error(
            "outbox database is damaged; quarantined it and started a fresh one",
            extra={
                "fields": {
                    "path": str(self.path),
                    "reason": reason,
                    "quarantined": [str(p) for p in self.quarantined],
                }
            },
        )

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("outbox is closed")
        return self._db

    def _chain_row(self) -> tuple[int, str, int, bool]:
        row = self._conn.execute(
            "SELECT last_seq, last_hash, acked_seq, synced FROM chain WHERE id = 1"
        ).fetchone()
        return int(row[0]), str(row[1]), int(row[2]), bool(row[3])

    # -- appending -------------------------------------------------------------------------

    async def append(
        self,
        drafts: Sequence[EventDraft],
        counters: Iterable[CounterValue] = (),
        *,
        keys: Iterable[str] = (),
        enforce_budget: bool = True,
    ) -> list[int]:
        """Seal and store drafts, counter values and dedupe keys in one durable transaction;
        return the seqs.

        `keys` must be new (check with `delivered_keys` first): a key already held is an
        `OutboxError` and nothing is written. `enforce_budget=False` is for events from sources
        that keep no log of their own (a serial panel's line is gone once read): billing events
        are never dropped, so those are written past the budget while the alarm stands.
        """
        return await self._run(self._append, drafts, list(counters), list(keys), enforce_budget)

    async def delivered_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` the outbox already holds."""
        return await self._run(self._delivered_keys, list(keys))

    def _delivered_keys(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), KEY_QUERY_CHUNK):
            chunk = keys[start : start + KEY_QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key FROM delivered WHERE key IN ({marks})"
            found.update(row[0] for row in self._conn.execute(query, chunk))
        return found

    def _append(
        self,
        drafts: Sequence[EventDraft],
        counters: list[CounterValue],
        keys: list[str],
        enforce_budget: bool,
    ) -> list[int]:
        rows, last_seq, last_hash = self._seal(drafts)
        if enforce_budget:
            self._check_budget(sum(len(row[5]) for row in rows))
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.executemany(
                "INSERT INTO counters VALUES (?, ?, ?, ?) ON CONFLICT (device_id, point) "
                "DO UPDATE SET value = excluded.value, observed_at = excluded.observed_at",
                [(c.device_id, c.point, c.value, format_time(c.observed_at)) for c in counters],
            )
            if keys:
                now = time.time()
                db.executemany("INSERT INTO delivered VALUES (?, ?)", [(k, now) for k in keys])
                db.execute("DELETE FROM delivered WHERE stored_at < ?", (now - DEDUPE_RETENTION_S,))
            if rows:
                db.execute(
                    "UPDATE chain SET last_seq = ?, last_hash = ? WHERE id = 1",
                    (last_seq, last_hash),
                )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"outbox write failed: {exc}") from exc
        return [row[0] for row in rows]

    def _seal(self, drafts: Sequence[EventDraft]) -> tuple[list[tuple[Any, ...]], int, str]:
        last_seq, last_hash, _, _ = self._chain_row()
        rows = []
        for draft in drafts:
            last_seq += 1
            content = event_content(draft, gateway_id=self.gateway_id, seq=last_seq)
            prev_hash = last_hash
            last_hash, _ = link(prev_hash, content)
            wire = orjson.dumps({**content, "prev_hash": prev_hash, "hash": last_hash})
            rows.append(
                (last_seq, draft.device_id, content["occurred_at"], prev_hash, last_hash, wire)
            )
        return rows, last_seq, last_hash

    def _check_budget(self, incoming: int) -> None:
        used = self._used_bytes()
        # Rows cost about twice their payload once paged, and a write can split a few b-tree
        # pages; refuse before the budget could be overshot.
        if used + 2 * incoming + SPLIT_HEADROOM_PAGES * self._page_size > self.budget_bytes:
            raise OutboxFull(
                f"outbox uses {used} of {self.budget_bytes} budget bytes; "
                "new events are refused until the forwarder drains it"
            )

    def _used_bytes(self) -> int:
        db = self._conn
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    async def has_room(self) -> bool:
        """Whether the outbox is below its disk budget."""
        return await self._run(lambda: self._used_bytes() < self.budget_bytes)

    async def counter_values(self) -> dict[tuple[str, str], int]:
        """The last stored value of every counter point, keyed by (device_id, point)."""
        rows = await self._run(
            lambda: self._conn.execute("SELECT device_id, point, value FROM counters").fetchall()
        )
        return {(device, point): int(value) for device, point, value in rows}

    # -- forwarding ------------------------------------------------------------------------

    async def lease(self, max_events: int) -> Lease | None:
        """The oldest run of unsent, unleased events (at most `max_events`), or None."""
        return await self._run(self._lease, max_events)

    def _lease(self, max_events: int) -> Lease | None:
        rows = self._conn.execute(
            "SELECT seq, prev_hash, hash, wire FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (self._leased_through, max_events),
        ).fetchall()
        if not rows:
            return None
        self._leased_through = int(rows[-1][0])
        return Lease(
            first_seq=int(rows[0][0]),
            last_seq=int(rows[-1][0]),
            prev_hash=rows[0][1],
            last_hash=rows[-1][2],
            wires=tuple(bytes(row[3]) for row in rows),
        )

    async def release(self, lease: Lease) -> None:
        """Give a lease back unsent: its events are leased again next time."""
        await self._run(self._release, lease)

    def _release(self, lease: Lease) -> None:
        self._leased_through = min(self._leased_through, lease.first_seq - 1)

    async def ack(self, lease: Lease) -> None:
        """The collector stored the lease: drop its events from the outbox."""
        await self._run(self._finish, lease, None)

    async def dead_letter(self, lease: Lease, *, status: int, reason: str) -> None:
        """The collector refused the lease: keep its events in `dead_letters` with the reason."""
        await self._run(self._finish, lease, (status, reason))

    def _finish(self, lease: Lease, refusal: tuple[int, str] | None) -> None:
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")
            if refusal is not None:
                db.execute(
                    "INSERT INTO dead_letters (first_seq, last_seq, status, reason, events, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        lease.first_seq,
                        lease.last_seq,
                        refusal[0],
                        refusal[1],
                        b"[" + b",".join(lease.wires) + b"]",
                        format_time(datetime.now(UTC)),
                    ),
                )
            db.execute("DELETE FROM events WHERE seq <= ?", (lease.last_seq,))
            db.execute(
                "UPDATE chain SET acked_seq = MAX(acked_seq, ?) WHERE id = 1", (lease.last_seq,)
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"outbox ack failed: {exc}") from exc

    async def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead-lettered run with the collector's reason (events: `dead_letter_events`)."""
        rows = await self._run(
            lambda: self._conn.execute(
                "SELECT id, first_seq, last_seq, status, reason, created_at FROM dead_letters "
                "ORDER BY id"
            ).fetchall()
        )
        keys = ("id", "first_seq", "last_seq", "status", "reason", "created_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def dead_letter_events(self, letter_id: int) -> list[dict[str, Any]]:
        """The events of one dead letter, as they were sent (sealed, with their hashes)."""
        row = await self._run(
            lambda: self._conn.execute(
                "SELECT events FROM dead_letters WHERE id = ?", (letter_id,)
            ).fetchone()
        )
        if row is None:
            raise LookupError(f"no dead letter {letter_id}")
        events: list[dict[str, Any]] = orjson.loads(row[0])
        return events

    # -- chain position in the cloud -------------------------------------------------------

    async def is_synced(self) -> bool:
        """Whether the outbox's seq numbering is known to continue the cloud's chain."""
        return await self._run(lambda: self._chain_row()[3])

    async def resync(self, *, cloud_last_seq: int, cloud_last_hash: str) -> None:
        """Renumber unsent events to continue the cloud's chain at `cloud_last_seq + 1`."""
        await self._run(self._resync, cloud_last_seq, cloud_last_hash)

    def _resync(self, cloud_last_seq: int, cloud_last_hash: str) -> None:
        db = self._conn
        if self._continues(cloud_last_seq, cloud_last_hash):
            db.execute("UPDATE chain SET synced = 1 WHERE id = 1")
            return
        pending = [
            UsageEvent.model_validate_json(row[0])
            for row in db.execute("SELECT wire FROM events ORDER BY seq").fetchall()
        ]
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM events")
            db.execute(
                "UPDATE chain SET last_seq = ?, last_hash = ?, acked_seq = ?, synced = 1 "
                "WHERE id = 1",
                (cloud_last_seq, cloud_last_hash, cloud_last_seq),
            )
            rows, last_seq, last_hash = self._seal(pending)
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute(
                "UPDATE chain SET last_seq = ?, last_hash = ? WHERE id = 1", (last_seq, last_hash)
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"outbox resync failed: {exc}") from exc
        self._leased_through = cloud_last_seq
        log.info(
            "outbox chain resynced with the collector",
            extra={"fields": {"cloud_last_seq": cloud_last_seq, "renumbered": len(rows)}},
        )

    async def backlog(self) -> int:
        """How many committed events are not yet acknowledged by the collector."""
        return await self._run(self._backlog)

    def _backlog(self) -> int:
        last_seq, _, acked_seq, _ = self._chain_row()
        return last_seq - acked_seq

    def _continues(self, cloud_last_seq: int, cloud_last_hash: str) -> bool:
        # The unsent run already starts right after the cloud's last event: nothing to renumber.
        _, last_hash, acked_seq, _ = self._chain_row()
        first = self._conn.execute("SELECT prev_hash FROM events ORDER BY seq LIMIT 1").fetchone()
        expected = first[0] if first else last_hash
        return acked_seq == cloud_last_seq and expected == cloud_last_hash

    async def stats(self) -> OutboxStats:
        """Backlog, disk use and chain position."""
        return await self._run(self._stats)

    def _stats(self) -> OutboxStats:
        last_seq, _, acked_seq, synced = self._chain_row()
        db = self._conn
        oldest = db.execute("SELECT occurred_at FROM events ORDER BY seq LIMIT 1").fetchone()
        dead = int(db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
        file_bytes = sum(
            Path(f"{self.path}{s}").stat().st_size
            for s in ("", "-wal")
            if Path(f"{self.path}{s}").exists()
        )
        return OutboxStats(
            last_seq=last_seq,
            acked_seq=acked_seq,
            backlog=last_seq - acked_seq,
            oldest_unsent=oldest[0] if oldest else None,
            used_bytes=self._used_bytes(),
            file_bytes=file_bytes,
            budget_bytes=self.budget_bytes,
            synced=synced,
            dead_letters=dead,
        )
