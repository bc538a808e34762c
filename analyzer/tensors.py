"""Which chunks belong to one tensor, for storage layers that keep a file per tensor.

The planner gives every swapped tensor a contiguous key range, `[first_key, first_key +
chunks)` in the trace metadata's tensor table (traces/README.md), its chunks in order, all
4 KiB but the last. A trace without that table (a block-trace import, a device recording,
a synthetic trace) has no tensor boundaries, so they are inferred from the order of the
records, as a planner writes a tensor: a run of WRITEs of consecutive ascending keys,
written before any of them is read back, whose chunks all have the length of the first
except possibly the last. A run ends at a shorter chunk, at a WRITE of any other key, at a
READ of one of its own chunks, or at the end of an inference. Keys the table does not cover
are tensors of one chunk. On the sample traces the inferred tensors are the table's, except
that a tensor ending on a whole chunk and the next one written right after it form one
(tests/test_analyzer_layouts.py): the file then lives until both are dead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WRITE, READ = 1, 2  # trace ops (flashswap.trace.Op)


@dataclass(frozen=True)
class TensorMap:
    """key -> (tensor, byte offset in it); per tensor its keys in order and its size."""

    where: dict[int, tuple[int, int]]
    keys: list[list[int]]
    sizes: list[int]
    source: str  # "table" or "inferred"

    def tensor_of(self, key: int) -> tuple[int, int]:
        return self.where[key]

    @property
    def count(self) -> int:
        return len(self.keys)


def tensor_map(
    metadata: Mapping[str, Any],
    key_sizes: Mapping[int, int],
    ops: Iterable[Sequence[int]],
) -> TensorMap:
    """The tensors of a trace (module doc): from the metadata's tensor table when it has one
    that covers written keys, else inferred from `ops` (op, key, length, ... tuples)."""
    groups = _from_table(metadata.get("tensors") or [], key_sizes)
    source = "table"
    if not groups:
        groups, source = _inferred(ops), "inferred"
    seen = {k for g in groups for k in g}
    groups += [[k] for k in sorted(key_sizes) if k not in seen]
    where: dict[int, tuple[int, int]] = {}
    sizes = []
    for t, keys in enumerate(groups):
        off = 0
        for k in keys:
            where[k] = (t, off)
            off += key_sizes.get(k, 0)
        sizes.append(off)
    return TensorMap(where, groups, sizes, source)


def _from_table(table: Sequence[Any], key_sizes: Mapping[int, int]) -> list[list[int]]:
    out = []
    for t in table:
        if not isinstance(t, Mapping):
            return []
        first, n = t.get("first_key"), t.get("chunks")
        if not isinstance(first, int) or not isinstance(n, int) or first < 0 or n <= 0:
            continue
        keys = [k for k in range(first, first + n) if k in key_sizes]
        if keys:
            out.append(keys)
    return out


def _inferred(ops: Iterable[Sequence[int]]) -> list[list[int]]:
    groups: list[list[int]] = []
    done: set[int] = set()
    run: list[int] = []
    full = 0  # length of the run's first chunk
    last_len = 0

    def close() -> None:
        nonlocal run
        if run:
            groups.append(run)
            done.update(run)
        run = []

    for rec in ops:
        op, key, length = rec[0], rec[1], rec[2]
        if op == WRITE:
            if key in done or key in run:
                close()
                continue
            if run and key == run[-1] + 1 and last_len == full and length <= full:
                run.append(key)
            else:
                close()
                run, full = [key], length
            last_len = length
        elif op == READ and key in run:
            close()
        elif op in (6, 7):  # INFERENCE_BEGIN / END
            close()
    close()
    return groups
