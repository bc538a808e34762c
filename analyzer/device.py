"""The simulated flash that replay runs on: FlashSim plus the two facts the analyzer needs.

1. *Consumption*: how many times each erase unit went from erased to programmed. On raw flash
   every consumption after the first needs exactly one erase, so over a long run a unit's
   consumption rate equals its erase rate. Unlike erases, consumption is visible from the first
   pass of a store that erases the whole device at format (the flashswap store does), so the
   steady-state erase rate can be measured without replaying a whole pass first.
2. *First failure*: the inference during which the device first refused an operation because
   a block wore out (wear="error"), for validating projections against a replay to failure.

Everything else (rules, counters, time, energy, wear) is FlashSim's, with one shortcut:
`read_deferred` returns the same bytes as `read` but books its counters in bulk at
`flush_reads()`, which the replay loop calls before it reads the flash's time and counters.
littlefs re-reads metadata pages millions of times per inference on NAND, and per-read
bookkeeping dominated replay time; the sums come out the same (tests compare them).
The order matters on NAND (a read of the page already in the data register skips tR), so a
program or erase leaves a marker in the pending list and a direct read books the pending
ones first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flashswap.errors import FlashWearError
from flashswap.flash import FlashSim

_INVERT = bytes(255 - i for i in range(256))
PENDING_MAX = 1 << 16  # deferred reads booked at once at most (bounds memory)


class ReplayFlash(FlashSim):
    """FlashSim that also counts consumptions per erase unit and notes the first wear-out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fresh = np.ones(self.num_blocks, dtype=bool)  # erased and not programmed since
        self.consumed = np.zeros(self.num_blocks, dtype=np.int64)
        self.first_failure: str | None = None
        self.clock = 0  # the replay sets it to the inference index; read by first_failure_at
        self.first_failure_at: int | None = None
        # Endurance cells per erase unit: > 1 when an engine drives a part only with a larger
        # erase (littlefs on 64 KiB NOR blocks): the unit then wears out with its weakest
        # sector (the Weibull projection draws one endurance per sector).
        self.sectors_per_unit = 1
        self._inv_view = self._inv.data
        self._pending_addr: list[int] = []
        self._pending_len: list[int] = []
        self._pending_reg = -1  # the NAND data register's page before the first pending read

    def read_deferred(self, addr: int, n: int) -> bytes:
        """`read` with the accounting postponed to `flush_reads` (see module doc)."""
        if self.bit_errors or n <= 0 or addr < 0 or addr + n > self.size:
            return self.read(addr, n)  # rule errors and bit flips stay FlashSim's
        self._defer(addr, n)
        # FlashSim stores bytes inverted (0 = erased); translate is the cheapest inversion.
        return self._inv_view[addr : addr + n].tobytes().translate(_INVERT)

    def note_read(self, addr: int, n: int) -> None:
        """Book a read whose bytes the caller already holds (a cache it keeps coherent)."""
        self._defer(addr, n)

    def _defer(self, addr: int, n: int) -> None:
        if not self._pending_addr:
            self._pending_reg = int(self._reg[0])
        elif len(self._pending_addr) >= PENDING_MAX:
            self.flush_reads()
            self._pending_reg = int(self._reg[0])
        self._pending_addr.append(addr)
        self._pending_len.append(n)

    def read(self, addr: int, n: int) -> bytes:
        if self._pending_addr:
            self.flush_reads()
        return super().read(addr, n)

    def read_spare(self, page_addr: int, n: int | None = None) -> bytes:
        if self._pending_addr:
            self.flush_reads()
        return super().read_spare(page_addr, n)

    def flush_reads(self) -> None:
        """Book the deferred reads exactly as `read` would have, one vector operation each."""
        if not self._pending_addr:
            return
        a = np.array(self._pending_addr, dtype=np.int64)
        n = np.array(self._pending_len, dtype=np.int64)
        self._pending_addr, self._pending_len = [], []
        self.account_reads(a, n, self._pending_reg)

    def _barrier(self) -> None:
        """A program or erase between pending reads: it empties the NAND data register."""
        if self._pending_addr:
            self._pending_addr.append(-1)
            self._pending_len.append(0)

    def program(self, addr: int, data: Any, spare: Any = None) -> None:
        self._barrier()
        try:
            super().program(addr, data, spare)
        except FlashWearError as e:
            self._note_failure(e)
            raise
        es = self.erase_size
        b0 = int(addr) // es
        n = len(data) if not isinstance(data, np.ndarray) else data.nbytes
        b1 = (int(addr) + max(n, 1) - 1) // es + 1  # managed writes may span sectors
        if b1 - b0 == 1:
            if self.fresh[b0]:
                self.fresh[b0] = False
                self.consumed[b0] += 1
            return
        seg = self.fresh[b0:b1]
        self.consumed[b0:b1] += seg
        seg[:] = False

    def erase(self, addr: int, size: int | None = None) -> None:
        self._barrier()
        try:
            super().erase(addr, size)
        except FlashWearError as e:
            self._note_failure(e)
            raise
        es = self.erase_size
        n = es if size is None else int(size)
        self.fresh[int(addr) // es : (int(addr) + n) // es] = True

    def _note_failure(self, e: FlashWearError) -> None:
        if self.first_failure is None and "factory-bad" not in str(e):
            self.first_failure = str(e)
            self.first_failure_at = self.clock
