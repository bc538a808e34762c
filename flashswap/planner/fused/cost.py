"""What a plan costs on one flash part and one MCU: the model the fused planner minimizes.

Per inference a plan writes chunks, trims them, reads chunks and weights, and computes MACs.
On the part (figures from flashswap/data/parts.toml through flashswap/parts.py):

- Bytes programmed. The store appends every chunk as a record with a 32-byte header, and every
  TRIM and the end-of-inference INVALIDATE as a 32-byte record (firmware/SPEC.md section 4),
  so programmed = payload + 32 x (chunk writes + trims + invalidates). This is what wears the
  part, so it is the wear figure; fewer, larger chunks program fewer header bytes.
- Program time: programmed / page size page programs at the typical page-program time.
- Erase time: in steady state the store erases as many bytes as it programs (it measures
  0.98-1.02 erased per payload byte, README "Store wear"), one segment at a time; a segment is
  the largest erase unit up to 64 KiB on NOR and the block elsewhere (the store's default,
  flashswap/store/core.py `Store._config`), so erase time = programmed / segment x the typical
  erase time of a segment.
- Read time: per chunk read, the page loads it spans (the array latency, nonzero on NAND) and
  the bus transfer (`Part.t_read_s`); weights stream the same way.
- Energy: each of those times x its current x the supply voltage (`Part.e_*`). The MCU's own
  energy is not in the catalogue, so `energy` is flash energy; recomputation is limited by
  time (`--max-slowdown`), not by energy.
- Compute time: MACs / `macs_per_s` (the caller's measured MCU rate; 0 = unknown, then
  compute time is not counted and recomputed MACs only break ties).

`slowdown` follows the analyzer's definition: (compute + flash time) / (compute of the
model's own MACs + reading its weights once), i.e. against the same inference with its
activations in SRAM.

Objectives (`--objective`): `wear` minimizes bytes programmed, then time; `time` minimizes
flash + compute time, then bytes programmed; `energy` minimizes flash energy, then bytes
programmed. `Score` is that pair, compared lexicographically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flashswap.errors import InputError
from flashswap.parts import Part, get_part
from flashswap.trace import Op

__all__ = ["DEFAULT_PART", "OBJECTIVES", "CostModel", "Counts", "PlanCost", "Score"]

DEFAULT_PART = "W25Q128JV"  # the sample NOR part of README's lifetime table
OBJECTIVES = ("wear", "time", "energy")
RECORD_HEADER = 32  # bytes of a store record header (firmware/SPEC.md section 4)

Score = tuple[float, float]


@dataclass(frozen=True)
class Counts:
    """What one inference does, in the units the cost model prices."""

    bytes_written: int = 0
    chunk_writes: int = 0
    trims: int = 0  # TRIM and INVALIDATE records
    bytes_read: int = 0
    read_pages: int = 0
    weight_bytes_read: int = 0
    weight_pages: int = 0
    macs: int = 0

    def __add__(self, o: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.astuple(), o.astuple(), strict=True)))

    def astuple(self) -> tuple[int, ...]:
        return (self.bytes_written, self.chunk_writes, self.trims, self.bytes_read,
                self.read_pages, self.weight_bytes_read, self.weight_pages, self.macs)


@dataclass(frozen=True)
class PlanCost:
    """A plan's predicted cost per inference on one part (seconds, joules, bytes)."""

    counts: Counts
    bytes_programmed: int
    program_s: float
    erase_s: float
    read_s: float
    weight_read_s: float
    compute_s: float
    energy_j: float
    slowdown: float | None

    @property
    def io_s(self) -> float:
        return self.program_s + self.erase_s + self.read_s + self.weight_read_s

    @property
    def time_s(self) -> float:
        return self.io_s + self.compute_s

    def as_dict(self) -> dict[str, Any]:
        c = self.counts
        return {"bytes_written": c.bytes_written, "bytes_read": c.bytes_read,
                "weight_bytes_read": c.weight_bytes_read, "macs": c.macs,
                "bytes_programmed": self.bytes_programmed,
                "program_ms": self.program_s * 1e3, "erase_ms": self.erase_s * 1e3,
                "read_ms": self.read_s * 1e3, "weight_read_ms": self.weight_read_s * 1e3,
                "io_ms": self.io_s * 1e3, "compute_ms": self.compute_s * 1e3,
                "energy_mj": self.energy_j * 1e3, "slowdown": self.slowdown}


