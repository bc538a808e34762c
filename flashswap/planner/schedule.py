"""The swap scheduler: what stays in SRAM, what goes to flash, and how each op is tiled.

One deterministic pass over the steps, with SRAM modelled as a pool of `pool` bytes (every
buffer rounded up to 16 bytes) that holds everything the executor allocates: activations,
chunk windows, the staging buffer for parameters streamed from flash, kernel scratch and
accumulators (params.py). It emits the inference as a program (program.py), from which the
trace is derived. For step i:

1. Untiled if its inputs and outputs fit in the pool together with its smallest extras (one
   channel's parameters, accumulators) and the scratch of one whole-step tile: inputs in
   flash are read back whole (and stay resident, clean), outputs are produced in SRAM.
2. Otherwise tiled. If its tensors fit with the scratch of a one-unit tile, it is tiled
   with nothing streamed (a kernel whose scratch grows with the tile: a fused DEQUANTIZE's
   int8 band). Else inputs already in flash are streamed (read chunk by chunk, each chunk
   once, as the tiles' bands reach it); if the step still cannot fit with its smallest tile,
   the planner streams more of its tensors, cheapest first: resident inputs that also have a
   flash copy (cost: a re-read), then outputs (cost: a write), then resident inputs without
   one (cost: a write and a read). Streamed outputs are written chunk by chunk as tiles
   complete them. If the step cannot fit even with everything streamed and one unit per tile,
   the budget is impossible (Infeasible: the step and the bytes it needs).
3. Room for the step is made by evicting other resident tensors, farthest next use first
   (Belady's rule; ties: larger first). An evicted tensor is written to flash unless it
   already has a valid copy there (activations are immutable, so a copy stays valid until
   the tensor dies).
4. Tiles: the fewest even tiles whose buffers fit the remaining room (fewer tiles, fewer
   weight re-reads); other tensors are not evicted just to get bigger tiles: writes wear
   flash, reads do not. The staging buffer then takes what room is left, up to a tile's
   channels: each tile reads the step's parameter block once, one group of channels at a
   time (WEIGHT_READ), computing each group after its read (COMPUTE).
5. After the step, tensors read for the last time die: their SRAM is freed, and their chunks
   in flash are TRIMmed (freed early). The inference ends with one INVALIDATE over the whole
   activation key range and a SYNC (a duty-cycled device persists its store between
   inferences; the SYNC marks the point where it may sleep).

Each swapped tensor owns a contiguous key range [first_key, first_key + chunks), assigned in
order of first write, so every inference uses the same keys. A WRITE is flagged long-lived
(pinned) when its tensor is still needed after the next step.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

from flashswap.planner.arena import ALIGN, align
from flashswap.planner.params import Needs
from flashswap.planner.program import (
    Alloc,
    Begin,
    Bind,
    BufferSpec,
    Compute,
    End,
    Free,
    Instr,
    Invalidate,
    Program,
    Read,
    Slide,
    Sync,
    Trim,
    WeightRead,
    Write,
)
from flashswap.planner.steps import Step, StepGraph
from flashswap.planner.tiling import Touch, chunk_lengths, split_evenly, tile_bounds, touch
from flashswap.trace import FLAG_PINNED


class Infeasible(Exception):
    """A step does not fit in the pool even fully streamed with one unit per tile."""

    def __init__(self, step: Step, need: int) -> None:
        super().__init__(step.name)
        self.step = step
        self.need = need


@dataclass
class Schedule:
    """One inference as a program, and what the scheduler counted on the way."""

    program: Program
    key_count: int
    first_key: list[int]  # per storage tensor, -1 if never swapped
    written: np.ndarray  # bytes per storage tensor
    read: np.ndarray
    tiles: list[int]  # per step
    groups: list[int]  # channel groups per tile, per step
    peak: int = 0  # most bytes the pool held at once, by the scheduler's own count
    chunk: list[int] = field(default_factory=list)  # chunk bytes per storage tensor
    windowed: frozenset[int] = frozenset()  # tensors some step streamed through a window


def fixed_extras(n: Needs) -> int:
    """SRAM a step needs whatever its tiling: accumulators and the smallest staging."""
    return align(n.accum) + align(n.min_staging())


def min_step_need(sg: StepGraph, step: Step, chunk: int, needs: Needs) -> int:
    """SRAM the step needs with every tensor streamed and one unit per tile."""
    bounds = tile_bounds(step.units, 1)
    return (sum(touch(io, sg.tensors[io.tensor].nbytes, bounds, chunk).buffer
                for io in (*step.inputs, *step.outputs))
            + align(needs.scratch(1)) + fixed_extras(needs))


class _Window:
    """A streamed tensor's chunk window during one step: chunks [lo, hi) held contiguously."""

    def __init__(self, t: int, buf: int, tc: Touch, lengths: np.ndarray, chunk: int) -> None:
        self.t, self.buf, self.tc, self.lengths, self.chunk = t, buf, tc, lengths, chunk
        self.lo = self.hi = 0

    def start(self, c: int) -> int:
        return c * self.chunk

    def end(self, c: int) -> int:
        return c * self.chunk + int(self.lengths[c])

    def drop_to(self, c: int, out: list[Instr]) -> None:
        """Drop chunks below c from the window's front."""
        if c <= self.lo:
            return
        if c >= self.hi:
            self.lo = self.hi = c
            return
        drop = self.start(c) - self.start(self.lo)
        out.append(Slide(self.buf, drop, self.end(self.hi - 1) - self.start(c)))
        self.lo = c

    def append(self, c: int) -> int:
        """Make room for chunk c at the window's end; returns its byte in the buffer."""
        if self.lo == self.hi:
            self.lo = self.hi = c
        assert c == self.hi, (c, self.lo, self.hi)
        self.hi = c + 1
        return self.start(c) - self.start(self.lo)

    def bind(self) -> Bind:
        return Bind(self.t, self.buf, self.start(self.lo))


