"""Input regions of output patches, derived back through a run of spatial operators.

A fused run computes its sink tensor patch by patch: the sink's rows are cut into bands and
its columns into bands, and patch (i, j) is row band i crossed with column band j. Every op of
a run (convolution, depthwise convolution, pooling, padding, elementwise ops such as a
residual add, channel concatenation) reads, for output rows [lo, hi), the input rows

    [lo*stride - pad, (hi - 1)*stride - pad + (kernel - 1)*dilation + 1)

clipped to the input (rows outside it are padding, not data), and the same with its own
parameters for columns. Rows and columns never mix, so the region of any tensor a patch needs
is a rectangle, a row interval crossed with a column interval, and each axis is derived on its
own (`derive_axis`); a 2-D patch grid is two 1-D derivations (`derive`).

Per tensor of the run and per tile of an axis the derivation gives two intervals:

- required (R): what the tensor's consumers in the run read during that tile: the hull of
  each consumer's window of the interval it computes. A tensor with two consumers (the fork of
  a residual branch) needs the hull of both windows. For the run's external inputs this is
  what must be read from SRAM or flash.
- computed (N): what the tensor's producer computes during that tile. Without a halo cache
  N = R, so the overlap between neighbouring tiles (the halo) is computed again by every tile
  that needs it. With a halo cache the tensor's buffer keeps what earlier tiles produced, so
  a tile computes only R minus what earlier tiles computed:
  N = [max(R.lo, max of earlier R.hi), R.hi).

A cache is sound only if rows it drops (below R.lo of the current tile) are never needed
again and nothing it holds has to be recomputed, so on a cached axis R is widened to its
monotone closure (`closure`: R.lo never decreases, R.hi never decreases). Gapless windows
(stride <= kernel, no dilation) give monotone intervals already; a dilated window hanging over
a padded edge does not (a later output's first tap can land on row 0 that earlier outputs
skipped), and the closure makes the earlier tile compute that row for it. A cached axis then
computes each element exactly once, and the buffer of a cached tensor holds R (the closure).
Empty intervals (a tile that needs nothing of a tensor: all cached, or all padding) are
stored as [0, 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["AxisRegions", "Intervals", "Regions", "Run", "RunOp", "Window", "derive",
           "derive_axis", "patch_bounds"]

_BIG = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class Window:
    """How one op reads one axis: output index o reads input [o*stride - pad, +span)."""

    kernel: int = 1
    stride: int = 1
    pad: int = 0  # leading padding (top for rows, left for columns)
    dilation: int = 1

    @property
    def span(self) -> int:
        return (self.kernel - 1) * self.dilation + 1

    def back(self, iv: Intervals, size: int) -> Intervals:
        """The smallest input interval holding every input index that the output interval of
        each tile reads (padding excluded).

        With dilation the taps of a window are spaced apart, so where a window hangs over an
        edge its first in-range tap may come from a later output: tap m of output o is
        o*stride + m*dilation - pad, and per tap the lowest output reaching index >= 0 (the
        highest reaching < size) is found directly, then the extremes are taken over taps.
        """
        if self.dilation == 1 and self.stride <= self.kernel:
            # Gapless: the taps of neighbouring outputs overlap, so the clipped hull is exact.
            if self == IDENTITY and int(iv.hi.max(initial=0)) <= size:
                return iv
            a = np.clip(iv.lo * self.stride - self.pad, 0, size)
            b = np.clip((iv.hi - 1) * self.stride - self.pad + self.kernel, 0, size)
            empty = (iv.lo >= iv.hi) | (a >= b)
            return Intervals(np.where(empty, 0, a), np.where(empty, 0, b))
        lo, hi = iv.lo[None, :], iv.hi[None, :]
        off = np.arange(self.kernel, dtype=np.int64)[:, None] * self.dilation - self.pad
        o_first = np.maximum(lo, -(off // self.stride))  # ceil(-off / stride)
        o_last = np.minimum(hi - 1, (size - 1 - off) // self.stride)
        ok = o_first <= o_last
        a = np.where(ok, o_first * self.stride + off, _BIG).min(axis=0)
        b = np.where(ok, o_last * self.stride + off + 1, -_BIG).max(axis=0)
        empty = (iv.lo >= iv.hi) | (a >= b)
        return Intervals(np.where(empty, 0, a), np.where(empty, 0, b))


IDENTITY = Window()


@dataclass(frozen=True)
class Intervals:
    """One half-open interval [lo, hi) per tile; empty intervals are [0, 0)."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        return self.hi - self.lo

    @property
    def extent(self) -> int:
        """The largest interval: the buffer a tile needs along this axis."""
        return int(self.sizes.max(initial=0))

    @property
    def total(self) -> int:
        return int(self.sizes.sum())

    def __getitem__(self, k: int) -> tuple[int, int]:
        return int(self.lo[k]), int(self.hi[k])


def hull(ivs: Iterable[Intervals]) -> Intervals:
    """Per tile, the smallest interval containing every non-empty interval given."""
    lo = hi = None
    for iv in ivs:
        e = iv.lo >= iv.hi
        a = np.where(e, _BIG, iv.lo)
        b = np.where(e, -_BIG, iv.hi)
        lo = a if lo is None else np.minimum(lo, a)
        hi = b if hi is None else np.maximum(hi, b)
    assert lo is not None and hi is not None, "hull of nothing"
    empty = lo >= hi
    return Intervals(np.where(empty, 0, lo), np.where(empty, 0, hi))


def uncached(req: Intervals) -> Intervals:
    """What a tile must compute when its buffer keeps what earlier tiles computed."""
    prev = np.maximum.accumulate(np.concatenate(([0], req.hi[:-1])))
    lo = np.maximum(req.lo, prev)
    empty = lo >= req.hi
    return Intervals(np.where(empty, 0, lo), np.where(empty, 0, req.hi))


