"""`flashswap trace plan` (model + SRAM budget -> swap trace) and `flashswap trace models`."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from flashswap.cli.output import print_json, table
from flashswap.cli.plan_options import add_plan_options, cost_model
from flashswap.errors import InputError
from flashswap.model import ACTIVATION_DTYPES, BUILTINS, load_model, parse_input_shapes
from flashswap.sizes import format_size, parse_size


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `plan` and `models` to the `trace` group."""
    p = sub.add_parser(
        "plan",
        help="plan a model's activation swapping for an SRAM budget and write the trace",
        description="Plans one inference of MODEL (a .onnx or .tflite file, or builtin:NAME) "
        "in an SRAM budget: what stays in SRAM, what is swapped to flash in chunks, how ops "
        "are tiled; writes the resulting swap trace.",
    )
    p.add_argument("model", metavar="MODEL", help=".onnx / .tflite path or builtin:NAME")
    p.add_argument("--sram", required=True, metavar="SIZE",
                   help="SRAM budget for activations, e.g. 256KiB, 1MiB, 300k")
    p.add_argument("--chunk", default="4KiB", metavar="SIZE",
                   help="largest swap chunk (default 4KiB; the fused planner chooses a chunk "
                   "per tensor: halved, down to the part's program unit, for tensors streamed "
                   "through windows where the budget needs smaller ones)")
    p.add_argument("--inferences", type=int, default=1, metavar="N",
                   help="inferences to write (identical; default 1)")
    p.add_argument("--dtype", choices=ACTIVATION_DTYPES, default=None,
                   help="what-if activation type: built-in models (default int8), or a float "
                   "model planned as an int8 deployment (weights int8); by default a model "
                   "file's own types")
    p.add_argument("--input-shape", action="append", metavar="NAME=DIMS",
                   help="pin a dynamic input dimension, e.g. input=1x96x96x3 (repeatable)")
    p.add_argument("--macs-per-s", default="0", metavar="RATE",
                   help="MCU MAC rate for COMPUTE durations, e.g. 50M (default 0: no durations)")
    p.add_argument("--mcu", metavar="NAME",
                   help="COMPUTE durations at a measured MCU rate instead (as `flashswap "
                   "lifetime --mcu`), e.g. cortex-m4-120mhz-xcube-ai")
    add_plan_options(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.bin", help="trace file to write")
    p.add_argument("--json", action="store_true", help="print the plan summary as JSON")
    p.set_defaults(func=_plan)

    m = sub.add_parser("models", help="list the built-in models (use as builtin:NAME)")
    m.add_argument("--json", action="store_true", help="print as JSON")
    m.set_defaults(func=_models)


_SUMMARY = [
    ("sram_budget", "SRAM budget", True),
    ("peak_sram", "peak SRAM used", True),
    ("no_swap_budget", "no-swap budget", True),
    ("tflm_greedy_arena", "TFLM greedy arena (no swap)", True),
    ("min_feasible_budget", "smallest feasible budget", True),
    ("bytes_written_per_inference", "swap bytes written / inference", True),
    ("bytes_read_per_inference", "swap bytes read / inference", True),
    ("weight_bytes_read_per_inference", "weight bytes read / inference", True),
    ("swap_writes_per_inference", "chunk writes / inference", False),
    ("swap_reads_per_inference", "chunk reads / inference", False),
    ("key_count", "chunk keys", False),
    ("tiled_steps", "tiled steps", False),
    ("macs_per_inference", "MACs / inference", False),
]


def _plan(args: argparse.Namespace, console: Console) -> int:
    from flashswap.planner import plan
    from flashswap.planner.emit import write_trace

    sram = parse_size(args.sram, "SRAM budget")
    chunk = parse_size(args.chunk, "chunk size")
    rate = parse_size(args.macs_per_s, "MAC rate")
    if args.mcu:
        from flashswap.mcus import get_mcu

        if rate:
            raise InputError("give --macs-per-s or --mcu, not both")
        rate = round(get_mcu(args.mcu).macs_per_s)
    graph = load_model(args.model, args.dtype, parse_input_shapes(args.input_shape))
    cm = cost_model(args, args.part, rate)
    p = plan(graph, sram, chunk, rate, schedule=args.schedule, cost=cm)
    records = write_trace(p, args.output, args.inferences)
    md = p.metadata
    if args.json:
        out = {k: v for k, v in md.items() if k != "tensors"}
        print_json(console, {**out, "output": args.output, "records": records,
                             "inferences": args.inferences})
        return 0
    rows = []
    for key, label, is_size in _SUMMARY:
        v = md[key]
        rows.append([label, f"{format_size(v)} ({v:,} B)" if is_size else v])
    rows.append(["records written", records])
    rows += _cost_rows(md)
    console.print(table(f"{md['model']}: {md['schedule']} plan for {format_size(sram)} SRAM, "
                        f"{format_size(md['chunk_size'])} chunks -> {args.output}",
                        ["", "value"], rows))
    return 0


def _cost_rows(md: dict) -> list[list[object]]:
    """The predicted cost on the part and the fused runs (fused/cost.py, fused/schedule.py)."""
    c = md.get("cost")
    if not c:
        return []
    rows: list[list[object]] = [
        [f"predicted on {c['part']} ({c['objective']})",
         f"I/O {c['io_ms']:,.1f} ms, compute {c['compute_ms']:,.1f} ms, "
         f"flash energy {c['energy_mj']:,.2f} mJ"
         + (f", slowdown {c['slowdown']:.2f}x" if c.get("slowdown") else "")],
        ["extra MACs (recomputed halos)", f"{c['extra_macs']:,}"]]
    for r in md.get("fused_runs", []):
        mode = ("band" if r["cache_rows"] and r["grid"][1] == 1 else
                "line buffers" if r["cache_rows"] else "recomputed rows")
        rows.append([f"fused {r['first']} .. {r['last']}"[:70],
                     f"{r['steps']} steps, {r['grid'][0]}x{r['grid'][1]} patches, {mode}"
                     + (", column cache" if r["cache_cols"] and r["grid"][1] > 1 else "")])
    return rows


def _models(args: argparse.Namespace, console: Console) -> int:
    rows: list[dict[str, Any]] = []
    for name, b in BUILTINS.items():
        g = b.make()
        rows.append({"name": name, "description": b.description,
                     "parameters": dict(zip(b.params, b.defaults, strict=True)),
                     "macs": g.macs, "weight_bytes": g.weight_bytes,
                     "activation_bytes": sum(t.nbytes for t in g.activations())})
    if args.json:
        print_json(console, rows)
        return 0
    console.print(table("built-in models (use as builtin:NAME; int8 activations by default)",
                        ["name", "description", "MACs", "weights", "activations"],
                        [[r["name"], r["description"], r["macs"], format_size(r["weight_bytes"]),
                          format_size(r["activation_bytes"])] for r in rows]))
    return 0
