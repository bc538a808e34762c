"""Every run and every patch grid at once: the profiles the search compares.

`runs.evaluate` derives one run under one configuration. The search needs hundreds of runs
under dozens of grids each, so this module computes the same figures in bulk, exploiting two
facts:

- All patch sizes of an axis at once. The tiles of every patch size of an axis are laid end
  to end in one array (a segment per size); derivation is elementwise per tile except the
  cache's running maxima and minima, which are computed per segment (`_seg_cummax`). So one
  pass derives every size.
- All starts of a sink at once. Regions are derived backwards from the sink, and a tensor's
  region depends only on the ops after it, so the runs [a, b] for a = b, b-1, ... share
  everything: one backward sweep over the steps before b gives, at each a, the run [a, b].
  A tensor's consumers all come after it, so its region is final when the sweep reaches its
  producer.

The figures per run and configuration are those of `runs.evaluate` (tests/test_fused_sweep.py
checks them against it), except that transient windows are summed at the op where most are
live, where `evaluate` places them in an arena (which fragmentation can make larger; the
scheduler uses `evaluate`'s figure).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from flashswap.model.graph import Graph
from flashswap.planner.arena import ALIGN
from flashswap.planner.fused.regions import Intervals, Window
from flashswap.planner.fused.runs import Config, Geo, fusable, geometry, graph_outputs, patch_sizes
from flashswap.planner.steps import Step, StepGraph

__all__ = ["Profile", "Tiling", "profiles"]

_BIG = 1 << 30
_OFF = 1 << 32
# Grids of more patches are not considered: every patch calls each op's kernel, so the
# program and the device's call overhead grow with the count (56 x 56 single-pixel patches
# of a 10-op run are 31,360 kernel calls); 1024 still allows 32 x 32 grids.
MAX_PATCHES = 1024


@dataclass(frozen=True)
class Tiling:
    """The tiles of every distinct patch size of an axis of `n`, end to end."""

    n: int
    sizes: np.ndarray  # patch sizes, largest first
    seg: np.ndarray  # tile -> segment (patch size index)
    starts: np.ndarray  # first tile of each segment
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, n: int) -> Tiling:
        sizes = np.array(patch_sizes(n), dtype=np.int64)
        los, his, segs = [], [], []
        for k, p in enumerate(sizes.tolist()):
            b = np.append(np.arange(0, n, p, dtype=np.int64), n)
            los.append(b[:-1])
            his.append(b[1:])
            segs.append(np.full(b.size - 1, k, dtype=np.int64))
        seg = np.concatenate(segs)
        starts = np.flatnonzero(np.diff(seg, prepend=-1))
        return cls(n, sizes, seg, starts, np.concatenate(los), np.concatenate(his))

    @property
    def tiles(self) -> np.ndarray:
        """Tiles per segment."""
        return np.diff(np.append(self.starts, self.seg.size))


def _seg_cummax(v: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Running maximum restarting at each segment (values within +-_BIG)."""
    return np.maximum.accumulate(v + seg * _OFF) - seg * _OFF


