"""Wall time of the numpy kernels on the fixture models, beside LiteRT's reference kernels.

For each fixture model (tests/fixtures/models): one inference through flashswap's reference
interpreter (every op through flashswap/exec/kernels, whole tensors) and one through LiteRT's
BUILTIN_REF interpreter on the same random input; the median of `--repeat` runs each, their
ratio, the model's MACs, and how the outputs agree (int8 models: identical byte for byte;
float models: the largest difference relative to the output's largest magnitude).

    OPENBLAS_NUM_THREADS=1 python bench/reference_models.py [--repeat N] [--json-only]

On a loaded 2-core machine OpenBLAS's threads contend: the convolutions' small float64
matrix products then take several times longer (ic_resnet8_32: 347 ms with default threads,
58 ms with one, in two runs minutes apart); one thread is the representative setting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "models"


def _input(graph, seed: int) -> np.ndarray:
    t = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(seed)
    if t.dtype == "int8":
        return rng.integers(-128, 128, t.shape, dtype=np.int8)
    return rng.uniform(-2.0, 2.0, t.shape).astype(np.float32)


def measure(path: Path, repeat: int) -> dict:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from flashswap.exec.reference import run_reference
    from flashswap.model import load_model

    g = load_model(str(path))
    x = _input(g, 0)
    ours, theirs = [], []
    out = ref = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = run_reference(g, {g.inputs[0]: x})[g.outputs[0]]
        ours.append(time.perf_counter() - t0)
        it = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        t0 = time.perf_counter()
        it.invoke()
        theirs.append(time.perf_counter() - t0)
        ref = it.get_tensor(it.get_output_details()[0]["index"])
    assert out is not None and ref is not None
    out = out.reshape(ref.shape)
    same = bool(np.array_equal(out, ref))
    rel = float(np.abs(out.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))
    a, b = statistics.median(ours), statistics.median(theirs)
    return {"model": path.stem, "macs": g.macs, "flashswap_ms": round(a * 1e3, 2),
            "litert_ref_ms": round(b * 1e3, 2), "ratio": round(a / b, 2), "identical": same,
            "max_rel_diff": rel}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json-only", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    rows = [measure(p, args.repeat) for p in sorted(FIXTURES.glob("*.tflite"))]
    if not args.json_only:
        table = Table(title=f"one inference, median of {args.repeat} (wall time, this machine)")
        for col in ("model", "MACs", "flashswap ms", "LiteRT ref ms", "ratio", "outputs"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for r in rows:
            table.add_row(r["model"], f"{r['macs']:,}", f"{r['flashswap_ms']:.1f}",
                          f"{r['litert_ref_ms']:.1f}", f"{r['ratio']:.2f}x",
                          "identical" if r["identical"] else f"rel diff {r['max_rel_diff']:.1e}")
        Console(width=120).print(table)
    print(json.dumps({"bench": "reference_models", "repeat": args.repeat, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
