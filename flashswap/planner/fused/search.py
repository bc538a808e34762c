"""Choosing what to fuse: a dynamic program over the steps, priced by the part's cost model.

The plan is a sequence of stages covering the steps in order: a single step run layer by
layer (tiled by rows when it must be), or a fused run [first, last] under one configuration
(runs.py). The search minimizes the sum of the stages' estimated costs (cost.py: bytes
programmed, then time, for `wear`).

A stage's estimate. While a stage runs, SRAM holds the tensors that pass over it (produced
before, read after, not read by it), its external inputs, its output, its workspace (a run's
window and line buffers) and its parameter staging and kernel scratch. If that exceeds the
budget the estimate takes the cheapest of:

- streaming its external inputs from flash (a patch row's band of rows each, in a window of
  the chunks it straddles) instead of holding them: they must be written once unless the
  previous stage already left its output in flash;
- streaming its output to flash band by band (written once; the next stage may stream it);
- evicting passing tensors, largest first (each written once and read back once);

and, per option, the configuration of least cost that fits. Parameters are read once per
patch, or once per run if they fit in SRAM beside everything else. The state of the program
is the stage boundary and whether the last stage's output is in flash.

The estimates guide the choice; the scheduler (schedule.py) then places every buffer and
decides evictions exactly, and its records are what the plan reports.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from flashswap.model.graph import Graph
from flashswap.planner.arena import align
from flashswap.planner.fused.cost import CostModel
from flashswap.planner.fused.inplace import in_place_steps
from flashswap.planner.fused.runs import Config
from flashswap.planner.fused.sweep import Profile, profiles
from flashswap.planner.steps import StepGraph
from flashswap.planner.tiling import tile_bounds, touch

__all__ = ["Extras", "Stage", "search"]

INF = float("inf")


@dataclass(frozen=True)
class Extras:
    """What a step needs in SRAM besides activations, and the parameters it reads."""

    params: int = 0  # parameter bytes one pass of the step reads
    staging: int = 0  # smallest parameter staging buffer
    scratch: int = 0  # kernel scratch


@dataclass(frozen=True)
class Stage:
    first: int
    last: int
    config: Config | None  # None: a layer step
    streamed_in: bool = False
    streamed_out: bool = False
    resident_params: bool = False
    estimate: float = 0.0
    alternatives: tuple[Config, ...] = ()  # the run's other configurations worth trying

    @property
    def fused(self) -> bool:
        return self.config is not None


class _Prices:
    """The cost model as numbers the program can add up (see cost.py's `Score`).

    Every figure of cost.py is linear in the bytes written and read, the parameter bytes
    read, the MACs and the kernel calls, so the price is one weighted sum: the weights are
    computed once. The objective's figure is scaled so that its smallest step outweighs any
    plausible difference in the second figure (lexicographic, as `Score` compares)."""

    SCALE = 1e6

    def __init__(self, cm: CostModel, chunk: int) -> None:
        p = cm.part
        seg = cm.segment
        # Per byte written: its share of a WRITE and a TRIM record header per chunk.
        programmed = 1 + 2 * 32 / chunk
        w_time = programmed * (p.t_prog_s() / p.page_size + p.t_erase_s(seg) / seg)
        bw = p.read_mbps * 1e6
        r_time = 1 / bw + p.t_read_us * 1e-6 / chunk
        p_time = 1 / bw
        rate = cm.macs_per_s
        m_time = 1 / rate if rate else 0.0
        v = p.voltage * 1e-3
        w_energy = programmed * (p.t_prog_s() / p.page_size * p.i_prog_ma
                                 + p.t_erase_s(seg) / seg * p.i_erase_ma) * v
        r_energy = r_time * p.i_read_ma * v
        p_energy = p_time * p.i_read_ma * v
        # Without a MAC rate, recomputation is a tie-breaker only; so are kernel calls (a
        # patch of a run calls each op's kernel once: between plans otherwise equal, fewer
        # and larger patches, and layer steps over runs).
        self.extra = 1e-12 if rate else 1e-9
        self.call = 1e-9
        k = self.SCALE
        if cm.objective == "wear":
            self.w = (programmed * k + w_time, r_time, p_time, m_time)
        elif cm.objective == "time":
            self.w = (w_time * k + programmed * 1e-9, r_time * k, p_time * k, m_time * k)
        else:
            self.w = (w_energy * k + programmed * 1e-9, r_energy * k, p_energy * k, 0.0)

    def __call__(self, written, read, weights, macs, extra_macs, calls=0):
        w, r, p, m = self.w
        return (written * w + read * r + weights * p + macs * m + extra_macs * self.extra
                + calls * self.call)


@dataclass
class _Ctx:
    sg: StepGraph
    size: list[int]  # aligned bytes per storage tensor
    budget: int
    chunk: int
    extras: list[Extras]
    price: _Prices

    in_place: dict = field(default_factory=dict)  # step -> inplace.InPlace

    def __post_init__(self) -> None:
        sg = self.sg
        self.producer = np.array(sg.producer, dtype=np.int64)
        self.last = np.array([sg.last_use(t.id) for t in sg.tensors], dtype=np.int64)
        self.sizes = np.array(self.size, dtype=np.int64)
        self.windows: dict[int, dict[int, int]] = {}  # layer step -> its chunk windows

    def passing(self, a: int, b: int, reads: set[int]) -> list[int]:
        """Sizes of the tensors produced before step a, read after step b, not read by
        steps a..b."""
        mask = (self.producer < a) & (self.last > b)
        if reads:
            mask[list(reads)] = False
        return self.sizes[mask].tolist()


class _Evictions:
    """Evicting passing tensors largest first: bytes evicted to free a given excess."""

    def __init__(self, sizes: list[int]) -> None:
        self.cum = np.concatenate(([0], np.cumsum(sorted(sizes, reverse=True))))

    def __call__(self, excess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bytes evicted, whether possible) per entry of `excess`."""
        cum = self.cum
        k = np.searchsorted(cum, np.maximum(excess, 0), side="left")
        ok = k < cum.size
        return np.where(ok, cum[np.minimum(k, cum.size - 1)], 0), ok


def _options(ctx: _Ctx, first: int, last: int, ext: list[int], out_bytes: int,
             ext_band: dict[int, np.ndarray], out_band: np.ndarray, ws: np.ndarray,
             extra: int, params: int, reads_patch: np.ndarray, reads_streamed: np.ndarray,
             macs: np.ndarray, base_macs: int, in_flash: set[int], calls: np.ndarray | int = 0,
             resident_only: bool = False) -> list[tuple[float, int, bool, bool, bool, bool]]:
    """Per output state (resident / in flash): (cost, config, streamed in, streamed out,
    params resident, output in flash) of the cheapest option (see the module docstring).
    `in_flash`: external inputs already in flash."""
    reads = set(ext)
    sizes = ctx.passing(first, last, reads)
    pass_bytes = sum(sizes)
    evict = _Evictions(sizes)
    best: dict[bool, tuple[float, int, bool, bool, bool, int]] = {}
    extra_macs = macs - base_macs
    for s_in, s_out in ((False, False), (True, False), (False, True), (True, True)):
        if s_in and not ext or resident_only and (s_in or s_out):
            continue
        if best.get(False, (INF,))[0] < INF and best[False][-1] == -1:
            break  # everything fits resident with nothing evicted: streaming only costs
        in_bytes: np.ndarray | int = 0
        written = 0.0
        read = 0.0
        for x in ext:
            if s_in:
                in_bytes = in_bytes + ext_band[x]
                read += ctx.size[x]
                if x not in in_flash:
                    written += ctx.size[x]
            else:
                in_bytes = in_bytes + ctx.size[x]
                if x in in_flash:
                    read += ctx.size[x]
        ob = out_band if s_out else out_bytes
        w2 = written + (out_bytes if s_out else 0)
        need = pass_bytes + in_bytes + ob + ws + extra
        per_patch = reads_streamed if s_in or s_out else reads_patch
        for res_params in (False, True):
            n2 = need + (align(params) if res_params else 0)
            evicted, ok = evict(n2 - ctx.budget)
            if not ok.any():
                continue
            cost = np.where(ok, ctx.price(w2 + evicted, read + evicted,
                                          params if res_params else per_patch, macs,
                                          extra_macs, calls), INF)
            k = int(np.argmin(cost))
            if cost[k] < best.get(s_out, (INF,))[0]:
                clean = -1 if evicted[k] == 0 and not w2 else 0
                best[s_out] = (float(cost[k]), k, s_in, s_out, res_params, clean)
    return [(c, k, si, so, rp, so) for c, k, si, so, rp, _ in best.values()]


def run_profiles(graph: Graph, sg: StepGraph, extras: list[Extras], max_steps: int = 24
                 ) -> dict[int, list[Profile]]:
    """Every run's profile (Pareto-pruned), by first step: what the search compares. They do
    not depend on the budget or the chunk size, so one computation serves several."""
    runs: dict[int, list[Profile]] = defaultdict(list)
    for p in profiles(graph, sg, [e.params for e in extras], max_steps):
        runs[p.first].append(p.pareto())
    return runs


def min_budget(sg: StepGraph, chunk: int, extras: list[Extras], layer_need: list[int],
               runs: dict[int, list[Profile]]) -> tuple[int, int]:
    """(smallest budget with some sequence of stages whose every stage fits, the first step of
    the stage that needs it). A stage's least need has every tensor it reads or writes
    streamed through flash, a patch row's band in a chunk window each, and its smallest
    configuration; a layer step's is the layer scheduler's (`layer_need`)."""
    n = len(sg.steps)
    mm = [0] * (n + 1)
    worst = [n] * (n + 1)
    for a in range(n - 1, -1, -1):
        best, at = max(layer_need[a], mm[a + 1]), (a if layer_need[a] >= mm[a + 1]
                                                   else worst[a + 1])
        for p in runs.get(a, []):
            extra = max(extras[k].staging + extras[k].scratch for k in range(a, p.last + 1))
            size = {x: align(sg.tensors[x].nbytes) for x in (*p.ext_band, p.sink)}
            need = (p.workspace + _chunk_window(p.sink_band, chunk, size[p.sink]) + extra
                    + sum((_chunk_window(v, chunk, size[x]) for x, v in p.ext_band.items()),
                          np.zeros_like(p.workspace)))
            own = int(need.min())
            cand = max(own, mm[p.last + 1])
            if cand < best:
                best, at = cand, (a if own >= mm[p.last + 1] else worst[p.last + 1])
        mm[a], worst[a] = best, at
    return mm[0], worst[0]


def search(graph: Graph, sg: StepGraph, budget: int, chunk: int, cm: CostModel,
           extras: list[Extras], max_steps: int = 24, fuse: bool = True,
           runs: dict[int, list[Profile]] | None = None) -> list[Stage]:
    """The stages of least estimated cost (see the module docstring); `fuse=False` allows
    layer steps only; `runs` from `run_profiles` (computed if not given)."""
    size = [align(t.nbytes) for t in sg.tensors]
    ctx = _Ctx(sg, size, budget, chunk, extras, _Prices(cm, chunk),
               in_place_steps(graph, sg) if fuse else {})
    n = len(sg.steps)
    if runs is None:
        runs = run_profiles(graph, sg, extras, max_steps) if fuse else {}
    # best[(position, output in flash)] = (cost, previous key, stage)
    best: dict[tuple[int, bool], tuple[float, tuple[int, bool] | None, Stage | None]] = {
        (0, False): (0.0, None, None)}
    for a in range(n):
        prev_out = {io.tensor for io in sg.steps[a - 1].outputs} if a else set()
        options: dict[bool, list] = {}
        for f in (False, True):
            cur = best.get((a, f))
            if cur is None:
                continue
            # The state matters only to a stage that reads the previous stage's output.
            key_f = f and bool(prev_out)
            if key_f not in options:
                options[key_f] = list(_stages_from(ctx, a, prev_out if key_f else set(),
                                                   runs.get(a, [])))
            for stage, cost, nf in options[key_f]:
                key = (stage.last + 1, nf)
                total = cur[0] + cost
                if total < best.get(key, (INF,))[0]:
                    best[key] = (total, (a, f), stage)
    end = min((k for k in best if k[0] == n), key=lambda k: best[k][0], default=None)
    if end is None or best[end][0] == INF:
        return []
    stages: list[Stage] = []
    at: tuple[int, bool] | None = end
    while at is not None:
        _, prev, st = best[at]
        if st is None:
            break
        stages.append(st)
        at = prev
    return stages[::-1]


def _stages_from(ctx: _Ctx, a: int, in_flash: set[int], runs: list[Profile]):
    sg = ctx.sg
    s = sg.steps[a]
    ext = list(dict.fromkeys(io.tensor for io in s.inputs))
    outs = [io.tensor for io in s.outputs]
    out_bytes = sum(ctx.size[t] for t in outs)
    ex = ctx.extras[a]
    one = np.zeros(1, dtype=np.int64)
    win = ctx.windows.get(a)
    if win is None:
        bounds = tile_bounds(max(s.units, 1), 1)
        win = {io.tensor: touch(io, sg.tensors[io.tensor].nbytes, bounds, ctx.chunk).buffer
               for io in (*s.inputs, *s.outputs)}
        ctx.windows[a] = win
    bands = {io.tensor: np.array([win[io.tensor]]) for io in s.inputs}
    out_band = np.array([sum(win[io.tensor] for io in s.outputs)])
    rows = max(s.units, 1)
    for cost, _, s_in, s_out, rp, nf in _options(
            ctx, a, a, ext, out_bytes, bands, out_band, one, ex.staging + ex.scratch,
            ex.params, np.array([ex.params]), np.array([ex.params * rows]),
            np.array([s.macs]), s.macs, in_flash):
        yield Stage(a, a, None, s_in, s_out, rp, cost), cost, nf
    ip = ctx.in_place.get(a)
    if ip is not None:  # the output over its dying input: only a temporary besides
        for cost, _, s_in, s_out, rp, nf in _options(
                ctx, a, a, ext, ip.temp, bands, out_band, one, ex.staging + ex.scratch,
                ex.params, np.array([ex.params]), np.array([ex.params]),
                np.array([s.macs]), s.macs, in_flash, resident_only=True):
            yield Stage(a, a, None, s_in, s_out, rp, cost), cost, nf
    for p in runs:
        extra = max(ctx.extras[k].staging + ctx.extras[k].scratch for k in range(a, p.last + 1))
        c = ctx.chunk
        bands = {x: _chunk_window(v, c, ctx.size[x]) for x, v in p.ext_band.items()}
        for cost, k, s_in, s_out, rp, nf in _options(
                ctx, a, p.last, list(p.external), ctx.size[p.sink], bands,
                _chunk_window(p.sink_band, c, ctx.size[p.sink]),
                p.workspace, extra, p.params, p.weight_reads, p.weight_reads, p.macs,
                p.base_macs, in_flash, p.patches * (p.last - a + 1)):
            # The scheduler's fallbacks: the next cheapest, and the smallest (it evaluates
            # each one it considers exactly).
            others = [c for c in range(len(p)) if c != k]
            cheap = sorted(others, key=lambda c: (p.macs[c], p.weight_reads[c],
                                                  -p.workspace[c]))[:2]
            small = sorted(others, key=lambda c: (p.workspace[c], p.macs[c]))[:2]
            alt = list(dict.fromkeys(cheap + small))
            yield (Stage(a, p.last, p.configs[k], s_in, s_out, rp, cost,
                         tuple(p.configs[c] for c in alt)), cost, nf)


def _chunk_window(band: np.ndarray, chunk: int, nbytes: int) -> np.ndarray:
    """The most a chunk window holds for bands of `band` bytes: the chunks a band can
    straddle (one more than it fills), never more than the whole tensor's chunks."""
    return np.minimum((-(-band // chunk) + 1) * chunk, -(-nbytes // chunk) * chunk)
