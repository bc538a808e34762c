"""Scheduling a fused plan: layer steps as the layer scheduler runs them, fused runs patch by
patch, into one program.

The stages come from the search (search.py). A layer stage is one step, scheduled exactly as
`--schedule layers` schedules it (planner/schedule.py). A fused run [first, last] becomes:

1. I/O. The run's external inputs and its sink are held whole in SRAM if they fit beside its
   workspace, staging and scratch; otherwise, as for a layer step, inputs already in flash are
   streamed a patch row's band of rows at a time (chunk windows), then more tensors are
   streamed, cheapest first. Other resident tensors are evicted farthest-next-use first.
2. Configuration. The first of the run's configurations (best estimated first) whose buffers
   fit the room left.
3. Buffers. One workspace buffer holds every intermediate tensor's window (its region for the
   current patch, at a fixed pitch) and line buffers, at the offsets runs.evaluate placed them;
   a staging buffer holds one op's parameters (a channel group at a time) or, if there is
   room, every op's parameters for the whole run (read once); one scratch buffer serves the
   ops in turn.
4. Patches in raster order; in each, the ops in order. Before an op computes into a window,
   the window is set to this patch's region: pixels it already holds for the new region are
   moved to their new place (`Copy2D`: a column cache shifts left, a band shifts up), rows a
   line buffer kept from the previous patch row are copied in, and the op computes the rest
   (`Patch`: its computed region). After it, rows the next patch row needs are saved to the
   line buffer. The sink's patch goes straight into the sink's buffer (or its chunk window,
   written to flash when a patch row completes it).

If a run cannot be placed after all (the search's estimate was short), its steps run as
layer steps. A layer step that can run in place (inplace.py) writes its output over its dying
input when that fits.

Everything an instruction touches is inside a buffer the program allocated, so the executor
runs it in the arena of the budget's size, and program.layout checks the peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashswap.model.graph import Graph
from flashswap.planner.arena import ALIGN, align
from flashswap.planner.fused.inplace import InPlace
from flashswap.planner.fused.runs import Candidate, Config, RunPlan, evaluate
from flashswap.planner.params import Needs
from flashswap.planner.program import (
    Begin,
    Bind,
    Bind2D,
    Copy2D,
    Free,
    Patch,
    Trim,
    WeightRead,
)
from flashswap.planner.schedule import Infeasible, Schedule, Scheduler, _Window, fixed_extras
from flashswap.planner.steps import Step, StepGraph
from flashswap.planner.tiling import Touch, touch_bytes

__all__ = ["MIN_GROUP", "FusedScheduler", "RunChoice", "group_staging"]

# The channels a fused op computes per parameter read, at least, where the budget allows: a
# patch calls each op's kernel once per channel group, so single-channel groups would
# multiply the calls (and the program) by the channel count.
MIN_GROUP = 16


def group_staging(n: Needs, min_group: int) -> int:
    """Staging for `min_group` channels of a step's parameters (all if it has fewer)."""
    if n.block < 0:
        return 0
    return n.staging(min(n.channels, min_group) if n.per_channel else n.channels)


@dataclass(frozen=True)
class RunChoice:
    """A fused run as the search chose it: the candidate and its configurations, best first."""

    cand: Candidate
    configs: tuple[Config, ...]


@dataclass
class _RunIO:
    """A run's tensors held whole, those streamed, and the configuration they were sized by
    (the smallest that fits; run_fused then takes the best that fits)."""

    kept: set[int]
    streamed: list[int]
    plan: RunPlan


