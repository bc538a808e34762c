"""`flashswap run MODEL --sram SIZE`: run a model out of core, through the store, and check it.

Plans the model for the budget, then executes the plan on a simulated device of the part
(flashswap/exec/: an SRAM arena the budget's size, the store on a partition of the part, the
weights on another), compares the output with the reference (LiteRT's reference kernels for
.tflite, ONNX Runtime for float ONNX) and the executed trace with the planned one, and prints
the output, the verdict, peak SRAM used and planned, bytes swapped, the device's flash time
and energy, and wall time.

Peak SRAM "used" is measured by the executor's arena: the most bytes at once of live buffers
that an instruction touched (flash reads and writes, kernel bands, the scratch, parameters and
accumulators each kernel demands; flashswap/exec/arena.py). "planned" is the plan's
`peak_sram`, the scheduler's count of what it reserved; the arena checks that the program's
allocations peak at exactly that (`reserved_peak_sram` in --json) and that no kernel demands
more than its buffer holds. Used is below planned by the bytes reserved but never touched
(16-byte rounding of every buffer, scratch sized for a run's widest step).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from rich.console import Console

from flashswap.cli import COMMANDS
from flashswap.cli.output import print_json, table
from flashswap.cli.plan_options import add_plan_options, cost_model
from flashswap.errors import FlashswapError, InputError
from flashswap.sizes import format_size, parse_size
from flashswap.store.engine import default_engine, names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help=COMMANDS["run"][1],
        description="Plans one inference of MODEL (.tflite or float .onnx) for the SRAM budget "
        "and runs it on a simulated device: every buffer in one arena of the budget's size, "
        "every swap through the flashswap store on a partition of the part, weights read from "
        "their own partition. Checks the output against LiteRT's reference kernels (bit-exact; "
        "a model with float weights within 1e-4 of the largest output magnitude) or ONNX "
        "Runtime (float, within that tolerance), and the executed trace against the planned "
        "one; exit 1 if either differs.",
    )
    p.add_argument("model", metavar="MODEL", help=".tflite or .onnx file")
    p.add_argument("--sram", required=True, metavar="SIZE",
                   help="SRAM budget: activations, chunk windows, parameter staging, kernel "
                   "scratch and accumulators, e.g. 64KiB")
    p.add_argument("--chunk", default="4KiB", metavar="SIZE",
                   help="largest swap chunk (4KiB; chosen per tensor as `plan` does)")
    p.add_argument("--part", default=None, metavar="NAME",
                   help="flash part from the catalogue (default W25Q128JV)")
    p.add_argument("--capacity", metavar="SIZE",
                   help="the store's partition (default: the part less the weights region, "
                   "at most 16 MiB)")
    p.add_argument("--engine", choices=names(),
                   help="store engine: the C library or the Python model (default: c when it "
                   "builds)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", metavar="X.npy",
                     help="model input (.npy with the input's shape and dtype; .npz by input "
                     "name for several inputs)")
    src.add_argument("--seed", type=int, default=0, metavar="N",
                     help="random input from this seed (default 0)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x96x96x3",
                   help="pin a dynamic input dimension (repeatable)")
    p.add_argument("-o", "--output", metavar="OUT.npy", help="write the model output (.npy; "
                   ".npz for several outputs)")
    p.add_argument("--trace-out", metavar="EXECUTED.bin",
                   help="write the executed trace (the store's trace hook, in order)")
    p.add_argument("--inferences", type=int, default=1, metavar="N",
                   help="inferences to run (default 1)")
    p.add_argument("--corrupt-chunk", type=int, metavar="KEY",
                   help="fault injection: flip one stored bit of swap chunk KEY right after "
                   "it is written (the store must report it)")
    add_plan_options(p, part=False)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def load_inputs(path: str, graph: Any) -> list[np.ndarray]:
    """The model inputs from a .npy (one input) or .npz (by name) file, checked."""
    if not os.path.isfile(path):
        raise InputError(f"input file '{path}': no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same input error
        raise InputError(f"input file '{path}': not a .npy/.npz array ({e})") from None
    if isinstance(data, np.ndarray):
        if len(graph.inputs) != 1:
            raise InputError(f"input file '{path}': the model has {len(graph.inputs)} inputs; "
                             f"give a .npz with arrays named {', '.join(graph.inputs)}")
        arrays = [data]
    else:
        missing = [n for n in graph.inputs if n not in data.files]
        if missing:
            raise InputError(f"input file '{path}': no array named {missing[0]!r}")
        arrays = [data[n] for n in graph.inputs]
    for name, x in zip(graph.inputs, arrays, strict=True):
        t = graph.tensors[name]
        if x.shape != t.shape or x.dtype != np.dtype(t.dtype):
            raise InputError(f"input file '{path}': input '{name}' must be {t.dtype} "
                             f"{'x'.join(map(str, t.shape))}, not {x.dtype} "
                             f"{'x'.join(map(str, x.shape)) or 'scalar'}")
    return arrays


def random_inputs(graph: Any, seed: int) -> list[np.ndarray]:
    """Uniform integers over an integer input's range; standard normal floats."""
    rng = np.random.default_rng(seed)
    out = []
    for name in graph.inputs:
        t = graph.tensors[name]
        dt = np.dtype(t.dtype)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            out.append(rng.integers(info.min, info.max, t.shape, dtype=dt, endpoint=True))
        elif dt.kind == "f":
            out.append(rng.standard_normal(t.shape).astype(dt))
        else:
            raise InputError(f"input '{name}': no random {t.dtype} input; give --input")
    return out


