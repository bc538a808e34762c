"""What every storage layer under test offers the replay loop, and the facts projection needs.

An engine turns the trace's logical operations (put, get, trim, bulk invalidate, sync, idle)
into flash operations on a `ReplayFlash`. Each engine class declares, as class attributes:
- `name`: its key in the registry (analyzer/engines.py), e.g. "littlefs-tensor";
- `store`: the storage layer reports group it under ("littlefs"), and `variant` the way it
  uses that layer ("tensor"), if the layer has several;
- `replay_cost`: a rough rank of its replay cost (the CLI starts the costliest jobs first);
- `model`: which steady-state estimator fits it (analyzer/steady.py explains each);
and, as methods, `build` (its construction from the workload and options), `configs` (the
settings worth trying on a part: the CLI reports the best) and the stint hook `stint_erases`.
Instances also state:
- `group`: erase units that fail together (a store segment spanning several units is retired
  as a whole when any of them fails);
- `spare()`: how many groups it can lose and still hold the trace's working set, counted
  the same way for every store (`Spare`: its good groups, minus the groups its peak of live
  data occupies in its own allocation units, minus what it keeps back by design), and
  whether it carries on at all after a group wears out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from analyzer.device import ReplayFlash

if TYPE_CHECKING:
    from analyzer.lifetime import Options
    from analyzer.workload import Workload
    from flashswap.flash import FlashDevice
    from flashswap.parts import Part


@dataclass(frozen=True)
class Spare:
    """What a store can lose to wear before the working set no longer fits (in groups, its
    unit of retirement): `total` good groups, `working_set` groups its peak of live data
    occupies, `reserved` groups it keeps back by design. `remaps`: it carries on when a group
    wears out (retires or relocates around it); if not, the first worn group ends it."""

    total: int
    working_set: int
    reserved: int
    remaps: bool
    on_wear: str  # what the store does when a group wears out, in words

    @property
    def groups(self) -> int:
        return max(0, self.total - self.working_set - self.reserved) if self.remaps else 0


class Engine(ABC):
    """A storage layer driven by replay (see module doc)."""

    name: ClassVar[str]
    store: ClassVar[str]
    variant: ClassVar[str] = ""
    replay_cost: ClassVar[int] = 1
    model: ClassVar[str] = "circulating"  # "periodic", "leveled" or "circulating"
    group: int = 1

    def __init__(self, flash: ReplayFlash) -> None:
        self.flash = flash

    @classmethod
    @abstractmethod
    def build(
        cls, flash: ReplayFlash, wl: Workload, opt: Options, config: dict[str, Any]
    ) -> Engine:
        """The engine for `wl` on `flash` with one of `configs()`'s settings."""

    @classmethod
    def configs(cls, part: Part, capacity: int, opt: Options) -> list[dict[str, Any]]:
        """Settings worth trying on `part` (the report shows the best); one by default."""
        return [{}]

    @staticmethod
    def flash_part(part: Part, config: dict[str, Any]) -> Part:
        """The part as the engine drives it with `config` (littlefs with a block larger than
        the smallest erase erases only that size); the part itself by default."""
        return part

    def stint_erases(self) -> int | None:
        """For "circulating" engines whose hot spots move: the erases a hot unit takes before
        the engine moves it (its own rule), or None to let the estimator measure them."""
        return None

    @property
    def hot_spots_move(self) -> bool:
        """For "circulating": hot units are transient (they move on after a stint)."""
        return True

    @abstractmethod
    def put(self, key: int, data: bytes | memoryview) -> None: ...

    @abstractmethod
    def get(self, key: int, length: int) -> bytes: ...

    @abstractmethod
    def trim(self, key: int) -> None: ...

    @abstractmethod
    def invalidate(self, first: int, last: int) -> None: ...

    def sync(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Make written data durable; engines that write through need nothing."""

    def idle(self) -> int:
        """One step of background work between inferences; 0 when there is none."""
        return 0

    def burn_in(self, free_key: int) -> None:  # noqa: B027 - optional hook
        """Bring the engine past its first pass over a fresh device, if that pass differs
        from the steady state (see FlashswapEngine); `free_key` is unused by the trace."""

    def log_units(self) -> float | None:
        """Log space used since format, in erase units (fractional), for log-structured
        engines that can tell; None otherwise."""
        return None

    def static_units(self) -> int:
        """Erase units pinned by long-lived data (they take no share of the erases)."""
        return 0

    def spare(self) -> Spare:
        """What the engine can lose to wear (see Spare); by default nothing: a worn unit is
        fatal."""
        groups = self.flash.num_blocks // self.group
        return Spare(groups, groups, 0, False, "no remapping: the first worn unit ends it")

    def config(self) -> dict[str, Any]:
        """The engine's settings, for reports."""
        return {}

    def describe(self) -> str:
        """Its configuration in a few words, for the report ("file per tensor, 4 KiB
        blocks")."""
        return self.variant

    @classmethod
    def label(cls, config: dict[str, Any]) -> str:
        """`describe` for a configuration that could not run (no instance to ask)."""
        return cls.variant or cls.name


def erase_plan(flash: FlashDevice, addr: int, size: int) -> list[tuple[int, int]]:
    """(address, size) erases covering [addr, addr+size) with the fewest commands: the largest
    aligned erase size that fits at each step, as a driver for a multi-size NOR would."""
    out = []
    end = addr + size
    sizes = sorted(flash.erase_sizes, reverse=True)
    while addr < end:
        for s in sizes:
            if addr % s == 0 and addr + s <= end:
                out.append((addr, s))
                addr += s
                break
        else:
            raise ValueError(f"range {addr:#x}+{size} is not aligned to the erase unit")
    return out
