"""A simulated device running a plan: an SRAM arena, a store partition and a weights partition.

The store gets a `FlashSim` partition of the part (formatted once, like a device's first
boot); the parameter blocks get their own partition of the same part (weights.py); inferences
run one after another, each followed by the store's idle work as a duty-cycled device does it
between inferences (at most `IDLE_STEP_CAP` steps, as the analyzer's replay does, so the flash
counters of a run and of the analyzer's replay of the planned trace are the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flashswap.errors import InputError, NoSpaceError
from flashswap.exec.executor import Executor, Result
from flashswap.exec.weights import WeightsRegion, block_layouts, pack_blocks
from flashswap.flash import FlashSim
from flashswap.parts import Part, get_part
from flashswap.planner import Plan
from flashswap.planner.program import Instr, Invalidate, Trim, Write
from flashswap.sizes import format_size
from flashswap.store.config import MAX_KEYS_CAP, index_limit, options
from flashswap.store.engine import StoreEngine, format_store, mount_store
from flashswap.store.layout import REC_SIZE

IDLE_STEP_CAP = 256  # analyzer/replay.py's cap: far above what the store ever asks for
DEFAULT_PART = "W25Q128JV"
DEFAULT_CAPACITY_CAP = 16 << 20


def default_capacity(part: Part, weights_bytes: int) -> int:
    """The store's partition when none is given: the part less the weights region, at most
    16 MiB (a simulated partition costs host memory as it is formatted)."""
    es = part.erase_size
    return max(es, min(part.capacity - weights_bytes, DEFAULT_CAPACITY_CAP) // es * es)


@dataclass
class Counters:
    """A FlashSim's counters at one moment."""

    reads: int
    programs: int
    erases: int
    read_bytes: int
    program_bytes: int
    erased_units: int
    time_s: float
    energy_j: float

    @classmethod
    def of(cls, f: FlashSim) -> Counters:
        return cls(f.ops["reads"], f.ops["programs"], f.ops["erases"], int(f.read_bytes.sum()),
                   int(f.program_bytes.sum()), int(f.erase_counts.sum()), f.time_s, f.energy_j)

    def minus(self, o: Counters) -> Counters:
        return Counters(*(a - b for a, b in zip(self.astuple(), o.astuple(), strict=True)))

    def astuple(self) -> tuple[Any, ...]:
        return (self.reads, self.programs, self.erases, self.read_bytes, self.program_bytes,
                self.erased_units, self.time_s, self.energy_j)


