"""Model import: ONNX (real light models and hand-built graphs), built-ins, sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from flashswap.errors import InputError, ModelError
from flashswap.model import load_model
from flashswap.model.builtin import BUILTINS, make_divisible
from flashswap.planner import plan
from flashswap.planner.steps import build_steps
from flashswap.sizes import format_size, parse_size

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


# --- ONNX: the real light models ---------------------------------------------------------


def test_resnet50_import():
    g = load_model(str(LIGHT / "light_resnet50.onnx"))
    conv1 = g.nodes[0]
    assert (conv1.op_type, conv1.inputs, conv1.outputs) == ("Conv", ("gpu_0/data_0",), ("r0",))
    assert conv1.macs == 112 * 112 * 64 * 7 * 7 * 3
    assert conv1.attrs["pads"] == (3, 3, 3, 3) and conv1.attrs["stride"] == (2, 2)
    assert g.tensors["r0"].shape == (1, 64, 112, 112) and g.tensors["r0"].rows == 112
    # The model is float32: its tensors are counted as such (4 bytes an element).
    assert g.tensors["r0"].nbytes == 4 * 64 * 112 * 112
    assert g.tensors["gpu_0/conv1_w_0"].is_weight
    assert g.tensors["gpu_0/conv1_w_0"].nbytes == 4 * 64 * 3 * 7 * 7
    fc = next(n for n in g.nodes if n.op_type == "FullyConnected")
    assert fc.macs == 2048 * 1000
    assert fc.weights == ("gpu_0/pred_w_0", "gpu_0/pred_b_0")
    assert g.tensors["gpu_0/pred_b_0"].dtype == "float32"
    assert len(g.nodes) == 176
    assert g.macs == 4_089_184_256
    assert g.outputs == ["gpu_0/softmax_1"]
    assert g.dtype_override is None


def test_int8_what_if_of_a_float_model():
    """dtype="int8" plans a float model as an int8 deployment stores it (int8 activations
    and weights, int32 biases); the graph says so and cannot be executed."""
    g = load_model(str(LIGHT / "light_resnet50.onnx"), dtype="int8")
    assert g.tensors["r0"].nbytes == 64 * 112 * 112
    assert g.tensors["gpu_0/conv1_w_0"].nbytes == 64 * 3 * 7 * 7
    assert g.tensors["gpu_0/pred_b_0"].dtype == "int32"
    assert g.dtype_override == "int8"
    from flashswap.exec.kernels import make_op

    with pytest.raises(ModelError, match="cannot be executed"):
        make_op(g, g.nodes[0])


def test_constant_subgraphs_become_weights():
    g = load_model(str(LIGHT / "light_densenet121.onnx"))
    mul = next(n for n in g.nodes if n.name == "n3")
    assert (mul.op_type, mul.inputs, mul.weights) == ("Mul", ("r1",), ("r2",))
    assert g.tensors["r2"].shape == (64, 1, 1)  # Unsqueeze of a constant
    assert not any(n.op_type == "Unsqueeze" for n in g.nodes)


def test_fusion_and_views_on_light_models():
    sg = build_steps(load_model(str(LIGHT / "light_resnet50.onnx")))
    conv1 = sg.steps[1]
    assert conv1.fused == ("BatchNormalization", "Relu")
    assert sg.tensors[conv1.outputs[0].tensor].name == "r2"
    # Reshape before the classifier is a view: the FC reads the pooled tensor's storage.
    fc = next(s for s in sg.steps if s.op_type == "FullyConnected")
    assert sg.tensors[fc.inputs[0].tensor].name == "r172"
    dense = build_steps(load_model(str(LIGHT / "light_densenet121.onnx")))
    # The pooled tensor has two readers (concat, BN): BN cannot fuse into the pool, so the
    # pre-activation BN+scale+bias+ReLU is one elementwise step of its own.
    pre = next(s for s in dense.steps if s.name == "n8")
    assert (pre.op_type, pre.fused) == ("BatchNormalization", ("Mul", "Add", "Relu"))
    assert pre.inputs[0].rowmap is not None and pre.units == 56
    shuffle = build_steps(load_model(str(LIGHT / "light_shufflenet.onnx")))
    tr = next(s for s in shuffle.steps if s.op_type == "Transpose")
    assert tr.inputs[0].rowmap is not None and tr.units == 56  # channel shuffle tiles by rows


@pytest.mark.parametrize("name", ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2",
                                  "resnet50", "shufflenet", "squeezenet", "vgg19", "zfnet512"])
def test_light_models_import_and_validate(name):
    g = load_model(str(LIGHT / f"light_{name}.onnx"))
    assert g.macs > 10**8 and g.weight_bytes > 10**6
    assert all(not g.tensors[x].is_weight for n in g.nodes for x in n.inputs)


# --- ONNX: hand-built graphs -------------------------------------------------------------


def _save(tmp_path: Path, nodes, inputs, outputs, inits, opset: int = 13) -> str:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    return str(path)


def _init(name, shape):
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def test_tiny_onnx_same_padding_views_and_plan(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 15, 15])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3],
                         strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1),
    ]
    path = _save(tmp_path, nodes, [x], [y],
                 [_init("w", (8, 3, 3, 3)), _init("b", (8,)), _init("fw", (10, 8 * 8 * 8))])
    g = load_model(path, dtype="float32")
    conv = g.nodes[0]
    assert g.tensors["x"].shape == (1, 3, 15, 15)  # symbolic batch fixed to 1
    assert conv.attrs["pads"] == (1, 1, 1, 1)  # SAME_UPPER: total 2 -> 1 before, 1 after
    assert conv.macs == 8 * 8 * 8 * 3 * 3 * 3
    assert g.tensors["c"].nbytes == 8 * 8 * 8 * 4
    assert g.tensors["b"].dtype == "float32" and g.tensors["w"].dtype == "float32"
    assert [n.op_type for n in g.nodes] == ["Conv", "Relu", "Reshape", "FullyConnected"]
    assert g.macs == conv.macs + 512 * 10
    sg = build_steps(g)
    assert [s.op_type for s in sg.steps] == ["Input", "Conv", "FullyConnected", "Output"]
    p = plan(g, 8192, chunk=256)  # the FC's float rows (2 KiB a feature) are staged too
    assert p.metadata["macs_per_inference"] == g.macs


def test_unsupported_op_is_named(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="nearest")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    path = _save(tmp_path, [node], [x], [y], [scales])
    with pytest.raises(ModelError) as e:
        load_model(path)
    assert str(e.value) == "unsupported op 'Resize' (node 'up')"


def test_every_unsupported_op_is_named_in_one_line(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["u"], name="up", mode="nearest"),
             helper.make_node("Erf", ["u"], ["e"], name="erf"),
             helper.make_node("Relu", ["e"], ["r"], name="relu"),
             helper.make_node("Resize", ["r", "", "scales"], ["y"], name="up2",
                              mode="nearest")]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    path = _save(tmp_path, nodes, [x], [y], [scales])
    with pytest.raises(ModelError) as e:
        load_model(path)
    assert str(e.value) == ("3 unsupported ops (Resize, Erf): 'Resize' (node 'up'); 'Erf' "
                            "(node 'erf'); 'Resize' (node 'up2')")


def test_input_shapes_pin_symbolic_dimensions(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)]
    path = _save(tmp_path, nodes, [x], [y], [_init("w", (4, 3, 3, 3))])
    with pytest.raises(ModelError, match="tensor 'x' has no static shape after shape inference "
                       r"\(pin dynamic input dimensions with --input-shape"):
        load_model(path)
    g = load_model(path, input_shapes={"x": (1, 3, 16, 12)})
    assert g.tensors["y"].shape == (1, 4, 16, 12) and g.tensors["y"].nbytes == 4 * 4 * 16 * 12
    with pytest.raises(ModelError, match=r"input 'x' has shape \['N', 3, 'H', 'W'\]; "
                       r"\[1, 4, 16, 12\] does not fit it"):
        load_model(path, input_shapes={"x": (1, 4, 16, 12)})
    with pytest.raises(ModelError, match="names 'y', but the model's inputs are x"):
        load_model(path, input_shapes={"y": (1, 3, 16, 12)})


def test_batch_above_one_is_refused(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [x], [y], [])
    with pytest.raises(ModelError, match="input 'x' has batch 4; only batch 1 is planned"):
        load_model(path)


def test_unreadable_models(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf at all\xff" * 3)
    with pytest.raises(ModelError, match="cannot read ONNX model"):
        load_model(str(bad))
    with pytest.raises(ModelError, match="no such file"):
        load_model(str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelError, match=r"expected a \.onnx or \.tflite file"):
        load_model(str(tmp_path / "model.pb"))
    with pytest.raises(ModelError, match="unsupported activation dtype 'int4'"):
        load_model("builtin:resnet8", dtype="int4")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty.onnx': the file is empty"):
        load_model(str(empty))
    data = (LIGHT / "light_squeezenet.onnx").read_bytes()
    for cut in (10, 1000, len(data) // 2):
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=f"cannot read ONNX model '{bad}'"):
            load_model(str(bad))


def test_graph_validate_names_the_fault():
    from flashswap.model.graph import Graph, Node, Tensor

    t = {"x": Tensor("x", (1, 4), "int8", False), "y": Tensor("y", (1, 4), "int8", False)}
    with pytest.raises(ModelError, match="node 'n' \\(Relu\\) reads 'y' before it is produced"):
        Graph("g", t, [Node("n", "Relu", ("y",), (), ("x",))], ["x"], ["x"]).validate()
    with pytest.raises(ModelError, match="unsupported op 'Erf' \\(node 'n'\\)"):
        Graph("g", t, [Node("n", "Erf", ("x",), (), ("y",))], ["x"], ["y"]).validate()
    with pytest.raises(ModelError, match="graph output 'z' is never produced"):
        Graph("g", t, [], ["x"], ["z"]).validate()


# --- built-ins ---------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "macs"), [
    ("mobilenet_v1", 568_740_352),  # 569 M in Howard et al. 2017, table 8
    ("mobilenet_v2", 300_774_272),  # 300 M in Sandler et al. 2018, table 3
    ("resnet18", 1_814_073_344),  # 1.8 G in He et al. 2016, table 1 (padded max-pool: 56x56)
    ("resnet8", 12_501_632),
    ("ds_cnn", 2_656_768),
])
def test_builtin_macs(spec, macs):
    assert load_model(f"builtin:{spec}").macs == macs


def test_builtin_names_and_dtypes():
    g = load_model("builtin:mobilenet_v2_0.35_96")
    assert g.name == "mobilenet_v2_0.35_96"
    assert g.tensors["input"].shape == (1, 96, 96, 3)
    assert g.tensors["conv0/out"].shape == (1, 48, 48, 16)  # make_divisible(32 * 0.35) = 16
    wide = load_model("builtin:mobilenet_v2_0.35_96", dtype="int16")
    assert wide.tensors["conv0/out"].nbytes == 2 * g.tensors["conv0/out"].nbytes
    assert wide.weight_bytes == g.weight_bytes  # weights stay int8 / int32
    assert load_model("builtin:resnet18_64").tensors["input"].shape == (1, 64, 64, 3)
    assert make_divisible(32 * 0.35) == 16 and make_divisible(24 * 1.4) == 32
    assert set(BUILTINS) == {"mobilenet_v1", "mobilenet_v2", "resnet8", "resnet18", "ds_cnn"}


def test_builtin_errors():
    with pytest.raises(ModelError) as e:
        load_model("builtin:lenet")
    assert str(e.value) == ("unknown built-in model 'lenet' (known: ds_cnn, mobilenet_v1, "
                            "mobilenet_v2, resnet18, resnet8)")
    with pytest.raises(ModelError, match="alpha 'wide' is not a number"):
        load_model("builtin:mobilenet_v1_wide")
    with pytest.raises(ModelError, match="resolution >= 32"):
        load_model("builtin:mobilenet_v1_1.0_8")
    with pytest.raises(ModelError, match="unknown built-in model 'resnet8_32'"):
        load_model("builtin:resnet8_32")


# --- sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "n"), [
    ("256KiB", 262144), ("1MiB", 1048576), ("300k", 300000), ("4096", 4096), ("4 KiB", 4096),
    ("1.5MiB", 1572864), ("2kb", 2000), ("1G", 10**9), ("1GiB", 1 << 30), ("512B", 512),
    (" 64kib ", 65536), ("0", 0),
])
def test_parse_size(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "KiB", "12q", "-4", "1.5", "1.0001KiB", "4b", "1e6"])
def test_parse_size_errors_name_the_text(text):
    with pytest.raises(InputError) as e:
        parse_size(text, "SRAM budget")
    assert str(e.value).startswith(f"invalid SRAM budget {text!r}: ")


def test_format_size():
    assert [format_size(n) for n in (262144, 1000, 1536, 5 << 20, 150 * 1024 + 1)] == [
        "256 KiB", "1000 B", "1.5 KiB", "5 MiB", "150 KiB"]
