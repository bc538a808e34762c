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

from flashswap.errors import InputError
from flashswap.exec.executor import Executor, Result
from flashswap.exec.weights import WeightsRegion, block_layouts, pack_blocks
from flashswap.flash import FlashSim
from flashswap.parts import Part, get_part
from flashswap.planner import Plan
from flashswap.sizes import format_size
from flashswap.store import Store

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
    """Runs `plan` on a simulated `part` with the store engine `engine` ("python" or "c")."""

    def __init__(self, plan: Plan, part: str = DEFAULT_PART, capacity: int | None = None,
                 engine: str = "python", seed: int = 0) -> None:
        p = get_part(part)
        if p.kind == "managed":
            raise InputError(f"{p.name} is a managed device (SD/eMMC): the store runs on raw "
                             "flash (nor, nand, internal)")
        self.plan = plan
        self.part = p
        self.engine = engine
        self.weights = WeightsRegion(pack_blocks(plan, block_layouts(plan)), p.name, seed)
        cap = default_capacity(p, self.weights.capacity) if capacity is None else capacity
        if cap + self.weights.capacity > p.capacity:
            raise InputError(f"store partition {format_size(cap)} and weights region "
                             f"{format_size(self.weights.capacity)} exceed {p.name}'s "
                             f"{format_size(p.capacity)}")
        self.flash = FlashSim(p, cap, seed=seed)
        self.store = Store.format(self.flash, engine=engine)
        self.executor = Executor(plan, self.store, self.weights)
        self.after_format = Counters.of(self.flash)

    def infer(self, inputs: list[np.ndarray], index: int = 0) -> Result:
        """One inference, then the store's idle work."""
        result = self.executor.run(inputs, index)
        steps = 0
        while steps < IDLE_STEP_CAP and self.store.idle(1):
            steps += 1
        return result

    def reboot(self) -> None:
        """Power comes back: SRAM is lost, the store is mounted from flash."""
        self.store = Store.mount(self.flash, engine=self.engine)
        self.executor.store = self.store
