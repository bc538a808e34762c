"""Drive an engine with a workload, one inference at a time, and measure each inference.

Per inference the replayer records what projection needs: flash busy time and energy (typical
and worst case) split into the inference itself and the idle step after it, the I/O between
COMPUTE records (for the prefetch model), and totals of erases, consumptions, programmed and
read bytes. Per-unit wear lives in the flash's counters; steady-state estimators read them.

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
        self, engine: Engine, workload: Workload, payload: str = "zeros", idle: bool = True
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
        self.done = 0  # inferences replayed
        part = self.flash.part
        self._weight_pages = part.kind in ("nand", "managed")
        self._page = part.page_size
        self._run(workload.prologue)

    # ---- one inference ------------------------------------------------------------------
    def step(self) -> InferenceStats:
        """Replay the next inference of the cycle (and the idle step after it)."""
        wl = self.workload
        inf: Inference = wl.inferences[self.done % len(wl.inferences)]
        f = self.flash
        f.clock = self.done
        t0, tm0, e0, em0 = f.time_s, f.time_max_s, f.energy_j, f.energy_max_j
        er0, co0 = int(f.erase_counts.sum()), int(f.consumed.sum())
        pb0, rb0 = int(f.program_bytes.sum()), int(f.read_bytes.sum())
        segs, weight_s, weight_j = self._run(inf.ops)
        io_s, io_max_s = f.time_s - t0 + weight_s, f.time_max_s - tm0 + weight_s
        t1, tm1 = f.time_s, f.time_max_s
        steps = 0
        if self.idle:
            while steps < IDLE_STEP_CAP and self.engine.idle():
                steps += 1
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
        part = f.part
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
                segs.append((f.time_s - mark + wextra, wextra, time_us * 1e-6))
                mark, wextra = f.time_s, 0.0
            elif op == TRIM:
                e.trim(key)
            elif op == INVALIDATE:
                e.invalidate(key, value)
            elif op == SYNC:
                e.sync()
            elif op == WEIGHT_READ and length:
                pages = math.ceil(length / self._page) if self._weight_pages else 1
                t = part.t_read_s(length, pages)
                wextra += t
                weight_s += t
                weight_j += part.e_read_j(length, pages)
        segs.append((f.time_s - mark + wextra, wextra, 0.0))
        return segs, weight_s, weight_j


def _overlap(segs: list[tuple[float, float]]) -> float:
    """Latency of a two-stage pipeline: the I/O before compute j overlaps compute j-1
    (prefetching inputs, writing back outputs), so each step costs the larger of the two."""
    total = 0.0
    prev_c = 0.0
    for io, c in segs:
        total += max(io, prev_c)
        prev_c = c
    return total + prev_c
