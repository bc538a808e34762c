"""A trace turned into what replay needs: per-inference op lists and payload figures.

Replay repeats the trace's inferences cyclically, so everything here is computed once per
trace: the records of each inference as plain tuples (iterating Python tuples is several
times faster than indexing a numpy structured array record by record), the payload bytes
an inference writes and reads, its compute time, and the peak live (working) set that any
store must hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.tensors import TensorMap, tensor_map
from flashswap.errors import TraceFormatError

# Record opcodes (flashswap.trace.Op); plain ints because the replay loop compares them.
WRITE, READ, TRIM, INVALIDATE, SYNC, BEGIN, END, COMPUTE, WEIGHT_READ = range(1, 10)
KNOWN_OPS = frozenset(range(1, 10))

# (op, key, length, value, time_us, flags): the order replay unpacks.
OpTuple = tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class Inference:
    """One inference of the trace, ready to replay."""

    ops: list[OpTuple]
    bytes_written: int
    bytes_read: int
    weight_bytes: int
    compute_us: int
    macs: int
    writes: int
    compute_ops: int


@dataclass
class Workload:
    """The replayable form of a trace (see module doc)."""

    name: str
    metadata: dict[str, Any]
    prologue: list[OpTuple]
    inferences: list[Inference]
    max_chunk: int
    key_sizes: dict[int, int]
    peak_live_bytes: int
    peak_live_chunks: int
    records: int
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- per-inference means over the trace's cycle of inferences ----------------------
    def _mean(self, attr: str) -> float:
        return float(np.mean([getattr(i, attr) for i in self.inferences]))

    @property
    def bytes_written_per_inference(self) -> float:
        return self._mean("bytes_written")

    @property
    def bytes_read_per_inference(self) -> float:
        return self._mean("bytes_read")

    @cached_property
    def tensors(self) -> TensorMap:
        """Which chunks form one tensor (analyzer/tensors.py): the metadata's tensor table,
        or boundaries inferred from the order of the records."""
        ops = [op for ops in [self.prologue] + [i.ops for i in self.inferences] for op in ops]
        return tensor_map(self.metadata, self.key_sizes, ops)

    @property
    def compute_s_per_inference(self) -> float:
        return self._mean("compute_us") * 1e-6

    @property
    def records_per_inference(self) -> float:
        return float(np.mean([len(i.ops) for i in self.inferences]))

    @property
    def distinct_keys(self) -> int:
        return len(self.key_sizes)

    @property
    def macs_per_inference(self) -> float:
        return self._mean("macs")

    @property
    def untimed_compute(self) -> bool:
        """True when some COMPUTE record has MACs but no duration (a trace planned without a
        MAC rate): its compute time needs `with_compute_rate`."""
        return any(o == COMPUTE and v and not t
                   for ops in [self.prologue] + [i.ops for i in self.inferences]
                   for o, _k, _n, v, t, _f in ops)

    def with_compute_rate(self, macs_per_s: float) -> Workload:
        """A copy where COMPUTE records without a duration take MACs / macs_per_s (for traces
        planned without a MAC rate, so slowdowns can be computed)."""
        if macs_per_s <= 0:
            raise TraceFormatError(f"MAC rate must be positive, not {macs_per_s}")

        def timed(ops: list[OpTuple]) -> list[OpTuple]:
            return [
                (o, k, n, v, round(v / macs_per_s * 1e6), f) if o == COMPUTE and not t else
                (o, k, n, v, t, f)
                for o, k, n, v, t, f in ops
            ]

        infs = [_inference(timed(i.ops)) for i in self.inferences]
        return replace(self, prologue=timed(self.prologue), inferences=infs)

    # ---- construction --------------------------------------------------------------
    @classmethod
    def from_records(
        cls, records: np.ndarray, metadata: dict[str, Any] | None = None, name: str = "trace"
    ) -> Workload:
        """Builds a workload from a RECORD_DTYPE array (as `Trace.records` holds)."""
        if len(records) == 0:
            raise TraceFormatError(f"{name}: the trace holds no records")
        op = np.asarray(records["op"])
        bad = np.flatnonzero(~np.isin(op, list(KNOWN_OPS)))
        if len(bad):
            raise TraceFormatError(f"{name}: record {int(bad[0])} has unknown op {int(op[bad[0]])}")
        rows: list[OpTuple] = list(
            zip(
                op.tolist(),
                records["key"].tolist(),
                records["length"].tolist(),
                records["value"].tolist(),
                records["time_us"].tolist(),
                records["flags"].tolist(),
                strict=True,
            )
        )
        begins = np.flatnonzero(op == BEGIN).tolist()
        if not begins:
            prologue, slices = [], [(0, len(rows))]
        else:
            prologue = rows[: begins[0]]
            bounds = begins + [len(rows)]
            slices = list(zip(bounds[:-1], bounds[1:], strict=True))
        infs = [_inference(rows[a:b]) for a, b in slices]
        write = op == WRITE
        keys = np.asarray(records["key"])[write]
        lengths = np.asarray(records["length"])[write]
        key_sizes: dict[int, int] = {}
        if len(keys):
            order = np.lexsort((lengths, keys))
            k, last = keys[order], np.r_[keys[order][1:] != keys[order][:-1], True]
            key_sizes = dict(zip(k[last].tolist(), lengths[order][last].tolist(), strict=True))
        peak = _peak_live(prologue, infs)
        return cls(
            name=name,
            metadata=dict(metadata or {}),
            prologue=prologue,
            inferences=infs,
            max_chunk=int(lengths.max()) if len(lengths) else 0,
            key_sizes=key_sizes,
            peak_live_bytes=peak[0],
            peak_live_chunks=peak[1],
            records=len(rows),
        )

    @classmethod
    def load(cls, path: str | Path) -> Workload:
        """Opens a trace file (the one place that touches `flashswap.trace`)."""
        from flashswap.trace import Trace  # imported here: the trace module owns the format

        p = Path(path)
        if p.is_dir():
            raise TraceFormatError(f"{path}: is a directory, not a trace file")
        if not p.is_file():
            raise TraceFormatError(f"{path}: no such trace file")
        trace = Trace.open(p, validate=True)
        return cls.from_records(np.asarray(trace.records), dict(trace.metadata), name=p.name)


def _inference(ops: list[OpTuple]) -> Inference:
    written = read = weights = compute = macs = writes = computes = 0
    for op, _key, length, value, time_us, _flags in ops:
        if op == WRITE:
            written += length
            writes += 1
        elif op == READ:
            read += length
        elif op == WEIGHT_READ:
            weights += length
        elif op == COMPUTE:
            compute += time_us
            macs += value
            computes += 1
    return Inference(ops, written, read, weights, compute, macs, writes, computes)


def _peak_live(prologue: list[OpTuple], infs: list[Inference]) -> tuple[int, int]:
    """Largest payload and largest number of chunks held live at once, over the prologue and
    two cycles of inferences (the second catches data kept alive across the wrap-around)."""
    live: dict[int, int] = {}
    total = peak = chunks = 0
    for ops in [prologue] + [i.ops for i in infs] * 2:
        for op, key, length, value, _t, _f in ops:
            if op == WRITE:
                total += length - live.get(key, 0)
                live[key] = length
                peak = max(peak, total)
                chunks = max(chunks, len(live))
            elif op == TRIM:
                total -= live.pop(key, 0)
            elif op == INVALIDATE:
                for k in [k for k in live if key <= k <= value]:
                    total -= live.pop(k)
    return peak, chunks
