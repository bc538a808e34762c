"""Placing buffers at SRAM offsets.

Each buffer has a size and a lifetime [start, end] in time slots (inclusive); sizes are
rounded up to 16 bytes.

- `place`: TFLite Micro's static GreedyMemoryPlanner, the reference point. Buffers are taken
  largest first (ties: earlier start, then input order); each goes at the lowest offset where
  it overlaps no placed buffer whose lifetime overlaps its own. One offset per buffer for the
  whole run; the arena is the highest end offset. Fragmentation costs it 0-30% over the
  bytes actually live.
- `compacting_layout`: what the swap planner uses. Buffers are allocated in time order at
  the lowest free offset below the budget; when no hole is large enough although the free
  bytes suffice, the live buffers are slid down (a memmove in SRAM, no flash traffic) to
  close the holes. So the arena never exceeds the most bytes live at once, and a swap plan
  that counts bytes is a plan that fits. The moves are counted and reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALIGN = 16


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class Buffer:
    start: int
    end: int
    size: int
    label: str = ""


def place(buffers: list[Buffer]) -> tuple[np.ndarray, int]:
    """(offset of each buffer, arena size) by the greedy rule in the module docstring."""
    n = len(buffers)
    offsets = np.zeros(n, dtype=np.int64)
    if n == 0:
        return offsets, 0
    start = np.array([b.start for b in buffers], dtype=np.int64)
    end = np.array([b.end for b in buffers], dtype=np.int64)
    size = np.array([align(b.size) for b in buffers], dtype=np.int64)
    order = np.lexsort((np.arange(n), start, -size))
    placed = np.zeros(n, dtype=bool)
    for i in order:
        if size[i] == 0:
            placed[i] = True
            continue
        clash = placed & (start <= end[i]) & (end >= start[i]) & (size > 0)
        idx = np.flatnonzero(clash)
        off = 0
        if idx.size:
            by_off = idx[np.argsort(offsets[idx], kind="stable")]
            for o, s in zip(offsets[by_off].tolist(), size[by_off].tolist(), strict=True):
                if o - off >= size[i]:
                    break
                off = max(off, o + s)
        offsets[i] = off
        placed[i] = True
    return offsets, int((offsets + size).max())


def overlaps(buffers: list[Buffer], offsets: np.ndarray) -> tuple[int, int] | None:
    """The first pair of buffers that share both time and address, or None (a check)."""
    start = np.array([b.start for b in buffers], dtype=np.int64)
    end = np.array([b.end for b in buffers], dtype=np.int64)
    size = np.array([align(b.size) for b in buffers], dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    for i in range(len(buffers)):
        if not size[i]:
            continue
        j = np.arange(i + 1, len(buffers))
        bad = ((start[j] <= end[i]) & (start[i] <= end[j]) & (size[j] > 0)
               & (offsets[i] < offsets[j] + size[j]) & (offsets[j] < offsets[i] + size[i]))
        if bad.any():
            return i, int(j[np.argmax(bad)])
    return None


@dataclass(frozen=True)
class Layout:
    """Result of `compacting_layout`: first offset of each buffer and what compaction cost."""

    offsets: np.ndarray
    high_water: int  # highest address used
    peak_live: int  # most bytes allocated at once (what compaction can always bring it to)
    compactions: int
    bytes_moved: int


def compacting_layout(buffers: list[Buffer], limit: int) -> Layout:
    """Allocates buffers in time order below `limit`, compacting when fragmented.

    Raises ValueError if the live bytes at some moment exceed `limit` (a planner bug).
    """
    n = len(buffers)
    offsets = np.zeros(n, dtype=np.int64)
    order = sorted(range(n), key=lambda i: (buffers[i].start, i))
    live: list[list[int]] = []  # [offset, size, index], kept sorted by offset
    high = peak = compactions = moved = 0
    for i in order:
        b = buffers[i]
        live = [e for e in live if buffers[e[2]].end >= b.start]
        size = align(b.size)
        if size == 0:
            continue
        off = _first_fit(live, size, limit)
        if off is None:
            if sum(e[1] for e in live) + size > limit:
                raise ValueError(f"{sum(e[1] for e in live) + size} bytes live at slot "
                                 f"{b.start}, over the limit {limit}")
            top = 0
            for e in live:  # slide every live buffer down, in address order
                if e[0] != top:
                    moved += e[1]
                    e[0] = top
                top += e[1]
            compactions += 1
            off = top
        offsets[i] = off
        live.append([off, size, i])
        live.sort()
        high = max(high, off + size)
        peak = max(peak, sum(e[1] for e in live))
    return Layout(offsets, high, peak, compactions, moved)


def _first_fit(live: list[list[int]], size: int, limit: int) -> int | None:
    off = 0
    for o, s, _ in live:
        if o - off >= size:
            return off
        off = max(off, o + s)
    return off if off + size <= limit else None
