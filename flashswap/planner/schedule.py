"""The swap scheduler: what stays in SRAM, what goes to flash, and how each op is tiled.

One deterministic pass over the steps, with SRAM modelled as a pool of `pool` bytes (every
buffer rounded up to 16 bytes). For step i:

1. Untiled if its inputs and outputs fit in the pool together: inputs in flash are read back
   whole (and stay resident, clean), outputs are produced in SRAM.
2. Otherwise tiled: inputs already in flash are streamed (read chunk by chunk, each chunk
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
   weight re-reads);
   other tensors are not evicted just to get bigger tiles: writes wear flash, reads do not.
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

from flashswap.planner.arena import Buffer, align
from flashswap.planner.steps import Step, StepGraph
from flashswap.planner.tiling import Touch, chunk_lengths, split_evenly, tile_bounds, touch
from flashswap.trace import FLAG_PINNED, RECORD_DTYPE, Op


class Infeasible(Exception):
    """A step does not fit in the pool even fully streamed with one unit per tile."""

    def __init__(self, step: Step, need: int) -> None:
        super().__init__(step.name)
        self.step = step
        self.need = need


@dataclass
class Schedule:
    """One inference's records and the SRAM buffers the plan uses."""

    records: np.ndarray
    buffers: list[Buffer]
    key_count: int
    first_key: list[int]  # per storage tensor, -1 if never swapped
    written: np.ndarray  # bytes per storage tensor
    read: np.ndarray
    tiles: list[int]  # per step
    stats: dict[str, int] = field(default_factory=dict)


def min_step_need(sg: StepGraph, step: Step, chunk: int) -> int:
    """SRAM the step needs with every tensor streamed and one unit per tile."""
    bounds = tile_bounds(step.units, 1)
    return sum(touch(io, sg.tensors[io.tensor].nbytes, bounds, chunk).buffer
               for io in (*step.inputs, *step.outputs))


