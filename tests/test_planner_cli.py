"""`flashswap trace plan` and `flashswap trace models`: outputs, files and one-line errors."""

from __future__ import annotations

import io
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from flashswap.cli import main
from flashswap.cli.output import make_console
from flashswap.trace import Op, Trace


def run(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(argv, console=make_console(file=buf, width=200))
    return rc, buf.getvalue()


def test_plan_writes_trace_and_prints_summary(tmp_path):
    out = tmp_path / "kws.bin"
    rc, text = run(["trace", "plan", "builtin:ds_cnn", "--sram", "12KiB", "--chunk", "1KiB",
                    "--schedule", "layers", "-o", str(out)])
    assert rc == 0
    assert "ds_cnn: layers plan for 12 KiB SRAM, 1 KiB chunks" in text
    assert "swap bytes written / inference" in text
    t = Trace.open(out)
    t.validate_semantics()
    assert t.metadata["sram_budget"] == 12288 and t.metadata["chunk_size"] == 1024
    assert t.summary()["ops"]["WRITE"] > 0


def test_plan_json_inferences_and_durations(tmp_path):
    out = tmp_path / "r8.bin"
    rc, text = run(["trace", "plan", "builtin:resnet8", "--sram", "40k", "--inferences", "3",
                    "--macs-per-s", "100M", "--dtype", "int16", "--schedule", "layers", "-o",
                    str(out), "--json"])
    assert rc == 0
    doc = json.loads(text)
    assert doc["records"] == 3 * (doc["records"] // 3) and doc["inferences"] == 3
    assert doc["sram_budget"] == 40000 and doc["activation_dtype"] == "int16"
    assert doc["macs_per_s"] == 100_000_000 and "tensors" not in doc
    t = Trace.open(out)
    spans = t.inferences()
    assert [int(t.records["value"][b]) for b, _ in spans] == [0, 1, 2]
    per = [t.records[b:e] for b, e in spans]
    assert all(np.array_equal(p[1:], per[0][1:]) for p in per)
    comp = t.records[t.records["op"] == Op.COMPUTE]
    assert (comp["time_us"] > 0).any()
    assert t.summary()["bytes_written_per_inference"] == doc["bytes_written_per_inference"] > 0


def test_plan_at_a_measured_mcu_rate(tmp_path, capsys):
    """--mcu times COMPUTE records at a published rate: ResNet-8 (the MLPerf Tiny model) then
    computes in the 1 / 4.407 s its benchmark result states; --mcu with --macs-per-s, or an
    unknown MCU, is a one-line usage error."""
    out = tmp_path / "r8.bin"
    rc, text = run(["trace", "plan", "builtin:resnet8", "--sram", "256KiB", "--mcu",
                    "cortex-m4-120mhz-xcube-ai", "-o", str(out), "--json"])
    assert rc == 0
    assert json.loads(text)["macs_per_s"] == round(4.407 * 12_501_632)
    t = Trace.open(out)
    comp = t.records[t.records["op"] == Op.COMPUTE]
    assert int(comp["value"].sum()) == 12_501_632
    assert int(comp["time_us"].sum()) * 1e-6 == pytest.approx(1 / 4.407, rel=1e-4)
    for extra, msg in ((["--mcu", "cortex-m7-280mhz-xcube-ai", "--macs-per-s", "1M"],
                        "give --macs-per-s or --mcu, not both"),
                       (["--mcu", "esp32"], "unknown MCU 'esp32'")):
        rc, _ = run(["trace", "plan", "builtin:resnet8", "--sram", "256KiB", *extra,
                     "-o", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("\n") == 1


def test_models_lists_builtins():
    rc, text = run(["trace", "models"])
    assert rc == 0
    for name in ("mobilenet_v1", "mobilenet_v2", "resnet8", "resnet18", "ds_cnn"):
        assert name in text
    rc, text = run(["trace", "models", "--json"])
    doc = json.loads(text)
    assert {d["name"]: d["macs"] for d in doc}["mobilenet_v2"] == 300_774_272


def _error(capsys, argv: list[str]) -> str:
    rc, _ = run(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1, err  # one line, no traceback
    return err.strip()


def test_errors_are_one_line(capsys, tmp_path):
    out = str(tmp_path / "x.bin")
    assert _error(capsys, ["trace", "plan", "builtin:mobilenet_v2", "--sram", "16KiB", "-o",
                           out, "--schedule", "layers"]) == (
        "flashswap: error: SRAM budget 16 KiB is too small: op 'block2/dw' (DepthwiseConv) "
        "needs at least 49 KiB even tiled")
    assert _error(capsys, ["trace", "plan", "builtin:mobilenet_v2", "--sram", "16KiB", "-o",
                           out]) == ("flashswap: error: SRAM budget 16 KiB is too small: the "
                                     "model needs at least 17 KiB (op 'block17/expand' (Conv), "
                                     "chunks of 256 B)")
    assert _error(capsys, ["trace", "plan", "builtin:vgg", "--sram", "1MiB", "-o", out]) == (
        "flashswap: error: unknown built-in model 'vgg' (known: ds_cnn, mobilenet_v1, "
        "mobilenet_v2, resnet18, resnet8)")
    assert _error(capsys, ["trace", "plan", "builtin:resnet8", "--sram", "lots", "-o", out]) == (
        "flashswap: error: invalid SRAM budget 'lots': expected a number with an optional unit "
        "(B, k, KiB, M, MiB, G, GiB), e.g. 256KiB")
    assert "no such file" in _error(capsys, ["trace", "plan", str(tmp_path / "m.onnx"),
                                             "--sram", "1MiB", "-o", out])
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage")
    assert "cannot read TFLite model" in _error(capsys, ["trace", "plan", str(bad), "--sram",
                                                         "1MiB", "-o", out])
    assert "invalid chunk size 0" in _error(capsys, ["trace", "plan", "builtin:resnet8",
                                                     "--sram", "1MiB", "--chunk", "0", "-o",
                                                     out])
    assert "invalid inference count 0" in _error(capsys, ["trace", "plan", "builtin:resnet8",
                                                          "--sram", "1MiB", "--inferences",
                                                          "0", "-o", out])


def test_unsupported_op_error(capsys, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="nearest")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [scales]),
                              opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "up.onnx"
    onnx.save(model, str(path))
    assert _error(capsys, ["trace", "plan", str(path), "--sram", "1MiB", "-o",
                           str(tmp_path / "o.bin")]) == (
        "flashswap: error: unsupported op 'Resize' (node 'up')")
