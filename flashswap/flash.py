"""FlashSim: a byte-exact flash device that enforces its part's rules and counts everything.

It is the referee for the store, the analyzer and the tests, so every rule a real device (or
its datasheet) imposes is checked and reported as `FlashRuleError` before anything changes:
range, erase-block crossing, setting a bit from 0 to 1 without an erase, erase size and
alignment, NAND partial-program count (NOP) and in-block page order, spare area only on
NAND, the write unit of MCU internal flash. Managed devices (SD/eMMC) expose 512-byte
sectors that may be overwritten: their FTL is inside the card.

Model choices (kept simple on purpose, and stated so results can be judged):
- One call to `program` may cover several pages inside one smallest erase block, as a driver
  looping page programs would; each page touched is one program operation for the counters,
  time, NOP and the power-cut countdown. Time per page is the full-page tPROG (conservative
  for partial NOR pages).
- `erase` of a larger size is one operation (one power-cut step, one `ops['erases']`) that
  counts one erase on each smallest unit it covers (`erase_counts`).
- NAND reads: `t_read_us` (tR) is paid once per page loaded into the device's data register;
  a read that starts on the page already there (the last page read, main or spare area, with
  no program or erase since) skips it, as a driver that remembers its loaded page does (the
  page-read command, 13h on SPI NAND, is only needed for another page). Programs and erases
  go through or disturb the register and empty it.
- Counters count attempts, including torn and worn-out operations; `program_bytes` and
  `read_bytes` include spare-area bytes.
- Wear: `erase_counts` can be reset with `reset_counters()`, the block's cumulative erase
  count (`wear_counts`) cannot. A block whose cumulative count exceeds its endurance is worn:
  the erase that takes it past its endurance is the first to fail. wear="error": that erase
  and every later program/erase on the block raise `FlashWearError` and change no data.
  wear="silent": they complete but 1% of the bits they should change (at least one) stay wrong.
- Bit errors (NAND, bit_errors=True): reads return data with random bit flips; the stored data
  never changes. The raw bit error rate is log-linear in the block's cumulative erase count:
  log10(rber) goes from log10(rber_fresh) at 0 cycles to log10(rber_end) at the rated
  endurance, and keeps the same slope beyond it (capped at 0.5).
- ECC: a part with `ecc` in the catalogue (on-die, or required of the host by its datasheet)
  has its reads corrected as that ECC would: each `ecc_sector` the read touches draws its raw
  errors over the whole sector; up to `ecc_bits` of them are corrected (the read is clean),
  more are returned as they are (uncorrectable). `ecc=False` gives raw reads. The spare area
  (bad-block marker) is read raw, and a silently worn block's stuck bits are stored data, not
  read errors: ECC does not hide them here, so erase verification still sees real wear.
- Factory-bad blocks (NAND): a 0x00 byte at spare offset 0 of the block's first page (the
  ONFI / vendor convention); program and erase on them raise `FlashWearError` at once.
  Block 0 is never chosen at random (vendors guarantee it good).
- Grown bad block: `fail_after(n)` lets n more page-programs/erases complete; the next one
  fails with `FlashWearError` and changes nothing, and its block stays bad (every later
  program and erase of it fails; reads still work), as a block that fails in the field. The
  pages of the same `program` call before it complete; the error's `pages_done` says how
  many (a driver looping page programs knows where it stopped).
- Power cut: `power_cut_after(n)` lets n more page-programs/erases complete; the next one is
  torn and raises `PowerCut`. A torn program leaves each bit it should change either old or
  new (seeded random); a torn erase sets a random half of the bytes of its range to 0xFF.

Typical use::

    sim = FlashSim.from_part("W25N01GV", capacity=8 * 128 * 1024, seed=1, factory_bad=1)
    sim.erase(0)
    sim.program(0, payload, spare=bytes(2))         # several pages of one block
    n = sim.ops_count                               # then re-run with power_cut_after(k)
    sim.erase_counts, sim.program_bytes, sim.time_s, sim.energy_j

Storage is inverted in memory (0 means an erased 0xFF byte) so that `np.zeros` gives a
lazily-allocated erased device: a multi-GiB part costs only the pages actually touched.
"""

from __future__ import annotations

import copy as _copy
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from flashswap.errors import FlashRuleError, FlashWearError, InputError, PowerCut
from flashswap.parts import Bus, Part, get_part, part_from_table

WEAR_MODES = (None, "error", "silent")
_SILENT_FAIL_FRACTION = 0.01
_FORMAT = "flashswap-flashsim"
_VERSION = 1
_ARRAYS = (
    "_inv",
    "_spare_inv",
    "_page_writes",
    "_next_page",
    "_wear",
    "erase_counts",
    "program_bytes",
    "read_bytes",
    "block_endurance",
    "factory_bad_blocks",
)

Buffer = bytes | bytearray | memoryview | np.ndarray