class Scheduler:
    def __init__(self, sg: StepGraph, pool: int, chunk: int, macs_per_s: int = 0) -> None:
        self.sg = sg
        self.pool = pool
        self.chunk = chunk
        self.rate = macs_per_s
        self.res: dict[int, int] = {}  # resident tensor -> slot its buffer started
        self.in_flash: set[int] = set()
        self.first_key = [-1] * len(sg.tensors)
        self.next_key = 0
        self.rec: list[tuple[int, int, int, int, int, int, int]] = []
        self.buffers: list[Buffer] = []
        self.written = np.zeros(len(sg.tensors), dtype=np.int64)
        self.read = np.zeros(len(sg.tensors), dtype=np.int64)
        self.tiles: list[int] = []

    # -- helpers --

    def size(self, t: int) -> int:
        return align(self.sg.tensors[t].nbytes)

    def lengths(self, t: int) -> np.ndarray:
        return chunk_lengths(self.sg.tensors[t].nbytes, self.chunk)

    def next_use(self, t: int, i: int) -> int:
        uses = self.sg.consumers[t]
        j = bisect_left(uses, i)
        return uses[j] if j < len(uses) else 1 << 40

    def emit(self, op: int, key: int = 0, length: int = 0, value: int = 0, time_us: int = 0,
             flags: int = 0) -> None:
        self.rec.append((op, flags, 0, key, length, time_us, value))

    def write_chunks(self, t: int, chunks: np.ndarray, i: int) -> None:
        if self.first_key[t] < 0:
            self.first_key[t] = self.next_key
            self.next_key += len(self.lengths(t))
        flags = FLAG_PINNED if self.sg.last_use(t) > i + 1 else 0
        lengths = self.lengths(t)
        base = self.first_key[t]
        for c in chunks.tolist():
            self.emit(Op.WRITE, base + c, int(lengths[c]), flags=flags)
        self.written[t] += int(lengths[chunks].sum())

    def read_chunks(self, t: int, chunks: np.ndarray) -> None:
        lengths = self.lengths(t)
        base = self.first_key[t]
        for c in chunks.tolist():
            self.emit(Op.READ, base + c, int(lengths[c]))
        self.read[t] += int(lengths[chunks].sum())

    def evict(self, t: int, i: int) -> None:
        if t not in self.in_flash:
            self.write_chunks(t, np.arange(len(self.lengths(t))), i)
            self.in_flash.add(t)
        self.buffers.append(Buffer(self.res.pop(t), 2 * i, self.sg.tensors[t].nbytes,
                                   self.sg.tensors[t].name))

    def touches(self, s: Step, streamed: list[int], per_tile: int) -> dict[int, Touch]:
        bounds = tile_bounds(s.units, per_tile)
        ios = {io.tensor: io for io in (*s.inputs, *s.outputs)}
        return {t: touch(ios[t], self.sg.tensors[t].nbytes, bounds, self.chunk)
                for t in streamed}

    def tile_need(self, s: Step, streamed: list[int], per_tile: int) -> int:
        return sum(tc.buffer for tc in self.touches(s, streamed, per_tile).values())

    # -- the policy --

    def run(self) -> Schedule:
        self.emit(Op.INFERENCE_BEGIN, value=0)
        for s in self.sg.steps:
            self.step(s)
        if self.next_key:
            self.emit(Op.INVALIDATE, 0, value=self.next_key - 1)
        self.emit(Op.SYNC)
        self.emit(Op.INFERENCE_END)
        return Schedule(np.array(self.rec, dtype=RECORD_DTYPE), self.buffers, self.next_key,
                        self.first_key, self.written, self.read, self.tiles)

    def plan_step(self, s: Step) -> tuple[set[int], list[int]]:
        """(tensors held whole in SRAM during the step, tensors streamed through flash)."""
        ins = [io.tensor for io in s.inputs]
        outs = [io.tensor for io in s.outputs]
        if sum(self.size(t) for t in ins + outs) <= self.pool:
            return set(ins + outs), []
        resident = [t for t in ins if t in self.res]
        streamed = [t for t in ins if t not in self.res]
        kept = set(resident + outs)
        by_size = sorted(resident, key=lambda t: (-self.size(t), t))
        order = ([t for t in by_size if t in self.in_flash]
                 + sorted(outs, key=lambda t: (-self.size(t), t))
                 + [t for t in by_size if t not in self.in_flash])
        while sum(self.size(t) for t in kept) + self.tile_need(s, streamed, 1) > self.pool:
            if not order:
                raise Infeasible(s, self.tile_need(s, streamed, 1))
            t = order.pop(0)
            kept.discard(t)
            streamed.append(t)
        return kept, streamed

    def step(self, s: Step) -> None:
        i = s.index
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
        need = kept_bytes + (self.tile_need(s, streamed, 1) if streamed else 0)
        while occupied + need > self.pool:
            t = others.pop(0)
            occupied -= self.size(t)
            self.evict(t, i)
        per_tile = self.choose_tile(s, streamed, self.pool - occupied - kept_bytes)
        bounds = tile_bounds(s.units, per_tile)
        tiles = bounds.size - 1
        self.tiles.append(tiles)
        touches = self.touches(s, streamed, per_tile)
        for t in ins:  # inputs held whole but not in SRAM: read them back whole
            if t in kept and t not in self.res:
                self.read_chunks(t, np.arange(len(self.lengths(t))))
                self.res[t] = 2 * i + 1
        groups = {t: _group(touches[t].first if t in ins else touches[t].last, tiles)
                  for t in streamed}
        macs = split_evenly(s.macs, bounds, s.units)
        shares = [split_evenly(nb, bounds, s.units) if s.split_weights
                  else np.full(tiles, nb, dtype=np.int64) for _, nb in s.weights]
        for k in range(tiles):
            for t in streamed:
                if t in ins:
                    self.read_chunks(t, groups[t][k])
            for (wid, _), share in zip(s.weights, shares, strict=True):
                if share[k]:
                    self.emit(Op.WEIGHT_READ, wid, int(share[k]))
            if not s.virtual:
                m = int(macs[k])
                us = (m * 1_000_000 + self.rate // 2) // self.rate if self.rate else 0
                self.emit(Op.COMPUTE, s.node_index, value=m, time_us=us)
            for t in streamed:
                if t in outs:
                    self.write_chunks(t, groups[t][k], i)
        for t in streamed:
            self.buffers.append(Buffer(2 * i + 1, 2 * i + 1, touches[t].buffer,
                                       f"{self.sg.tensors[t].name} (tiles)"))
            if t in outs:
                self.in_flash.add(t)
        for t in outs:
            if t in kept:
                self.res[t] = 2 * i + 1
        for t in dict.fromkeys(ins + outs):
            if self.sg.last_use(t) != i:
                continue
            if t in self.res:
                self.buffers.append(Buffer(self.res.pop(t), 2 * i + 1,
                                           self.sg.tensors[t].nbytes, self.sg.tensors[t].name))
            if t in self.in_flash:
                base = self.first_key[t]
                for c in range(len(self.lengths(t))):
                    self.emit(Op.TRIM, base + c)
                self.in_flash.discard(t)

    def choose_tile(self, s: Step, streamed: list[int], room: int) -> int:
        """Units per tile: the fewest tiles, evenly sized, whose chunk buffers fit in `room`.

        (Buffer size is not monotone in the tile size: a band that ends mid-chunk keeps that
        chunk pending into the next tile, so each distinct even split is tried in turn.)
        """
        units = max(s.units, 1)
        if not streamed:
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


def _group(tile_of_chunk: np.ndarray, tiles: int) -> list[np.ndarray]:
    """Chunk indices grouped by tile (chunks of one tile in ascending order)."""
    order = np.argsort(tile_of_chunk, kind="stable")
    cuts = np.searchsorted(tile_of_chunk[order], np.arange(tiles + 1))
    return [order[cuts[k]:cuts[k + 1]] for k in range(tiles)]
