"""Evidence of archived months: the batches of billed events taken from the archive files.

`with_archive(evidence, directory)` verifies every archive file in `directory` (offline, as
`archive verify` does) and completes each line's evidence document: every billed event (the
line's events and its sessions' events) that the document lacks is added with the archived batch
holding it, and a batch the document holds that the archive holds too is replaced by the archived
one, whose run of events is whole (a batch with events in an archived month and a stored one is
only partly stored). The verifier then checks those batches' chains and signatures as any other.
Documents are dicts as `cloud.invoices.evidence.line_evidence` makes them; nothing else changes.
"""

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloud.archive.files import SUFFIX, ArchiveInvalid, verify_archive

EventKey = tuple[str, int]


def archive_files(directory: Path) -> list[Path]:
    """The archive files in a directory, by name (`ArchiveInvalid` if it is not one)."""
    if not directory.is_dir():
        raise ArchiveInvalid(f"{directory} is not a directory")
    return sorted(path for path in directory.iterdir() if path.name.endswith(SUFFIX))


def with_archive(
    evidence: Sequence[dict[str, Any]], directory: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    """The evidence completed from the verified archive files, and the names of the files used;
    `ArchiveInvalid` if one of the files does not verify."""
    by_id: dict[int, dict[str, Any]] = {}
    holding: dict[EventKey, int] = {}
    source: dict[int, str] = {}
    for path in archive_files(directory):
        _, contents = verify_archive(path)
        for batch in contents.batches:
            batch_id = int(batch["id"])
            by_id[batch_id] = {k: v for k, v in batch.items() if k != "kind"}
            source[batch_id] = path.name
            for event in batch["events"]:
                holding.setdefault((str(event["gateway_id"]), int(event["seq"])), batch_id)
    used: set[str] = set()
    completed = []
    for document in evidence:
        filled = copy.deepcopy(document)
        events = {_key(event): event for event in filled.get("events", [])}
        batches = {int(batch["id"]): batch for batch in filled.get("batches", [])}
        for batch_id in batches.keys() & by_id.keys():
            batches[batch_id] = by_id[batch_id]
            used.add(source[batch_id])
        for key in _billed(filled):
            if key in events or key not in holding:
                continue
            batch_id = holding[key]
            batches.setdefault(batch_id, by_id[batch_id])
            used.add(source[batch_id])
            (events[key],) = [e for e in by_id[batch_id]["events"] if _key(e) == key]
        filled["events"] = [events[key] for key in sorted(events)]
        filled["batches"] = [batches[batch_id] for batch_id in sorted(batches)]
        completed.append(filled)
    return completed, sorted(used)


def _billed(document: dict[str, Any]) -> list[EventKey]:
    keys = [(str(g), int(s)) for g, s in document.get("line_events", [])]
    keys += [(str(g), int(s)) for item in document.get("sessions", []) for g, s in item["events"]]
    archived = document.get("archived") or {}
    keys += [(str(g), int(s)) for g, s in archived.get("events", [])]
    return sorted(set(keys))


def _key(event: dict[str, Any]) -> EventKey:
    return (str(event["gateway_id"]), int(event["seq"]))
