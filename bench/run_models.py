"""Out-of-core inference of real models: bytes swapped, peak SRAM, exactness and wall time.

For every fixture model (tests/fixtures/models/*.tflite) at three budgets - the no-swap budget,
halfway down to the smallest feasible budget, and an eighth of the way above the smallest -
plans the model, runs one inference on a simulated W25Q128JV (1 MiB store partition; the C
store engine when it builds) and compares the output with LiteRT's reference kernels. `--onnx`
adds float ImageNet graphs from the onnx wheel (weights as ConstantOfShape fills) at 256 KiB,
a budget that swaps, on a W25N01GV or, for AlexNet, the FNNL41A-8Gb (their float weights do
not fit the NOR), compared with
ONNX Runtime within flashswap.exec.verdict's tolerance. Prints a table and one JSON line.

    python bench/run_models.py [--onnx] [--engine python|c] [--models a.tflite,b.onnx]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flashswap.cli.run_cmd import default_engine, random_inputs
from flashswap.exec.device import Device
from flashswap.exec.verdict import compare, float_compute, reference_outputs
from flashswap.model import load_model
from flashswap.planner import plan

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"
CHUNK = {"ad_autoencoder_640.tflite": 32}  # 640-byte activations: only tiny chunks swap
ONNX_LIGHT = ("squeezenet", "shufflenet", "bvlc_alexnet", "resnet50")
ONNX_BUDGET_KIB = 256


def onnx_models() -> list[Path]:
    import onnx

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    return [light / f"light_{n}.onnx" for n in ONNX_LIGHT]


def budgets(graph: Any, chunk: int) -> list[int]:
    md = plan(graph, 1 << 40, chunk).metadata
    lo, nsb = md["min_feasible_budget"], md["no_swap_budget"]
    return [nsb, (lo + nsb) // 2, lo + (nsb - lo) // 8]


def run_one(path: Path, budget: int, chunk: int, engine: str) -> dict[str, Any]:
    graph = load_model(str(path))
    t0 = time.perf_counter()
    p = plan(graph, budget, chunk)
    t1 = time.perf_counter()
    xs = random_inputs(graph, 0)
    # Float ImageNet weights need a larger part than the NOR: the SLC NAND, or the 1 GiB MLC
    # NAND for AlexNet's 233 MiB.
    part = "W25Q128JV"
    if path.suffix == ".onnx":
        part = "W25N01GV" if p.metadata["parameter_bytes"] < 100 << 20 else "FNNL41A-8Gb"
    dev = Device(p, part, None if path.suffix == ".onnx" else 1 << 20, engine)
    t2 = time.perf_counter()
    r = dev.infer(xs)
    t3 = time.perf_counter()
    ref = reference_outputs(str(path), xs)
    v = compare(ref[0], r.outputs, ref[1], float_compute(graph)) if ref else None
    md = p.metadata
    same = len(r.records) == len(p.records) and all(
        (r.records[f] == p.records[f]).all() for f in ("op", "key", "length"))
    return {"model": path.name, "budget": budget, "chunk": chunk, "engine": engine,
            "part": dev.part.name,
            "bytes_written": md["bytes_written_per_inference"],
            "bytes_read": md["bytes_read_per_inference"],
            "weight_bytes_read": md["weight_bytes_read_per_inference"],
            "peak_sram": r.peak_sram, "planned_peak_sram": md["peak_sram"],
            "bit_exact": v.bit_exact if v else None,
            "matches_reference": v.ok if v else None,
            "max_abs_diff": v.max_abs_diff if v else None,
            "trace_equal": same, "records": len(p.records),
            "plan_s": t1 - t0, "setup_s": t2 - t1, "wall_s": t3 - t2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", action="store_true", help="also the float ONNX light models")
    ap.add_argument("--engine", choices=("python", "c"), default=None)
    ap.add_argument("--models", default=None, help="comma-separated file names to run")
    a = ap.parse_args()
    engine = a.engine or default_engine()
    paths = sorted(FIXTURES.glob("*.tflite")) + (onnx_models() if a.onnx else [])
    if a.models:
        keep = set(a.models.split(","))
        paths = [p for p in paths if p.name in keep]
    rows = []
    for path in paths:
        if path.suffix == ".onnx":
            rows.append(run_one(path, ONNX_BUDGET_KIB * 1024, 4096, engine))
            continue
        chunk = CHUNK.get(path.name, 256)
        for b in budgets(load_model(str(path)), chunk):
            rows.append(run_one(path, b, chunk, engine))
    t = Table(title=f"flashswap run, {engine} engine (python bench/run_models.py)")
    for c in ("model", "part", "budget B", "chunk", "written B/inf", "read B/inf",
              "peak B (planned)", "vs reference", "trace", "wall s"):
        t.add_column(c, justify="right")
    for r in rows:
        verdict = ("no reference" if r["matches_reference"] is None else
                   "bit-exact" if r["bit_exact"] else
                   f"within tol. ({r['max_abs_diff']:.2g})" if r["matches_reference"] else
                   "DIFFERS")
        peak = (f"{r['peak_sram']:,}" if r["peak_sram"] == r["planned_peak_sram"]
                else f"{r['peak_sram']:,} ({r['planned_peak_sram']:,})")
        t.add_row(r["model"], r["part"], f"{r['budget']:,}", f"{r['chunk']:,}",
                  f"{r['bytes_written']:,}", f"{r['bytes_read']:,}", peak, verdict,
                  "= plan" if r["trace_equal"] else "DIFF", f"{r['wall_s']:.2f}")
    Console(width=160).print(t)
    print(json.dumps({"bench": "run_models", "engine": engine, "results": rows}))
    ok = all(r["trace_equal"] and r["peak_sram"] == r["planned_peak_sram"] <= r["budget"]
             and r["matches_reference"] is not False for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