def _u8(data: Buffer) -> np.ndarray:
    """A flat uint8 view of any bytes-like object (no copy)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """True if any bit is set in both arrays (uint64 views when the sizes allow)."""
    if a.size % 8 == 0 and a.size:
        return bool(np.bitwise_and(a.view(np.uint64), b.view(np.uint64)).any())
    return bool(np.bitwise_and(a, b).any())


class FlashDevice(Protocol):
    """What a store engine asks of a flash device: its geometry and the three commands of raw
    flash, plus the NAND spare-area read for factory bad-block marks. `FlashSim` is one; a
    device for another purpose (a driver, a recorder) needs only these."""

    kind: str  # "nor", "nand", "internal" or "managed" (parts.toml)
    size: int  # bytes of the main area
    erase_size: int  # the smallest erase unit
    erase_sizes: tuple[int, ...]  # every erase unit the device offers, within its size
    page_size: int  # the program unit
    spare_size: int  # spare bytes per page (NAND), else 0
    nop: int  # programs allowed per page between erases (NAND), 0: unlimited

    def read(self, addr: int, n: int, /) -> bytes: ...

    def read_spare(self, page_addr: int, n: int, /) -> bytes: ...

    def program(self, addr: int, data: Buffer, /) -> None: ...

    def erase(self, addr: int, size: int, /) -> None: ...


class FlashSim:
    """A simulated flash device for one `Part` (see the module doc for the model)."""

    def __init__(
        self,
        part: Part | str,
        capacity: int | None = None,
        *,
        seed: int = 0,
        wear: str | None = None,
        endurance: int | None = None,
        weibull: tuple[float, float] | None = None,
        bit_errors: bool = False,
        factory_bad: int | Iterable[int] | None = None,
        ecc: bool = True,
        bus: Bus | None = None,
    ) -> None:
        if isinstance(part, str):
            part = get_part(part)
        self.part = part
        self.kind = part.kind
        size = part.capacity if capacity is None else _int(capacity, "capacity")
        es = part.erase_size
        if size <= 0 or size % es or size > part.capacity:
            raise InputError(
                f"capacity {size} for {part.name} must be a positive multiple of its "
                f"{es}-byte erase unit, at most {part.capacity}"
            )
        if wear not in WEAR_MODES:
            raise InputError(f"wear must be None, 'error' or 'silent', got {wear!r}")
        self.size = size
        self.erase_size = es
        self.erase_sizes = tuple(s for s in part.erase_sizes if s <= size)
        self.page_size = part.page_size
        self.spare_size = part.spare_size
        self.nop = part.nop
        self.num_blocks = size // es
        self.pages_per_block = es // part.page_size
        self.num_pages = size // part.page_size
        self.seed = int(seed)
        self.wear = wear
        self.endurance = part.endurance if endurance is None else _int(endurance, "endurance")
        if self.endurance <= 0:
            raise InputError(f"endurance must be positive, got {self.endurance}")
        self.weibull = None if weibull is None else (float(weibull[0]), float(weibull[1]))
        self._nand = part.kind == "nand"
        self._internal = part.kind == "internal"
        self._managed = part.kind == "managed"
        self.bit_errors = bool(bit_errors) and self._nand
        self.ecc = bool(ecc)
        self._ecc = ((part.ecc_bits, part.ecc_sector)
                     if self.ecc and part.ecc_bits and part.ecc_sector else None)
        # Separate streams so that, e.g., turning Weibull on does not move the bad blocks.
        wear_ss, bad_ss, ops_ss = np.random.SeedSequence(self.seed).spawn(3)
        self._rng = np.random.default_rng(ops_ss)

        self._inv = np.zeros(size, dtype=np.uint8)
        self._spare_inv = np.zeros(self.num_pages * self.spare_size, dtype=np.uint8)
        tracked = self._nand or self._internal
        self._page_writes = np.zeros(self.num_pages if tracked else 0, dtype=np.uint8)
        self._next_page = np.zeros(self.num_blocks if self._nand else 0, dtype=np.int32)
        self._wear = np.zeros(self.num_blocks, dtype=np.int64)
        self.erase_counts = np.zeros(self.num_blocks, dtype=np.int64)
        self.program_bytes = np.zeros(self.num_blocks, dtype=np.int64)
        self.read_bytes = np.zeros(self.num_blocks, dtype=np.int64)
        self.block_endurance = self._draw_endurance(wear_ss)
        self.factory_bad_blocks = self._place_bad(factory_bad, bad_ss)
        self._bad = np.zeros(self.num_blocks, dtype=bool)
        self._bad[self.factory_bad_blocks] = True
        self._grown = np.zeros(self.num_blocks, dtype=bool)  # bad since fail_after fired
        self._cut: int | None = None
        self._fail: int | None = None
        self.ops_count = 0
        self.ops = {"reads": 0, "programs": 0, "erases": 0}
        self.time_s = self.time_max_s = self.energy_j = self.energy_max_j = 0.0
        # NAND data register: the page it holds (-1: none). An array so that the C engine's
        # fast path (firmware/port/simport.c) shares it.
        self._reg = np.full(1, -1, dtype=np.int64)
        self.bus = self._check_bus(bus)
        self._rates()

    # --- construction helpers ----------------------------------------------------------
    @classmethod
    def from_part(
        cls,
        name: str,
        capacity: int | None = None,
        *,
        parts_files: Iterable[Path | str] = (),
        **kwargs: Any,
    ) -> FlashSim:
        """A simulator for the catalogue part `name` (case-insensitive)."""
        return cls(get_part(name, parts_files), capacity, **kwargs)

    def _draw_endurance(self, ss: np.random.SeedSequence) -> np.ndarray:
        if self.weibull is None:
            # Uniform endurance: a read-only broadcast costs no memory on huge devices.
            return np.broadcast_to(np.int64(self.endurance), (self.num_blocks,))
        shape, scale = self.weibull
        if shape <= 0 or scale <= 0:
            raise InputError(f"weibull (shape, scale) must be positive, got {self.weibull}")
        draws = scale * np.random.default_rng(ss).weibull(shape, self.num_blocks)
        return np.maximum(draws.astype(np.int64), 0)

    def _place_bad(self, factory_bad: Any, ss: np.random.SeedSequence) -> np.ndarray:
        if factory_bad is None:
            return np.zeros(0, dtype=np.int64)
        if not self._nand:
            raise InputError(f"factory-bad blocks exist only on NAND ({self.part.name})")
        if isinstance(factory_bad, int | np.integer):
            count = int(factory_bad)
            if not 0 <= count < self.num_blocks:
                raise InputError(f"factory_bad count must be 0..{self.num_blocks - 1}")
            chosen = np.random.default_rng(ss).choice(
                np.arange(1, self.num_blocks), size=count, replace=False
            )
            bad = np.sort(chosen).astype(np.int64)
        else:
            bad = np.array(sorted({int(b) for b in factory_bad}), dtype=np.int64)
            if bad.size and (bad[0] < 0 or bad[-1] >= self.num_blocks):
                raise InputError(f"factory_bad blocks must be in 0..{self.num_blocks - 1}")
        first_pages = bad * self.pages_per_block
        self._spare_inv[first_pages * self.spare_size] = 0xFF  # true byte 0x00: bad marker
        return bad

    def _check_bus(self, bus: Bus | None) -> Bus | None:
        """The interface page data crosses: the board's `bus`, by default the part's fastest
        (raw flash only; managed and internal parts' figures include their transfers)."""
        top = self.part.bus
        if bus is None or top is None:
            if bus is not None:
                raise InputError(f"{self.part.name} is {self.kind}: its figures include the "
                                 "transfer, it takes no bus setting")
            return top
        if bus.mhz <= 0 or bus.width not in (1, 2, 4, 8, 16):
            raise InputError(f"bus {bus.mhz:g} MHz x {bus.width} bits: the clock must be "
                             "positive and the width one of 1, 2, 4, 8, 16")
        if bus.mhz > top.mhz or bus.width > top.width or (bus.ddr and not top.ddr):
            raise InputError(f"bus {bus.describe()} exceeds {self.part.name}'s "
                             f"{top.describe()}")
        return bus

    def _rates(self) -> None:
        """Per-operation time and energy, precomputed from the part's figures. Raw flash moves
        page data over its bus (`self.bus`): a read costs tR per page loaded plus its bytes at
        the bus rate, a program tPROG per page plus its bytes (spare included) at the bus
        rate, both at the read current (the device is active on the bus). Managed and
        internal parts have no bus: read_mbps, and program times with the transfer in them."""
        p = self.part
        v = p.voltage * 1e-3
        self._tp, self._tp_max = p.t_prog_s(), p.t_prog_s(worst=True)
        self._ep, self._ep_max = self._tp * p.i_prog_ma * v, self._tp_max * p.i_prog_ma * v
        self._te = {s: (p.t_erase_s(s), p.t_erase_s(s, worst=True)) for s in self.erase_sizes}
        self._w_erase = p.i_erase_ma * v
        self._t_page_read = p.t_read_us * 1e-6
        self._bw = self.bus.bytes_per_s if self.bus is not None else p.read_mbps * 1e6
        self._prog_bus = self.bus is not None  # program data crosses the bus too
        self._w_read = p.i_read_ma * v
        lo, hi = p.rber if p.rber is not None else (0.0, 0.0)
        self._log_rber = (np.log10(lo), np.log10(hi)) if lo > 0 else None

    # --- reads ---------------------------------------------------------------------------
    def read(self, addr: int, n: int) -> bytes:
        """Read n bytes of the main area (with random bit flips if bit_errors is on)."""
        addr, n = int(addr), int(n)
        self._check_range(addr, n, "read")
        out = np.invert(self._inv[addr : addr + n])
        if n == 0:
            return b""
        if self.bit_errors:
            self._flip(out, addr)
        self._spread(self.read_bytes, addr, n)
        p0, p1 = addr // self.page_size, (addr + n - 1) // self.page_size
        self._account_read(n, p1 - p0 + 1 - self._load(p0, p1))
        return out.tobytes()

    def read_spare(self, page_addr: int, n: int | None = None) -> bytes:
        """Read the first n (default: all) spare bytes of the page at page_addr (NAND)."""
        page_addr = int(page_addr)
        if not self._nand:
            raise FlashRuleError(f"{self.part.name} is {self.kind}: only NAND has a spare area")
        self._check_range(page_addr, 1, "spare read")
        if page_addr % self.page_size:
            raise FlashRuleError(
                f"spare read at {page_addr:#x}: address must be page-aligned "
                f"({self.page_size} bytes)"
            )
        n = self.spare_size if n is None else int(n)
        if not 0 <= n <= self.spare_size:
            raise FlashRuleError(f"spare read of {n} bytes: the spare area has {self.spare_size}")
        start = page_addr // self.page_size * self.spare_size
        out = np.invert(self._spare_inv[start : start + n])
        if self.bit_errors and n:
            self._flip(out, page_addr, block_only=True)
        self.read_bytes[page_addr // self.erase_size] += n
        p = page_addr // self.page_size
        self._account_read(n, 1 - self._load(p, p))
        return out.tobytes()

    def _load(self, p0: int, p1: int) -> int:
        """A NAND read of pages p0..p1: 1 when p0 is already in the data register (its tR is
        saved), else 0; the register holds p1 after."""
        if not self._nand:
            return 0
        hit = int(self._reg[0] == p0)
        self._reg[0] = p1
        return hit

    def account_reads(self, addrs: np.ndarray, lens: np.ndarray, reg: int | None = None) -> None:
        """Book many reads at once, exactly as `read` books each (no data moves): for replay
        engines that keep their own coherent copy of bytes they re-read often. An address
        below 0 marks a program or erase between two reads (it empties the NAND data
        register); `reg` is the page the register held before the first read (default: what
        it holds now)."""
        a = np.asarray(addrs, dtype=np.int64)
        n = np.asarray(lens, dtype=np.int64)
        if a.size == 0:
            return
        ps, es = self.page_size, self.erase_size
        first, last = a // ps, (a + n - 1) // ps
        pages = last - first + 1
        real = a >= 0
        if self._nand:
            last = np.where(real, last, -1)
            prev = np.concatenate(([self._reg[0] if reg is None else reg], last[:-1]))
            pages -= first == prev
            self._reg[0] = last[-1]
        if not real.all():
            a, n, pages = a[real], n[real], pages[real]
        t = float((pages * self._t_page_read + n / self._bw).sum())
        self.ops["reads"] += int(a.size)
        self.time_s += t
        self.time_max_s += t
        self.energy_j += t * self._w_read
        self.energy_max_j += t * self._w_read
        b0, b1 = a // es, (a + n - 1) // es
        one = b0 == b1
        np.add.at(self.read_bytes, b0[one], n[one])
        for addr, length in zip(a[~one].tolist(), n[~one].tolist(), strict=True):
            self._spread(self.read_bytes, addr, length)

    def _account_read(self, n: int, pages: int) -> None:
        t = pages * self._t_page_read + n / self._bw
        self.ops["reads"] += 1
        self.time_s += t
        self.time_max_s += t
        self.energy_j += t * self._w_read
        self.energy_max_j += t * self._w_read

    def _flip(self, buf: np.ndarray, addr: int, block_only: bool = False) -> None:
        """Flip random bits of buf (read from addr) at each block's raw bit error rate."""
        if self._ecc is not None and not block_only:
            self._flip_ecc(buf, addr)
            return
        es = self.erase_size
        if block_only:
            starts = np.zeros(1, dtype=np.int64)
            lens = np.array([buf.size], dtype=np.int64)
            blocks = np.array([addr // es])
        else:
            blocks = np.arange(addr // es, (addr + buf.size - 1) // es + 1)
            starts = np.maximum(blocks * es, addr) - addr
            lens = np.minimum((blocks + 1) * es, addr + buf.size) - addr - starts
        counts = self._rng.binomial(lens * 8, self.rber(blocks))
        total = int(counts.sum())
        if total == 0:
            return
        seg = np.repeat(np.arange(blocks.size), counts)
        bits = starts[seg] * 8 + (self._rng.random(total) * (lens[seg] * 8)).astype(np.int64)
        masks = np.left_shift(1, bits & 7).astype(np.uint8)
        np.bitwise_xor.at(buf, bits >> 3, masks)

    def _flip_ecc(self, buf: np.ndarray, addr: int) -> None:
        """The read through the part's ECC: sectors with more raw errors than it corrects
        keep them all (see the module doc)."""
        t, sec = self._ecc  # type: ignore[misc]
        s0, s1 = addr // sec, (addr + buf.size - 1) // sec
        if self._log_rber is None:
            return
        secs = np.arange(s0, s1 + 1)
        if s0 == s1:  # the common small read: one scalar draw (numpy's overhead dominates)
            lo, hi = self._log_rber
            wear = int(self._wear[s0 * sec // self.erase_size])
            p = min(10.0 ** (lo + (hi - lo) * wear / self.endurance), 0.5)
            counts = np.array([self._rng.binomial(sec * 8, p)])
        else:
            counts = self._rng.binomial(sec * 8, self.rber(secs * sec // self.erase_size))
        for i in np.flatnonzero(counts > t):
            bits = (int(secs[i]) * sec - addr) * 8 + self._rng.integers(0, sec * 8, counts[i])
            bits = bits[(bits >= 0) & (bits < buf.size * 8)]
            np.bitwise_xor.at(buf, bits >> 3, np.left_shift(1, bits & 7).astype(np.uint8))

    def rber(self, blocks: Any = None) -> np.ndarray:
        """Raw bit error rate of the given blocks (default all) at their current wear."""
        wear = self._wear if blocks is None else self._wear[blocks]
        if self._log_rber is None:
            return np.zeros(np.shape(wear))
        lo, hi = self._log_rber
        return np.minimum(10.0 ** (lo + (hi - lo) * wear / self.endurance), 0.5)

    # --- program -----------------------------------------------------------------------
    def program(self, addr: int, data: Buffer, spare: Buffer | None = None) -> None:
        """Program data at addr (and spare bytes of the same pages, NAND only)."""
        addr = int(addr)
        new = _u8(data)
        if self._managed:
            self._program_managed(addr, new, spare)
            return
        blk, p0, p1, sp = self._check_program(addr, new, spare)
        self._reg[0] = -1
        worn = self._check_device(blk, "program")
        n, ps, ss = new.size, self.page_size, self.spare_size
        npages = p1 - p0
        if self._fail is not None:
            # Page by page, as a driver programs them: the failure fires at its page unless a
            # cut tears an earlier one; else it stays armed, less the pages attempted (the
            # engines split programs differently, and must meet the same faults).
            torn = self._cut if self._cut is not None and self._cut < npages else None
            if self._fail < npages and (torn is None or self._fail <= torn):
                self._grow_bad(blk, self._fail, lambda k: self.program(
                    addr, new[: min(n, (p0 + k) * ps - addr)],
                    None if sp is None else sp[: k * ss]), "program")
            self._fail -= npages if torn is None else torn + 1
        cut = self._countdown(npages)
        att = npages if cut < 0 else cut + 1  # pages attempted (the torn one included)
        end_att = n if cut < 0 else min(n, (p0 + att) * ps - addr)
        sp_att = 0 if sp is None else min(sp.size, att * ss)
        self._account_programs(att, end_att + sp_att)
        self.program_bytes[blk] += end_att + sp_att
        if self._page_writes.size:
            self._page_writes[p0 : p0 + att] += 1
        if self._nand:
            rel = p0 + att - blk * self.pages_per_block
            self._next_page[blk] = max(int(self._next_page[blk]), rel)
        stored = self._inv[addr : addr + n]
        spare_seg = None if sp is None else self._spare_inv[p0 * ss : p0 * ss + sp_att]
        if cut < 0:
            if worn:  # silent wear-out: completes with some bits left set
                stored[:] = ~self._fault(~stored, new, clear=True)
                if spare_seg is not None and sp is not None:
                    spare_seg[:] = ~self._fault(~spare_seg, sp, clear=True)
            else:
                np.invert(new, out=stored)
                if spare_seg is not None and sp is not None:
                    np.invert(sp, out=spare_seg)
            return
        # torn: the pages before the cut complete; the cut page mixes old and new bits
        end_done = min(n, max(0, (p0 + cut) * ps - addr))
        np.invert(new[:end_done], out=stored[:end_done])
        stored[end_done:end_att] = ~self._tear(~stored[end_done:end_att], new[end_done:end_att])
        if spare_seg is not None and sp is not None:
            sd = min(sp.size, cut * ss)
            np.invert(sp[:sd], out=spare_seg[:sd])
            spare_seg[sd:] = ~self._tear(~spare_seg[sd:], sp[sd:sp_att])
        raise PowerCut(
            f"power cut during page program {cut + 1} of {npages} at {(p0 + cut) * ps:#x} "
            f"(operation {self.ops_count})"
        )

    def _check_program(
        self, addr: int, new: np.ndarray, spare: Buffer | None
    ) -> tuple[int, int, int, np.ndarray | None]:
        """Every rule of a raw-flash program; returns (block, first page, end page, spare)."""
        n = new.size
        if n == 0 and spare is None:
            raise FlashRuleError(f"program at {addr:#x} of 0 bytes: nothing to program")
        self._check_range(addr, max(n, 1), "program")
        es, ps = self.erase_size, self.page_size
        blk = addr // es
        last = addr + max(n, 1) - 1
        if last // es != blk:
            raise FlashRuleError(
                f"program of {n} bytes at {addr:#x} crosses the erase-block boundary at "
                f"{(blk + 1) * es:#x}: split it per block"
            )
        p0, p1 = addr // ps, last // ps + 1
        sp = self._check_spare(addr, spare, p1 - p0)
        if self._internal and (addr % ps or n % ps):
            raise FlashRuleError(
                f"program of {n} bytes at {addr:#x}: {self.part.name} writes whole aligned "
                f"{ps}-byte words"
            )
        stored = self._inv[addr : addr + n]
        if _overlap(new, stored):
            self._raise_bit_set(addr, new, stored)
        if sp is not None:
            s0 = p0 * self.spare_size
            if _overlap(sp, self._spare_inv[s0 : s0 + sp.size]):
                raise FlashRuleError(
                    f"spare program of page {p0} ({addr:#x}) sets bits 0->1: erase the block first"
                )
        if self._page_writes.size:
            self._check_pages(blk, p0, p1)
        return blk, p0, p1, sp

    def _account_programs(self, pages: int, nbytes: int = 0) -> None:
        """`pages` page programs whose `nbytes` of data crossed the bus (raw flash)."""
        self.ops["programs"] += pages
        t_bus = nbytes / self._bw if self._prog_bus else 0.0
        self.time_s += pages * self._tp + t_bus
        self.time_max_s += pages * self._tp_max + t_bus
        self.energy_j += pages * self._ep + t_bus * self._w_read
        self.energy_max_j += pages * self._ep_max + t_bus * self._w_read

    def stream_cost(self, nbytes: int, pages: int = 1) -> tuple[float, float]:
        """Seconds and joules of reading `nbytes` touching `pages` pages in one streamed
        read (tR per page, the bytes over the bus), without touching the device: weights
        streamed from the same part."""
        t = pages * self._t_page_read + nbytes / self._bw
        return t, t * self._w_read

    def _program_managed(self, addr: int, new: np.ndarray, spare: Buffer | None) -> None:
        """SD/eMMC: whole 512-byte sectors, overwrite allowed (the card's FTL erases)."""
        if spare is not None:
            raise FlashRuleError(f"{self.part.name} is managed: only NAND has a spare area")
        n, ps = new.size, self.page_size
        if n == 0 or addr % ps or n % ps:
            raise FlashRuleError(
                f"write of {n} bytes at {addr:#x}: {self.part.name} takes whole aligned "
                f"{ps}-byte sectors"
            )
        self._check_range(addr, n, "write")
        b0, b1 = addr // ps, (addr + n) // ps
        if self._bad[b0:b1].any():  # never true today; kept for symmetry with erase
            raise FlashWearError(f"sector {b0} is bad")
        worn = (self._wear[b0:b1] > self.block_endurance[b0:b1]).any()
        if worn and self.wear == "error":
            b = b0 + self._first_worn(b0, b1)
            raise FlashWearError(
                f"sector {b} worn out after {int(self.block_endurance[b])} erase cycles: "
                "write failed"
            )
        cut = self._countdown(b1 - b0)
        att = b1 - b0 if cut < 0 else cut + 1
        self._account_programs(att)
        self.program_bytes[b0 : b0 + att] += ps
        stored = self._inv[addr : addr + n]
        if cut < 0:
            if worn and self.wear == "silent":
                self._store(addr, self._fault(~stored, new, clear=False))
            else:
                np.invert(new, out=stored)
            return
        done = cut * ps
        np.invert(new[:done], out=stored[:done])
        self._store(addr + done, self._tear(~stored[done : done + ps], new[done : done + ps]))
        raise PowerCut(f"power cut during sector write {cut + 1} of {b1 - b0} at {addr + done:#x}")

    def _check_spare(self, addr: int, spare: Buffer | None, npages: int) -> np.ndarray | None:
        if spare is None:
            return None
        if not self._nand:
            raise FlashRuleError(f"{self.part.name} is {self.kind}: only NAND has a spare area")
        if addr % self.page_size:
            raise FlashRuleError(
                f"program with spare at {addr:#x}: address must be page-aligned "
                f"({self.page_size} bytes)"
            )
        sp = _u8(spare)
        if sp.size > npages * self.spare_size:
            raise FlashRuleError(
                f"{sp.size} spare bytes for {npages} page(s) of {self.spare_size} spare bytes"
            )
        return sp

    def _check_pages(self, blk: int, p0: int, p1: int) -> None:
        writes = self._page_writes[p0:p1]
        full = writes >= self.nop
        if full.any():
            p = p0 + int(np.argmax(full))
            unit = "word" if self._internal else "page"
            raise FlashRuleError(
                f"{unit} {p} at {p * self.page_size:#x} already programmed {self.nop} time(s) "
                f"since its erase: NOP limit of {self.part.name} is {self.nop}"
            )
        if self._nand:
            top = int(self._next_page[blk]) - 1
            rel = p0 - blk * self.pages_per_block
            if rel < top:
                raise FlashRuleError(
                    f"page {rel} of block {blk} ({p0 * self.page_size:#x}) programmed after "
                    f"page {top}: NAND pages must be programmed in ascending order"
                )

    def _raise_bit_set(self, addr: int, new: np.ndarray, stored: np.ndarray) -> None:
        i = int(np.flatnonzero(np.bitwise_and(new, stored))[0])
        old = int(~stored[i] & 0xFF)
        raise FlashRuleError(
            f"program at {addr + i:#x} sets bits 0->1 (old {old:#04x}, new {int(new[i]):#04x}):"
            " program can only clear bits; erase first"
        )

    # --- erase ---------------------------------------------------------------------------
    def erase(self, addr: int, size: int | None = None) -> None:
        """Erase `size` bytes (default: the smallest erase unit) at an aligned addr to 0xFF."""
        addr = int(addr)
        size = self.erase_size if size is None else int(size)
        if size not in self.erase_sizes:
            sizes = ", ".join(str(s) for s in self.erase_sizes)
            raise FlashRuleError(f"erase size {size} is not one of {self.part.name}'s ({sizes})")
        if addr % size:
            raise FlashRuleError(
                f"erase of {size} bytes at {addr:#x}: address not aligned to {size}"
            )
        self._check_range(addr, size, "erase")
        self._reg[0] = -1
        es = self.erase_size
        b0, b1 = addr // es, (addr + size) // es
        if self._bad[b0:b1].any():
            self._check_device(b0 + int(np.argmax(self._bad[b0:b1])), "erase")
        if self._fail is not None:
            if self._fail:
                self._fail -= 1
            else:
                self._grow_bad(b0, 0, lambda k: None, "erase")
        self._wear[b0:b1] += 1
        self.erase_counts[b0:b1] += 1
        worn_mask = self._wear[b0:b1] > self.block_endurance[b0:b1]
        worn = bool(worn_mask.any())
        if worn and self.wear == "error":
            b = b0 + int(np.argmax(worn_mask))
            raise FlashWearError(
                f"block {b} worn out after {int(self.block_endurance[b])} erase cycles: "
                "erase failed"
            )
        cut = self._countdown(1)
        t, t_max = self._te[size]
        self.ops["erases"] += 1
        self.time_s += t
        self.time_max_s += t_max
        self.energy_j += t * self._w_erase
        self.energy_max_j += t_max * self._w_erase
        region = self._inv[addr : addr + size]
        ppb, ss = self.pages_per_block, self.spare_size
        spare = self._spare_inv[b0 * ppb * ss : b1 * ppb * ss]
        if self._page_writes.size:
            self._page_writes[b0 * ppb : b1 * ppb] = 0
        if self._nand:
            self._next_page[b0:b1] = 0
        if cut >= 0:
            region[self._rng.random(size) < 0.5] = 0
            spare[self._rng.random(spare.size) < 0.5] = 0
            raise PowerCut(
                f"power cut during erase of {size} bytes at {addr:#x} (operation {self.ops_count})"
            )
        old = region.copy() if worn else None
        region[:] = 0
        spare[:] = 0
        if old is not None:  # silent wear: some bits of worn blocks fail to set
            for i in np.flatnonzero(worn_mask):
                lo = i * es
                region[lo : lo + es] = ~self._fault(
                    ~old[lo : lo + es], np.full(es, 0xFF, np.uint8), clear=False
                )

    # --- power cut, wear, faults ----------------------------------------------------------
    def power_cut_after(self, n: int | None) -> None:
        """Let n more page-programs/erases complete, then tear the next one (None disarms)."""
        if n is not None and int(n) < 0:
            raise InputError(f"power_cut_after needs n >= 0 or None, got {n}")
        self._cut = None if n is None else int(n)

    def fail_after(self, n: int | None) -> None:
        """Let n more page-programs/erases complete, then fail the next one and leave its
        block bad (a grown bad block: see the module doc). None disarms."""
        if n is not None and int(n) < 0:
            raise InputError(f"fail_after needs n >= 0 or None, got {n}")
        self._fail = None if n is None else int(n)

    def _grow_bad(self, blk: int, done: int, complete: Any, op: str) -> None:
        """The armed failure fires: `complete(done)` finishes the pages before it (a program
        of several pages), then the block turns bad and the operation fails."""
        self._fail = None
        if done:
            complete(done)
        self._bad[blk] = self._grown[blk] = True
        try:
            self._check_device(blk, op)
        except FlashWearError as e:
            e.pages_done = done  # type: ignore[attr-defined]  # the pages before it completed
            raise

    def _countdown(self, nops: int) -> int:
        """Consume nops operations; return the index of the one that is cut, or -1."""
        c = self._cut
        if c is None or c >= nops:
            if c is not None:
                self._cut = c - nops
            self.ops_count += nops
            return -1
        self._cut = None
        self.ops_count += c + 1
        return c

    def _check_device(self, blk: int, op: str) -> bool:
        """Factory-bad and worn-out checks; returns True for a silently worn block."""
        if self._bad[blk]:
            why = "went bad" if self._grown[blk] else "is factory-bad (marked in its spare area)"
            raise FlashWearError(f"block {blk} {why}: {op} failed")
        if self._wear[blk] > self.block_endurance[blk]:
            if self.wear == "error":
                raise FlashWearError(
                    f"block {blk} worn out after {int(self.block_endurance[blk])} erase cycles: "
                    f"{op} failed"
                )
            return self.wear == "silent"
        return False

    def _first_worn(self, b0: int, b1: int) -> int:
        return int(np.argmax(self._wear[b0:b1] > self.block_endurance[b0:b1]))

    def _tear(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Each bit either old or new, chosen at random (true-valued arrays)."""
        m = self._rng.integers(0, 256, old.size, dtype=np.uint8)
        return (old & ~m) | (new & m)

    def _fault(self, old: np.ndarray, new: np.ndarray, clear: bool) -> np.ndarray:
        """The result of a worn op: `new`, except some bits it changes keep their old value."""
        changed = old ^ new if not clear else old & ~new
        bits = np.flatnonzero(np.unpackbits(changed))
        result = new.copy()
        if bits.size:
            k = max(1, int(self._rng.binomial(bits.size, _SILENT_FAIL_FRACTION)))
            pick = self._rng.choice(bits, size=k, replace=False)
            flat = np.unpackbits(result)
            flat[pick] = np.unpackbits(old)[pick]
            result = np.packbits(flat)
        return result

    def _store(self, addr: int, true_bytes: np.ndarray) -> None:
        self._inv[addr : addr + true_bytes.size] = ~true_bytes

    # --- helpers ---------------------------------------------------------------------------
    def _check_range(self, addr: int, n: int, op: str) -> None:
        if n < 0 or addr < 0 or addr + n > self.size:
            raise FlashRuleError(
                f"{op} of {n} bytes at {addr:#x} is out of range (device size {self.size:#x})"
            )

    def _spread(self, counter: np.ndarray, addr: int, n: int) -> None:
        """Add the bytes of [addr, addr+n) to the per-block counter."""
        es = self.erase_size
        b0, b1 = addr // es, (addr + n - 1) // es
        if b0 == b1:
            counter[b0] += n
            return
        counter[b0] += (b0 + 1) * es - addr
        counter[b0 + 1 : b1] += es
        counter[b1] += addr + n - b1 * es

    # --- state -----------------------------------------------------------------------------
    @property
    def wear_counts(self) -> np.ndarray:
        """Cumulative erases per block (not reset by reset_counters); read-only view."""
        v = self._wear.view()
        v.flags.writeable = False
        return v

    def reset_counters(self) -> None:
        """Zero every counter (not the wear, the data or an armed power cut)."""
        self.erase_counts = np.zeros(self.num_blocks, dtype=np.int64)
        self.program_bytes = np.zeros(self.num_blocks, dtype=np.int64)
        self.read_bytes = np.zeros(self.num_blocks, dtype=np.int64)
        self.ops = {"reads": 0, "programs": 0, "erases": 0}
        self.ops_count = 0
        self.time_s = self.time_max_s = self.energy_j = self.energy_max_j = 0.0

    def image(self) -> bytes:
        """The whole main area as bytes (no bit flips)."""
        return np.invert(self._inv).tobytes()

    def spare_image(self) -> bytes:
        """The whole spare area as bytes (empty on non-NAND parts)."""
        return np.invert(self._spare_inv).tobytes()

    def copy(self) -> FlashSim:
        """An independent deep copy (data, counters, wear, rng and armed cut)."""
        new = _copy.copy(self)
        for name in _ARRAYS:
            arr = getattr(self, name)
            setattr(new, name, arr if not arr.flags.writeable else arr.copy())
        new._bad = self._bad.copy()
        new._grown = self._grown.copy()
        new._reg = self._reg.copy()
        new.ops = dict(self.ops)
        new._rng = _copy.deepcopy(self._rng)
        return new

    def __repr__(self) -> str:
        return (
            f"FlashSim({self.part.name!r}, size={self.size}, erase={self.erase_size}, "
            f"page={self.page_size}, ops={self.ops})"
        )

    # --- save / load --------------------------------------------------------------------------
    def save(self, path: Path | str) -> None:
        """Write a self-describing compressed image (.npz) that `load` restores exactly."""
        meta = {
            "format": _FORMAT,
            "version": _VERSION,
            "part": {k: v for k, v in self.part.to_dict().items() if v is not None},
            "size": self.size,
            "seed": self.seed,
            "wear": self.wear,
            "endurance": self.endurance,
            "weibull": self.weibull,
            "bit_errors": self.bit_errors,
            "ecc": self.ecc,
            "bus": None if self.bus is None else [self.bus.mhz, self.bus.width, self.bus.ddr],
            "cut": self._cut,
            "ops_count": self.ops_count,
            "ops": self.ops,
            "time": [self.time_s, self.time_max_s, self.energy_j, self.energy_max_j],
            "rng": self._rng.bit_generator.state,
        }
        arrays = {name.lstrip("_"): np.asarray(getattr(self, name)) for name in _ARRAYS}
        blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez_compressed(f, meta=blob, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path | str) -> FlashSim:
        """Restore a simulator saved with `save`; anything else raises InputError."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
                    raise ValueError("no flashswap header")
                if meta.get("version") != _VERSION:
                    raise ValueError(f"image version {meta.get('version')} is not {_VERSION}")
                arrays = {name: z[name.lstrip("_")] for name in _ARRAYS}
            part = part_from_table(meta["part"], str(path))
            sim = cls(
                part,
                meta["size"],
                seed=meta["seed"],
                wear=meta["wear"],
                endurance=meta["endurance"],
                bit_errors=meta["bit_errors"],
                ecc=meta.get("ecc", True),
                bus=Bus(*meta["bus"]) if meta.get("bus") else None,
            )
            for name, arr in arrays.items():
                want = getattr(sim, name)
                if name != "factory_bad_blocks" and arr.shape != want.shape:
                    raise ValueError(f"array {name.lstrip('_')} has shape {arr.shape}")
                setattr(sim, name, arr.astype(want.dtype, copy=False))
            sim.weibull = None if meta["weibull"] is None else tuple(meta["weibull"])
            sim._bad = np.zeros(sim.num_blocks, dtype=bool)
            sim._bad[sim.factory_bad_blocks] = True
            sim._grown = np.zeros(sim.num_blocks, dtype=bool)
            sim._cut = meta["cut"]
            sim.ops_count = int(meta["ops_count"])
            sim.ops = {k: int(meta["ops"][k]) for k in ("reads", "programs", "erases")}
            sim.time_s, sim.time_max_s, sim.energy_j, sim.energy_max_j = map(float, meta["time"])
            sim._rng.bit_generator.state = meta["rng"]
        except InputError as e:
            raise InputError(f"{path}: not a valid flashswap flash image ({e})") from None
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
            EOFError,
            zipfile.BadZipFile,
            json.JSONDecodeError,
            UnicodeDecodeError,
        ) as e:
            reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise InputError(f"{path}: not a flashswap flash image ({reason})") from None
        return sim


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer):
        raise InputError(f"{what} must be an integer, got {v!r}")
    return int(v)


__all__ = ["FlashDevice", "FlashSim", "WEAR_MODES"]
