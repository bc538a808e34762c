"""Regressions found by running real models the project had not seen (MLPerf Tiny's
reference models, TFLite Micro's examples) through `flashswap run`; each test rebuilds the
failing case from a committed fixture or a graph built here."""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from flashswap.cli import main
from flashswap.cli.output import make_console
from flashswap.errors import BudgetError
from flashswap.exec.device import Device, live_bytes, live_chunks
from flashswap.exec.reference import run_reference
from flashswap.model import load_model
from flashswap.model.graph import Graph, Node, Quant, Tensor
from flashswap.planner import plan
from flashswap.sizes import format_size
from flashswap.trace import Op

MODELS = Path(__file__).parent / "fixtures" / "models"


def run(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(argv, console=make_console(file=buf, width=200))
    return rc, buf.getvalue()


def fc_dequantize(n_in: int = 128, n_out: int = 640) -> Graph:
    """int8 [1, n_in] -> FULLY_CONNECTED -> int8 [1, n_out] -> DEQUANTIZE -> float32: the
    tail of MLPerf Tiny's anomaly detection model converted with float output
    (model_ToyCar_quant_fullint.tflite)."""
    rng = np.random.default_rng(0)
    t = {
        "x": Tensor("x", (1, n_in), "int8", False),
        "w": Tensor("w", (n_out, n_in), "int8", True),
        "b": Tensor("b", (n_out,), "int32", True),
        "y": Tensor("y", (1, n_out), "int8", False),
        "z": Tensor("z", (1, n_out), "float32", False),
    }
    consts = {"w": rng.integers(-127, 128, (n_out, n_in), dtype=np.int8),
              "b": rng.integers(-1000, 1000, n_out, dtype=np.int32)}
    quant = {"x": Quant((0.05,), (3,)), "w": Quant((0.01,), (0,)),
             "b": Quant((0.0005,), (0,)), "y": Quant((0.1,), (-2,))}
    nodes = [
        Node("fc", "FullyConnected", ("x",), ("w", "b"), ("y",), n_in * n_out,
             {"source_op": "FULLY_CONNECTED", "args": ("x", "w", "b"), "activation": "NONE",
              "keep_num_dims": False}),
        Node("dq", "Dequantize", ("y",), (), ("z",), 0,
             {"source_op": "DEQUANTIZE", "args": ("y",)}),
    ]
    return Graph("fc_dequantize", t, nodes, ["x"], ["z"], "tflite", consts, quant).validate()


def test_fc_with_fused_dequantize_plans_between_min_and_no_swap_budget():
    """Between the smallest and the no-swap budget the FC step keeps its input and output
    in SRAM but must tile by features: its fused DEQUANTIZE's int8 band is scratch that
    grows with the tile. The layer scheduler accepted one-feature tiles, then made room for
    one tile of every feature and had nothing left to evict (IndexError 'pop from empty
    list' at every such budget, on MLPerf Tiny's ToyCar model too). Every budget plans, on
    both schedules, and runs bit-exact."""
    g = fc_dequantize()
    m = plan(g, 1 << 20).metadata
    lo, hi = m["min_feasible_budget"], m["no_swap_budget"]
    assert (lo, hi) == (2560, 3472)
    x = np.random.default_rng(1).integers(-128, 128, (1, 128), dtype=np.int8)
    want = run_reference(g, {"x": x})["z"]
    for schedule in ("fused", "layers"):
        tiled_in_sram = []
        plans = {}
        for sram in range(lo, hi + 1, 16):
            try:
                p = plan(g, sram, schedule=schedule)
            except BudgetError:  # the layer schedule's own smallest budget (4 KiB chunks)
                assert schedule == "layers" and sram < plan(g, hi, schedule="layers"
                                                             ).metadata["min_feasible_budget"]
                continue
            plans[sram] = p
            md = p.metadata
            assert md["peak_sram"] <= sram
            if md["bytes_written_per_inference"] == 0 and md["max_tiles"] > 1:
                tiled_in_sram.append(sram)
        # The budgets that crashed: nothing swapped, the FC tiled 40 down to 2 ways.
        assert tiled_in_sram == list(range(2848, hi, 16)), schedule
        assert plans[2848].metadata["max_tiles"] == 40
        assert plans[hi].metadata["max_tiles"] == 1
        for sram in (min(plans), 2848, 3152, hi - 16, hi):
            y = Device(plans[sram], engine="python").infer([x]).outputs[0]
            assert np.array_equal(y, want), (schedule, sram)


def test_bias_with_its_filters_quantized_dimension_runs():
    """Older converters (TFLite Micro's person_detect.tflite) give a depthwise bias of shape
    [C] the filter's quantized_dimension 3; the weights region took it as the bias's channel
    axis (IndexError). The axis of a 1-D bias is 0 whatever the file says."""
    g = load_model(str(MODELS / "vww_mobilenet_v1_025_96.tflite"))
    quant = dict(g.quant)
    changed = 0
    for n in g.nodes:
        if n.op_type == "DepthwiseConv" and len(n.weights) > 1:
            q = quant[n.weights[1]]
            assert q.per_channel and g.constants[n.weights[1]].ndim == 1
            quant[n.weights[1]] = dataclasses.replace(q, axis=3)
            changed += 1
    assert changed == 13
    odd = dataclasses.replace(g, quant=quant)
    x = np.random.default_rng(2).integers(-128, 128, (1, 96, 96, 3), dtype=np.int8)
    want = Device(plan(g, 24 * 1024), engine="python").infer([x]).outputs[0]
    got = Device(plan(odd, 24 * 1024), engine="python").infer([x])
    assert np.array_equal(got.outputs[0], want)


def test_a_model_the_reference_refuses_runs_without_a_verdict(tmp_path):
    """LiteRT refuses some files flashswap runs (person_detect.tflite: "quantized_dimension
    must be in range [0, 1)"); the run used to end in LiteRT's traceback. Here the refusal is
    an operator version LiteRT does not have."""
    pytest.importorskip("ai_edge_litert")
    import tflite

    data = bytearray((MODELS / "op_zoo.tflite").read_bytes())
    m = tflite.Model.GetRootAsModel(data, 0)
    codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]
    conv = next(c for c in codes if max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) == 3)
    field = conv._tab.Offset(8)  # OperatorCode.version, stored in this file
    assert field
    struct.pack_into("<i", data, conv._tab.Pos + field, 99)
    model = tmp_path / "op_zoo_v99.tflite"
    model.write_bytes(bytes(data))
    rc, text = run(["run", str(model), "--sram", "64KiB", "--engine", "python", "--json"])
    assert rc == 0
    doc = json.loads(text)
    assert doc["bit_exact"] is None and doc["reference"] is None
    assert doc["reference_error"].startswith("LiteRT ")
    assert ("reference kernels cannot run the model: Didn't find op for builtin opcode "
            "'CONV_2D' version '99'." in doc["reference_error"])
    assert "\n" not in doc["reference_error"]
    rc, text = run(["run", str(model), "--sram", "64KiB", "--engine", "python"])
    assert rc == 0
    assert "against a reference: no verdict (LiteRT " in text
    assert doc["executed_trace_equals_planned"] is True


