"""Trace format speed: write and load a 10 M-record trace; per-record writes of 1 M.

Prints a table and one JSON line. The file lives in a temporary directory (page cache warm
when it is loaded back, as it is right after a planner wrote it).

    python bench/trace_load.py [--records 10000000] [--per-record 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from flashswap.cli.output import make_console, table
from flashswap.trace import RECORD_DTYPE, RECORD_SIZE, Op, Trace, TraceWriter

LAYERS = 40  # per synthetic inference: weights, compute, swap-out, swap-in, trim per layer


def inference_template() -> np.ndarray:
    """One inference: BEGIN, per layer WEIGHT_READ COMPUTE WRITE READ TRIM, INVALIDATE, END."""
    rng = np.random.default_rng(1)
    n = 2 + 5 * LAYERS + 1
    t = np.zeros(n, dtype=RECORD_DTYPE)
    t["op"][0] = Op.INFERENCE_BEGIN
    body = t[1 : 1 + 5 * LAYERS].reshape(LAYERS, 5)
    body["op"] = [Op.WEIGHT_READ, Op.COMPUTE, Op.WRITE, Op.READ, Op.TRIM]
    layer = np.arange(LAYERS)
    body["key"][:, 0] = layer
    body["length"][:, 0] = rng.integers(1 << 10, 1 << 16, LAYERS)
    body["key"][:, 1] = layer
    body["value"][:, 1] = rng.integers(1 << 16, 1 << 24, LAYERS)
    size = rng.integers(1 << 10, 1 << 14, LAYERS)
    for col in (2, 3, 4):
        body["key"][:, col] = layer
    body["length"][:, 2] = size
    body["length"][:, 3] = size
    t["op"][-2] = Op.INVALIDATE
    t["value"][-2] = LAYERS - 1
    t["op"][-1] = Op.INFERENCE_END
    return t


def synthetic(records: int) -> np.ndarray:
    """Whole inferences from the template, topped up with SYNC records to exactly `records`."""
    tpl = inference_template()
    reps = records // tpl.size
    arr = np.zeros(records, dtype=RECORD_DTYPE)
    arr[: reps * tpl.size] = np.tile(tpl, reps)
    arr["value"][: reps * tpl.size : tpl.size] = np.arange(reps)
    arr["op"][reps * tpl.size :] = Op.SYNC
    return arr


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def write_bulk(path: Path, arr: np.ndarray) -> None:
    with TraceWriter(path, {"model": "synthetic", "generator": "bench/trace_load.py"}) as w:
        for start in range(0, arr.size, 1 << 20):
            w.write_records(arr[start : start + (1 << 20)])


def write_per_record(path: Path, n: int) -> None:
    with TraceWriter(path, {"model": "synthetic"}) as w:
        put, get, trim, compute = w.put, w.get, w.trim, w.compute
        for i in range(n // 4):
            put(i & 1023, 4096)
            compute(1000, 0, i & 63)
            get(i & 1023, 4096)
            trim(i & 1023)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--per-record", type=int, default=1_000_000)
    args = ap.parse_args()
    arr = synthetic(args.records)
    with tempfile.TemporaryDirectory() as d:
        big, small = Path(d) / "big.fst", Path(d) / "small.fst"
        t_write, _ = timed(lambda: write_bulk(big, arr))
        size = big.stat().st_size
        t_write_each, _ = timed(lambda: write_per_record(small, args.per_record))
        t_open, trace = timed(lambda: Trace.open(big))
        t_open_nocheck, _ = timed(lambda: Trace.open(big, validate=False))
        t_sem, _ = timed(trace.validate_semantics)
        t_sum, summary = timed(trace.summary)
        assert len(trace) == args.records and summary["records"] == args.records
        del trace
    mb = size / 1e6
    rows = [
        [f"write {args.records:,} records (write_records)", t_write, mb / t_write],
        [
            f"write {args.per_record:,} records (one call each)",
            t_write_each,
            args.per_record * RECORD_SIZE / 1e6 / t_write_each,
        ],
        ["open, validate=True (CRC, op codes, flags)", t_open, mb / t_open],
        ["open, validate=False (header only)", t_open_nocheck, mb / t_open_nocheck],
        ["validate_semantics()", t_sem, mb / t_sem],
        ["summary()", t_sum, mb / t_sum],
    ]
    console = make_console()
    console.print(
        table(
            f"Trace format, {args.records:,} records ({mb:,.0f} MB)",
            ["step", "seconds", "MB/s"],
            rows,
        )
    )
    console.file.write(
        json.dumps(
            {
                "bench": "trace_load",
                "records": args.records,
                "file_bytes": size,
                "write_s": round(t_write, 4),
                "write_per_record_s": round(t_write_each, 4),
                "per_record_count": args.per_record,
                "open_validate_s": round(t_open, 4),
                "open_novalidate_s": round(t_open_nocheck, 4),
                "validate_semantics_s": round(t_sem, 4),
                "summary_s": round(t_sum, 4),
            }
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