def _seg_revcummin(v: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Running minimum from the end of each segment backwards."""
    r = v[::-1] + seg[::-1] * _OFF
    return (np.minimum.accumulate(r) - seg[::-1] * _OFF)[::-1]


def _norm(lo: np.ndarray, hi: np.ndarray) -> Intervals:
    e = lo >= hi
    return Intervals(np.where(e, 0, lo), np.where(e, 0, hi))


def _hull(a: Intervals | None, b: Intervals) -> Intervals:
    if a is None:
        return b
    ea, eb = a.lo >= a.hi, b.lo >= b.hi
    lo = np.minimum(np.where(ea, _BIG, a.lo), np.where(eb, _BIG, b.lo))
    hi = np.maximum(np.where(ea, -_BIG, a.hi), np.where(eb, -_BIG, b.hi))
    return _norm(lo, hi)


def _closure(iv: Intervals, seg: np.ndarray) -> Intervals:
    e = iv.lo >= iv.hi
    return _norm(_seg_revcummin(np.where(e, _BIG, iv.lo), seg),
                 _seg_cummax(np.where(e, -_BIG, iv.hi), seg))


class _Axis:
    """One axis, cached or not, swept back from one sink."""

    def __init__(self, tiling: Tiling, cache: bool) -> None:
        self.tiling = tiling
        self.cache = cache
        self.needs: dict[int, Intervals] = {}

    def process(self, out: int, inputs: tuple[int, ...], win: Window,
                sizes: dict[int, int], is_sink: bool) -> tuple[Intervals, Intervals]:
        """(required, computed) of `out`; adds the op's reads to its inputs' needs."""
        tl = self.tiling
        if is_sink:
            req = Intervals(tl.lo, tl.hi)
        else:
            got = self.needs.pop(out, None)
            req = got if got is not None else Intervals(np.zeros_like(tl.lo),
                                                        np.zeros_like(tl.lo))
        comp = req
        if self.cache and not is_sink:
            req = _closure(req, tl.seg)
            prev = np.concatenate(([0], _seg_cummax(req.hi, tl.seg)[:-1]))
            prev[tl.starts] = 0
            comp = _norm(np.maximum(req.lo, prev), req.hi)
        for x in dict.fromkeys(inputs):
            self.needs[x] = _hull(self.needs.get(x), win.back(comp, sizes[x]))
        return req, comp

    def stats(self, req: Intervals, comp: Intervals) -> tuple[np.ndarray, ...]:
        """Per segment: largest required interval, total computed, tiles computing
        anything, and (a cached axis) the most a tile needs of what earlier tiles computed:
        what a line buffer carries from one patch row to the next."""
        st = self.tiling.starts
        ext = np.maximum.reduceat(req.sizes, st)
        tot = np.add.reduceat(comp.sizes, st)
        act = np.add.reduceat((comp.sizes > 0).astype(np.int64), st)
        if not self.cache:
            return ext, tot, act, np.zeros_like(ext)
        prev = np.concatenate(([0], _seg_cummax(req.hi, self.tiling.seg)[:-1]))
        prev[st] = 0
        ov = np.where(req.lo < req.hi, np.maximum(prev - req.lo, 0), 0)
        return ext, tot, act, np.maximum.reduceat(ov, st)


@dataclass(frozen=True)
class Profile:
    """One run [first, last] under every configuration of `configs` (arrays over configs)."""

    first: int
    last: int
    sink: int
    external: tuple[int, ...]
    configs: tuple[Config, ...]
    workspace: np.ndarray  # window and line buffers
    macs: np.ndarray  # every op, recomputed halos included
    patches: np.ndarray
    weight_reads: np.ndarray  # parameter bytes read when every patch re-reads them
    ext_band: dict[int, np.ndarray]  # external input -> bytes of rows one patch row needs
    sink_band: np.ndarray  # bytes of the sink rows of one patch row
    params: int  # parameter bytes of the run's ops (each read once)
    base_macs: int

    def __len__(self) -> int:
        return len(self.configs)

    def pareto(self) -> Profile:
        """The configurations no other one beats in every figure the search prices
        (workspace, MACs, parameter reads, bands of streamed inputs and output)."""
        figs = np.stack([self.workspace, self.macs, self.weight_reads, self.sink_band,
                         sum(self.ext_band.values(), np.zeros_like(self.workspace))])
        le = (figs[:, :, None] <= figs[:, None, :]).all(axis=0)  # i no worse than j
        lt = (figs[:, :, None] < figs[:, None, :]).any(axis=0)
        dominated = (le & lt).any(axis=0)
        # Of configurations equal in every figure, keep the first.
        eq = le & le.T
        first = np.argmax(eq, axis=0) == np.arange(eq.shape[0])
        keep = np.flatnonzero(~dominated & first)
        return Profile(self.first, self.last, self.sink, self.external,
                       tuple(self.configs[k] for k in keep), self.workspace[keep],
                       self.macs[keep], self.patches[keep], self.weight_reads[keep],
                       {x: v[keep] for x, v in self.ext_band.items()}, self.sink_band[keep],
                       self.params, self.base_macs)


def _configs(rows: Tiling, cols: Tiling, sink: Geo) -> tuple[list[Config], np.ndarray,
                                                             np.ndarray]:
    """Bands of every height; square-ish patches under each cache choice (see runs.configs).
    Returns the configs and, per config, its row and column segment."""
    out: list[Config] = []
    ri: list[int] = []
    ci: list[int] = []
    rsz = rows.sizes.tolist()
    for k, ph in enumerate(rsz):
        out.append(Config(ph, sink.w, True, True))
        ri.append(k)
        ci.append(0)
    tiles_r = rows.tiles.tolist()
    for kc, pw in enumerate(cols.sizes.tolist()):
        if kc == 0:
            continue
        want = max(1, round(pw * sink.h / sink.w))
        kr = int(np.argmin([abs(p - want) for p in rsz]))
        if tiles_r[kr] * int(cols.tiles[kc]) > MAX_PATCHES:
            continue
        for cr in (True, False):
            for cc in (True, False):
                out.append(Config(rsz[kr], pw, cr, cc))
                ri.append(kr)
                ci.append(kc)
    return out, np.array(ri, dtype=np.int64), np.array(ci, dtype=np.int64)


def profiles(graph: Graph, sg: StepGraph, block_bytes: list[int], max_steps: int = 24
             ) -> Iterator[Profile]:
    """Profiles of every run of 2..max_steps steps (the rule of runs.candidates), sink by
    sink. `block_bytes[s]` is the parameter bytes step s reads per patch."""
    geo = geometry(graph, sg)
    outputs = graph_outputs(sg)
    ok, win = fusable(graph, sg, geo)
    tilings: dict[int, Tiling] = {}
    for b in range(len(sg.steps)):
        if not ok[b]:
            continue
        sink = sg.steps[b].outputs[0].tensor
        sgeo = geo[sink]
        assert sgeo is not None
        for m in (sgeo.h, sgeo.w):
            if m not in tilings:
                tilings[m] = Tiling.of(m)
        yield from _SinkSweep(sg, geo, win, block_bytes, b, tilings[sgeo.h],
                              tilings[sgeo.w]).run(ok, outputs, max_steps)


class _SinkSweep:
    """The runs [a, b] of one sink b, accumulated as a decreases (see the module docstring).
    Per configuration it keeps running sums of each figure, so each run costs a few vector
    additions."""

    def __init__(self, sg: StepGraph, geo: list, win: list, block_bytes: list[int], b: int,
                 rows: Tiling, cols: Tiling) -> None:
        self.sg, self.geo, self.win, self.blocks = sg, geo, win, block_bytes
        self.b = b
        self.sink = sg.steps[b].outputs[0].tensor
        sgeo = geo[self.sink]
        self.cfgs, self.ri, self.ci = _configs(rows, cols, sgeo)
        self.cr = np.array([c.cache_rows for c in self.cfgs])
        self.cc = np.array([c.cache_cols for c in self.cfgs])
        self.axes = {(ax, cache): _Axis(rows if ax == 0 else cols, cache)
                     for ax in (0, 1) for cache in (True, False)}
        gh, gw = rows.tiles[self.ri], cols.tiles[self.ci]
        self.patches = gh * gw
        band = self.cr & (gw == 1)
        self.copies = np.where(band | ~self.cr, 0, np.where(self.cc, 1, 2))
        self.persistent = band | self.cc
        c = len(self.cfgs)
        self.macs = np.zeros(c, dtype=np.int64)
        self.reads = np.zeros(c, dtype=np.int64)
        self.lines = np.zeros(c, dtype=np.int64)
        self.wins = np.zeros(c, dtype=np.int64)
        self.live = np.zeros((0, c), dtype=np.int64)  # row p: windows live at step b - p
        self.params = 0
        self.base = 0
        self.bands: dict[int, np.ndarray] = {}
        self.sink_band = rows.sizes[self.ri] * sgeo.row

    def pick(self, st: dict, ax: int, k: int) -> np.ndarray:
        cache, idx = (self.cr, self.ri) if ax == 0 else (self.cc, self.ci)
        return np.where(cache, st[(ax, True)][k][idx], st[(ax, False)][k][idx])

    def run(self, ok: list[bool], outputs: set[int], max_steps: int) -> Iterator[Profile]:
        sg, b = self.sg, self.b
        for a in range(b, max(-1, b - max_steps), -1):
            if not ok[a]:
                return
            s = sg.steps[a]
            t = s.outputs[0].tensor
            if a != b and (sg.last_use(t) > b or t in outputs):
                return
            self.add(a, s, t)
            if a != b:
                yield self.profile(a)

    def add(self, a: int, s: Step, t: int) -> None:
        geo = self.geo
        ins = tuple(io.tensor for io in s.inputs)
        st: dict[tuple[int, bool], tuple[np.ndarray, ...]] = {}
        for (ax, cache), sw in self.axes.items():
            size = {x: (geo[x].h, geo[x].w)[ax] for x in ins}
            req, comp = sw.process(t, ins, self.win[a][ax], size, a == self.b)
            st[(ax, cache)] = sw.stats(req, comp)
        g: Geo = geo[t]
        r_ext, r_tot, r_act, r_ov = (self.pick(st, 0, k) for k in range(4))
        c_ext, c_tot, c_act = (self.pick(st, 1, k) for k in range(3))
        self.macs += s.macs * (r_tot * c_tot) // (g.h * g.w)  # as runs.evaluate
        self.reads += self.blocks[a] * r_act * c_act
        self.params += self.blocks[a]
        self.base += s.macs
        # The live matrix gains a row for step a; t's window is live from a to its last
        # reader in the run.
        self.live = np.vstack([self.live, np.zeros((1, len(self.cfgs)), dtype=np.int64)])
        if t != self.sink:
            w = _align(r_ext * c_ext * g.pixel)
            self.wins += w
            self.lines += _align(r_ov * g.w * g.pixel) * self.copies
            last = min(self.sg.last_use(t), self.b)
            self.live[self.b - last:self.b - a + 1] += w
        self.bands.pop(t, None)
        for x in ins:
            self.bands.pop(x, None)

    def band(self, x: int) -> np.ndarray:
        """Bytes of the rows of external input x one patch row needs (streamed in row
        order: closed to be monotone), under each config's row cache choice."""
        if x not in self.bands:
            tl = self.axes[(0, False)].tiling
            per = [np.maximum.reduceat(_closure(self.axes[(0, c)].needs[x], tl.seg).sizes,
                                       tl.starts)[self.ri] for c in (False, True)]
            self.bands[x] = np.where(self.cr, per[1], per[0]) * self.geo[x].row
        return self.bands[x]

    def profile(self, a: int) -> Profile:
        peak = self.live.max(axis=0)
        ws = self.lines + np.where(self.persistent, self.wins, peak)
        ext = tuple(self.axes[(0, False)].needs)
        return Profile(a, self.b, self.sink, ext, tuple(self.cfgs), ws, self.macs.copy(),
                       self.patches, self.reads.copy(), {x: self.band(x) for x in ext},
                       self.sink_band, self.params, self.base)


def _align(x: np.ndarray) -> np.ndarray:
    return -(-x // ALIGN) * ALIGN