def top5(graph: Any, name: str, y: np.ndarray) -> list[tuple[int, float]] | None:
    """(class, score) of the five highest scores of a classifier's output, else None."""
    if y.ndim < 1 or y.size < 2 or y.size != max(y.shape):  # one axis of classes
        return None
    v = y.reshape(-1).astype(np.float64)
    q = graph.quant.get(name)
    if q is not None and np.issubdtype(y.dtype, np.integer):
        v = q.scale[0] * (v - q.zero_point[0])
    order = sorted(range(v.size), key=lambda i: (-v[i], i))[:5]
    return [(i, float(v[i])) for i in order]


def _run(args: argparse.Namespace, console: Console) -> int:
    from flashswap.exec.device import DEFAULT_PART, Device
    from flashswap.model import load_model, parse_input_shapes
    from flashswap.planner import plan

    sram = parse_size(args.sram, "SRAM budget")
    chunk = parse_size(args.chunk, "chunk size")
    capacity = parse_size(args.capacity, "capacity") if args.capacity else None
    if args.inferences < 1:
        raise InputError(f"invalid inference count {args.inferences}: must be at least 1")
    if args.seed < 0:
        raise InputError(f"invalid seed {args.seed}: must not be negative")
    if args.model.startswith("builtin:"):
        raise InputError(f"{args.model} has no weights: run takes a .tflite or .onnx file")
    shapes = parse_input_shapes(args.input_shape)
    engine = args.engine or default_engine()
    t0 = time.perf_counter()
    graph = load_model(args.model, None, shapes or None)
    p = plan(graph, sram, chunk, schedule=args.schedule,
             cost=cost_model(args, args.part or DEFAULT_PART, 0))
    inputs = load_inputs(args.input, graph) if args.input else random_inputs(graph, args.seed)
    t1 = time.perf_counter()
    dev = Device(p, args.part or DEFAULT_PART, capacity, engine)
    if args.corrupt_chunk is not None:
        dev.corrupt_after_write(args.corrupt_chunk)
    t2 = time.perf_counter()
    results = [dev.infer(inputs, i) for i in range(args.inferences)]
    t3 = time.perf_counter()
    report = _report(args, p, dev, results, inputs, (t1 - t0, t2 - t1, t3 - t2))
    if args.output:
        _save(args.output, graph, results[-1].outputs)
    if args.trace_out:
        from flashswap.trace import TraceWriter

        with TraceWriter(args.trace_out, {**p.metadata, "inferences": args.inferences,
                                          "generator": "flashswap run (executed trace)"}) as w:
            for r in results:
                w.write_records(r.records)
    if args.json:
        print_json(console, report)
    else:
        _print(console, report, graph)
    problems = _problems(report)
    if problems:
        raise _Failed("; ".join(problems))
    return 0


