"""Seq ranges missing from a gateway's chain, as closed intervals: pure interval arithmetic.

The open seq_gap incident of a gateway keeps its missing ranges in its evidence; each stored
batch adds the range it skipped (from the stored end below it to its first seq) and removes the
seqs it filled. No rescan of the events table: one seek for the stored end is enough.
"""

from collections.abc import Iterable, Sequence

Ranges = list[tuple[int, int]]
MAX_RANGES = 50  # ranges an incident names; beyond, the lowest are kept (filled first, in order)


def runs(seqs: Iterable[int]) -> Ranges:
    """Sorted seqs as maximal runs of consecutive seqs."""
    result: Ranges = []
    for seq in sorted(set(seqs)):
        if result and result[-1][1] + 1 == seq:
            result[-1] = (result[-1][0], seq)
        else:
            result.append((seq, seq))
    return result


def union(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """The ranges merged where they touch or overlap, sorted."""
    merged: Ranges = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def subtract(ranges: Sequence[tuple[int, int]], filled: Sequence[tuple[int, int]]) -> Ranges:
    """`ranges` without the seqs of `filled`."""
    result: Ranges = []
    for first, last in union(ranges):
        pieces = [(first, last)]
        for lo, hi in filled:
            next_pieces: Ranges = []
            for a, b in pieces:
                if hi < a or lo > b:
                    next_pieces.append((a, b))
                    continue
                if a < lo:
                    next_pieces.append((a, lo - 1))
                if hi < b:
                    next_pieces.append((hi + 1, b))
            pieces = next_pieces
        result.extend(pieces)
    return result


def skipped(stored_end: int | None, first_new: int) -> tuple[int, int] | None:
    """The range a batch starting at `first_new` skipped above the stored end below it."""
    below = stored_end or 0
    return (below + 1, first_new - 1) if below + 1 <= first_new - 1 else None


def count(ranges: Iterable[tuple[int, int]]) -> int:
    """How many seqs the ranges hold."""
    return sum(last - first + 1 for first, last in ranges)
