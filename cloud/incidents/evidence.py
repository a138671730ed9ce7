"""An incident's evidence: a small JSON object that stays small however often it is bumped.

Lists (`seqs`, `batch_ids`, `readings`, ...) keep their newest `MAX_ITEMS` entries, `seqs` without
repeats; any other key takes the newest value. So a gateway re-sending one batch a million times
leaves one row with 20 seqs, not a million.
"""

from typing import Any

MAX_ITEMS = 20


def bounded_evidence(evidence: dict[str, Any] | None) -> dict[str, Any] | None:
    """`evidence` with every list cut to its newest `MAX_ITEMS` entries."""
    if evidence is None:
        return None
    return {key: _bounded(key, value) for key, value in evidence.items()}


def merge_evidence(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """`new` folded into `old`: lists appended (newest kept), other values replaced.

    Always a new dict (a JSON column notices assignment, not changes in place)."""
    if new is None:
        return old
    merged = dict(old or {})
    for key, value in new.items():
        before = merged.get(key)
        merged[key] = (
            _bounded(key, [*before, *value])
            if isinstance(before, list) and isinstance(value, list)
            else _bounded(key, value)
        )
    return merged


def _bounded(key: str, value: Any) -> Any:
    if not isinstance(value, list):
        return value
    if key == "seqs":
        value = list(dict.fromkeys(value))
    return value[-MAX_ITEMS:]