class _Failed(FlashswapError):
    """The run finished but does not match its reference or its plan (exit 1)."""


def _save(path: str, graph: Any, outputs: list[np.ndarray]) -> None:
    if not path.endswith(".npz") and len(outputs) != 1:
        raise InputError(f"-o {path}: the model has {len(outputs)} outputs; name a .npz file")
    try:
        if path.endswith(".npz"):
            np.savez(path, **dict(zip(graph.outputs, outputs, strict=True)))
        else:
            np.save(path, outputs[0], allow_pickle=False)
    except OSError as e:
        raise InputError(f"-o {path}: cannot write: {e.strerror}") from None


def _same_trace(planned: np.ndarray, executed: np.ndarray) -> bool:
    return len(planned) == len(executed) and all(
        np.array_equal(planned[f], executed[f]) for f in ("op", "key", "length"))


def _report(args: argparse.Namespace, p: Any, dev: Any, results: list[Any],
            inputs: list[np.ndarray], times: tuple[float, float, float]) -> dict[str, Any]:
    from flashswap.exec.device import Counters
    from flashswap.exec.verdict import (
        ReferenceUnavailable,
        compare,
        float_compute,
        reference_outputs,
    )

    g, md = p.graph, p.metadata
    n = len(results)
    outs = results[0].outputs
    why = None
    try:
        ref = reference_outputs(args.model, inputs)
    except ReferenceUnavailable as e:
        ref, why = None, str(e)
    v = compare(ref[0], outs, ref[1], float_compute(g)) if ref else None
    repeat = all(all(np.array_equal(a, b) for a, b in zip(outs, r.outputs, strict=True))
                 for r in results[1:])
    store = Counters.of(dev.flash).minus(dev.after_format)
    wf = Counters.of(dev.weights.flash)
    rec = p.records
    peak = max(r.peak_sram for r in results)
    reserved = max(r.reserved_sram for r in results)
    classes = top5(g, g.outputs[0], outs[0]) if len(outs) == 1 else None
    return {
        "model": md["model"],
        "model_file": args.model,
        "sram_budget": md["sram_budget"],
        "chunk_size": md["chunk_size"],
        "part": dev.part.name,
        "capacity": dev.flash.size,
        "weights_region": dev.weights.capacity,
        "engine": dev.engine,
        "inferences": n,
        "outputs": [{"name": name, "dtype": str(y.dtype), "shape": list(y.shape)}
                    for name, y in zip(g.outputs, outs, strict=True)],
        "top5": [{"class": c, "score": s} for c, s in classes] if classes else None,
        "reference": v.reference if v else None,
        "reference_error": why,
        "bit_exact": v.bit_exact if v else None,
        "max_abs_diff": v.max_abs_diff if v else None,
        "tolerance": v.tolerance if v else None,
        "matches_reference": v.ok if v else None,
        "same_output_every_inference": repeat,
        "peak_sram": peak,
        "reserved_peak_sram": reserved,
        "planned_peak_sram": md["peak_sram"],
        "executed_trace_equals_planned": all(_same_trace(rec, r.records) for r in results),
        "records_per_inference": int(len(rec)),
        "bytes_written": int(sum(r.records["length"][r.records["op"] == 1].sum()
                                 for r in results)) // n,
        "bytes_read": int(sum(r.records["length"][r.records["op"] == 2].sum()
                              for r in results)) // n,
        "weight_bytes_read": int(sum(r.records["length"][r.records["op"] == 9].sum()
                                     for r in results)) // n,
        "flash_programs": store.programs // n,
        "flash_erases": store.erases // n,
        "flash_program_bytes": store.program_bytes // n,
        "flash_read_bytes": (store.read_bytes + wf.read_bytes) // n,
        "device_time_s": (store.time_s + wf.time_s) / n,
        "device_energy_j": (store.energy_j + wf.energy_j) / n,
        "store_time_s": store.time_s / n,
        "weights_time_s": wf.time_s / n,
        "plan_s": times[0],
        "setup_s": times[1],
        "wall_s": times[2],
        "output_file": args.output,
        "trace_file": args.trace_out,
    }


