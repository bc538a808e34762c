"""TFLite import on flatbuffers built here with the `flatbuffers` builder and the tflite
package's generated table builders (no model file is downloaded)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from tflite.BuiltinOptions import BuiltinOptions as BO

from flashswap.errors import ModelError
from flashswap.model import load_model, parse_input_shapes
from flashswap.planner import plan
from flashswap.planner.steps import build_steps

INT8, INT32 = 9, 2
SAME, VALID = 0, 1
CODES = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 4, "MAX_POOL_2D": 17, "AVERAGE_POOL_2D": 1,
         "MEAN": 40, "RESHAPE": 22, "ADD": 0, "MUL": 18, "SUB": 41,
         "FULLY_CONNECTED": 9, "SOFTMAX": 25, "RESIZE_BILINEAR": 23, "GELU": 150}


@dataclass
class T:
    name: str
    shape: tuple[int, ...]
    dtype: int = INT8
    data: bytes | None = None
    quant: tuple[list[float], list[int], int] | None = None  # scales, zero points, axis


@dataclass
class Op:
    code: str
    inputs: list[int]
    outputs: list[int]
    options: tuple[int, dict] | None = None  # (BuiltinOptions type, fields)


@dataclass
class Spec:
    tensors: list[T]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    old_field: bool = True  # also set the deprecated int8 opcode field
    extra: dict = field(default_factory=dict)


def _m(name: str):
    """A generated tflite module (tflite/__init__ shadows each module with its class)."""
    return importlib.import_module(f"tflite.{name}")


def _vec(b: flatbuffers.Builder, values, dtype) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype))


def _table_vec(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _options(b: flatbuffers.Builder, kind: int, fields: dict) -> int:
    name = {v: k for k, v in vars(BO).items() if not k.startswith("_")}[kind]
    mod = _m(name)
    getattr(mod, f"{name}Start")(b)
    for key, value in fields.items():
        getattr(mod, f"{name}Add{key}")(b, value)
    return getattr(mod, f"{name}End")(b)


def build(spec: Spec) -> bytes:
    b = flatbuffers.Builder(1024)
    bufs = []
    _m("Buffer").BufferStart(b)
    bufs.append(_m("Buffer").BufferEnd(b))  # buffer 0: empty, by convention
    tensor_offs = []
    for t in spec.tensors:
        buf_index = 0
        if t.data is not None:
            data = _vec(b, np.frombuffer(t.data, dtype=np.uint8), np.uint8)
            _m("Buffer").BufferStart(b)
            _m("Buffer").BufferAddData(b, data)
            bufs.append(_m("Buffer").BufferEnd(b))
            buf_index = len(bufs) - 1
        name = b.CreateString(t.name)
        shape = _vec(b, t.shape, np.int32)
        quant = None
        if t.quant is not None:
            scales = _vec(b, t.quant[0], np.float32)
            zps = _vec(b, t.quant[1], np.int64)
            qp = _m("QuantizationParameters")
            qp.QuantizationParametersStart(b)
            qp.QuantizationParametersAddScale(b, scales)
            qp.QuantizationParametersAddZeroPoint(b, zps)
            qp.QuantizationParametersAddQuantizedDimension(b, t.quant[2])
            quant = qp.QuantizationParametersEnd(b)
        _m("Tensor").TensorStart(b)
        _m("Tensor").TensorAddShape(b, shape)
        if quant is not None:
            _m("Tensor").TensorAddQuantization(b, quant)
        _m("Tensor").TensorAddType(b, t.dtype)
        _m("Tensor").TensorAddBuffer(b, buf_index)
        _m("Tensor").TensorAddName(b, name)
        tensor_offs.append(_m("Tensor").TensorEnd(b))
    codes = list(dict.fromkeys(o.code for o in spec.ops))
    op_offs = []
    for o in spec.ops:
        ins = _vec(b, o.inputs, np.int32)
        outs = _vec(b, o.outputs, np.int32)
        opts = _options(b, *o.options) if o.options else None
        _m("Operator").OperatorStart(b)
        _m("Operator").OperatorAddOpcodeIndex(b, codes.index(o.code))
        _m("Operator").OperatorAddInputs(b, ins)
        _m("Operator").OperatorAddOutputs(b, outs)
        if opts is not None:
            _m("Operator").OperatorAddBuiltinOptionsType(b, o.options[0])
            _m("Operator").OperatorAddBuiltinOptions(b, opts)
        op_offs.append(_m("Operator").OperatorEnd(b))
    code_offs = []
    for c in codes:
        _m("OperatorCode").OperatorCodeStart(b)
        if spec.old_field:
            _m("OperatorCode").OperatorCodeAddDeprecatedBuiltinCode(b, min(CODES[c], 127))
        _m("OperatorCode").OperatorCodeAddBuiltinCode(b, CODES[c])
        _m("OperatorCode").OperatorCodeAddVersion(b, 1)
        code_offs.append(_m("OperatorCode").OperatorCodeEnd(b))
    tensors = _table_vec(b, tensor_offs)
    operators = _table_vec(b, op_offs)
    sg_in = _vec(b, spec.inputs, np.int32)
    sg_out = _vec(b, spec.outputs, np.int32)
    sg_name = b.CreateString("main")
    _m("SubGraph").SubGraphStart(b)
    _m("SubGraph").SubGraphAddTensors(b, tensors)
    _m("SubGraph").SubGraphAddInputs(b, sg_in)
    _m("SubGraph").SubGraphAddOutputs(b, sg_out)
    _m("SubGraph").SubGraphAddOperators(b, operators)
    _m("SubGraph").SubGraphAddName(b, sg_name)
    subgraph = _m("SubGraph").SubGraphEnd(b)
    subgraphs = _table_vec(b, [subgraph])
    opcodes = _table_vec(b, code_offs)
    buffers = _table_vec(b, bufs)
    desc = b.CreateString("flashswap test model")
    _m("Model").ModelStart(b)
    _m("Model").ModelAddVersion(b, 3)
    _m("Model").ModelAddOperatorCodes(b, opcodes)
    _m("Model").ModelAddSubgraphs(b, subgraphs)
    _m("Model").ModelAddDescription(b, desc)
    _m("Model").ModelAddBuffers(b, buffers)
    b.Finish(_m("Model").ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def small_net(old_field: bool = True) -> Spec:
    """16x16x3 -> conv 3x3/2 SAME x8 -> depthwise 3x3 SAME -> maxpool 2/2 -> mean -> reshape
    -> FC 4 -> softmax, int8 with int32 biases."""
    z = bytes
    tensors = [
        T("input", (1, 16, 16, 3)),
        T("conv/w", (8, 3, 3, 3), INT8, z(8 * 27)), T("conv/b", (8,), INT32, z(32)),
        T("conv", (1, 8, 8, 8)),
        T("dw/w", (1, 3, 3, 8), INT8, z(72)), T("dw/b", (8,), INT32, z(32)),
        T("dw", (1, 8, 8, 8)),
        T("pool", (1, 4, 4, 8)),
        T("axes", (2,), INT32, np.array([1, 2], np.int32).tobytes()),
        T("mean", (1, 1, 1, 8)),
        T("shape", (2,), INT32, np.array([1, 8], np.int32).tobytes()),
        T("flat", (1, 8)),
        T("fc/w", (4, 8), INT8, z(32)), T("fc/b", (4,), INT32, z(16)),
        T("fc", (1, 4)),
        T("prob", (1, 4)),
    ]
    conv = {"Padding": SAME, "StrideW": 2, "StrideH": 2, "DilationWFactor": 1,
            "DilationHFactor": 1}
    dw = {**conv, "StrideW": 1, "StrideH": 1, "DepthMultiplier": 1}
    pool = {"Padding": VALID, "StrideW": 2, "StrideH": 2, "FilterWidth": 2, "FilterHeight": 2}
    ops = [
        Op("CONV_2D", [0, 1, 2], [3], (BO.Conv2DOptions, conv)),
        Op("DEPTHWISE_CONV_2D", [3, 4, 5], [6], (BO.DepthwiseConv2DOptions, dw)),
        Op("MAX_POOL_2D", [6], [7], (BO.Pool2DOptions, pool)),
        Op("MEAN", [7, 8], [9]),
        Op("RESHAPE", [9, 10], [11]),
        Op("FULLY_CONNECTED", [11, 12, 13], [14]),
        Op("SOFTMAX", [14], [15]),
    ]
    return Spec(tensors, ops, [0], [15], old_field)


def write(tmp_path: Path, spec: Spec, name: str = "net.tflite") -> str:
    path = tmp_path / name
    path.write_bytes(build(spec))
    return str(path)


@pytest.mark.parametrize("old_field", [True, False])
def test_import_small_net(tmp_path, old_field):
    g = load_model(write(tmp_path, small_net(old_field)))
    assert [n.op_type for n in g.nodes] == ["Conv", "DepthwiseConv", "MaxPool",
                                            "GlobalAveragePool", "Reshape", "FullyConnected",
                                            "Softmax"]
    conv, dw = g.nodes[0], g.nodes[1]
    assert conv.macs == 8 * 8 * 8 * 3 * 3 * 3
    assert conv.attrs["pads"] == (0, 0, 1, 1)  # SAME, stride 2 on 16: total 1, after
    assert dw.macs == 8 * 8 * 8 * 3 * 3 and dw.attrs["group"] == 8
    assert dw.attrs["pads"] == (1, 1, 1, 1)
    assert g.nodes[5].macs == 32
    assert g.tensors["conv/b"].dtype == "int32" and g.tensors["conv/w"].nbytes == 216
    assert g.tensors["conv"].rows == 8 and g.tensors["flat"].rows == 1
    # Axes and shape tensors are parameters, not weights streamed from flash.
    assert g.nodes[3].weights == () and g.nodes[4].weights == ()
    assert g.weight_bytes == 216 + 32 + 72 + 32 + 32 + 16
    assert g.macs == conv.macs + dw.macs + 32
    p = plan(g, 1024, chunk=64)
    assert p.metadata["macs_per_inference"] == g.macs
    assert p.metadata["bytes_written_per_inference"] > 0  # 1 KiB cannot hold conv + dw


def test_unsupported_ops_are_named(tmp_path):
    spec = Spec([T("x", (1, 4, 4, 1)), T("size", (2,), INT32, np.array([8, 8], np.int32)
                                         .tobytes()), T("y", (1, 8, 8, 1))],
                [Op("RESIZE_BILINEAR", [0, 1], [2])], [0], [2])
    with pytest.raises(ModelError) as e:
        load_model(write(tmp_path, spec))
    assert str(e.value) == "unsupported op 'RESIZE_BILINEAR' (op 0, output 'y')"
    # An op code above 127 lives only in the new field.
    spec = Spec([T("x", (1, 8)), T("y", (1, 8))], [Op("GELU", [0], [1])], [0], [1],
                old_field=False)
    with pytest.raises(ModelError, match="unsupported op 'GELU'"):
        load_model(write(tmp_path, spec, "gelu.tflite"))


def test_unreadable_tflite(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x10\x00\x00\x00NOPE" + bytes(40))
    with pytest.raises(ModelError) as e:
        load_model(str(bad))
    assert str(e.value) == (f"cannot read TFLite model '{bad}': not a TFLite flatbuffer "
                            "(no TFL3 identifier)")
    good = build(small_net())
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(good[: len(good) // 3])
    with pytest.raises(ModelError, match="cannot read TFLite model"):
        load_model(str(cut))


def test_every_unsupported_op_is_named_in_one_line(tmp_path):
    spec = Spec([T("x", (1, 4, 4, 1)),
                 T("size", (2,), INT32, np.array([8, 8], np.int32).tobytes()),
                 T("y", (1, 8, 8, 1)), T("z", (1, 8, 8, 1)), T("w", (1, 8, 8, 1))],
                [Op("RESIZE_BILINEAR", [0, 1], [2]), Op("GELU", [2], [3]),
                 Op("RESIZE_BILINEAR", [3, 1], [4])], [0], [4])
    with pytest.raises(ModelError) as e:
        load_model(write(tmp_path, spec))
    assert str(e.value) == (
        "3 unsupported ops (RESIZE_BILINEAR, GELU): 'RESIZE_BILINEAR' (op 0, output 'y'); "
        "'GELU' (op 1, output 'z'); 'RESIZE_BILINEAR' (op 2, output 'w')")


# --- the fixture models (tests/fixtures/models/README.md) ---------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "models"


def fixture(name: str, **kw):
    return load_model(str(FIXTURES / f"{name}.tflite"), **kw)


def test_element_types_come_from_the_model():
    """An int8 model with float32 input and output: the ends are 4 bytes an element (the
    bug the issue names was a global int8), the inside int8."""
    g = fixture("kws_ds_cnn_float_io")
    x, y = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    assert (x.dtype, x.nbytes) == ("float32", 4 * 49 * 10)
    assert (y.dtype, y.nbytes) == ("float32", 4 * 12)
    quant = g.nodes[0]
    assert quant.op_type == "Quantize" and g.tensors[quant.outputs[0]].dtype == "int8"
    assert g.dtype_override is None
    with pytest.raises(ModelError, match=r"the model states its element types \(float32, "
                       r"int8\); a dtype override is a what-if for float models only"):
        fixture("kws_ds_cnn_float_io", dtype="int8")
    assert fixture("kws_ds_cnn_49x10", dtype="int8").dtype_override is None  # as stated
    # A float model takes the what-if: counted as an int8 deployment, not executable.
    f = fixture("op_zoo_float", dtype="int8")
    conv = f.nodes[0]
    assert f.dtype_override == "int8" and f.tensors[f.inputs[0]].dtype == "int8"
    assert [f.tensors[w].dtype for w in conv.weights] == ["int8", "int32"]
    assert fixture("op_zoo_float").tensors[conv.weights[0]].dtype == "float32"


def test_static_shape_chain_is_folded():
    g = fixture("ad_autoencoder_640")
    assert [n.op_type for n in g.nodes] == ["Reshape", *["FullyConnected"] * 10, "Reshape"]
    first, last = g.nodes[0], g.nodes[-1]
    assert first.weights == () and g.tensors[first.outputs[0]].shape == (1, 640)
    assert g.tensors[last.outputs[0]].shape == (1, 5, 128)
    # Both reshapes are views: the planner gives them no step.
    sg = build_steps(g)
    assert [s.op_type for s in sg.steps] == ["Input", *["FullyConnected"] * 10, "Output"]


def test_execution_data_is_kept():
    g = fixture("ic_resnet8_32")
    conv = g.nodes[0]
    w, b = conv.attrs["args"][1:]
    assert conv.weights == (w, b)
    assert g.constants[w].dtype == np.int8 and g.constants[w].shape == (16, 3, 3, 3)
    assert g.constants[b].dtype == np.int32 and g.constants[b].shape == (16,)
    assert not g.constants[w].flags.writeable
    q = g.quant[w]
    assert q.per_channel and len(q.scale) == 16 and q.axis == 0 and set(q.zero_point) == {0}
    assert not g.quant[g.inputs[0]].per_channel
    assert conv.attrs["activation"] == "RELU" and conv.attrs["padding"] == "SAME"
    add = next(n for n in g.nodes if n.op_type == "Add")
    assert add.attrs["activation"] == "RELU" and len(add.inputs) == 2
    zoo = fixture("op_zoo")
    dw = next(n for n in zoo.nodes if n.op_type == "DepthwiseConv")
    assert dw.attrs["depth_multiplier"] == 2
    assert g.quant[w].axis == 0 and zoo.quant[dw.weights[0]].axis == 3
    dil = next(n for n in zoo.nodes if n.attrs.get("dilation") == (2, 2))
    assert dil.op_type == "Conv"
    pad = next(n for n in zoo.nodes if n.op_type == "Pad")
    assert pad.attrs["paddings"] == ((0, 0), (1, 0), (0, 1), (0, 0))
    sm = next(n for n in zoo.nodes if n.op_type == "Softmax")
    assert sm.attrs["beta"] == 1.0
    mean = next(n for n in zoo.nodes if n.op_type == "GlobalAveragePool")
    assert mean.attrs["axes"] == (1, 2) and mean.attrs["keep_dims"]


def test_input_shapes_pin_dynamic_dimensions():
    name = fixture("ad_autoencoder_640").inputs[0]
    g = fixture("ad_autoencoder_640", input_shapes={name: (1, 5, 128)})
    assert g.tensors[name].shape == (1, 5, 128)
    with pytest.raises(ModelError, match=r"pinning \[2, 5, 128\] would need shape propagation"):
        fixture("ad_autoencoder_640", input_shapes={name: (2, 5, 128)})
    with pytest.raises(ModelError, match=r"has shape \[-1, 5, 128\] \(-1: dynamic\); "
                       r"\[1, 640\] does not fit it"):
        fixture("ad_autoencoder_640", input_shapes={name: (1, 640)})
    with pytest.raises(ModelError, match=f"names 'nope', but the model's inputs are {name}"):
        fixture("ad_autoencoder_640", input_shapes={"nope": (1, 5, 128)})


def test_parse_input_shapes():
    assert parse_input_shapes(["in=1x96x96x3", "a=b=2X3"]) == {"in": (1, 96, 96, 3),
                                                              "a=b": (2, 3)}
    for bad in ["in", "=1x2", "in=1x0", "in=1xx2", "in=abc"]:
        with pytest.raises(ModelError, match="invalid input shape"):
            parse_input_shapes([bad])
    with pytest.raises(ModelError, match="given two shapes"):
        parse_input_shapes(["a=1", "a=2"])


@pytest.mark.parametrize("cut", [0, 7, 100, 1000, 20_000, 60_000, 99_000])
def test_truncated_or_empty_model_is_one_line_error(tmp_path, capsys, cut):
    data = (FIXTURES / "ic_resnet8_32.tflite").read_bytes()
    assert cut < len(data)
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[:cut])
    with pytest.raises(ModelError) as e:
        load_model(str(path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith((f"model '{path}': the file is empty",
                                               f"cannot read TFLite model '{path}': "))
    rc, _ = run_cli(["trace", "plan", str(path), "--sram", "64KiB", "-o",
                     str(tmp_path / "t.bin")])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"flashswap: error: {msg}\n"


def run_cli(argv: list[str]) -> tuple[int, str]:
    import io

    from flashswap.cli import main
    from flashswap.cli.output import make_console

    buf = io.StringIO()
    rc = main(argv, console=make_console(file=buf, width=400))
    return rc, buf.getvalue()


def test_plan_cli_takes_input_shape_and_model_types(tmp_path, capsys):
    g = fixture("ad_autoencoder_640")
    out = tmp_path / "ad.bin"
    rc, text = run_cli(["trace", "plan", str(FIXTURES / "ad_autoencoder_640.tflite"),
                        "--sram", "8KiB", "--input-shape", f"{g.inputs[0]}=1x5x128",
                        "-o", str(out), "--json"])
    assert rc == 0, text
    rc, text = run_cli(["trace", "plan", str(FIXTURES / "kws_ds_cnn_float_io.tflite"),
                        "--sram", "64KiB", "-o", str(out), "--json"])
    assert rc == 0, text
    import json

    assert json.loads(text)["activation_dtype"] == "float32"
    rc, _ = run_cli(["trace", "plan", str(FIXTURES / "ad_autoencoder_640.tflite"),
                     "--sram", "8KiB", "--input-shape", "x=1x2", "-o", str(out)])
    assert rc == 2 and capsys.readouterr().err == (
        f"flashswap: error: --input-shape names 'x', but the model's inputs are {g.inputs[0]}\n")


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.tflite")))
def test_constants_hold_exactly_the_planned_weight_bytes(name):
    """The executor programs graph.constants into flash; the planner counts Tensor.nbytes."""
    g = fixture(name)
    for w in {w for n in g.nodes for w in n.weights}:
        assert g.constants[w].nbytes == g.tensors[w].nbytes, w
        assert g.constants[w].shape == g.tensors[w].shape, w