def closure(iv: Intervals) -> Intervals:
    """The smallest monotone superset: each tile also holds what any later tile needs below
    its own interval and everything up to the highest end reached so far."""
    e = iv.lo >= iv.hi
    lo = np.minimum.accumulate(np.where(e, _BIG, iv.lo)[::-1])[::-1]
    hi = np.maximum.accumulate(np.where(e, -_BIG, iv.hi))
    empty = lo >= hi
    return Intervals(np.where(empty, 0, lo), np.where(empty, 0, hi))


def monotone(iv: Intervals) -> bool:
    """Whether lo and hi never decrease over the tiles with a non-empty interval."""
    keep = iv.lo < iv.hi
    return bool((np.diff(iv.lo[keep]) >= 0).all() and (np.diff(iv.hi[keep]) >= 0).all())


@dataclass(frozen=True)
class RunOp:
    """One op of a run: the tensors it reads, the one it writes, its window on each axis."""

    inputs: tuple[int, ...]
    output: int
    rows: Window = IDENTITY
    cols: Window = IDENTITY


@dataclass(frozen=True)
class Run:
    """Ops in execution order over tensors with known (height, width); `sink` is the output
    computed patch by patch. Tensors read but not produced are the run's external inputs."""

    ops: tuple[RunOp, ...]
    shapes: dict[int, tuple[int, int]]
    sink: int

    def __post_init__(self) -> None:
        produced: set[int] = set()
        for op in self.ops:
            for t in (*op.inputs, op.output):
                if t not in self.shapes:
                    raise ValueError(f"tensor {t} has no shape")
            if op.output in produced:
                raise ValueError(f"tensor {op.output} is produced twice")
            if any(t == op.output for t in op.inputs):
                raise ValueError(f"op writing tensor {op.output} reads it")
            produced.add(op.output)
        if self.sink not in produced:
            raise ValueError(f"sink {self.sink} is not produced by the run")

    @property
    def produced(self) -> list[int]:
        return [op.output for op in self.ops]

    @property
    def external(self) -> list[int]:
        out = set(self.produced)
        return list(dict.fromkeys(t for op in self.ops for t in op.inputs if t not in out))


@dataclass(frozen=True)
class AxisRegions:
    """One axis of a run: required intervals of every tensor, computed ones of produced ones."""

    bounds: np.ndarray  # the sink's tile boundaries along this axis
    required: dict[int, Intervals]
    computed: dict[int, Intervals]
    cached: bool

    @property
    def tiles(self) -> int:
        return self.bounds.size - 1


def patch_bounds(size: int, patch: int) -> np.ndarray:
    """Tile boundaries [0, patch, 2*patch, ..., size]: the last tile takes the remainder."""
    if size < 1 or patch < 1:
        raise ValueError(f"cannot cut {size} into patches of {patch}")
    return np.append(np.arange(0, size, patch, dtype=np.int64), size)


def derive_axis(run: Run, axis: int, bounds: Sequence[int] | np.ndarray,
                cache: bool) -> AxisRegions:
    """Required and computed intervals along `axis` (0 rows, 1 columns) for sink tiles cut at
    `bounds`, with or without a halo cache (see the module docstring)."""
    b = np.asarray(bounds, dtype=np.int64)
    size = run.shapes[run.sink][axis]
    if b.size < 2 or b[0] != 0 or b[-1] != size or (np.diff(b) <= 0).any():
        raise ValueError(f"bounds {b.tolist()} do not cut [0, {size}) into non-empty tiles")
    sink = Intervals(b[:-1].copy(), b[1:].copy())
    needs: dict[int, list[Intervals]] = {}
    computed: dict[int, Intervals] = {}
    required: dict[int, Intervals] = {}
    for op in reversed(run.ops):
        t = op.output
        if t == run.sink:
            req = sink
        elif t in needs:
            req = hull(needs.pop(t))
        else:  # a dead end: nothing in the run reads it
            req = Intervals(np.zeros_like(b[:-1]), np.zeros_like(b[:-1]))
        if cache and t != run.sink:
            req = closure(req)
        required[t] = req
        comp = uncached(req) if cache and t != run.sink else req
        computed[t] = comp
        win = op.rows if axis == 0 else op.cols
        for x in dict.fromkeys(op.inputs):
            needs.setdefault(x, []).append(win.back(comp, run.shapes[x][axis]))
    for x, ivs in needs.items():  # external inputs
        required[x] = hull(ivs)
    return AxisRegions(b, required, computed, cache)


@dataclass(frozen=True)
class Regions:
    """A 2-D patch grid: patch (i, j) needs rows.required[t][i] x cols.required[t][j] of t."""

    rows: AxisRegions
    cols: AxisRegions

    @property
    def grid(self) -> tuple[int, int]:
        return self.rows.tiles, self.cols.tiles

    def required(self, t: int, i: int, j: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return self.rows.required[t][i], self.cols.required[t][j]

    def computed(self, t: int, i: int, j: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return self.rows.computed[t][i], self.cols.computed[t][j]

    def computed_pixels(self, t: int) -> int:
        """Pixels of t the producer computes over the whole grid (separable: rows x cols)."""
        return self.rows.computed[t].total * self.cols.computed[t].total


def derive(run: Run, row_bounds: Sequence[int] | np.ndarray,
           col_bounds: Sequence[int] | np.ndarray, cache_rows: bool = False,
           cache_cols: bool = False) -> Regions:
    """Both axes of a patch grid (see the module docstring)."""
    return Regions(derive_axis(run, 0, row_bounds, cache_rows),
                   derive_axis(run, 1, col_bounds, cache_cols))