def store_segment(part: Part) -> int:
    """The store's default segment on `part` (the rule of flashswap/store/core.py)."""
    if part.kind == "nor":
        return max([s for s in part.erase_sizes if s <= 64 * 1024] or [part.erase_size])
    return part.erase_size


@dataclass(frozen=True)
class CostModel:
    part: Part
    macs_per_s: float = 0.0
    objective: str = "wear"
    max_slowdown: float | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"unknown objective {self.objective!r} "
                             f"(choose {', '.join(OBJECTIVES)})")
        if self.macs_per_s < 0:
            raise InputError(f"invalid MAC rate {self.macs_per_s:g}")
        if self.max_slowdown is not None:
            if not self.max_slowdown >= 1:
                raise InputError(f"invalid --max-slowdown {self.max_slowdown:g}: must be >= 1")
            if not self.macs_per_s:
                raise InputError("--max-slowdown needs the MCU's MAC rate "
                                 "(--macs-per-s or --mcu)")
        if self.objective == "time" and not self.macs_per_s:
            raise InputError("--objective time needs the MCU's MAC rate (--macs-per-s or --mcu)")

    @classmethod
    def for_part(cls, name: str = DEFAULT_PART, macs_per_s: float = 0.0,
                 objective: str = "wear", max_slowdown: float | None = None) -> CostModel:
        return cls(get_part(name), macs_per_s, objective, max_slowdown)

    @property
    def segment(self) -> int:
        return store_segment(self.part)

    def pages(self, lengths: np.ndarray, header: int = RECORD_HEADER) -> int:
        """Page loads of reading pieces of these lengths, each stored behind `header` bytes
        (0 where reads stream without an array latency)."""
        if not self.part.t_read_us:
            return 0
        page = self.part.page_size
        return int((-(-(np.asarray(lengths, dtype=np.int64) + header) // page)).sum())

    def counts(self, records: np.ndarray) -> Counts:
        """The counts of one inference's trace records."""
        op = records["op"]
        ln = records["length"].astype(np.int64)
        w, r, wr = op == Op.WRITE, op == Op.READ, op == Op.WEIGHT_READ
        return Counts(int(ln[w].sum()), int(w.sum()),
                      int(((op == Op.TRIM) | (op == Op.INVALIDATE)).sum()),
                      int(ln[r].sum()), self.pages(ln[r]),
                      int(ln[wr].sum()), self.pages(ln[wr], 0),
                      int(records["value"][op == Op.COMPUTE].sum()))

    def cost(self, c: Counts, base_macs: int | None = None, base_weight: Counts | None = None
             ) -> PlanCost:
        """Times, energy and slowdown of `c`; the slowdown needs the model's own MACs and the
        weight reads of one pass (`base_macs`, `base_weight`)."""
        p = self.part
        programmed = c.bytes_written + RECORD_HEADER * (c.chunk_writes + c.trims)
        program_s = programmed / p.page_size * p.t_prog_s()
        seg = self.segment
        erase_s = programmed / seg * p.t_erase_s(seg)
        read_s = self._read_s(c.bytes_read, c.read_pages)
        weight_s = self._read_s(c.weight_bytes_read, c.weight_pages)
        compute_s = c.macs / self.macs_per_s if self.macs_per_s else 0.0
        v = p.voltage * 1e-3
        energy = (program_s * p.i_prog_ma + erase_s * p.i_erase_ma
                  + (read_s + weight_s) * p.i_read_ma) * v
        slowdown = None
        if self.macs_per_s and base_macs:
            base_w = base_weight or Counts()
            base = base_macs / self.macs_per_s + self._read_s(base_w.weight_bytes_read,
                                                              base_w.weight_pages)
            slowdown = (compute_s + program_s + erase_s + read_s + weight_s) / base
        return PlanCost(c, programmed, program_s, erase_s, read_s, weight_s, compute_s,
                        energy, slowdown)

    def _read_s(self, nbytes: int, pages: int) -> float:
        return pages * self.part.t_read_us * 1e-6 + nbytes / (self.part.read_mbps * 1e6)

    def score(self, pc: PlanCost) -> Score:
        """The objective as a pair compared lexicographically (see the module docstring)."""
        if self.objective == "wear":
            return (float(pc.bytes_programmed), pc.time_s)
        if self.objective == "time":
            return (pc.time_s, float(pc.bytes_programmed))
        return (pc.energy_j, float(pc.bytes_programmed))

    def within_slowdown(self, pc: PlanCost) -> bool:
        return (self.max_slowdown is None or pc.slowdown is None
                or pc.slowdown <= self.max_slowdown * (1 + 1e-9))