def _problems(r: dict[str, Any]) -> list[str]:
    out = []
    if r["matches_reference"] is False:
        what = "bit-exact" if r["tolerance"] is None else f"within {r['tolerance']:.3g}"
        out.append(f"the output is not {what} against {r['reference']} "
                   f"(max |difference| {r['max_abs_diff']:.6g})")
    if not r["same_output_every_inference"]:
        out.append("the inferences gave different outputs")
    if not r["executed_trace_equals_planned"]:
        out.append("the executed trace differs from the planned trace")
    if r["reserved_peak_sram"] != r["planned_peak_sram"]:
        out.append(f"the executor reserved at most {r['reserved_peak_sram']:,} B of SRAM at "
                   f"once, the plan {r['planned_peak_sram']:,} B")
    if r["peak_sram"] > r["reserved_peak_sram"]:
        out.append(f"measured peak SRAM {r['peak_sram']:,} B exceeds the "
                   f"{r['reserved_peak_sram']:,} B reserved")
    if r["peak_sram"] > r["sram_budget"]:
        out.append(f"measured peak SRAM {r['peak_sram']:,} B exceeds the budget "
                   f"{r['sram_budget']:,} B")
    return out


def _print(console: Console, r: dict[str, Any], graph: Any) -> None:
    def line(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    per = " per inference" if r["inferences"] > 1 else ""
    line(f"{r['model']}: {r['inferences']} inference{'s' if r['inferences'] > 1 else ''} in "
         f"{format_size(r['sram_budget'])} of SRAM ({format_size(r['chunk_size'])} chunks), "
         f"store on {r['part']} ({format_size(r['capacity'])} partition, {r['engine']} engine)")
    for o in r["outputs"]:
        line(f"output {o['name']}: {o['dtype']} {'x'.join(map(str, o['shape']))}")
    if r["top5"]:
        line(f"top-{len(r['top5'])}: "
             + ", ".join(f"{c['class']} ({c['score']:.4g})" for c in r["top5"]))
    if r["reference_error"] is not None:
        verdict = f"no verdict ({r['reference_error']})"
    elif r["reference"] is None:
        verdict = "no reference (LiteRT / ONNX Runtime not installed)"
    elif r["tolerance"] is None:
        verdict = "bit-exact" if r["bit_exact"] else \
            f"DIFFERS (max |difference| {r['max_abs_diff']:.6g})"
    else:
        verdict = (f"within tolerance (max |difference| {r['max_abs_diff']:.3g} <= "
                   f"{r['tolerance']:.3g})" if r["matches_reference"] else
                   f"DIFFERS (max |difference| {r['max_abs_diff']:.3g} > {r['tolerance']:.3g})")
    line(f"against {r['reference'] or 'a reference'}: {verdict}")
    trace = ("= planned trace" if r["executed_trace_equals_planned"] else "DIFFERS from the plan")
    rows = [
        ["peak SRAM, used / planned", f"{r['peak_sram']:,} B / {r['planned_peak_sram']:,} B"],
        [f"swap bytes written / read{per}", f"{r['bytes_written']:,} / {r['bytes_read']:,}"],
        [f"weight bytes read{per}", f"{r['weight_bytes_read']:,}"],
        [f"flash programs / erases{per}", f"{r['flash_programs']:,} / {r['flash_erases']:,}"],
        [f"device flash time{per}", f"{r['device_time_s'] * 1e3:,.1f} ms (store "
         f"{r['store_time_s'] * 1e3:,.1f}, weights {r['weights_time_s'] * 1e3:,.1f})"],
        [f"device flash energy{per}", f"{r['device_energy_j'] * 1e3:,.2f} mJ"],
        ["executed trace", f"{trace} ({r['records_per_inference']:,} records{per})"],
        ["wall time", f"{r['wall_s']:.2f} s (load and plan {r['plan_s']:.2f} s, device "
         f"setup {r['setup_s']:.2f} s)"],
    ]
    console.print(table(None, ["", "value"], rows))