class Device:
    """Runs `plan` on a simulated `part` with the store engine registered as `engine`
    (flashswap/store/engine.py: "python" or "c").

    A new device formats its store partition; given `flash` (a partition that already holds
    a store, e.g. a copy taken before an inference) and `weights`, it mounts instead."""

    def __init__(self, plan: Plan, part: str = DEFAULT_PART, capacity: int | None = None,
                 engine: str = "python", seed: int = 0, *, segment_size: int | None = None,
                 flash: FlashSim | None = None, weights: WeightsRegion | None = None) -> None:
        p = get_part(part) if flash is None else flash.part
        if p.kind == "managed":
            raise InputError(f"{p.name} is a managed device (SD/eMMC): the store runs on raw "
                             "flash (nor, nand, internal)")
        self.plan = plan
        self.part = p
        self.engine = engine
        if weights is None:
            weights = WeightsRegion(pack_blocks(plan, block_layouts(plan)), p.name, seed)
        self.weights = weights
        if flash is None:
            cap = default_capacity(p, weights.capacity) if capacity is None else capacity
            if cap + weights.capacity > p.capacity:
                raise InputError(f"store partition {format_size(cap)} and weights region "
                                 f"{format_size(weights.capacity)} exceed {p.name}'s "
                                 f"{format_size(p.capacity)}")
            flash = FlashSim(p, cap, seed=seed)
            self.store: StoreEngine = format_store(
                engine, flash, segment_size=segment_size,
                max_keys=_max_keys(plan, flash, segment_size))
        else:
            self.store = mount_store(engine, flash)
        largest = max((w.length for w in plan.program.instrs if type(w) is Write), default=0)
        if largest > self.store.max_chunk:
            raise InputError(f"the store's {format_size(flash.size)} partition on {p.name} takes "
                             f"chunks of at most {self.store.max_chunk:,} B; the plan writes "
                             f"{largest:,} B chunks: give a larger --capacity or a smaller "
                             "--chunk")
        self.flash = flash
        self.executor = Executor(plan, self.store, weights)
        self.after_format = Counters.of(self.flash)

    def infer(self, inputs: list[np.ndarray], index: int = 0) -> Result:
        """One inference, then the store's idle work."""
        try:
            result = self.executor.run(inputs, index)
        except NoSpaceError as e:  # the partition, not the plan, is too small
            chunks, size = live_chunks(self.plan), live_bytes(self.plan)
            raise InputError(f"the store's {format_size(self.flash.size)} partition on "
                             f"{self.part.name} is full ({e}); the plan keeps up to {chunks} "
                             f"chunks ({format_size(size)}) in flash at once: give a larger "
                             "--capacity") from None
        steps = 0
        while steps < IDLE_STEP_CAP and self.store.idle(1):
            steps += 1
        return result

    def corrupt_after_write(self, key: int) -> None:
        """Fault injection: right after the plan writes chunk `key`, one stored bit of its
        first payload byte flips (a retention fault; no flash command does that, so the
        simulator's array is changed directly). The store must report the chunk damaged when
        it is read back."""
        writes = [w for w in self.plan.program.instrs if type(w) is Write and w.key == key]
        if not writes:
            raise InputError(f"the plan writes no swap chunk {key} (keys 0.."
                             f"{self.plan.metadata['key_count'] - 1})")
        if REC_SIZE + writes[0].length < self.flash.page_size:
            raise InputError(f"chunk {key} ({writes[0].length} B) is smaller than a program "
                             f"unit: its bytes may still be in the store's buffer")
        done: list[int] = []

        def flip(ins: Instr) -> None:
            if isinstance(ins, Write) and ins.key == key and not done:
                addr = chunk_address(self.store, key) + REC_SIZE
                self.flash._inv[addr] ^= 0x01
                done.append(addr)

        self.executor.after = flip

    def reboot(self) -> None:
        """Power comes back: SRAM is lost, the store is mounted from flash."""
        self.store = mount_store(self.engine, self.flash)
        self.executor.store = self.store


def chunk_address(store: Any, key: int) -> int:
    """Flash address of the first record of chunk `key` (either engine's index)."""
    if hasattr(store, "index"):
        return int(store.index[key][0])
    e = store._entries()  # the C library's index entries (fsw_traverse: key, size, addr, lost)
    return int(e["addr"][e["key"] == key][0])


def live_chunks(plan: Plan) -> int:
    """The most swap chunks the plan keeps in the store at once."""
    return _live_peak(plan, lambda ins: 1)


def live_bytes(plan: Plan) -> int:
    """The most swap chunk bytes the plan keeps in the store at once."""
    return _live_peak(plan, lambda ins: ins.length)


def _live_peak(plan: Plan, weight: Any) -> int:
    live: dict[int, int] = {}
    total = peak = 0
    for ins in plan.program.instrs:
        if isinstance(ins, Write):
            total += weight(ins) - live.get(ins.key, 0)
            live[ins.key] = weight(ins)
            peak = max(peak, total)
        elif isinstance(ins, Trim):
            total -= live.pop(ins.key, 0)
        elif isinstance(ins, Invalidate):
            for k in [k for k in live if ins.first <= k <= ins.last]:
                total -= live.pop(k)
    return peak


def _max_keys(plan: Plan, flash: FlashSim, segment_size: int | None) -> int | None:
    """The store's default index, or a larger one when the plan keeps more chunks live (the
    index must hold them all; a checkpoint bounds it, `index_limit`)."""
    need = live_chunks(plan)
    if need <= MAX_KEYS_CAP:
        return None
    seg = segment_size or options(flash, None, None, None, None, None).geo.seg_size
    if need > index_limit(seg):
        raise InputError(f"the plan keeps {need} chunks in flash at once; the store's index "
                         f"holds at most {index_limit(seg)} with {format_size(seg)} segments: "
                         f"use a larger --chunk")
    return need
