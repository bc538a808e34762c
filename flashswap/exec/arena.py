"""The SRAM arena: one byte buffer exactly the budget's size; buffers are views at offsets.

The executor allocates, frees and moves buffers where the plan's program says; the arena checks
each request (inside the arena, no overlap with a live buffer). Fresh buffers are filled with a
poison byte, so a kernel that reads bytes nobody wrote gives a wrong answer instead of a lucky
right one.

Two peaks. `reserved_peak` is the most bytes allocated at once: the program's allocations
summed, so it equals the plan's `peak_sram` by construction (it checks the layout, not the
plan's accounting). `peak` is measured from use: a buffer *uses* bytes [0, e) where e is the
end of the furthest byte any view of it reached during its life (a flash READ or WRITE, a
parameter read, a kernel's band, scratch or accumulator: the executor asks for each kernel's
own demand, not for the whole buffer); `peak` is the most such bytes of buffers live at once.
So `peak < reserved_peak` is SRAM the plan reserved and no instruction touched, and a kernel
that needs more than its buffer gives an error instead of a silent overrun.
"""

from __future__ import annotations

import numpy as np

from flashswap.errors import FlashswapError

POISON = 0xA5


class ArenaError(FlashswapError):
    """A program asked for something the arena cannot do (a planner or executor bug)."""


class Arena:
    def __init__(self, size: int, labels: list[str] | None = None) -> None:
        self.labels = labels  # buffer names for errors (the program's labels), if known
        self.mem = np.zeros(size, dtype=np.uint8)
        self.size = size
        self.live: dict[int, tuple[int, int]] = {}  # buffer -> (offset, size)
        self.used = 0
        self.reserved_peak = 0
        self.high_water = 0
        self.moved = 0
        self.life: dict[int, int] = {}  # live buffer -> index of its lifetime in `extent`
        self.extent: list[int] = []  # per buffer lifetime: bytes [0, e) of it used so far
        self.events: list[int] = []  # lifetime i allocated: i; freed: ~i (in program order)

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
        self.reserved_peak = max(self.reserved_peak, self.used)
        self.high_water = max(self.high_water, offset + size)
        self.life[buf] = len(self.extent)
        self.events.append(len(self.extent))
        self.extent.append(0)

    def free(self, buf: int) -> None:
        self.used -= self._live(buf, "freed")[1]
        del self.live[buf]
        self.events.append(~self.life.pop(buf))

    @property
    def peak(self) -> int:
        """The most bytes used (see the module docstring) by buffers live at once."""
        total = best = 0
        for e in self.events:
            if e >= 0:
                total += self.extent[e]
                best = max(best, total)
            else:
                total -= self.extent[~e]
        return best

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
        i = self.life[buf]
        self.extent[i] = max(self.extent[i], drop + keep)

    def view(self, buf: int, start: int = 0, length: int | None = None) -> np.ndarray:
        """Bytes [start, start + length) of a live buffer, as a writable uint8 view."""
        off, size = self._live(buf, "used")
        n = size - start if length is None else length
        if start < 0 or n < 0 or start + n > size:
            name = f"'{self.labels[buf]}'" if self.labels else f"buffer {buf}"
            raise ArenaError(f"bytes [{start}, {start + n}) of {name}: needs {start + n:,} B, "
                             f"the plan reserved {size:,} B")
        i = self.life[buf]
        self.extent[i] = max(self.extent[i], start + n)
        return self.mem[off + start:off + start + n]

    def claim(self, buf: int, start: int, n: int, what: str) -> np.ndarray | None:
        """The `n` bytes at `start` of buffer `buf` (-1: the plan gave none) that a kernel
        demands (`what` names it and the demand), or an error naming both sizes if the plan
        reserved fewer: a plan that under-reserves fails here instead of overrunning."""
        if n <= 0:
            return None
        have = self._live(buf, "used")[1] if buf >= 0 else 0
        if start + n > have:
            raise ArenaError(f"{what}: needs {start + n:,} B, the plan reserved {have:,} B")
        return self.view(buf, start, n)
