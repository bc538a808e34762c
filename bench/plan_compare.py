"""Bytes written per inference: the fused schedule against `--schedule layers`, one run.

For every model x budget it plans both schedules (4 KiB chunks at most, W25Q128JV's cost
model, wear objective, the analyzer's default MCU rate for the time figures) and prints bytes
written, their ratio, a lower bound, the fused plan's extra MACs, and planning time; then,
per model, the smallest budget each schedule plans at; then the issue's targets. Models:

- MobileNetV2-224 (builtin:mobilenet_v2, alpha 1.0, int8) at 256, 128 and 64 KiB;
- every sample model (flashswap/planner/samples.py) at its budgets (256 and 512 KiB), loaded
  as the samples are (the float ImageNet graphs with int8 activations);
- every fixture model (tests/fixtures/models) at three budgets between the layer schedule's
  no-swap budget N and its smallest budget M (4 KiB chunks), spaced evenly in ratio:
  N (M/N)^(1/3), N (M/N)^(2/3) and M, rounded up to a KiB, so the layer schedule runs but
  must swap (a model whose N and M are close gets fewer distinct budgets).

Ratio. layers / fused bytes written, each plus one 4 KiB chunk, so that a plan that writes
nothing has a finite ratio (1 when both write nothing); the geometric mean is over every row.

Lower bound. Under the planner's model the application writes each graph input whole before
the first step (the Input step), so at that moment the input is either entirely in SRAM or
the part that does not fit is in flash: every schedule, fused or not, with or without
recomputation, writes at least sum(inputs) - budget bytes. Nothing else is forced: any other
tensor can be streamed through line buffers or recomputed from the input instead of being
written, so that is the bound (0 when the inputs fit), and the distance to it is what a
schedule could still save.

Smallest budget. The layer schedule's is exact (its hungriest step streamed at one unit per
tile, 4 KiB chunks: `min_feasible_budget`). The fused planner's is its own estimate across
chunk sizes down to the part's program unit (search.min_budget), checked by planning at it
(256 bytes more at a time if that fails).

    python bench/plan_compare.py [--quick]   # --quick: MobileNetV2-224 and the fixtures only
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from analyzer.mcus import DEFAULT_MCU, get_mcu
from flashswap.errors import BudgetError
from flashswap.model import load_model
from flashswap.planner import plan
from flashswap.planner.fused.cost import CostModel
from flashswap.planner.samples import BUDGETS_KIB, samples

CHUNK = 4096
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"
SMOOTH = 4096  # one chunk, added to both sides of each ratio


def models(quick: bool) -> list[tuple[str, str, str | None, list[int]]]:
    """(label, spec, dtype what-if, budgets in KiB); fixture budgets are filled in later.
    Sample models load as flashswap.planner.samples loads them (the float ImageNet graphs
    as an int8 deployment would run them)."""
    out = [("mobilenet_v2_224", "builtin:mobilenet_v2", None, [256, 128, 64])]
    if not quick:
        out += [(s.name, s.spec, "int8", list(BUDGETS_KIB)) for s in samples()]
    out += [(p.stem, str(p), None, []) for p in sorted(FIXTURES.glob("*.tflite"))]
    return out


def lower_bound(graph, budget: int) -> int:
    return max(0, sum(graph.tensors[x].nbytes for x in graph.inputs) - budget)


def smallest(graph, cm: CostModel, layers_min: int) -> tuple[int, float]:
    """The fused planner's smallest budget: its estimate, checked by planning there (and
    256 bytes more at a time, at most 32 times, if that fails)."""
    p = plan(graph, max(layers_min, 1 << 20), CHUNK, cost=cm)
    est = p.metadata["min_feasible_budget"]
    for budget in range(est, est + 32 * 256, 256):
        try:
            t = time.perf_counter()
            plan(graph, budget, CHUNK, cost=cm)
            return budget, time.perf_counter() - t
        except BudgetError:
            continue
    return -1, 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="MobileNetV2-224 and fixtures only")
    args = ap.parse_args(argv)
    # The analyzer's default MCU (flashswap lifetime's): a measured Cortex-M4 rate.
    cm = CostModel.for_part(macs_per_s=get_mcu(DEFAULT_MCU).macs_per_s)
    console = Console(width=200)
    rows: list[dict] = []
    mins: list[dict] = []
    for label, spec, dtype, budgets in models(args.quick):
        g = load_model(spec, dtype)
        big = plan(g, 1 << 30, CHUNK, schedule="layers")
        layers_min = big.metadata["min_feasible_budget"]
        if not budgets:
            nsb = big.metadata["no_swap_budget"]
            q = layers_min / nsb
            budgets = sorted({-(-int(nsb * q ** (k / 3)) // 1024) for k in (1, 2, 3)},
                             reverse=True)
        for kib in budgets:
            sram = kib * 1024
            t = time.perf_counter()
            try:
                lay = plan(g, sram, CHUNK, schedule="layers", cost=cm)
                lw = lay.metadata["bytes_written_per_inference"]
            except BudgetError:
                lw = None
            tl = time.perf_counter() - t
            t = time.perf_counter()
            try:
                fu = plan(g, sram, CHUNK, cost=cm)
            except BudgetError:
                rows.append({"model": label, "budget_kib": kib, "layers_written": lw,
                             "fused_written": None, "ratio": None,
                             "lower_bound": lower_bound(g, sram), "extra_macs_pct": 0.0,
                             "schedule": "-", "chunk": 0, "fused_runs": 0, "grids": [],
                             "peak": None, "io_ms": 0.0, "compute_ms": 0.0, "energy_mj": 0.0,
                             "plan_s": time.perf_counter() - t, "layers_plan_s": tl})
                continue
            tf = time.perf_counter() - t
            m = fu.metadata
            fw = m["bytes_written_per_inference"]
            runs = m.get("fused_runs", [])
            rows.append({
                "model": label, "budget_kib": kib, "layers_written": lw, "fused_written": fw,
                "ratio": (lw + SMOOTH) / (fw + SMOOTH) if lw is not None else None,
                "lower_bound": lower_bound(g, sram),
                "extra_macs_pct": 100 * m["cost"]["extra_macs"] / max(g.macs, 1),
                "schedule": m["schedule"], "chunk": m["chunk_size"], "fused_runs": len(runs),
                "grids": sorted({f"{r['grid'][0]}x{r['grid'][1]}" for r in runs}),
                "peak": m["peak_sram"], "io_ms": m["cost"]["io_ms"],
                "compute_ms": m["cost"]["compute_ms"], "energy_mj": m["cost"]["energy_mj"],
                "plan_s": tf, "layers_plan_s": tl})
            print(f"{label} {kib} KiB: layers {lw} fused {fw} ({tf:.1f} s)", file=sys.stderr)
        fmin, ft = smallest(g, cm, layers_min)
        mins.append({"model": label, "layers_min": layers_min, "fused_min": fmin,
                     "plan_s": ft})
    _print(console, rows, mins)
    targets = _targets(rows, mins)
    for k, v in targets.items():
        console.print(f"{k}: {v}")
    print(json.dumps({"bench": "plan_compare", "rows": rows, "smallest": mins,
                      "targets": targets}))
    return 0


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f}"


def _print(console: Console, rows: list[dict], mins: list[dict]) -> None:
    t = Table(title="bytes written per inference: fused vs layers (W25Q128JV cost model, "
              "wear objective, chunks <= 4 KiB)")
    for c in ("model", "budget KiB", "layers KiB", "fused KiB", "ratio", "lower bound KiB",
              "extra MACs", "schedule", "runs (grids)", "peak KiB", "I/O ms", "plan s"):
        t.add_column(c, justify="left" if c in ("model", "schedule", "runs (grids)")
                     else "right")
    for r in rows:
        grids = ", ".join(r["grids"][:4]) + (" ..." if len(r["grids"]) > 4 else "")
        t.add_row(r["model"], str(r["budget_kib"]), _kib(r["layers_written"]),
                  _kib(r["fused_written"]),
                  "-" if r["ratio"] is None else f"{r['ratio']:.2f}x",
                  _kib(r["lower_bound"]), f"{r['extra_macs_pct']:.1f}%",
                  f"{r['schedule']} {r['chunk']} B", f"{r['fused_runs']} ({grids})",
                  _kib(r["peak"]), f"{r['io_ms']:,.0f}", f"{r['plan_s']:.1f}")
    console.print("ratio: (layers + 4 KiB) / (fused + 4 KiB) bytes written; '-': that "
                  "schedule cannot run at the budget")
    console.print(t)
    t = Table(title="smallest budget at which each model plans")
    for c in ("model", "layers KiB", "fused KiB", "ratio", "plan s at it"):
        t.add_column(c, justify="left" if c == "model" else "right")
    for m in mins:
        ratio = m["layers_min"] / m["fused_min"] if m["fused_min"] > 0 else float("nan")
        t.add_row(m["model"], _kib(m["layers_min"]), _kib(m["fused_min"]), f"{ratio:.2f}x",
                  f"{m['plan_s']:.1f}")
    console.print(t)


def _targets(rows: list[dict], mins: list[dict]) -> dict[str, object]:
    mb = {r["budget_kib"]: r for r in rows if r["model"] == "mobilenet_v2_224"}
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else None
    worse = [f"{r['model']}@{r['budget_kib']}" for r in rows
             if r["layers_written"] is not None
             and (r["fused_written"] is None or r["fused_written"] > r["layers_written"])]
    mv = next((m for m in mins if m["model"] == "mobilenet_v2_224"), None)
    out: dict[str, object] = {}
    if 256 in mb:
        out["mobilenet_v2_224 @256 KiB: bytes written, extra MACs %"] = (
            mb[256]["fused_written"], round(mb[256]["extra_macs_pct"], 2))
    for kib in (128, 64):
        if kib in mb and mb[kib]["ratio"] is not None:
            r = mb[kib]
            out[f"mobilenet_v2_224 @{kib} KiB: layers / fused bytes written"] = round(
                r["layers_written"] / max(r["fused_written"], 1), 2)
    out["rows where fused writes more than layers"] = worse
    out["geometric mean ratio"] = None if geo is None else round(geo, 2)
    if mv is not None and mv["fused_min"] > 0:
        out["mobilenet_v2_224 smallest budget: layers / fused"] = round(
            mv["layers_min"] / mv["fused_min"], 2)
    out["slowest plan s"] = round(max((r["plan_s"] for r in rows), default=0.0), 1)
    return out


if __name__ == "__main__":
    sys.exit(main())
