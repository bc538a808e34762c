"""`flashswap run`: its report, JSON, output and trace files, and one-line input errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from flashswap.cli import main
from flashswap.cli.output import make_console
from flashswap.model import load_model
from flashswap.planner import plan
from flashswap.trace import Trace

MODEL = str(Path(__file__).parent / "fixtures" / "models" / "ic_resnet8_32.tflite")

pytest.importorskip("ai_edge_litert")


def run(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(argv, console=make_console(file=buf, width=200))
    return rc, buf.getvalue()


def test_run_prints_output_verdict_and_figures():
    rc, text = run(["run", MODEL, "--sram", "16KiB", "--chunk", "1KiB", "--engine", "python",
                    "--schedule", "layers"])
    assert rc == 0
    assert text.startswith("ic_resnet8_32: 1 inference in 16 KiB of SRAM (1 KiB chunks), store "
                           "on W25Q128JV")
    assert "top-5: " in text  # a 10-class classifier
    assert "against LiteRT" in text and "reference kernels: bit-exact" in text
    assert "16,384 B / 16,384 B" in text  # measured / planned peak
    assert "= planned trace" in text


def test_run_json_output_and_trace_files(tmp_path):
    out, trace = tmp_path / "y.npy", tmp_path / "executed.bin"
    rc, text = run(["run", MODEL, "--sram", "20KiB", "--chunk", "1KiB", "--inferences", "2",
                    "--seed", "5", "-o", str(out), "--trace-out", str(trace), "--json",
                    "--schedule", "layers"])
    assert rc == 0
    doc = json.loads(text)
    assert doc["bit_exact"] is True and doc["matches_reference"] is True
    assert doc["peak_sram"] == doc["planned_peak_sram"] <= 20 * 1024
    assert doc["output_file"] == str(out) and doc["inferences"] == 2
    p = plan(load_model(MODEL), 20 * 1024, 1024, schedule="layers")
    assert doc["bytes_written"] == p.metadata["bytes_written_per_inference"] > 0
    assert doc["bytes_read"] == p.metadata["bytes_read_per_inference"]
    assert doc["executed_trace_equals_planned"] is True
    y = np.load(out)
    assert y.dtype == np.int8 and y.shape == (1, 10)
    t = Trace.open(trace)
    t.validate_semantics()
    rec = t.records
    assert len(rec) == 2 * len(p.records)
    for f in ("op", "key", "length"):
        assert np.array_equal(rec[f][:len(p.records)], p.records[f])
        assert np.array_equal(rec[f][len(p.records):], p.records[f])
    assert t.metadata["generator"] == "flashswap run (executed trace)"


def test_run_takes_an_input_file(tmp_path):
    x = np.random.default_rng(9).integers(-128, 128, (1, 32, 32, 3), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    rc, text = run(["run", MODEL, "--sram", "64KiB", "--input", str(tmp_path / "x.npy"),
                    "--json", "-o", str(tmp_path / "y.npy")])
    assert rc == 0 and json.loads(text)["bit_exact"] is True
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=MODEL, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    want = it.get_tensor(it.get_output_details()[0]["index"])
    assert np.array_equal(np.load(tmp_path / "y.npy"), want)


@pytest.mark.parametrize(("extra", "message"), [
    (["--input", "{tmp}/missing.npy"], "input file '{tmp}/missing.npy': no such file"),
    (["--input", "{tmp}/bad.npy"], "input file '{tmp}/bad.npy': input "
     "'serving_default_keras_tensor_243:0' must be int8 1x32x32x3, not float32 1x32x32"),
    (["--input", "{tmp}/text.npy"], "input file '{tmp}/text.npy': not a .npy/.npz array"),
    (["--inferences", "0"], "invalid inference count 0: must be at least 1"),
    (["--sram", "1KiB"], "SRAM budget 1 KiB is too small"),
    (["--part", "NOPE"], "unknown part 'NOPE'"),
    (["--input-shape", "x=1xAx3"], "invalid input shape 'x=1xAx3': expected NAME=DIMS"),
    (["--corrupt-chunk", "999"], "the plan writes no swap chunk 999"),
    (["--seed", "-1"], "invalid seed -1: must not be negative"),
    (["-o", "{tmp}/no/such/dir/y.npy"], "-o {tmp}/no/such/dir/y.npy: cannot write"),
    (["--capacity", "100000"], "capacity 100000 for W25Q128JV must be a positive multiple"),
    (["--capacity", "64MiB"], "exceed W25Q128JV's 16 MiB"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, message):
    np.save(tmp_path / "bad.npy", np.zeros((1, 32, 32), dtype=np.float32))
    (tmp_path / "text.npy").write_text("not numpy")
    argv = ["run", MODEL, "--sram", "16KiB", *[a.format(tmp=tmp_path) for a in extra]]
    if "--sram" in extra:
        argv = ["run", MODEL, *[a.format(tmp=tmp_path) for a in extra]]
    rc, _ = run(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and message.format(tmp=tmp_path) in err


def test_builtin_model_cannot_run(capsys):
    rc, _ = run(["run", "builtin:resnet8", "--sram", "64KiB"])
    assert rc == 2
    assert capsys.readouterr().err == ("flashswap: error: builtin:resnet8 has no weights: run "
                                       "takes a .tflite or .onnx file\n")
