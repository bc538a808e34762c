"""Float ONNX models through the kernels, against ONNX Runtime (in the `test` extra).

Tolerance: |ours - ORT| <= 1e-5 * max|ORT output| + 1e-6, elementwise. Both compute in float32
arithmetic terms, but the summation order differs: ORT's MLAS kernels accumulate in float32
in blocked order, ours accumulate convolutions and matrix products in float64 and round once.
A dot product of K float32 terms carries a rounding error of order sqrt(K) * 2**-24 of the
magnitude of its terms for random signs (K * 2**-24 in the worst case); the largest K here is
a few thousand, so relative differences of ~1e-6 are expected and 1e-5 leaves a margin
without hiding a wrong tap, channel or layout (those give errors of order 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from flashswap.errors import ModelError
from flashswap.exec.reference import run_reference
from flashswap.model import load_model
from tests.kernel_bands import check_graph

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
RTOL, ATOL = 1e-5, 1e-6


def _save(tmp_path: Path, nodes, inputs, outputs, inits, opset: int = 13,
          name: str = "m.onnx") -> str:
    graph = helper.make_graph(nodes, "t", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return str(path)


class Weights:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.inits: list = []

    def __call__(self, name: str, shape, scale: float | None = None, positive=False) -> str:
        fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        s = scale if scale is not None else np.sqrt(2.0 / fan)
        a = self.rng.normal(0, s, shape)
        if positive:
            a = self.rng.uniform(0.5, 1.5, shape)
        self.inits.append(numpy_helper.from_array(a.astype(np.float32), name))
        return name


def compare(path: str, seed: int = 0, input_range: float = 1.0) -> np.ndarray:
    g = load_model(path)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-input_range, input_range, g.tensors[g.inputs[0]].shape).astype(np.float32)
    ours = run_reference(g, {g.inputs[0]: x})
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    refs = sess.run(None, {sess.get_inputs()[0].name: x})
    for name, ref in zip(g.outputs, refs, strict=True):
        got = ours[name]
        assert got.shape == ref.shape and got.dtype == ref.dtype
        np.testing.assert_allclose(got, ref, rtol=0, atol=RTOL * np.abs(ref).max() + ATOL,
                                   err_msg=name)
    return x


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


@pytest.fixture
def conv_net(tmp_path):
    """Convolutions of every kind, pools, batch norm, activations, elementwise ops with
    constants and with two activations, pad, concat and a channel shuffle."""
    w = Weights(1)
    n = helper.make_node
    nodes = [
        n("Conv", ["x", w("c1w", (8, 3, 3, 3)), w("c1b", (8,), 0.1)], ["c1"],
          strides=[2, 2], pads=[1, 0, 1, 1]),  # 13x11 -> 7x5, asymmetric pads
        n("BatchNormalization", ["c1", w("s", (8,), positive=True), w("b", (8,), 0.2),
                                 w("m", (8,), 0.1), w("v", (8,), positive=True)], ["bn"],
          epsilon=1e-3),
        n("Relu", ["bn"], ["r1"]),
        n("Conv", ["r1", w("c2w", (8, 4, 3, 3))], ["c2"], group=2, pads=[2, 2, 2, 2],
          dilations=[2, 2]),  # grouped and dilated
        n("Conv", ["r1", w("dww", (16, 1, 3, 3)), w("dwb", (16,), 0.1)], ["dw"], group=8,
          auto_pad="SAME_UPPER"),  # depthwise, multiplier 2
        n("Clip", ["dw", "lo", "hi"], ["clip"]),
        n("Conv", ["clip", w("pww", (8, 16, 1, 1))], ["pw"]),
        n("Add", ["pw", "c2"], ["add"]),
        n("Mul", ["add", w("k", (8, 1, 1), 0.5)], ["mul"]),  # per-channel constant
        n("Sub", ["mul", w("k2", (1, 8, 1, 1), 0.5)], ["sub"]),
        n("LeakyRelu", ["sub"], ["lrelu"], alpha=0.2),
        n("Pad", ["lrelu", "pads", "pv"], ["pad"], mode="constant"),  # 7x5 -> 8x8
        n("MaxPool", ["pad"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("AveragePool", ["pad"], ["ap"], kernel_shape=[3, 3], strides=[2, 2],
          pads=[1, 1, 1, 1], count_include_pad=0),
        n("AveragePool", ["pad"], ["ap2"], kernel_shape=[2, 3], strides=[2, 2],
          pads=[0, 1, 1, 1], count_include_pad=1),
        n("Concat", ["mp", "ap", "ap2"], ["cat"], axis=1),  # 24 channels, 4x4
        n("Reshape", ["cat", "shape5"], ["r5"]),  # channel shuffle: (1, 3, 8, 4, 4)
        n("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
        n("Reshape", ["t5", "shape4"], ["shuf"]),
        n("Sigmoid", ["shuf"], ["sig"]),
        n("Mul", ["sig", "shuf"], ["swish"]),
        n("HardSwish", ["swish"], ["hs"]),
        n("Tanh", ["hs"], ["th"]),
        n("Div", ["th", w("dv", (24, 1, 1), positive=True)], ["div"]),
        n("Max", ["div", "th"], ["mx"]),
        n("LRN", ["mx"], ["lrn"], size=5, alpha=1e-2, beta=0.75, bias=1.0),
        n("GlobalAveragePool", ["lrn"], ["gap"]),
        n("GlobalMaxPool", ["lrn"], ["gmp"]),
        n("Sum", ["gap", "gmp", "gap"], ["sum"]),
    ]
    inits = w.inits + [
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(4.0, np.float32), "hi"),
        numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 0, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array(0.25, np.float32), "pv"),
        numpy_helper.from_array(np.array([1, 3, 8, 4, 4], np.int64), "shape5"),
        numpy_helper.from_array(np.array([1, 24, 4, 4], np.int64), "shape4"),
    ]
    return _save(tmp_path, nodes, [vi("x", ["N", 3, 13, 11])], [vi("sum", None)], inits,
                 opset=14)  # HardSwish


def test_conv_net_matches_onnxruntime(conv_net):
    compare(conv_net, seed=0)
    compare(conv_net, seed=1, input_range=3.0)


@pytest.fixture
def fc_net(tmp_path):
    """Flatten of an NCHW map into Gemm (the filter's columns follow the channels-last
    storage), Gemm with transB 0/1, alpha, beta and a (1, N) bias, MatMul, softmax."""
    w = Weights(2)
    n = helper.make_node
    nodes = [
        n("Conv", ["x", w("cw", (6, 2, 3, 3))], ["c"], pads=[1, 1, 1, 1]),
        n("Flatten", ["c"], ["f"]),  # 6 x 5 x 4 = 120
        n("Gemm", ["f", w("g1", (32, 120)), w("g1b", (1, 32), 0.1)], ["h1"], transB=1,
          alpha=0.5, beta=2.0),
        n("Relu", ["h1"], ["a1"]),
        n("Gemm", ["a1", w("g2", (32, 16)), w("g2b", (16,), 0.1)], ["h2"]),
        n("Tanh", ["h2"], ["a2"]),
        n("MatMul", ["a2", w("m3", (16, 10))], ["h3"]),
        n("Add", ["h3", w("b3", (10,), 0.1)], ["h3b"]),
        n("Softmax", ["h3b"], ["y"], axis=1),
    ]
    return _save(tmp_path, nodes, [vi("x", [1, 2, 5, 4])], [vi("y", None)], w.inits)


def test_fc_net_matches_onnxruntime(fc_net):
    compare(fc_net, seed=0)
    g = load_model(fc_net)
    gemm = next(nd for nd in g.nodes if nd.attrs["source_op"] == "Gemm")
    assert g.constants[gemm.weights[0]].shape == (32, 120)


def test_quantize_dequantize_linear(tmp_path):
    """A QDQ pair inside a float graph: int8 rounding ties to even, as ONNX specifies."""
    w = Weights(4)
    n = helper.make_node
    nodes = [n("Conv", ["x", w("cw", (4, 2, 1, 1))], ["c"]),
             n("QuantizeLinear", ["c", "s", "z"], ["q"]),
             n("DequantizeLinear", ["q", "s", "z"], ["d"]),
             n("Relu", ["d"], ["y"])]
    inits = w.inits + [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
                       numpy_helper.from_array(np.array(3, np.int8), "z")]
    path = _save(tmp_path, nodes, [vi("x", [1, 2, 6, 5])], [vi("y", None)], inits)
    g = load_model(path)
    assert g.tensors["q"].dtype == "int8" and g.quant["q"].scale == (0.05000000074505806,)
    compare(path, input_range=4.0)
    counts = check_graph(g, {"x": np.random.default_rng(0).uniform(-4, 4, (1, 2, 6, 5))
                             .astype(np.float32)})
    assert counts["rows"] > 0


def test_one_row_pools_accumulate_over_row_bands(tmp_path):
    """Pools whose output is one row but several columns run in reduce mode: each band of
    input rows folds into per-column accumulators (padding excluded from the average)."""
    n = helper.make_node
    nodes = [n("AveragePool", ["x"], ["a"], kernel_shape=[5, 3], strides=[1, 2],
               pads=[1, 1, 0, 1]),
             n("MaxPool", ["x"], ["m"], kernel_shape=[4, 2], strides=[1, 3]),
             n("Concat", ["a", "m"], ["y"], axis=3)]
    path = _save(tmp_path, nodes, [vi("x", [1, 3, 4, 7])], [vi("y", None)], [])
    g = load_model(path)
    assert g.tensors["a"].shape == (1, 3, 1, 4) and g.tensors["m"].shape == (1, 3, 1, 2)
    compare(path, input_range=3.0)
    x = np.random.default_rng(1).uniform(-3, 3, (1, 3, 4, 7)).astype(np.float32)
    assert check_graph(g, {"x": x})["reduce"] > 0


def test_softmax_before_opset_13_spans_the_trailing_axes(tmp_path):
    nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=1)]
    path = _save(tmp_path, nodes, [vi("x", [1, 3, 4, 5])], [vi("y", None)], [], opset=11)
    g = load_model(path)
    assert g.nodes[0].attrs["rows_axis"]
    compare(path, input_range=4.0)


def test_band_splits_of_float_steps(conv_net, fc_net):
    """Float steps banded equal the whole computation byte for byte too: every output
    element is computed from the same inputs in the same order whatever the band."""
    for path in (conv_net, fc_net):
        g = load_model(path)
        x = np.random.default_rng(3).uniform(-1, 1, g.tensors[g.inputs[0]].shape)
        counts = check_graph(g, {g.inputs[0]: x.astype(np.float32)})
        assert counts["rows"] > 0


def test_reshape_that_reorders_a_map_is_refused_at_execution(tmp_path):
    """A flatten of a C x H x W map read by anything but a fully connected layer would see
    the channels-last storage in the wrong order: planning works, execution says why not."""
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Softmax", ["f"], ["y"], axis=1)]
    path = _save(tmp_path, nodes, [vi("x", [1, 2, 3, 4])], [vi("y", None)], [])
    g = load_model(path)
    with pytest.raises(ModelError, match="a reshape of the channels-last map 'x' that "
                       "changes its element order"):
        run_reference(g, {"x": np.zeros((1, 2, 3, 4), np.float32)})


def light_with_random_weights(name: str, tmp_path: Path, seed: int = 0) -> str:
    """The onnx wheel's light model with its ConstantOfShape weights replaced by random
    initializers (He-scaled filters, biases and BN statistics near their usual values)."""
    m = onnx.load(str(LIGHT / f"light_{name}.onnx"))
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in m.graph.initializer}
    consts = {o: nd for nd in m.graph.node if nd.op_type == "Constant" for o in nd.output}
    keep = []
    for nd in m.graph.node:
        if nd.op_type != "ConstantOfShape":
            keep.append(nd)
            continue
        src = nd.input[0]
        shape_t = inits[src] if src in inits else consts[src].attribute[0].t
        shape = tuple(int(s) for s in numpy_helper.to_array(shape_t))
        if len(shape) > 1:
            a = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        else:
            a = rng.uniform(0.5, 1.5, shape)
        m.graph.initializer.append(numpy_helper.from_array(a.astype(np.float32), nd.output[0]))
        m.graph.input.append(vi(nd.output[0], list(shape)))  # IR 3: initializers are inputs
    del m.graph.node[:]
    m.graph.node.extend(keep)
    path = tmp_path / f"{name}.onnx"
    onnx.save(m, str(path))
    return str(path)


def test_squeezenet_matches_onnxruntime(tmp_path):
    """A real ImageNet graph (SqueezeNet 1.1 at 224x224: strided, padded and 1x1 convs,
    ceil-mode max pools, concats, global average pool)."""
    path = light_with_random_weights("squeezenet", tmp_path)
    compare(path)
    g = load_model(path)
    for w in {w for n in g.nodes for w in n.weights}:  # what flash holds = what is planned
        assert g.constants[w].nbytes == g.tensors[w].nbytes, w


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shufflenet", "bvlc_alexnet", "resnet50"])
def test_more_light_models_match_onnxruntime(name, tmp_path):
    compare(light_with_random_weights(name, tmp_path))
