"""The naive layout: what firmware without a flash translation layer does.

Each key owns a fixed slot, assigned in first-touch order; a slot is the largest chunk rounded
up to the program unit (or to whole erase units when larger than one). Writing a key erases
the erase unit(s) under its slot and programs it in place; slots sharing an erase unit with it
are read first and programmed back (read-modify-write), because erasing takes the whole unit.
Trim and invalidate only forget the data in RAM: nothing is written.

On a managed device (SD/eMMC) sectors are simply overwritten: the card's FTL erases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer.device import ReplayFlash
from analyzer.engine_base import Engine, Spare, erase_plan
from flashswap.errors import InputError
from flashswap.sizes import format_size

if TYPE_CHECKING:
    from analyzer.lifetime import Options
    from analyzer.workload import Workload


class NaiveEngine(Engine):
    name = "naive"
    store = "naive"
    replay_cost = 1
    model = "periodic"

    def __init__(self, flash: ReplayFlash, max_chunk: int, keys: int) -> None:
        super().__init__(flash)
        unit = flash.page_size
        es = flash.erase_size
        slot = -(-max(max_chunk, 1) // unit) * unit
        if slot >= es:
            slot = -(-slot // es) * es
            per_block = 1
        else:
            per_block = es // slot
        self.slot = slot
        self.per_block = per_block
        self.keys = keys
        self.managed = flash.kind == "managed"
        capacity_slots = (flash.size // es) * per_block if slot < es else flash.size // slot
        if keys > capacity_slots:
            raise InputError(
                f"naive layout needs {keys} slots of {slot} bytes ({keys * slot} bytes) but "
                f"{flash.part.name} at {flash.size} bytes holds {capacity_slots}: the working "
                "set exceeds the capacity"
            )
        self.slots: dict[int, int] = {}  # key -> slot index
        self.length: dict[int, int] = {}  # key -> bytes held (absent: nothing live)
        self.by_block: dict[int, list[int]] = {}  # block -> keys whose slots lie in it

    @classmethod
    def build(
        cls, flash: ReplayFlash, wl: Workload, opt: Options, config: dict[str, Any]
    ) -> NaiveEngine:
        return cls(flash, wl.max_chunk, wl.distinct_keys)

    def _addr(self, slot: int) -> int:
        es = self.flash.erase_size
        if self.slot >= es:
            return slot * self.slot
        return (slot // self.per_block) * es + (slot % self.per_block) * self.slot

    def _slot_of(self, key: int) -> int:
        s = self.slots.get(key)
        if s is None:
            s = len(self.slots)
            self.slots[key] = s
            if self.slot < self.flash.erase_size:
                self.by_block.setdefault(s // self.per_block, []).append(key)
        return s

    def put(self, key: int, data: bytes | memoryview) -> None:
        f = self.flash
        addr = self._addr(self._slot_of(key))
        n = len(data)
        if self.managed:
            f.program(addr, _pad(data, f.page_size))
        elif self.slot >= f.erase_size:
            for a, s in erase_plan(f, addr, -(-n // f.erase_size) * f.erase_size):
                f.erase(a, s)
            es = f.erase_size
            for off in range(0, n, es):  # a program may not cross an erase unit
                f.program(addr + off, data[off : off + es])
        else:
            block = addr // f.erase_size
            keep = [
                (self._addr(self.slots[k]), f.read(self._addr(self.slots[k]), self.length[k]))
                for k in self.by_block[block]
                if k != key and k in self.length
            ]
            f.erase(block * f.erase_size)
            for a, d in sorted(keep + [(addr, data)]):
                f.program(a, d)
        self.length[key] = n

    def get(self, key: int, length: int) -> bytes:
        return self.flash.read(self._addr(self.slots[key]), length)

    def trim(self, key: int) -> None:
        self.length.pop(key, None)

    def invalidate(self, first: int, last: int) -> None:
        for k in [k for k in self.length if first <= k <= last]:
            del self.length[k]

    def spare(self) -> Spare:
        """Fixed slots, no remapping: the first worn erase unit under a slot ends it."""
        es = self.flash.erase_size
        held = (-(-self.keys // self.per_block) if self.slot < es
                else self.keys * (self.slot // es))
        return Spare(self.flash.num_blocks, held, 0, False,
                     "no remapping: the first worn slot ends it")

    def config(self) -> dict[str, Any]:
        return {"slot_bytes": self.slot, "slots_per_erase_unit": self.per_block}

    def describe(self) -> str:
        return f"{format_size(self.slot)} slots"


def _pad(data: bytes | memoryview, unit: int) -> bytes | memoryview:
    n = len(data)
    if n % unit == 0:
        return data
    return bytes(data) + b"\xff" * (unit - n % unit)