RESNET = str(MODELS / "ic_resnet8_32.tflite")


@pytest.mark.parametrize("engine", ["python", "c"])
def test_a_partition_too_small_for_the_plan_is_an_input_error(engine, capsys):
    """A --capacity the plan's chunks do not fit used to end as the store's own error, exit 1
    ("put(5): no space left", "chunk of 4096 bytes exceeds the largest chunk")."""
    if engine == "c":
        from flashswap.cli.run_cmd import default_engine

        if default_engine() != "c":
            pytest.skip("the C library does not build here")
    # the layer schedule's smallest plan keeps the most chunks in flash
    sram = plan(load_model(RESNET), 1 << 20, schedule="layers").metadata["min_feasible_budget"]
    p = plan(load_model(RESNET), sram, schedule="layers")
    # 11 segments of 4 KiB take its chunks (up to 6,084 B with the default reserve of 5) but
    # not all of them
    assert live_bytes(p) > 44 * 1024
    rc, _ = run(["run", RESNET, "--sram", str(sram), "--capacity", "44KiB", "--engine", engine,
                 "--schedule", "layers"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("flashswap: error: the store's 44 KiB partition on W25Q128JV is full (")
    assert err.endswith(f"); the plan keeps up to {live_chunks(p)} chunks "
                        f"({format_size(live_bytes(p))}) in flash at once: give a larger "
                        "--capacity\n")
    rc, _ = run(["run", RESNET, "--sram", str(sram), "--capacity", "28KiB", "--engine", engine,
                 "--schedule", "layers"])
    assert rc == 2
    assert capsys.readouterr().err == (
        "flashswap: error: the store's 28 KiB partition on W25Q128JV takes chunks of at most "
        "2,028 B; the plan writes 4,096 B chunks: give a larger --capacity or a smaller "
        "--chunk\n")
    # six segments no longer format (revision 2.7: a reserve of at least 3)
    rc, _ = run(["run", RESNET, "--sram", str(sram), "--capacity", "24KiB", "--engine", engine,
                 "--schedule", "layers"])
    assert rc == 2
    assert capsys.readouterr().err == (
        "flashswap: error: flash of 24576 bytes holds 6 segments of 4096; with ckpt_interval 1 "
        "the store needs at least 7 (a reserve of 3)\n")


def test_live_chunks_and_bytes_follow_writes_trims_and_invalidates():
    p = plan(load_model(RESNET), plan(load_model(RESNET), 1 << 20)
             .metadata["min_feasible_budget"])
    live: dict[int, int] = {}
    most = most_bytes = 0
    for r in p.records:  # the planned trace, record by record
        if r["op"] == Op.WRITE:
            live[int(r["key"])] = int(r["length"])
        elif r["op"] == Op.TRIM:
            live.pop(int(r["key"]))
        elif r["op"] == Op.INVALIDATE:
            live = {k: n for k, n in live.items() if not r["key"] <= k <= r["value"]}
        most, most_bytes = max(most, len(live)), max(most_bytes, sum(live.values()))
    assert (live_chunks(p), live_bytes(p)) == (most, most_bytes) and most > 1


@pytest.mark.parametrize("capacity", [64 << 10, 128 << 10])
def test_store_default_segment_is_an_erase_size(capacity):
    from flashswap.flash import FlashSim
    from flashswap.parts import get_part
    from flashswap.store import Store

    flash = FlashSim(get_part("W25Q128JV"), capacity)
    seg = Store.format(flash, engine="python").stat()["segment_size"]
    assert seg in flash.erase_sizes and capacity // seg >= 6


def test_int16_activations_are_refused_not_run():
    """TFLite's 16x8 quantization (EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)
    ran through the int8 kernels: a converted model's CONV_2D and DEPTHWISE_CONV_2D were off
    by one in 5% of outputs (TFLite accumulates int16 convolutions in 64 bits), its ADD by up
    to 32768. The executor and the reference interpreter now refuse such a model; the
    planner still plans it (its what-ifs)."""
    from flashswap.errors import ModelError
    from flashswap.exec.executor import Executor

    g = fc_dequantize()
    wide = dict(g.tensors)
    for name in ("x", "y"):
        wide[name] = dataclasses.replace(wide[name], dtype="int16")
    g16 = dataclasses.replace(g, tensors=wide)
    p = plan(g16, 1 << 20)
    assert p.metadata["peak_sram"] > 0
    msg = ("model 'fc_dequantize' has int16 activations (TFLite 16x8 quantization) in "
           "FULLY_CONNECTED, DEQUANTIZE: the kernels are int8 and float32 only")
    with pytest.raises(ModelError) as e:
        Device(p, engine="python")
    assert str(e.value) == msg
    with pytest.raises(ModelError) as e:
        Executor(p, None)  # type: ignore[arg-type]
    assert str(e.value) == msg
    with pytest.raises(ModelError) as e:
        run_reference(g16, {"x": np.zeros((1, 128), np.int16)})
    assert str(e.value) == msg


def test_an_unsupported_tensor_type_is_named(tmp_path, capsys):
    """TFLite Micro's audio_preprocessor_int8.tflite has UINT32 tensors: the error said
    'unsupported type 15'."""
    import tflite

    data = bytearray((MODELS / "op_zoo.tflite").read_bytes())
    sg = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
    t = sg.Tensors(int(sg.InputsAsNumpy()[0]))
    assert t.Type() == 9 and t._tab.Offset(6)  # INT8, stored in the file
    struct.pack_into("<b", data, t._tab.Pos + t._tab.Offset(6), 15)
    model = tmp_path / "uint32_input.tflite"
    model.write_bytes(bytes(data))
    assert run(["run", str(model), "--sram", "64KiB"])[0] == 2
    name = t.Name().decode()
    assert capsys.readouterr().err == (f"flashswap: error: tensor '{name}' has unsupported "
                                       "type UINT32\n")


def conv_pair(dtype: str) -> Graph:
    """CONV_2D 3x3 SAME -> DEPTHWISE_CONV_2D 3x3/2 (RELU6), per-tensor quantized, as a legacy
    uint8 model has them; `dtype` "int8" or "uint8", the uint8 graph being the int8 one with
    every activation, filter and zero point moved up by 128 (same real values)."""
    rng = np.random.default_rng(3)
    off = 128 if dtype == "uint8" else 0
    wc = rng.integers(-128, 128, (8, 3, 3, 3)).astype(np.int16)
    wd = rng.integers(-128, 128, (1, 3, 3, 8)).astype(np.int16)
    t = {
        "x": Tensor("x", (1, 12, 10, 3), dtype, False, 12),
        "wc": Tensor("wc", (8, 3, 3, 3), dtype, True),
        "bc": Tensor("bc", (8,), "int32", True),
        "y": Tensor("y", (1, 12, 10, 8), dtype, False, 12),
        "wd": Tensor("wd", (1, 3, 3, 8), dtype, True),
        "bd": Tensor("bd", (8,), "int32", True),
        "z": Tensor("z", (1, 6, 5, 8), dtype, False, 6),
    }
    consts = {"wc": (wc + off).astype(dtype), "wd": (wd + off).astype(dtype),
              "bc": rng.integers(-3000, 3000, 8, dtype=np.int32),
              "bd": rng.integers(-3000, 3000, 8, dtype=np.int32)}
    quant = {"x": Quant((0.0235,), (-3 + off,)), "wc": Quant((0.011,), (off,)),
             "bc": Quant((0.0235 * 0.011,), (0,)), "y": Quant((0.0235,), (-128 + off,)),
             "wd": Quant((0.0086,), (off,)), "bd": Quant((0.0235 * 0.0086,), (0,)),
             "z": Quant((0.0235,), (-128 + off,))}
    spatial = {"kernel": (3, 3), "dilation": (1, 1), "padding": "SAME", "activation": "RELU6"}
    nodes = [
        Node("conv", "Conv", ("x",), ("wc", "bc"), ("y",), 120 * 8 * 27,
             {**spatial, "source_op": "CONV_2D", "args": ("x", "wc", "bc"), "stride": (1, 1),
              "group": 1, "pads": (1, 1, 1, 1)}),
        Node("dw", "DepthwiseConv", ("y",), ("wd", "bd"), ("z",), 30 * 8 * 9,
             {**spatial, "source_op": "DEPTHWISE_CONV_2D", "args": ("y", "wd", "bd"),
              "stride": (2, 2), "group": 8, "pads": (0, 0, 1, 1), "depth_multiplier": 1}),
    ]
    return Graph(f"conv_pair_{dtype}", t, nodes, ["x"], ["z"], "tflite", consts,
                 quant).validate()


def test_uint8_filters_subtract_their_zero_point():
    """A legacy uint8 model (TFLite's converter with inference_type=uint8 on a fake-quant
    graph) has filters with a nonzero zero point; the convolutions ignored it (every output
    wrong, LiteRT differed by up to 255). The uint8 graph computes exactly the int8 one's
    values, 128 higher, swapping or not."""
    g8, gu = conv_pair("int8"), conv_pair("uint8")
    x = np.random.default_rng(4).integers(-128, 128, (1, 12, 10, 3), dtype=np.int8)
    xu = (x.astype(np.int16) + 128).astype(np.uint8)
    want = run_reference(g8, {"x": x})["z"]
    assert len(np.unique(want)) > 8  # the comparison means something
    assert np.array_equal(run_reference(gu, {"x": xu})["z"],
                          (want.astype(np.int16) + 128).astype(np.uint8))
    lo = plan(gu, 1 << 20, 256, schedule="layers").metadata["min_feasible_budget"]
    p = plan(gu, lo, 256, schedule="layers")  # its smallest plan swaps
    assert p.metadata["bytes_written_per_inference"] > 0
    got = Device(p, engine="python").infer([xu]).outputs[0]
    assert np.array_equal(got, (want.astype(np.int16) + 128).astype(np.uint8))


def test_uint8_softmax_has_zero_point_zero():
    """A legacy uint8 model's SOFTMAX outputs scale 1/256, zero point 0 (TFLite requires the
    type's minimum); the kernel refused it ("must be ... zero point -128")."""
    def softmax(dtype: str) -> Graph:
        off = 128 if dtype == "uint8" else 0
        t = {"x": Tensor("x", (1, 40), dtype, False), "y": Tensor("y", (1, 40), dtype, False)}
        quant = {"x": Quant((0.07,), (5 + off,)), "y": Quant((1 / 256,), (-128 + off,))}
        node = Node("sm", "Softmax", ("x",), (), ("y",), 0,
                    {"source_op": "SOFTMAX", "args": ("x",), "beta": 1.0})
        return Graph(f"softmax_{dtype}", t, [node], ["x"], ["y"], "tflite", {},
                     quant).validate()

    x = np.random.default_rng(5).integers(-128, 128, (1, 40), dtype=np.int8)
    want = run_reference(softmax("int8"), {"x": x})["y"]
    assert len(np.unique(want)) > 8
    xu = (x.astype(np.int16) + 128).astype(np.uint8)
    got = run_reference(softmax("uint8"), {"x": xu})["y"]
    assert got.dtype == np.uint8
    assert np.array_equal(got, (want.astype(np.int16) + 128).astype(np.uint8))


def test_every_hybrid_op_is_named_in_one_line():
    """MLPerf Tiny's kws_ref_model_float32.tflite and model_ToyCar_quant.tflite are
    dynamic-range models (int8 weights, float activations); the executor named only the
    first hybrid op, when it prepared its kernel."""
    from flashswap.errors import ModelError

    g = fc_dequantize()
    t = dict(g.tensors)
    t["x"] = dataclasses.replace(t["x"], dtype="float32")
    t["w2"] = dataclasses.replace(t["w"], name="w2", shape=(128, 640))
    t["b2"] = dataclasses.replace(t["b"], name="b2", shape=(128,))
    t["y"] = dataclasses.replace(t["y"], shape=(1, 128), dtype="float32")
    consts = {**g.constants, "w2": g.constants["w"].T.copy(), "b2": g.constants["b"][:128]}
    fc1 = dataclasses.replace(g.nodes[0], outputs=("z",))
    fc2 = dataclasses.replace(fc1, name="fc2", inputs=("z",), weights=("w2", "b2"),
                              outputs=("y",), attrs={**fc1.attrs, "args": ("z", "w2", "b2")})
    hybrid = dataclasses.replace(g, tensors=t, nodes=[fc1, fc2], outputs=["y"],
                                 constants=consts).validate()
    with pytest.raises(ModelError) as e:
        Device(plan(hybrid, 1 << 20), engine="python")
    assert str(e.value) == (
        "model 'fc_dequantize' has hybrid ops (int8 weights, float activations): "
        "FULLY_CONNECTED x2; no kernel: LiteRT quantizes such an op's whole input by its own "
        "range at run time, which a band cannot know")


def test_arena_refuses_a_buffer_that_is_not_live():
    """A program that moves, slides or reads a buffer it never allocated (a planner bug) is
    an ArenaError naming the buffer, not a KeyError."""
    from flashswap.exec.arena import Arena, ArenaError

    a = Arena(64)
    a.alloc(1, 0, 16)
    for call, what in ((lambda: a.move(2, 0, 16), "moved"), (lambda: a.slide(2, 1, 1), "slid"),
                       (lambda: a.view(2), "used"), (lambda: a.free(2), "freed")):
        with pytest.raises(ArenaError) as e:
            call()
        assert str(e.value) == f"buffer 2 {what} but not allocated"
    a.free(1)
    assert a.used == 0 and a.reserved_peak == 16


@pytest.mark.parametrize("engine", ["python", "c"])
def test_a_trace_hook_the_caller_set_still_gets_the_stores_records(engine):
    if engine == "c":
        from flashswap.cli.run_cmd import default_engine

        if default_engine() != "c":
            pytest.skip("the C library does not build here")
    g = load_model(RESNET)
    p = plan(g, plan(g, 1 << 20).metadata["min_feasible_budget"])
    d = Device(p, engine=engine)
    mine: list[bytes] = []
    d.store.trace = mine.append
    x = np.random.default_rng(6).integers(-128, 128, (1, 32, 32, 3), dtype=np.int8)
    r = d.infer([x])
    assert d.store.trace == mine.append
    got = np.frombuffer(b"".join(mine), dtype=r.records.dtype)
    store_ops = np.isin(r.records["op"], [Op.WRITE, Op.READ, Op.TRIM, Op.INVALIDATE, Op.SYNC])
    assert len(got) == store_ops.sum() > 0
    for f in ("op", "key", "length"):
        assert np.array_equal(got[f], r.records[f][store_ops])
