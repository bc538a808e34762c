"""Fused plans run through the executor (`flashswap run`'s engine) bit-exact against LiteRT.

Every configuration family of a fused run is forced on the op zoo's run of 11 steps (strided
SAME and VALID convolutions with a 3x2 kernel, Pad, channel concat, depthwise x2, a dilated
convolution, a 1x1 convolution, a residual Add, VALID average and max pools with uneven
edges, concat): band (row cache, full width), line buffers with and without a column cache,
recomputed rows with and without a column cache, at patch grids with uneven edges. Then the
planner's own fused plans on every fixture model at several budgets, with inputs and outputs
streamed through flash at the smallest ones. Each run checks, as `flashswap run` does, the
output against LiteRT's reference kernels bit for bit, the executed trace against the planned
one record for record, and the arena's measured peak (bytes used) against the plan's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flashswap.exec.device import Device
from flashswap.exec.verdict import reference_outputs
from flashswap.model import load_model
from flashswap.planner import plan, plan_with_runs
from flashswap.planner.fused.runs import Config
from flashswap.trace import Op

FIX = Path(__file__).parent / "fixtures" / "models"


def inputs_for(graph, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for name in graph.inputs:
        t = graph.tensors[name]
        if t.dtype == "float32":
            out.append(rng.standard_normal(t.shape).astype(np.float32))
        else:
            out.append(rng.integers(-128, 128, t.shape).astype(t.dtype))
    return out


def run_and_check(path: Path, p, inputs: list[np.ndarray]) -> None:
    ref = reference_outputs(str(path), inputs)
    assert ref is not None
    d = Device(p)
    res = d.infer(inputs)
    for got, want in zip(res.outputs, ref[1], strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    fields = ["op", "key", "length", "value"]
    assert np.array_equal(res.records[fields], p.records[fields])
    md = p.metadata
    assert res.peak_sram <= res.reserved_sram == md["peak_sram"] <= md["sram_budget"]


ZOO = FIX / "op_zoo.tflite"
ZOO_RUN = (1, 11)  # Conv ... Concat: every spatial op the zoo has
MODES = [(True, True), (True, False), (False, True), (False, False)]


@pytest.fixture(scope="module")
def zoo():
    g = load_model(str(ZOO))
    return g, inputs_for(g)


@pytest.mark.parametrize("cache_rows, cache_cols", MODES)
@pytest.mark.parametrize("patch", [(4, 3), (1, 5), (6, 2), (3, 1)])
def test_every_configuration_of_the_zoo_run_is_bit_exact(zoo, patch, cache_rows, cache_cols):
    g, x = zoo
    cfg = Config(patch[0], patch[1], cache_rows, cache_cols)
    p = plan_with_runs(g, 64 * 1024, 4096, [(*ZOO_RUN, cfg)])
    (run,) = p.metadata["fused_runs"]
    assert run["steps"] == 11
    assert run["grid"] == [-(-6 // patch[0]), -(-5 // patch[1])]  # the sink is 6 x 5
    assert p.metadata["bytes_written_per_inference"] == 0
    if not cache_rows and patch != (6, 2):
        assert run["extra_macs"] > 0  # row halos recomputed
    if cache_rows and cache_cols:
        assert run["extra_macs"] == 0
    run_and_check(ZOO, p, x)


@pytest.mark.parametrize("cache_rows, cache_cols, budget, streamed", [
    (True, True, 10240, 2), (True, False, 9728, 2), (False, True, 10240, 1),
    (False, False, 7168, 1)])
def test_zoo_run_streamed_through_flash(zoo, cache_rows, cache_cols, budget, streamed):
    """The smallest budgets (in 256 B steps, 64-byte chunks) at which each mode runs: the
    run's output, and with a row cache its input too, stream through chunk windows a patch
    row's band at a time, while the intermediates stay in their windows."""
    g, x = zoo
    p = plan_with_runs(g, budget, 64, [(*ZOO_RUN, Config(2, 2, cache_rows, cache_cols))])
    (run,) = p.metadata["fused_runs"]
    assert len(run["streamed"]) == streamed
    assert p.metadata["bytes_written_per_inference"] > 0
    run_and_check(ZOO, p, x)


