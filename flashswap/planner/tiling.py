"""Tiles of a step and the flash chunks each tile touches.

A step with `units` units (output rows, output features, input rows for a global pool) is cut
into tiles of `per_tile` units. For a tensor streamed through flash, each tile needs the
chunks covering its band of the tensor (inputs: read; outputs: produced). The chunk buffer
slides: an input chunk is read when the first tile needs it and dropped after the last tile
that needs it, so overlapping halos are read once; an output chunk is written after the last
tile that produces part of it. Bands are monotone in the tile index, so a chunk's tiles form a
contiguous range [first, last].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashswap.planner.arena import align
from flashswap.planner.steps import StepIO


@dataclass(frozen=True)
class Touch:
    """For one streamed tensor: the tile range [first, last] of each chunk (-1: untouched),
    and the bytes held in SRAM during each tile."""

    first: np.ndarray
    last: np.ndarray
    held: np.ndarray

    @property
    def buffer(self) -> int:
        return align(int(self.held.max())) if self.held.size else 0


def tile_bounds(units: int, per_tile: int) -> np.ndarray:
    """Unit boundaries [0, per_tile, 2*per_tile, ..., units]."""
    return np.append(np.arange(0, units, per_tile, dtype=np.int64), units)


def chunk_lengths(nbytes: int, chunk: int) -> np.ndarray:
    n = -(-nbytes // chunk)
    lengths = np.full(n, chunk, dtype=np.int64)
    if n:
        lengths[-1] = nbytes - chunk * (n - 1)
    return lengths


def touch(io: StepIO, nbytes: int, bounds: np.ndarray, chunk: int) -> Touch:
    """Which tiles touch which chunks of the tensor `io` (see the module docstring)."""
    tiles = bounds.size - 1
    rows = nbytes // io.unit_bytes
    if io.rowmap is None:
        a = np.zeros(tiles, dtype=np.int64)
        b = np.full(tiles, nbytes, dtype=np.int64)
    else:
        rm = io.rowmap
        u0, u1 = bounds[:-1], bounds[1:]
        a = np.clip(u0 * rm.stride + rm.offset, 0, rows)
        b = np.clip((u1 - 1) * rm.stride + rm.offset + rm.extent, 0, rows)
        b = np.maximum(a, b)
        a, b = a * io.unit_bytes, b * io.unit_bytes
    return touch_bytes(a, b, nbytes, chunk)


def touch_bytes(a: np.ndarray, b: np.ndarray, nbytes: int, chunk: int) -> Touch:
    """`touch` for explicit byte bands [a[k], b[k]) per tile (monotone in k)."""
    tiles = a.size
    lengths = chunk_lengths(nbytes, chunk)
    live = np.flatnonzero(a < b)  # tiles that touch the tensor at all (padding rows don't)
    if live.size == 0:
        none = np.full(lengths.size, -1, dtype=np.int64)
        return Touch(none, none, np.zeros(tiles, dtype=np.int64))
    c0 = a[live] // chunk
    c1 = -(-b[live] // chunk)  # chunk range [c0, c1) of each touching tile
    c = np.arange(lengths.size, dtype=np.int64)
    # Bands are monotone, so c0 and c1 never decrease over touching tiles: searchsorted works.
    first = np.searchsorted(c1, c, side="right")
    last = np.searchsorted(c0, c, side="right") - 1
    ok = (first < live.size) & (last >= 0)
    ok[ok] &= (c0[first[ok]] <= c[ok]) & (first[ok] <= last[ok])
    first = np.where(ok, live[np.minimum(first, live.size - 1)], -1)
    last = np.where(ok, live[np.maximum(last, 0)], -1)
    ok = first >= 0
    diff = np.zeros(tiles + 1, dtype=np.int64)
    np.add.at(diff, first[ok], lengths[ok])
    np.add.at(diff, last[ok] + 1, -lengths[ok])
    return Touch(first, last, np.cumsum(diff)[:-1])


def split_evenly(total: int, bounds: np.ndarray, units: int) -> np.ndarray:
    """total split over tiles in proportion to their units, summing exactly to total."""
    cum = (total * bounds) // max(units, 1)
    return np.diff(cum)
