"""Random int8 spatial ops against LiteRT's reference kernels, and banded.

Hypothesis draws one-op TFLite models (built here with the flatbuffer builder of
test_model_tflite): CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D and MAX_POOL_2D with random
sizes (odd and tiny ones), kernels, strides, dilations, SAME/VALID padding, depth
multipliers, fused activations, zero points and per-channel scales. Each model's output must
be byte-identical to LiteRT BUILTIN_REF, and every band split of it equal to the whole.
The default run draws 200 models per test; `HYPOTHESIS_PROFILE=slow` draws 3000.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from hypothesis import given, settings
from hypothesis import strategies as st
from tflite.BuiltinOptions import BuiltinOptions as BO

from flashswap.exec.reference import run_reference
from flashswap.model import load_model
from tests.kernel_bands import check_graph
from tests.test_model_tflite import INT8, INT32, SAME, VALID, Op, Spec, T, write

ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
CODES = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 4, "AVERAGE_POOL_2D": 1, "MAX_POOL_2D": 17}


def out_size(n: int, k: int, s: int, d: int, padding: int) -> int:
    eff = (k - 1) * d + 1
    return -(-n // s) if padding == SAME else (n - eff) // s + 1


@st.composite
def spatial_models(draw):
    op = draw(st.sampled_from(sorted(CODES)))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    c = draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pool = op.endswith("POOL_2D")
    dh, dw = (1, 1) if pool else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from([SAME, VALID]))
    oh, ow = out_size(h, kh, sh, dh, padding), out_size(w, kw, sw, dw, padding)
    if oh < 1 or ow < 1:
        padding = SAME
        oh, ow = out_size(h, kh, sh, dh, SAME), out_size(w, kw, sw, dw, SAME)
    act = draw(st.sampled_from(sorted(ACT)))
    seed = draw(st.integers(0, 2**31))
    mult = draw(st.integers(1, 3)) if op == "DEPTHWISE_CONV_2D" else 1
    cout = draw(st.integers(1, 6)) if op == "CONV_2D" else c * mult
    return op, (h, w, c), (kh, kw), (sh, sw), (dh, dw), padding, (oh, ow, cout), act, mult, seed


def build_model(tmp_path, params) -> str:
    op, (h, w, c), (kh, kw), (sh, sw), (dh, dw), padding, (oh, ow, cout), act, mult, seed = params
    rng = np.random.default_rng(seed)
    in_q = ([float(rng.uniform(0.01, 0.1))], [int(rng.integers(-20, 20))], 0)
    if op.endswith("POOL_2D"):  # pools keep the input's quantization
        tensors = [T("x", (1, h, w, c), INT8, None, in_q), T("y", (1, oh, ow, c), INT8, None,
                                                              in_q)]
        opts = (BO.Pool2DOptions, {"Padding": padding, "StrideW": sw, "StrideH": sh,
                                   "FilterWidth": kw, "FilterHeight": kh,
                                   "FusedActivationFunction": ACT[act]})
        ops = [Op(op, [0], [1], opts)]
    else:
        depthwise = op == "DEPTHWISE_CONV_2D"
        w_shape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, c)
        weights = rng.integers(-127, 128, w_shape, dtype=np.int8)
        scales = rng.uniform(0.002, 0.02, cout)
        bias = rng.integers(-3000, 3000, cout, dtype=np.int32)
        out_q = ([float(rng.uniform(0.02, 0.2))], [int(rng.integers(-30, 30))], 0)
        w_q = (scales.tolist(), [0] * cout, 3 if depthwise else 0)
        b_q = ((scales * in_q[0][0]).tolist(), [0] * cout, 0)
        tensors = [T("x", (1, h, w, c), INT8, None, in_q),
                   T("w", w_shape, INT8, weights.tobytes(), w_q),
                   T("b", (cout,), INT32, bias.tobytes(), b_q),
                   T("y", (1, oh, ow, cout), INT8, None, out_q)]
        fields = {"Padding": padding, "StrideW": sw, "StrideH": sh, "DilationWFactor": dw,
                  "DilationHFactor": dh, "FusedActivationFunction": ACT[act]}
        if depthwise:
            opts = (BO.DepthwiseConv2DOptions, {**fields, "DepthMultiplier": mult})
        else:
            opts = (BO.Conv2DOptions, fields)
        ops = [Op(op, [0, 1, 2], [3], opts)]
    spec = Spec(tensors, ops, [0], [len(tensors) - 1])
    return write(tmp_path, spec, f"{op.lower()}_{seed}.tflite")


@settings(deadline=None)  # examples: the hypothesis profile (tests/conftest.py)
@given(params=spatial_models())
def test_random_spatial_ops_match_litert_and_band(tmp_path_factory, params):
    path = build_model(tmp_path_factory.mktemp("m"), params)
    g = load_model(path)
    x = np.random.default_rng(params[-1]).integers(-128, 128, g.tensors["x"].shape,
                                                   dtype=np.int8)
    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = it.get_tensor(it.get_output_details()[0]["index"])
    out = run_reference(g, {"x": x})["y"]
    np.testing.assert_array_equal(out, ref, err_msg=str(params))
    check_graph(g, {"x": x}, seed=params[-1])


@st.composite
def vector_models(draw):
    """FULLY_CONNECTED (per-tensor or per-channel), SOFTMAX (any beta), ADD / SUB / MUL
    (same shape or broadcast), MEAN over H and W: random sizes and quantizations."""
    op = draw(st.sampled_from(["FULLY_CONNECTED", "SOFTMAX", "ADD", "SUB", "MUL", "MEAN"]))
    seed = draw(st.integers(0, 2**31))
    act = draw(st.sampled_from(sorted(ACT)))
    dims = (draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 40)))
    per_channel = draw(st.booleans())
    broadcast = draw(st.booleans())
    beta = draw(st.sampled_from([1.0, 0.5, 2.0]))
    return op, seed, act, dims, per_channel, broadcast, beta


def q(rng, lo=0.005, hi=0.2):
    return ([float(rng.uniform(lo, hi))], [int(rng.integers(-60, 60))], 0)


def build_vector_model(tmp_path, params) -> str:
    op, seed, act, (h, w, c), per_channel, broadcast, beta = params
    rng = np.random.default_rng(seed)
    if op == "FULLY_CONNECTED":
        k, f = h * w * c, draw_features(rng)
        scales = rng.uniform(0.001, 0.02, f if per_channel else 1)
        xq = q(rng)
        tensors = [T("x", (1, k), INT8, None, xq),
                   T("w", (f, k), INT8, rng.integers(-127, 128, (f, k), np.int8).tobytes(),
                     (scales.tolist(), [0] * scales.size, 0)),
                   T("b", (f,), INT32, rng.integers(-5000, 5000, f, np.int32).tobytes(),
                     ((scales * xq[0][0]).tolist(), [0] * scales.size, 0)),
                   T("y", (1, f), INT8, None, q(rng, 0.05, 0.5))]
        ops = [Op(op, [0, 1, 2], [3], (BO.FullyConnectedOptions,
                                       {"FusedActivationFunction": ACT[act]}))]
    elif op == "SOFTMAX":
        tensors = [T("x", (1, h * w, c), INT8, None, q(rng, 0.01, 0.3)),
                   T("y", (1, h * w, c), INT8, None, ([1 / 256], [-128], 0))]
        ops = [Op(op, [0], [1], (BO.SoftmaxOptions, {"Beta": beta}))]
    elif op == "MEAN":
        axes = np.array([1, 2], np.int32)
        tensors = [T("x", (1, h, w, c), INT8, None, q(rng)),
                   T("axes", (2,), INT32, axes.tobytes()),
                   T("y", (1, 1, 1, c), INT8, None, q(rng, 0.002, 0.05))]
        ops = [Op(op, [0, 1], [2], (BO.ReducerOptions, {"KeepDims": True}))]
    else:
        b_shape = (1, 1, 1, c) if broadcast else (1, h, w, c)
        tensors = [T("x", (1, h, w, c), INT8, None, q(rng)),
                   T("x2", b_shape, INT8, None, q(rng)),
                   T("y", (1, h, w, c), INT8, None, q(rng, 0.01, 0.4))]
        kind = {"ADD": BO.AddOptions, "SUB": BO.SubOptions, "MUL": BO.MulOptions}[op]
        ops = [Op(op, [0, 1], [2], (kind, {"FusedActivationFunction": ACT[act]}))]
        spec = Spec(tensors, ops, [0, 1], [2])
        return write(tmp_path, spec, f"{op.lower()}_{seed}.tflite")
    spec = Spec(tensors, ops, [0], [len(tensors) - 1])
    return write(tmp_path, spec, f"{op.lower()}_{seed}.tflite")


def draw_features(rng) -> int:
    return int(rng.integers(1, 24))


@settings(deadline=None)  # examples: the hypothesis profile (tests/conftest.py)
@given(params=vector_models())
def test_random_vector_ops_match_litert_and_band(tmp_path_factory, params):
    path = build_vector_model(tmp_path_factory.mktemp("m"), params)
    g = load_model(path)
    rng = np.random.default_rng(params[1])
    xs = {n: rng.integers(-128, 128, g.tensors[n].shape, dtype=np.int8) for n in g.inputs}
    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], xs[d["name"]])
    it.invoke()
    ref = it.get_tensor(it.get_output_details()[0]["index"])
    out = run_reference(g, xs)["y"]
    np.testing.assert_array_equal(out, ref, err_msg=str(params))
    check_graph(g, xs, seed=params[1])