def test_resnet_residual_adds_inside_one_run():
    path = FIX / "ic_resnet8_32.tflite"
    g = load_model(str(path))
    p = plan_with_runs(g, 256 * 1024, 4096, [(1, 12, Config(3, 3, True, True))])
    (run,) = p.metadata["fused_runs"]
    assert run["steps"] == 12 and run["grid"] == [3, 3]  # 8 x 8 sink: uneven 3, 3, 2
    run_and_check(path, p, inputs_for(g))


FIXTURE_BUDGETS = {
    "op_zoo.tflite": (24, 6),
    "ic_resnet8_32.tflite": (24, 14),
    "kws_ds_cnn_49x10.tflite": (24, 8),
    "kws_ds_cnn_float_io.tflite": (16,),
    "ad_autoencoder_640.tflite": (16,),
}


@pytest.mark.parametrize("name, kib", [(n, k) for n, ks in FIXTURE_BUDGETS.items() for k in ks])
def test_planned_fused_plans_are_bit_exact(name, kib):
    path = FIX / name
    g = load_model(str(path))
    p = plan(g, kib * 1024)
    smallest = min((t["chunk"] for t in p.metadata["tensors"] if t["chunk"]),
                   default=p.metadata["chunk_size"])
    layers = plan(g, kib * 1024, schedule="layers", chunk=smallest) if kib >= 14 else None
    if layers is not None:
        assert (p.metadata["bytes_written_per_inference"]
                <= layers.metadata["bytes_written_per_inference"])
    run_and_check(path, p, inputs_for(g))


@pytest.mark.slow
@pytest.mark.parametrize("name, kib", [
    ("vww_mobilenet_v1_025_96.tflite", 48), ("vww_mobilenet_v1_025_96.tflite", 17),
    ("vww_mobilenet_v1_025_96.tflite", 8), ("mobilenet_v2_035_96.tflite", 48),
    ("mobilenet_v2_035_96.tflite", 24), ("mobilenet_v2_035_96.tflite", 12),
    ("ic_resnet8_32.tflite", 8), ("kws_ds_cnn_49x10.tflite", 4),
    ("op_zoo.tflite", 4),
])
def test_planned_fused_plans_are_bit_exact_slow(name, kib):
    path = FIX / name
    g = load_model(str(path))
    p = plan(g, kib * 1024)
    assert p.metadata["schedule"] == "fused"
    run_and_check(path, p, inputs_for(g))


@pytest.mark.slow
@pytest.mark.parametrize("cache_rows, cache_cols", MODES)
@pytest.mark.parametrize("patch", [(1, 1), (2, 3), (3, 4), (5, 1), (6, 5)])
def test_every_configuration_of_the_zoo_run_slow(zoo, patch, cache_rows, cache_cols):
    g, x = zoo
    p = plan_with_runs(g, 64 * 1024, 4096, [(*ZOO_RUN, Config(*patch, cache_rows, cache_cols))])
    run_and_check(ZOO, p, x)


def test_compute_records_of_a_fused_run_count_recomputation(zoo):
    g, _ = zoo
    base = plan_with_runs(g, 64 * 1024, 4096, [(*ZOO_RUN, Config(2, 2, True, True))])
    redo = plan_with_runs(g, 64 * 1024, 4096, [(*ZOO_RUN, Config(2, 2, False, False))])
    macs = [int(p.records["value"][p.records["op"] == Op.COMPUTE].sum()) for p in (base, redo)]
    assert macs[0] == g.macs  # cached halos: every MAC once
    extra = redo.metadata["fused_runs"][0]["extra_macs"]
    assert macs[1] == g.macs + extra > macs[0]


@pytest.mark.parametrize("name, kib, op", [("ic_resnet8_32.tflite", 48, "Add"),
                                           ("vww_mobilenet_v1_025_96.tflite", 48,
                                            "DepthwiseConv")])
def test_in_place_steps_are_bit_exact(name, kib, op):
    """Layer steps whose output overwrites their dying input (inplace.py)."""
    path = FIX / name
    g = load_model(str(path))
    p = plan(g, kib * 1024)
    done = p.metadata["in_place_steps"]
    assert done and any(p.steps.steps[i].op_type == op for i, s in enumerate(p.steps.steps)
                        if s.name in done)
    run_and_check(path, p, inputs_for(g))
