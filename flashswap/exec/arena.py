"""The SRAM arena: one byte buffer exactly the budget's size; buffers are views at offsets.

The executor allocates, frees and moves buffers where the plan's program says; the arena checks
each request (inside the arena, no overlap with a live buffer) and measures what is allocated,
so the peak it reports is measured, not copied from the plan. Fresh buffers are filled with a
poison byte, so a kernel that reads bytes nobody wrote gives a wrong answer instead of a lucky
right one.
"""

from __future__ import annotations

import numpy as np

from flashswap.errors import FlashswapError

POISON = 0xA5


class ArenaError(FlashswapError):
    """A program asked for something the arena cannot do (a planner or executor bug)."""


class Arena:
    def __init__(self, size: int) -> None:
        self.mem = np.zeros(size, dtype=np.uint8)
        self.size = size
        self.live: dict[int, tuple[int, int]] = {}  # buffer -> (offset, size)
        self.used = 0
        self.peak = 0
        self.high_water = 0
        self.moved = 0

    def _check(self, buf: int, offset: int, size: int) -> None:
        if offset < 0 or offset + size > self.size:
            raise ArenaError(f"buffer {buf} at [{offset}, {offset + size}) is outside the "
                             f"{self.size}-byte arena")
        for other, (o, s) in self.live.items():
            if other != buf and o < offset + size and offset < o + s:
                raise ArenaError(f"buffer {buf} at [{offset}, {offset + size}) overlaps "
                                 f"buffer {other} at [{o}, {o + s})")

    def alloc(self, buf: int, offset: int, size: int) -> None:
        if buf in self.live:
            raise ArenaError(f"buffer {buf} allocated twice")
        self._check(buf, offset, size)
        self.live[buf] = (offset, size)
        self.mem[offset:offset + size] = POISON
        self.used += size
        self.peak = max(self.peak, self.used)
        self.high_water = max(self.high_water, offset + size)

    def free(self, buf: int) -> None:
        self.used -= self._live(buf, "freed")[1]
        del self.live[buf]

    def _live(self, buf: int, what: str) -> tuple[int, int]:
        if buf not in self.live:
            raise ArenaError(f"buffer {buf} {what} but not allocated")
        return self.live[buf]

    def move(self, buf: int, src: int, dst: int) -> None:
        """A compaction move: the buffer's bytes go to `dst` (a memmove)."""
        off, size = self._live(buf, "moved")
        if off != src:
            raise ArenaError(f"buffer {buf} is at {off}, not {src}")
        self._check(buf, dst, size)
        self.mem[dst:dst + size] = self.mem[src:src + size]  # numpy copies overlapping ranges
        self.live[buf] = (dst, size)
        self.moved += size

    def slide(self, buf: int, drop: int, keep: int) -> None:
        """Drops the first `drop` bytes of a buffer; the next `keep` move to its start."""
        off, size = self._live(buf, "slid")
        if drop < 0 or keep < 0 or drop + keep > size:
            raise ArenaError(f"slide of buffer {buf} by {drop} ({keep} kept) exceeds {size}")
        self.mem[off:off + keep] = self.mem[off + drop:off + drop + keep]

    def view(self, buf: int, start: int = 0, length: int | None = None) -> np.ndarray:
        """Bytes [start, start + length) of a live buffer, as a writable uint8 view."""
        off, size = self._live(buf, "used")
        n = size - start if length is None else length
        if start < 0 or n < 0 or start + n > size:
            raise ArenaError(f"bytes [{start}, {start + n}) are outside buffer {buf} "
                             f"({size} bytes)")
        return self.mem[off + start:off + start + n]