class Scheduler:
    def __init__(self, sg: StepGraph, needs: list[Needs], pool: int, chunk: int,
                 macs_per_s: int = 0, chunks: dict[int, int] | None = None) -> None:
        self.sg = sg
        self.needs = needs
        self.pool = pool
        self.chunk = chunk
        # Per-tensor chunk sizes that differ from `chunk` (the planner's widening pass).
        self.chunks = chunks or {}
        self.windowed: set[int] = set()
        self.rate = macs_per_s
        self.res: dict[int, int] = {}  # resident tensor -> its buffer
        self.in_flash: set[int] = set()
        self.first_key = [-1] * len(sg.tensors)
        self.next_key = 0
        self.buffers: list[BufferSpec] = []
        self.prog: list[Instr] = []
        self.written = np.zeros(len(sg.tensors), dtype=np.int64)
        self.read = np.zeros(len(sg.tensors), dtype=np.int64)
        self.tiles: list[int] = []
        self.groups: list[int] = []
        self.peak = 0
        self._lengths: dict[int, np.ndarray] = {}

    # -- helpers --

    def hold(self, nbytes: int) -> None:
        """The pool holds `nbytes` during a step: the scheduler's own count of what it keeps
        (resident tensors, the step's buffers), not a sum of the program's allocations, so
        `layout` can check the program against it."""
        assert nbytes <= self.pool, (nbytes, self.pool)
        self.peak = max(self.peak, nbytes)

    def size(self, t: int) -> int:
        return align(self.sg.tensors[t].nbytes)

    def chunk_of(self, t: int) -> int:
        """Tensor t's chunk size."""
        return self.chunks.get(t, self.chunk)

    def lengths(self, t: int) -> np.ndarray:
        """Tensor t's chunk lengths (computed once per tensor: read-only)."""
        out = self._lengths.get(t)
        if out is None:
            out = self._lengths[t] = chunk_lengths(self.sg.tensors[t].nbytes, self.chunk_of(t))
            out.flags.writeable = False
        return out

    def chunk_length(self, t: int, c: int) -> int:
        """Bytes of chunk c of tensor t: a whole chunk, or what remains of the tensor."""
        k = self.chunk_of(t)
        return min(k, self.sg.tensors[t].nbytes - c * k)

    def window(self, t: int, buf: int, tc: Touch) -> _Window:
        """Tensor t's chunk window for one step (remembered: the widening pass keeps the
        chunk of windowed tensors)."""
        self.windowed.add(t)
        return _Window(t, buf, tc, self.lengths(t), self.chunk_of(t))

    def schedule(self) -> Schedule:
        """The program so far, ended, with the scheduler's counts."""
        if self.next_key:
            self.prog.append(Invalidate(0, self.next_key - 1))
        self.prog.append(Sync())
        self.prog.append(End())
        prog = Program(self.buffers, self.prog)
        return Schedule(prog, self.next_key, self.first_key, self.written, self.read,
                        self.tiles, self.groups, self.peak,
                        [self.chunk_of(t) for t in range(len(self.sg.tensors))],
                        frozenset(self.windowed))

    def next_use(self, t: int, i: int) -> int:
        uses = self.sg.consumers[t]
        j = bisect_left(uses, i)
        return uses[j] if j < len(uses) else 1 << 40

    def alloc(self, size: int, label: str, role: str, tensor: int = -1) -> int:
        b = BufferSpec(len(self.buffers), align(size), label, role, tensor)
        self.buffers.append(b)
        self.prog.append(Alloc(b.id))
        return b.id

    def keys(self, t: int) -> int:
        if self.first_key[t] < 0:
            self.first_key[t] = self.next_key
            self.next_key += len(self.lengths(t))
        return self.first_key[t]

    def write_chunk(self, t: int, c: int, buf: int, at: int, i: int) -> None:
        flags = FLAG_PINNED if self.sg.last_use(t) > i + 1 else 0
        n = self.chunk_length(t, c)
        self.prog.append(Write(self.keys(t) + c, n, buf, at, t, c * self.chunk_of(t), flags))
        self.written[t] += n

    def read_chunk(self, t: int, c: int, buf: int, at: int) -> None:
        n = self.chunk_length(t, c)
        self.prog.append(Read(self.first_key[t] + c, n, buf, at, t, c * self.chunk_of(t)))
        self.read[t] += n

    def evict(self, t: int, i: int) -> None:
        buf = self.res.pop(t)
        if t not in self.in_flash:
            for c in range(len(self.lengths(t))):
                self.write_chunk(t, c, buf, c * self.chunk_of(t), i)
            self.in_flash.add(t)
        self.prog.append(Free(buf))

    def touches(self, s: Step, streamed: list[int], per_tile: int) -> dict[int, Touch]:
        bounds = tile_bounds(s.units, per_tile)
        ios = {io.tensor: io for io in (*s.inputs, *s.outputs)}
        return {t: touch(ios[t], self.sg.tensors[t].nbytes, bounds, self.chunk_of(t))
                for t in streamed}

    def tile_need(self, s: Step, streamed: list[int], per_tile: int) -> int:
        """Windows and scratch of one tile of `per_tile` units."""
        return (sum(tc.buffer for tc in self.touches(s, streamed, per_tile).values())
                + align(self.needs[s.index].scratch(per_tile)))

    # -- the policy --

    def run(self) -> Schedule:
        self.prog.append(Begin(0))
        for s in self.sg.steps:
            self.step(s)
        return self.schedule()

    def plan_step(self, s: Step) -> tuple[set[int], list[int]]:
        """(tensors held whole in SRAM during the step, tensors streamed through flash)."""
        ins = [io.tensor for io in s.inputs]
        outs = [io.tensor for io in s.outputs]
        extras = fixed_extras(self.needs[s.index])
        if (sum(self.size(t) for t in ins + outs) + self.tile_need(s, [], s.units) + extras
                <= self.pool):
            return set(ins + outs), []
        resident = [t for t in ins if t in self.res]
        streamed = [t for t in ins if t not in self.res]
        kept = set(resident + outs)
        by_size = sorted(resident, key=lambda t: (-self.size(t), t))
        order = ([t for t in by_size if t in self.in_flash]
                 + sorted(outs, key=lambda t: (-self.size(t), t))
                 + [t for t in by_size if t not in self.in_flash])
        while (sum(self.size(t) for t in kept) + self.tile_need(s, streamed, 1) + extras
               > self.pool):
            if not order:
                raise Infeasible(s, self.tile_need(s, streamed, 1) + extras)
            t = order.pop(0)
            kept.discard(t)
            streamed.append(t)
        return kept, streamed

    def step(self, s: Step) -> None:
        i = s.index
        n = self.needs[i]
        ins = [io.tensor for io in s.inputs]
        outs = [io.tensor for io in s.outputs]
        kept, streamed = self.plan_step(s)
        kept_bytes = sum(self.size(t) for t in kept)
        for t in ins:  # resident inputs the step streams must first leave SRAM
            if t in self.res and t not in kept:
                self.evict(t, i)
        others = sorted((t for t in self.res if t not in kept),
                        key=lambda t: (-self.next_use(t, i), -self.size(t), t))
        occupied = sum(self.size(t) for t in others)
        # Tiles of one unit unless the whole step fits in one tile: plan_step may keep
        # everything in SRAM and still need tiles (a kernel's scratch grows with the tile,
        # as a fused DEQUANTIZE's int8 band), and eviction makes room for its smallest tile.
        whole = not streamed and (kept_bytes + self.tile_need(s, [], s.units)
                                  + fixed_extras(n) <= self.pool)
        need = kept_bytes + self.tile_need(s, streamed, s.units if whole else 1) \
            + fixed_extras(n)
        while occupied + need > self.pool:
            t = others.pop(0)
            occupied -= self.size(t)
            self.evict(t, i)
        room = self.pool - occupied - kept_bytes - fixed_extras(n)
        per_tile = self.choose_tile(s, streamed, room)
        bounds = tile_bounds(s.units, per_tile)
        tiles = bounds.size - 1
        self.tiles.append(tiles)
        touches = self.touches(s, streamed, per_tile)
        for t in ins:  # inputs held whole but not in SRAM: read them back whole
            if t in kept and t not in self.res:
                buf = self.alloc(self.sg.tensors[t].nbytes, self.sg.tensors[t].name, "tensor", t)
                for c in range(len(self.lengths(t))):
                    self.read_chunk(t, c, buf, c * self.chunk_of(t))
                self.res[t] = buf
        for t in outs:
            if t in kept:
                self.res[t] = self.alloc(self.sg.tensors[t].nbytes, self.sg.tensors[t].name,
                                         "tensor", t)
        windows = {t: self.window(t, self.alloc(touches[t].buffer,
                                                f"{self.sg.tensors[t].name} (tiles)",
                                                "window", t), touches[t])
                   for t in streamed}
        # The staging buffer takes what is left, up to a tile's channels.
        left = (self.pool - occupied - kept_bytes - align(n.accum)
                - self.tile_need(s, streamed, per_tile))
        cap = per_tile if n.by_channel else n.channels
        group = cap
        if n.per_channel:
            group = min(cap, (left // ALIGN * ALIGN - n.common) // n.per_channel)
            assert group >= 1, (s.name, left, n)
            if group >= n.group_channels > 1:  # whole convolution groups (Needs.cuts)
                group = group // n.group_channels * n.group_channels
        staging = self.alloc(n.staging(group), f"{s.name} (parameters)", "staging") \
            if n.block >= 0 else -1
        scratch = self.alloc(n.scratch(per_tile), f"{s.name} (scratch)", "scratch") \
            if n.scratch(per_tile) else -1
        accum = self.alloc(n.accum, f"{s.name} (accumulators)", "accum") if n.accum else -1
        self.hold(occupied + kept_bytes + self.tile_need(s, streamed, per_tile)
                  + align(n.staging(group)) + align(n.accum))
        self.groups.append(len(n.cuts(0, cap, group)) - 1 if n.block >= 0 else 1)
        macs = split_evenly(s.macs, bounds, s.units)
        for k in range(tiles):
            u0, u1 = int(bounds[k]), int(bounds[k + 1])
            for t in streamed:
                w = windows[t]
                if t in ins:
                    tc = w.tc
                    live = np.flatnonzero((tc.first <= k) & (tc.last >= k))
                    w.drop_to(int(live[0]) if live.size else w.hi, self.prog)
                    for c in np.flatnonzero(tc.first == k).tolist():
                        self.read_chunk(t, c, w.buf, w.append(c))
                else:
                    for c in np.flatnonzero(w.tc.first == k).tolist():
                        w.append(c)
            binds = tuple([Bind(t, self.res[t], 0) if t in kept else windows[t].bind()
                           for t in dict.fromkeys(ins + outs)])
            self.compute(s, n, u0, u1, int(macs[k]), group, binds, staging, scratch, accum)
            for t in streamed:
                if t in outs:
                    w = windows[t]
                    done = np.flatnonzero(w.tc.last == k).tolist()
                    for c in done:
                        assert w.lo <= c < w.hi, (c, w.lo, w.hi)
                        self.write_chunk(t, c, w.buf, w.start(c) - w.start(w.lo), i)
                    if done:
                        w.drop_to(done[-1] + 1, self.prog)
        for b in (*(w.buf for w in windows.values()), staging, scratch, accum):
            if b >= 0:
                self.prog.append(Free(b))
        for t in streamed:
            if t in outs:
                self.in_flash.add(t)
        for t in dict.fromkeys(ins + outs):
            if self.sg.last_use(t) != i:
                continue
            if t in self.res:
                self.prog.append(Free(self.res.pop(t)))
            if t in self.in_flash:
                base = self.first_key[t]
                for c in range(len(self.lengths(t))):
                    self.prog.append(Trim(base + c))
                self.in_flash.discard(t)

    def compute(self, s: Step, n: Needs, u0: int, u1: int, macs: int, group: int,
                binds: tuple[Bind, ...], staging: int, scratch: int, accum: int) -> None:
        """One tile: the parameter reads and computes of each channel group."""
        c0, c1 = (u0, u1) if n.by_channel else (0, n.channels)
        if n.block < 0:
            cuts = np.array([c0, c1], dtype=np.int64)
        else:
            cuts = np.array(n.cuts(c0, c1, group), dtype=np.int64)
            if n.common:
                self.prog.append(WeightRead(n.block, 0, n.common, staging, 0))
        shares = split_evenly(macs, cuts - c0, c1 - c0)
        for j in range(cuts.size - 1):
            a, b = int(cuts[j]), int(cuts[j + 1])
            if n.per_channel:
                self.prog.append(WeightRead(n.block, n.common + a * n.per_channel,
                                            (b - a) * n.per_channel, staging, n.common))
            m = int(shares[j])
            us = (m * 1_000_000 + self.rate // 2) // self.rate if self.rate else 0
            self.prog.append(Compute(s.index, s.node_index, u0, u1, a, b, m, us, binds,
                                     staging, n.common, scratch, accum))

    def choose_tile(self, s: Step, streamed: list[int], room: int) -> int:
        """Units per tile: the fewest tiles, evenly sized, whose buffers fit in `room`.

        (Buffer size is not monotone in the tile size: a band that ends mid-chunk keeps that
        chunk pending into the next tile, so each distinct even split is tried in turn.)
        """
        units = max(s.units, 1)
        if self.tile_need(s, streamed, units) <= room:
            return units
        tried: set[int] = set()
        for tiles in range(1, units + 1):
            per_tile = -(-units // tiles)
            if per_tile in tried:
                continue
            tried.add(per_tile)
            if self.tile_need(s, streamed, per_tile) <= room:
                return per_tile
        return 1
