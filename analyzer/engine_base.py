"""What every storage layer under test offers the replay loop, and the facts projection needs.

An engine turns the trace's logical operations (put, get, trim, bulk invalidate, sync, idle)
into flash operations on a `ReplayFlash`. Besides the operations it declares:
- `model`: which steady-state estimator fits it (analyzer/steady.py explains each);
- `group`: erase units that fail together (a store segment spanning several units is retired
  as a whole when any of them fails);
- `spare_groups()`: how many groups it can lose and still hold the trace's working set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from analyzer.device import ReplayFlash

STORES = ("flashswap", "littlefs", "naive")


class Engine(ABC):
    """A storage layer driven by replay (see module doc)."""

    name: str = ""
    model: str = "circulating"  # "periodic", "leveled" or "circulating"
    group: int = 1
    hot_spots_move: bool = True  # for "circulating": hot units are transient

    def __init__(self, flash: ReplayFlash) -> None:
        self.flash = flash

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

    def spare_groups(self) -> int:
        """Groups the engine can lose (worn out) while still holding the working set."""
        return 0

    def config(self) -> dict[str, Any]:
        """The engine's settings, for reports."""
        return {}


def erase_plan(flash: Any, addr: int, size: int) -> list[tuple[int, int]]:
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
