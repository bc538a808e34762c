"""Drive an engine with a workload, one inference at a time, and measure each inference.

Per inference the replayer records what projection needs: flash busy time and energy (typical
and worst case) split into the inference itself and the idle step after it, the I/O between
COMPUTE records (for the prefetch model), and totals of erases, consumptions, programmed and
read bytes. Per-unit wear lives in the flash's counters; steady-state estimators read them.

Engines that can replay a whole inference in one call (the flashswap store's C engine, see
`run_batch`) get each inference as one array of operations when nothing needs Python between
the operations (payload "zeros", no fault model armed); the flash counters come out the same
as call by call (tests/test_analyzer_replay.py compares them).

Payload modes: "zeros" passes a slice of one zero buffer (no allocation per write) and checks
nothing; "random" writes fresh pseudo-random bytes per write and checks every read against
them. Both drive the engine through exactly the same calls, so wear and flash counters are
identical (tests/test_analyzer_replay.py holds that); "random" exists to prove it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analyzer.engine_base import Engine
from analyzer.workload import (
    COMPUTE,
    INVALIDATE,
    READ,
    SYNC,
    TRIM,
    WEIGHT_READ,
    WRITE,
    Inference,
    OpTuple,
    Workload,
)
from flashswap.errors import CorruptError

IDLE_STEP_CAP = 256  # idle steps after one inference: far above what any engine asks for
STORE_OPS = (WRITE, READ, TRIM, INVALIDATE, SYNC, COMPUTE)  # what a batch carries


@dataclass(frozen=True)
class Batch:
    """One inference prepared for `run_batch`: the store operations (op, key, len, value) as
    uint32 rows with the COMPUTE markers kept in place, and per compute segment the weight
    read time and the compute time (weights do not go through the store)."""

    ops: np.ndarray
    weight_s: list[float]
    compute_s: list[float]
    weight_total_s: float
    weight_total_j: float


@dataclass
class InferenceStats:
    """What one replayed inference cost (times in seconds, energy in joules)."""

    index: int
    io_s: float
    io_max_s: float
    idle_s: float
    idle_max_s: float
    energy_j: float
    energy_max_j: float
    latency_overlap_s: float  # wall time with I/O overlapping the neighbouring compute
    baseline_overlap_s: float  # the same with weight reads only (activations in SRAM)
    compute_s: float
    weight_s: float
    erases: int  # smallest-unit erases, inference + idle
    consumed: int
    programmed: int
    read: int
    payload_written: int
    idle_steps: int


class Replayer:
    """Replays `workload` through `engine`, cycling over the trace's inferences."""

    def __init__(
        self, engine: Engine, workload: Workload, payload: str = "zeros", idle: bool = True,
        batch: bool = True,
    ) -> None:
        if payload not in ("zeros", "random"):
            raise ValueError(f"payload must be 'zeros' or 'random', not {payload!r}")
        self.engine = engine
        self.flash = engine.flash
        self.workload = workload
        self.verify = payload == "random"
        self.idle = idle
        self._zeros = memoryview(bytes(max(workload.max_chunk, 1)))
        self._rng = np.random.default_rng(12345)
        self._expect: dict[int, bytes] = {}
        self._batches: dict[int, Batch | None] = {}
        self._batch_ok = batch and not self.verify and hasattr(engine, "run_batch")
        self.done = 0  # inferences replayed
        part = self.flash.part
        self._weight_pages = part.kind in ("nand", "managed")
        self._page = part.page_size
        self._run(workload.prologue)

    # ---- one inference ------------------------------------------------------------------
    def step(self) -> InferenceStats:
        """Replay the next inference of the cycle (and the idle step after it)."""
        wl = self.workload
        which = self.done % len(wl.inferences)
        inf: Inference = wl.inferences[which]
        f = self.flash
        f.clock = self.done
        f.flush_reads()
        t0, tm0, e0, em0 = f.time_s, f.time_max_s, f.energy_j, f.energy_max_j
        er0, co0 = int(f.erase_counts.sum()), int(f.consumed.sum())
        pb0, rb0 = int(f.program_bytes.sum()), int(f.read_bytes.sum())
        batch = self._batch(which, inf)
        if batch is not None:
            segs, weight_s, weight_j = self._run_batch(batch)
        else:
            segs, weight_s, weight_j = self._run(inf.ops)
        f.flush_reads()
        io_s, io_max_s = f.time_s - t0 + weight_s, f.time_max_s - tm0 + weight_s
        t1, tm1 = f.time_s, f.time_max_s
        steps = 0
        if self.idle:
            while steps < IDLE_STEP_CAP and self.engine.idle():
                steps += 1
        f.flush_reads()
        stats = InferenceStats(
            index=self.done,
            io_s=io_s,
            io_max_s=io_max_s,
            idle_s=f.time_s - t1,
            idle_max_s=f.time_max_s - tm1,
            energy_j=f.energy_j - e0 + weight_j,
            energy_max_j=f.energy_max_j - em0 + weight_j,
            latency_overlap_s=_overlap([(io, c) for io, _w, c in segs]),
            baseline_overlap_s=_overlap([(w, c) for _io, w, c in segs]),
            compute_s=inf.compute_us * 1e-6,
            weight_s=weight_s,
            erases=int(f.erase_counts.sum()) - er0,
            consumed=int(f.consumed.sum()) - co0,
            programmed=int(f.program_bytes.sum()) - pb0,
            read=int(f.read_bytes.sum()) - rb0,
            payload_written=inf.bytes_written,
            idle_steps=steps,
        )
        self.done += 1
        return stats

    def _run(self, ops: list[OpTuple]) -> tuple[list[tuple[float, float, float]], float, float]:
        """Replays ops; returns the (I/O seconds, weight-read seconds, compute seconds)
        segments split at COMPUTE records, and the time and energy of weight reads (weights
        are streamed from the flash but not stored in the engine)."""
        e = self.engine
        f = self.flash
        put, get, zeros = e.put, e.get, self._zeros
        segs: list[tuple[float, float, float]] = []
        mark = f.time_s
        wextra = weight_s = weight_j = 0.0
        for op, key, length, value, time_us, _flags in ops:
            if op == WRITE:
                if self.verify:
                    data = self._rng.bytes(length)
                    self._expect[key] = data
                    put(key, data)
                else:
                    put(key, zeros[:length])
            elif op == READ:
                got = get(key, length)
                if self.verify and got != self._expect[key][:length]:
                    raise CorruptError(
                        f"{e.name}: key {key} read back wrong data (inference {self.done})"
                    )
            elif op == COMPUTE:
                f.flush_reads()
                segs.append((f.time_s - mark + wextra, wextra, time_us * 1e-6))
                mark, wextra = f.time_s, 0.0
            elif op == TRIM:
                e.trim(key)
            elif op == INVALIDATE:
                e.invalidate(key, value)
            elif op == SYNC:
                e.sync()
            elif op == WEIGHT_READ and length:
                t, j = self._weight_cost(length)
                wextra += t
                weight_s += t
                weight_j += j
        f.flush_reads()
        segs.append((f.time_s - mark + wextra, wextra, 0.0))
        return segs, weight_s, weight_j

    def _weight_cost(self, length: int) -> tuple[float, float]:
        """Seconds and joules of streaming `length` bytes of weights from the part (over the
        same bus as the swap traffic)."""
        pages = math.ceil(length / self._page) if self._weight_pages else 1
        return self.flash.stream_cost(length, pages)

    def _batch(self, which: int, inf: Inference) -> Batch | None:
        """Inference `which` prepared for one engine call, or None to go call by call."""
        if not self._batch_ok or not self.engine.can_batch():  # type: ignore[attr-defined]
            return None
        if which not in self._batches:
            self._batches[which] = self._prepare(inf.ops)
        return self._batches[which]

    def _run_batch(self, b: Batch) -> tuple[list[tuple[float, float, float]], float, float]:
        """`_run` in one engine call: the same segments, from the flash time at each COMPUTE."""
        marks = self.engine.run_batch(b.ops, self._zeros.obj)  # type: ignore[attr-defined]
        io = np.diff(marks, prepend=0.0)
        segs = [(float(io[i]) + w, w, c) for i, (w, c) in
                enumerate(zip(b.weight_s, b.compute_s, strict=True))]
        return segs, b.weight_total_s, b.weight_total_j

    def _prepare(self, ops: list[OpTuple]) -> Batch | None:
        """None if a field does not fit the batch's 32 bits (the single calls then report
        what is wrong with it)."""
        rows = []
        weight_s, compute_s = [0.0], []
        total_s = total_j = 0.0
        for op, key, length, value, time_us, _flags in ops:
            if op in STORE_OPS:
                rows.append((op, key, length, value if op == INVALIDATE else 0))
            if op == COMPUTE:
                compute_s.append(time_us * 1e-6)
                weight_s.append(0.0)
            elif op == WEIGHT_READ and length:
                t, j = self._weight_cost(length)
                weight_s[-1] += t
                total_s += t
                total_j += j
        compute_s.append(0.0)
        if rows and not 0 <= min(min(r) for r in rows) <= max(max(r) for r in rows) < 1 << 32:
            return None
        arr = np.array(rows, dtype=np.uint32).reshape(-1, 4)
        return Batch(np.ascontiguousarray(arr), weight_s, compute_s, total_s, total_j)


def _overlap(segs: list[tuple[float, float]]) -> float:
    """Latency of a two-stage pipeline: the I/O before compute j overlaps compute j-1
    (prefetching inputs, writing back outputs), so each step costs the larger of the two."""
    total = 0.0
    prev_c = 0.0
    for io, c in segs:
        total += max(io, prev_c)
        prev_c = c
    return total + prev_c
