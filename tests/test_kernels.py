"""The kernel API as the tiled executor uses it: every step of every fixture model computed
band by band (rows, output features, accumulated input rows) equals the whole computation
byte for byte, for every split (tests/kernel_bands.py); sizes and errors of the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flashswap.errors import ModelError
from flashswap.exec.kernels import from_storage, prepare, to_storage
from flashswap.exec.kernels.fixedpoint import (
    activation_range,
    mbqm,
    quantize_multiplier,
    rdbpot,
    round_half_away_array,
    srdhm,
)
from flashswap.exec.reference import run_reference
from flashswap.model import load_model
from flashswap.planner.steps import build_steps
from tests.kernel_bands import check_graph, raw
from tests.test_reference import random_input

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MODELS = sorted(p.stem for p in FIXTURES.glob("*.tflite"))


def fixture(name: str):
    return load_model(str(FIXTURES / f"{name}.tflite"))


@pytest.mark.parametrize("name", MODELS)
def test_every_band_split_equals_the_whole(name):
    g = fixture(name)
    counts = check_graph(g, {g.inputs[0]: random_input(g, 5)})
    assert counts["features"] > 0  # every fixture ends in a feature-split FC
    assert (counts["rows"] > 0) == (name != "ad_autoencoder_640")
    assert (counts["reduce"] > 0) == (name not in ("ad_autoencoder_640", "op_zoo_act",
                                                   "op_zoo_act_float"))


def _step(g, op_type, pred=lambda s: True):
    sg = build_steps(g)
    s = next(s for s in sg.steps if s.op_type == op_type and pred(s))
    return s, prepare(g, s.node_index, s.fused)


def test_modes_follow_the_planner():
    g = fixture("op_zoo")
    for s in build_steps(g).steps:
        if s.virtual:
            continue
        k = prepare(g, s.node_index, s.fused)
        assert k.units == s.units
        assert (k.mode == "features") == s.split_weights
    g = fixture("kws_ds_cnn_float_io")
    s, k = _step(g, "Softmax")
    assert s.fused == ("Dequantize",) and k.chain_indices == [s.node_index + 1]
    assert k.out == g.outputs[0] and k.out_dtype == np.float32


def test_scratch_params_and_accumulators():
    g = fixture("vww_mobilenet_v1_025_96")
    _, first = _step(g, "Conv")  # 3x3/2 on RGB: CMSIS-NN im2col of 2 int16 patches
    assert first.scratch_bytes(0, 1) == 4 * 3 * 3 * 3 and first.param_bytes == 8 * 8
    _, pw = _step(g, "Conv", lambda s: g.nodes[s.node_index].attrs["kernel"] == (1, 1))
    assert pw.scratch_bytes(0, 48) == 0  # 1x1 without padding
    _, dw = _step(g, "DepthwiseConv")
    assert dw.scratch_bytes(0, 48) == 0  # 3x3 depthwise
    _, pool = _step(g, "AveragePool")
    assert pool.mode == "reduce" and pool.acc_bytes == 4 * 256 and pool.acc_shape() == (1, 256)
    _, fc = _step(g, "FullyConnected")
    assert fc.mode == "features" and fc.units == 2 and fc.param_bytes == 16
    g = fixture("kws_ds_cnn_float_io")
    _, sm = _step(g, "Softmax")  # the int8 softmax band waits in scratch for DEQUANTIZE
    assert sm.scratch_bytes(0, 1) == 12
    g = fixture("op_zoo")
    _, dw2 = _step(g, "DepthwiseConv")
    assert g.nodes[dw2.node_index].attrs["depth_multiplier"] == 2
    assert dw2.scratch_bytes(0, 12) == 0


def test_band_errors_are_named():
    g = fixture("kws_ds_cnn_49x10")
    s, k = _step(g, "Conv")
    store: dict = {}
    run_reference(g, {g.inputs[0]: random_input(g, 0)}, tensors=store)
    x = store[g.inputs[0]]
    w = {n: raw(g.constants[n]) for n in k.weight_names}
    out = np.zeros(raw(store[k.out][:, 2:4]).size, np.uint8)
    a, b = k.input_rows(g.inputs[0], 2, 4)
    # 10x4 kernel, stride 2, SAME on 49 rows (4 padding rows on top): rows 2..3 read 0..11
    assert (a, b) == (0, 12)
    with pytest.raises(ModelError, match=r"do not cover rows \[0, 12\)"):
        k.run_rows({g.inputs[0]: (raw(x[:, 1:12]), 1)}, w, out, 2, 4)
    with pytest.raises(ModelError, match="weight '.*' was not passed"):
        k.run_rows({g.inputs[0]: (raw(x[:, a:b]), a)}, {}, out, 2, 4)
    with pytest.raises(ModelError, match="the band needs"):
        k.run_rows({g.inputs[0]: (raw(x[:, a:b]), a)}, w, out[:-1], 2, 4)
    with pytest.raises(ModelError, match="was not passed"):
        k.run_rows({}, w, out, 2, 4)
    k.run_rows({g.inputs[0]: (raw(x[:, a:b]), a)}, w, out, 2, 4)
    np.testing.assert_array_equal(out.view(np.int8), raw(store[k.out][:, 2:4]).view(np.int8))
    with pytest.raises(ModelError, match="no fusable single reader of"):
        prepare(g, s.node_index, ("Relu",))  # the conv's output feeds a depthwise conv
    g = fixture("kws_ds_cnn_float_io")
    s, _ = _step(g, "Softmax")
    with pytest.raises(ModelError, match=r"fused ops \['Relu'\] but the graph has "
                       r"\['Dequantize'\] after it"):
        prepare(g, s.node_index, ("Relu",))


def test_layout_round_trip_nchw():
    from flashswap.model.graph import Graph, Tensor

    t = {"x": Tensor("x", (1, 3, 4, 5), "float32", False, 4)}
    g = Graph("g", t, [], ["x"], ["x"], "onnx", layout="nchw")
    a = np.arange(60, dtype=np.float32).reshape(1, 3, 4, 5)
    s = to_storage(g, "x", a)
    assert s.shape == (1, 4, 5, 3) and s[0, 1, 2, 0] == a[0, 0, 1, 2]
    np.testing.assert_array_equal(from_storage(g, "x", s), a)


# ---- fixed-point primitives (values worked out from TFLite's definitions) ---------------


def test_quantize_multiplier_matches_tflite():
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    # q rounds up to 2**31: halved, shift incremented (QuantizeMultiplier's special case)
    assert quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)  # below 2**-31 flushes to zero


def test_saturating_rounding_primitives():
    imin, imax = -(1 << 31), (1 << 31) - 1
    assert srdhm(np.array([imin]), imin)[0] == imax  # the one overflowing case saturates
    assert srdhm(np.array([1 << 30]), 1 << 30)[0] == 1 << 29
    # -1.5 and 1.5: the nudge plus C's truncating division round ties toward +infinity
    assert srdhm(np.array([-3]), 1 << 30)[0] == -1 and srdhm(np.array([3]), 1 << 30)[0] == 2
    assert rdbpot(np.array([5, -5, 6, -6, 7, -7]), 1).tolist() == [3, -3, 3, -3, 4, -4]
    assert rdbpot(np.array([-12]), 3)[0] == -2 and rdbpot(np.array([12]), 3)[0] == 2
    assert mbqm(np.array([100]), 1 << 30, 1)[0] == 100
    assert mbqm(np.array([-101]), 1 << 30, -1)[0] == -25  # -101 / 4 = -25.25
    assert round_half_away_array(np.array([0.5, -0.5, 1.5, 2.5, 0.49999997],
                                          dtype=np.float32)).tolist() == [1, -1, 2, 3, 0]


def test_activation_ranges():
    assert activation_range("NONE", 0.1, 3, -128, 127) == (-128, 127)
    assert activation_range("RELU", 0.1, 3, -128, 127) == (3, 127)
    assert activation_range("RELU6", 0.1, -128, -128, 127) == (-128, -68)
    assert activation_range("RELU6", 0.01, 0, -128, 127) == (0, 127)
    with pytest.raises(ModelError, match="fused activation 'TANH'"):
        activation_range("TANH", 0.1, 0, -128, 127)


def test_fc_fixed_point_requantization_differs_by_at_most_one():
    """LiteRT's reference FC requantizes in double precision; the fixed-point path (TFLite's
    optimized kernels, CMSIS-NN) lands within one step of it."""
    from flashswap.exec.kernels.fc import FullyConnected

    g = fixture("ad_autoencoder_640")
    store: dict = {}
    run_reference(g, {g.inputs[0]: random_input(g, 3)}, tensors=store)
    diffs = []
    for node in g.nodes:
        if node.op_type != "FullyConnected":
            continue
        fixed = FullyConnected(g, node, requant="fixed")
        out = np.empty(store[node.outputs[0]].shape, np.int8)
        fixed.compute([store[node.inputs[0]]], [0], g.constants, 0, 1, out)
        diffs.append(np.abs(out.astype(int) - store[node.outputs[0]].astype(int)).max())
    assert max(diffs) <= 1