class FusedScheduler(Scheduler):
    """The layer scheduler, with fused runs as stages and in-place layer steps (see the
    module docstring)."""

    def __init__(self, graph: Graph, sg: StepGraph, needs: list[Needs], pool: int, chunk: int,
                 stages: list[tuple[int, int, RunChoice | None]], macs_per_s: int = 0,
                 in_place: dict[int, InPlace] | None = None, min_group: int = 1,
                 chunks: dict[int, int] | None = None) -> None:
        super().__init__(sg, needs, pool, chunk, macs_per_s, chunks)
        self.min_group = min_group
        self.graph = graph
        self.stages = stages
        self.in_place = in_place or {}
        self.fused: list[dict] = []  # what each fused run became (metadata)
        self.in_place_done: list[str] = []  # steps run in place (metadata)

    # -- in-place layer steps (inplace.py) -----------------------------------------------

    def step(self, s: Step) -> None:
        ip = self.in_place.get(s.index)
        if ip is None or not self.step_in_place(s, ip):
            super().step(s)

    def step_in_place(self, s: Step, ip: InPlace) -> bool:
        """Runs `s` untiled with its output over input ip.tensor; False if it does not fit."""
        i, n = s.index, self.needs[s.index]
        ins = list(dict.fromkeys(io.tensor for io in s.inputs))
        y = s.outputs[0].tensor
        scratch_bytes = align(n.scratch(s.units)) + align(ip.temp)
        need = sum(self.size(t) for t in ins) + scratch_bytes + fixed_extras(n)
        if need > self.pool:
            return False
        others = sorted((t for t in self.res if t not in ins),
                        key=lambda t: (-self.next_use(t, i), -self.size(t), t))
        occupied = sum(self.size(t) for t in others)
        while occupied + need > self.pool:
            t = others.pop(0)
            occupied -= self.size(t)
            self.evict(t, i)
        for t in ins:  # inputs in flash: read back whole
            if t not in self.res:
                buf = self.alloc(self.sg.tensors[t].nbytes, self.sg.tensors[t].name, "tensor", t)
                for c in range(len(self.lengths(t))):
                    self.read_chunk(t, c, buf, c * self.chunk_of(t))
                self.res[t] = buf
        left = self.pool - occupied - need + align(n.min_staging()) - align(n.accum)
        cap = n.channels
        group = cap
        if n.per_channel:
            group = max(1, min(cap, (left // ALIGN * ALIGN - n.common) // n.per_channel))
        staging = self.alloc(n.staging(group), f"{s.name} (parameters)", "staging") \
            if n.block >= 0 else -1
        scratch = self.alloc(scratch_bytes, f"{s.name} (scratch, in place)", "scratch") \
            if scratch_bytes else -1
        accum = self.alloc(n.accum, f"{s.name} (accumulators)", "accum") if n.accum else -1
        self.hold(occupied + sum(self.size(t) for t in ins) + scratch_bytes
                  + align(n.staging(group)) + align(n.accum))
        self.tiles.append(1)
        self.groups.append(-(-cap // group) if n.block >= 0 else 1)
        buf = self.res[ip.tensor]
        binds = tuple([Bind(t, self.res[t], 0) for t in ins] + [Bind(y, buf, 0)])
        self.compute(s, n, 0, s.units, s.macs, group, binds, staging, scratch, accum)
        for b in (staging, scratch, accum):
            if b >= 0:
                self.prog.append(Free(b))
        del self.res[ip.tensor]
        self.res[y] = buf
        for t in ins:
            if self.sg.last_use(t) != i:
                continue
            if t in self.res:
                self.prog.append(Free(self.res.pop(t)))
            if t in self.in_flash:
                base = self.first_key[t]
                for c in range(len(self.lengths(t))):
                    self.prog.append(Trim(base + c))
                self.in_flash.discard(t)
        if self.sg.last_use(y) == i and y in self.res:  # an output nobody reads
            self.prog.append(Free(self.res.pop(y)))
        self.in_place_done.append(s.name)
        return True

    def run(self) -> Schedule:
        self.prog.append(Begin(0))
        for first, last, choice in self.stages:
            if choice is None:
                for k in range(first, last + 1):
                    self.step(self.sg.steps[k])
            else:
                try:
                    self.run_fused(choice)
                except Infeasible:  # the estimate was short: run its steps layer by layer
                    for k in range(first, last + 1):
                        self.step(self.sg.steps[k])
        return self.schedule()

    # -- sizes --------------------------------------------------------------------------

    def run_extras(self, cand: Candidate, rp: RunPlan) -> int:
        """Smallest staging plus the largest scratch of the run's ops."""
        staging = max((group_staging(self.needs[k], self.min_group) for k in cand.steps),
                      default=0)
        scratch = max((self.needs[k].scratch(max(rp.regions.rows.computed[t].extent, 1))
                       for t, k in cand.step_of.items()), default=0)
        return align(staging) + align(scratch)

    def params_bytes(self, cand: Candidate) -> int:
        return sum(align(self.needs[k].block_bytes) for k in cand.steps
                   if self.needs[k].block >= 0)

    def stream_touch(self, cand: Candidate, rp: RunPlan, t: int) -> Touch:
        """Chunks of an external input (rows per patch row) or of the sink (its rows)."""
        g = cand.geo[t]
        nbytes = self.sg.tensors[t].nbytes
        if t == cand.sink:
            b = rp.regions.rows.bounds
            lo, hi = b[:-1], b[1:]
        else:
            iv = rp.ext_rows[t]
            lo, hi = iv.lo, iv.hi
        return touch_bytes(lo * g.row, hi * g.row, nbytes, self.chunk_of(t))

    def io_need(self, cand: Candidate, rp: RunPlan, kept: set[int], streamed: list[int],
                resident_params: bool = False) -> int:
        return (sum(self.size(t) for t in kept)
                + sum(self.stream_touch(cand, rp, t).buffer for t in streamed)
                + rp.workspace + self.run_extras(cand, rp)
                + (self.params_bytes(cand) if resident_params else 0))

    # -- I/O plan -------------------------------------------------------------------------

    def plan_run(self, choice: RunChoice, plans: dict[Config, RunPlan]) -> _RunIO:
        cand = choice.cand

        def ev(c: Config) -> RunPlan:
            if c not in plans:
                plans[c] = evaluate(cand, c)
            return plans[c]

        ext, sink = cand.external, cand.sink
        whole = set(ext) | {sink}
        first = ev(choice.configs[0])
        if self.io_need(cand, first, whole, []) <= self.pool:
            return _RunIO(whole, [], first)
        small = min((ev(c) for c in choice.configs),
                    key=lambda p: p.workspace + self.run_extras(cand, p))
        if self.io_need(cand, small, whole, []) <= self.pool:
            return _RunIO(whole, [], small)
        resident = [t for t in ext if t in self.res]
        streamed = [t for t in ext if t not in self.res]
        kept = set(resident) | {sink}
        by_size = sorted(resident, key=lambda t: (-self.size(t), t))
        order = ([t for t in by_size if t in self.in_flash] + [sink]
                 + [t for t in by_size if t not in self.in_flash])
        while self.io_need(cand, small, kept, streamed) > self.pool:
            if not order:
                raise Infeasible(self.sg.steps[cand.first],
                                 self.io_need(cand, small, kept, streamed))
            t = order.pop(0)
            kept.discard(t)
            streamed.append(t)
        return _RunIO(kept, streamed, small)

    def run_fused(self, choice: RunChoice) -> None:
        cand = choice.cand
        a = cand.first
        plans: dict[Config, RunPlan] = {}
        io = self.plan_run(choice, plans)
        ins = cand.external
        for t in ins:  # resident inputs the run streams must first leave SRAM
            if t in self.res and t not in io.kept:
                self.evict(t, a)
        others = sorted((t for t in self.res if t not in io.kept),
                        key=lambda t: (-self.next_use(t, a), -self.size(t), t))
        occupied = sum(self.size(t) for t in others)
        while occupied + self.io_need(cand, io.plan, io.kept, io.streamed) > self.pool:
            t = others.pop(0)
            occupied -= self.size(t)
            self.evict(t, a)
        room = self.pool - occupied
        # Of the configurations that fit, the one recomputing least, then calling the kernels
        # least: each patch calls each op once per channel group, and the groups are as
        # large as the room a configuration leaves for parameters (the search's choice
        # comes first and wins ties).
        best: tuple[int, int, int] | None = None
        rp, resident_params = io.plan, False
        for k, c in enumerate(choice.configs):
            p = plans[c] if c in plans else evaluate(cand, c)
            plans[c] = p
            need = self.io_need(cand, p, io.kept, io.streamed)
            if need > room:
                continue
            whole = self.io_need(cand, p, io.kept, io.streamed, True) <= room
            key = (p.extra_macs, self.kernel_calls(cand, p, room - need, whole), k)
            if best is None or key < best:
                best, rp, resident_params = key, p, whole
        _RunEmitter(self, cand, rp, io.kept, io.streamed, resident_params,
                    room - self.io_need(cand, rp, io.kept, io.streamed, resident_params),
                    occupied).emit()

    def kernel_calls(self, cand: Candidate, p: RunPlan, spare: int, whole: bool) -> int:
        """Kernel calls of the run under `p` with `spare` bytes beside its smallest staging
        (each op: patches computing anything x channel groups)."""
        left = spare + max((align(group_staging(self.needs[k], self.min_group))
                            for k in cand.steps), default=0)
        calls = 0
        for t, k in cand.step_of.items():
            n = self.needs[k]
            groups = 1
            if n.block >= 0 and n.per_channel and not whole:
                g = max(1, min(n.channels, (left // ALIGN * ALIGN - n.common) // n.per_channel))
                groups = -(-n.channels // g)
            calls += p.op_patches(t) * groups
        return calls


class _RunEmitter:
    """The instructions of one fused run (see the module docstring, step 4)."""

    def __init__(self, s: FusedScheduler, cand: Candidate, rp: RunPlan, kept: set[int],
                 streamed: list[int], resident_params: bool, spare: int,
                 occupied: int) -> None:
        self.s, self.cand, self.rp = s, cand, rp
        self.occupied = occupied  # bytes of the tensors resident beside the run
        self.kept, self.streamed = kept, streamed
        self.resident_params = resident_params
        self.spare = spare
        self.reg = rp.regions
        self.gh, self.gw = rp.grid
        self.a, self.b = cand.first, cand.last
        reg = self.reg
        # Intervals as Python tuples, indexed per patch (numpy scalars are slow to index).
        self.rreq = {t: list(zip(iv.lo.tolist(), iv.hi.tolist(), strict=True))
                     for t, iv in reg.rows.required.items()}
        self.creq = {t: list(zip(iv.lo.tolist(), iv.hi.tolist(), strict=True))
                     for t, iv in reg.cols.required.items()}
        self.rcomp = {t: list(zip(iv.lo.tolist(), iv.hi.tolist(), strict=True))
                      for t, iv in reg.rows.computed.items()}
        self.ccomp = {t: list(zip(iv.lo.tolist(), iv.hi.tolist(), strict=True))
                      for t, iv in reg.cols.computed.items()}
        self.pitches = {t: reg.cols.required[t].extent * cand.geo[t].pixel
                        for t in rp.window}
        # Bindings per (tensor, patch row, patch column); a streamed tensor's chunk window
        # moves only between patch rows, so the cache is cleared at each.
        self.binds: dict[tuple[int, int, int], Bind2D] = {}
        self.step_info: dict[int, tuple] = {}  # per output tensor (compute)

    # -- buffers ------------------------------------------------------------------------

    def alloc(self) -> None:
        s, cand, rp = self.s, self.cand, self.rp
        self.tbuf: dict[int, int] = {}  # tensor -> buffer of a whole resident tensor
        for t in cand.external:
            if t in self.kept and t not in s.res:  # in flash: read back whole
                buf = s.alloc(s.sg.tensors[t].nbytes, s.sg.tensors[t].name, "tensor", t)
                for c in range(len(s.lengths(t))):
                    s.read_chunk(t, c, buf, c * s.chunk_of(t))
                s.res[t] = buf
        if cand.sink in self.kept:
            s.res[cand.sink] = s.alloc(s.sg.tensors[cand.sink].nbytes,
                                       s.sg.tensors[cand.sink].name, "tensor", cand.sink)
        self.windows: dict[int, _Window] = {}
        for t in self.streamed:
            tc = s.stream_touch(cand, rp, t)
            buf = s.alloc(tc.buffer, f"{s.sg.tensors[t].name} (tiles)", "window", t)
            self.windows[t] = s.window(t, buf, tc)
        self.ws = s.alloc(rp.workspace, f"run {s.sg.steps[self.a].name}..."
                          f"{s.sg.steps[self.b].name} (windows)", "scratch") \
            if rp.workspace else -1
        # Parameters: every block for the whole run, or one op's channel groups at a time.
        steps = [k for k in cand.steps if s.needs[k].block >= 0]
        self.group: dict[int, int] = {}
        self.param_at: dict[int, int] = {}
        if self.resident_params:
            at = 0
            for k in steps:
                self.param_at[k] = at
                self.group[k] = s.needs[k].channels
                at += align(s.needs[k].block_bytes)
            staged = at
            self.staging = s.alloc(at, "run parameters", "staging") if at else -1
            for k in steps:
                n = s.needs[k]
                s.prog.append(WeightRead(n.block, 0, n.block_bytes, self.staging,
                                         self.param_at[k]))
        else:
            left = self.spare + max((align(group_staging(s.needs[k], s.min_group))
                                     for k in steps),
                                    default=0)
            size = 0
            for k in steps:
                n = s.needs[k]
                g = n.channels
                if n.per_channel:  # as many channels as the room left holds
                    g = max(1, min(n.channels, (left // ALIGN * ALIGN - n.common)
                                   // n.per_channel))
                self.group[k] = g
                self.param_at[k] = 0
                size = max(size, n.staging(g))
            staged = size
            self.staging = s.alloc(size, "run parameters", "staging") if size else -1
        scratch = max((s.needs[k].scratch(max(self.reg.rows.computed[t].extent, 1))
                       for t, k in cand.step_of.items()), default=0)
        self.scratch = s.alloc(scratch, "run scratch", "scratch") if scratch else -1
        s.hold(self.occupied + sum(s.size(t) for t in self.kept)
               + sum(s.stream_touch(cand, rp, t).buffer for t in self.streamed)
               + rp.workspace + align(staged)
               + align(scratch))

    # -- geometry -----------------------------------------------------------------------

    def pitch(self, t: int) -> int:
        return self.pitches[t]

    def bind(self, t: int, i: int, j: int) -> Bind2D:
        # A run window's region moves with the patch; a resident tensor or a chunk window
        # is bound the same way for a whole patch row.
        key = (t, i, j) if t in self.rp.window else (t, -1, -1)
        b = self.binds.get(key)
        if b is None:
            b = self.binds[key] = self._bind(t, i, j)
        return b

    def _bind(self, t: int, i: int, j: int) -> Bind2D:
        s, g = self.s, self.cand.geo[t]
        if t in self.rp.window:
            (r0, r1), (c0, c1) = self.rreq[t][i], self.creq[t][j]
            return Bind2D(t, self.ws, self.rp.offset[t], r0, c0, self.pitch(t), r1 - r0,
                          c1 - c0)
        if t in s.res:
            return Bind2D(t, s.res[t], 0, 0, 0, g.row)
        w = self.windows[t]
        return Bind2D(t, w.buf, -w.start(w.lo), 0, 0, g.row)

    def copy(self, t: int, src: tuple[int, int, int, int, int, int],
             dst: tuple[int, int, int, int, int, int], rows: tuple[int, int],
             cols: tuple[int, int]) -> None:
        """Copy tensor t's pixels rows x cols between two regions given as (buf, offset,
        row0, col0, pitch, _)."""
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            return
        px = self.cand.geo[t].pixel
        sb, so, sr, sc, sp, _ = src
        db, do, dr, dc, dp, _ = dst
        s_off = so + (rows[0] - sr) * sp + (cols[0] - sc) * px
        d_off = do + (rows[0] - dr) * dp + (cols[0] - dc) * px
        if (sb, s_off, sp) == (db, d_off, dp):
            return
        self.s.prog.append(Copy2D(sb, s_off, sp, db, d_off, dp, rows[1] - rows[0],
                                  (cols[1] - cols[0]) * px))

    # -- the patch loop -----------------------------------------------------------------

    def emit(self) -> None:
        s, cand = self.s, self.cand
        self.alloc()
        ops = cand.run.ops
        rows_cached = self.rp.config.cache_rows and self.gw > 1
        cols_cached = self.rp.config.cache_cols
        band = self.rp.config.cache_rows and self.gw == 1
        frame: dict[int, tuple[int, int, int, int]] = {}  # window content: r0, r1, c0, c1
        line_at = dict(self.rp.line_offset)
        # MACs per patch: the op's MACs in proportion to the pixels it has computed so far,
        # floored, so the patches sum to exactly runs.evaluate's total.
        done_px = dict.fromkeys(cand.step_of, 0)
        done_macs = dict.fromkeys(cand.step_of, 0)
        for _ in cand.steps:
            s.tiles.append(self.gh * self.gw)
            s.groups.append(1)
        for i in range(self.gh):
            self.binds.clear()
            for t in self.streamed:  # a new patch row: its band of each streamed input
                if t in cand.external:
                    w = self.windows[t]
                    tc = w.tc
                    live = np.flatnonzero((tc.first <= i) & (tc.last >= i))
                    w.drop_to(int(live[0]) if live.size else w.hi, s.prog)
                    for c in np.flatnonzero(tc.first == i).tolist():
                        s.read_chunk(t, c, w.buf, w.append(c))
                elif t == cand.sink:
                    for c in np.flatnonzero(self.windows[t].tc.first == i).tolist():
                        self.windows[t].append(c)
            for j in range(self.gw):
                for op in ops:
                    t = op.output
                    (rr0, rr1), (rc0, rc1) = self.rreq[t][i], self.creq[t][j]
                    (nr0, nr1), (nc0, nc1) = self.rcomp[t][i], self.ccomp[t][j]
                    if t in self.rp.window:
                        if rr0 >= rr1 or rc0 >= rc1:
                            continue
                        win = (self.ws, self.rp.offset[t], rr0, rc0, self.pitch(t), 0)
                        old = frame.get(t)
                        # Pixels the window holds for the new region move to their place.
                        if old is not None and ((cols_cached and j > 0) or (band and i > 0)):
                            prev = (self.ws, self.rp.offset[t], old[0], old[2],
                                    self.pitch(t), 0)
                            self.copy(t, prev, win, (max(rr0, old[0]), min(rr1, old[1])),
                                      (max(rc0, old[2]), min(rc1, old[3])))
                        if rows_cached and i > 0 and t in line_at:
                            lo_new = nr0 if nr0 < nr1 else rr1
                            cols = ((nc0, nc1) if cols_cached and j > 0 else (rc0, rc1))
                            if cols_cached and j == 0:
                                cols = (rc0, rc1)
                            self.copy(t, self.line(t, i, line_at), win,
                                      (rr0, lo_new), cols)
                        frame[t] = (rr0, rr1, rc0, rc1)
                    if nr0 < nr1 and nc0 < nc1:
                        done_px[t] += (nr1 - nr0) * (nc1 - nc0)
                        g = cand.geo[t]
                        m = cand.macs[cand.step_of[t]] * done_px[t] // (g.h * g.w)
                        self.compute(op, t, i, j, (nr0, nr1), (nc0, nc1), m - done_macs[t])
                        done_macs[t] = m
                    if (t in self.rp.window and rows_cached and i + 1 < self.gh
                            and t in line_at):
                        self.save_line(t, i, j, line_at, cols_cached)
            for t in self.streamed:  # a patch row done: write the sink chunks it completed
                if t == cand.sink:
                    w = self.windows[t]
                    done = np.flatnonzero(w.tc.last == i).tolist()
                    for c in done:
                        s.write_chunk(t, c, w.buf, w.start(c) - w.start(w.lo), self.b)
                    if done:
                        w.drop_to(done[-1] + 1, s.prog)
        self.finish()

    def line(self, t: int, i: int, line_at: dict[int, int]
             ) -> tuple[int, int, int, int, int, int]:
        """The line buffer holding patch row i's old rows of t, as a region."""
        g = self.cand.geo[t]
        copies = 2 if (self.rp.config.cache_rows and self.gw > 1
                       and not self.rp.config.cache_cols) else 1
        half = self.rp.line[t] // copies
        at = line_at[t] + (i % 2) * half if copies == 2 else line_at[t]
        r0 = self.rreq[t][i][0]
        return (self.ws, at, r0, 0, g.w * g.pixel, 0)

    def save_line(self, t: int, i: int, j: int, line_at: dict[int, int],
                  cols_cached: bool) -> None:
        """Rows of t that patch row i+1 needs again, from the window into its line buffer."""
        (rr0, rr1), (rc0, rc1) = self.rreq[t][i], self.creq[t][j]
        if rr0 >= rr1 or rc0 >= rc1:
            return
        nxt = self.rreq[t]
        k = i + 1
        while k < self.gh and nxt[k][0] >= nxt[k][1]:
            k += 1
        if k >= self.gh:
            return
        lo, hi = nxt[k][0], rr1
        if cols_cached:
            nc0, nc1 = self.ccomp[t][j]
            cols = (nc0, nc1) if j > 0 else (rc0, rc1)
        else:
            cols = (rc0, rc1)
        win = (self.ws, self.rp.offset[t], rr0, rc0, self.pitch(t), 0)
        self.copy(t, win, self.line(t, k, line_at), (lo, hi), cols)

    def compute(self, op, t: int, i: int, j: int, rows: tuple[int, int],
                cols: tuple[int, int], macs: int) -> None:
        """The patch's kernel calls (one per channel group) and their parameter reads."""
        info = self.step_info.get(t)
        if info is None:
            info = self.step_info[t] = self._step_info(op, t)
        k, node, names, reads, groups, ch = info
        bind = self.bind
        binds = tuple(bind(x, i, j) for x in names)
        rate = self.s.rate
        add = self.s.prog.append
        staging, at, scratch = reads[0], reads[1], self.scratch
        if reads[2] is not None:
            add(reads[2])
        done = 0
        for c0, c1, base, wr in groups:
            if wr is not None:
                add(wr)
            m = macs * c1 // ch - done  # MACs split in proportion to channels, summing exactly
            done += m
            us = (m * 1_000_000 + rate // 2) // rate if rate else 0
            add(Patch(k, node, rows[0], rows[1], cols[0], cols[1], c0, c1, m, us, binds,
                      staging, at, base, scratch))

    def _step_info(self, op, t: int) -> tuple:
        """What every patch of tensor t's step repeats: its step and node, the tensors it
        binds, (staging buffer, byte of its parameters there, the WeightRead of their common
        part or None), per channel group (c0, c1, byte of c0's record, its WeightRead or
        None), and the channels the MACs are split over. The WeightReads are the same for
        every patch of the run, so one instruction object serves them all."""
        s, cand = self.s, self.cand
        k = cand.step_of[t]
        n = s.needs[k]
        names = (*dict.fromkeys(op.inputs), t)
        staging = self.staging if n.block >= 0 else -1
        common = (WeightRead(n.block, 0, n.common, staging, 0)
                  if n.block >= 0 and n.common and not self.resident_params else None)
        reads = (staging, self.param_at.get(k, 0), common)
        groups: list[tuple[int, int, int, WeightRead | None]]
        if n.block < 0 or not n.per_channel:
            groups = [(0, cand.geo[t].c, n.common, None)]
            return k, s.sg.steps[k].node_index, names, reads, groups, cand.geo[t].c
        cuts = n.cuts(0, n.channels, self.group[k])  # a grouped convolution's groups whole
        groups = []
        for c0, c1 in zip(cuts[:-1], cuts[1:], strict=True):
            if self.resident_params:
                groups.append((c0, c1, n.common + c0 * n.per_channel, None))
            else:
                groups.append((c0, c1, n.common, WeightRead(
                    n.block, n.common + c0 * n.per_channel, (c1 - c0) * n.per_channel,
                    staging, n.common)))
        return k, s.sg.steps[k].node_index, names, reads, groups, n.channels

    def finish(self) -> None:
        s, cand = self.s, self.cand
        for buf in (*(w.buf for w in self.windows.values()), self.ws, self.staging,
                    self.scratch):
            if buf >= 0:
                s.prog.append(Free(buf))
        for t in self.streamed:
            if t == cand.sink:
                s.in_flash.add(t)
        for t in (*cand.external, cand.sink):
            if s.sg.last_use(t) > self.b:
                continue
            if t in s.res:
                s.prog.append(Free(s.res.pop(t)))
            if t in s.in_flash:
                base = s.first_key[t]
                for c in range(len(s.lengths(t))):
                    s.prog.append(Trim(base + c))
                s.in_flash.discard(t)
        s.fused.append({"first": s.sg.steps[self.a].name, "last": s.sg.steps[self.b].name,
                        "steps": self.b - self.a + 1,
                        "grid": [self.gh, self.gw],
                        "patch": [self.rp.config.patch_h, self.rp.config.patch_w],
                        "cache_rows": self.rp.config.cache_rows,
                        "cache_cols": self.rp.config.cache_cols,
                        "workspace": self.rp.workspace,
                        "extra_macs": self.rp.extra_macs,
                        "streamed": [s.sg.tensors[t].name for t in self.streamed]})

