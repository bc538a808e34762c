"""Faults while running a plan: a power cut at any flash operation of an inference, then a
mount and the inference again, still gives LiteRT's output; a damaged swap chunk is reported
(CorruptError; `flashswap run` exits 1 with one line), never turned into a wrong output."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from flashswap.cli import main
from flashswap.cli.output import make_console
from flashswap.cli.run_cmd import random_inputs
from flashswap.errors import CorruptError, PowerCut
from flashswap.exec.device import Device
from flashswap.exec.verdict import reference_outputs
from flashswap.model import load_model
from flashswap.planner import plan

FIXTURES = Path(__file__).parent / "fixtures" / "models"

pytest.importorskip("ai_edge_litert")


def cut_everywhere(name: str, kib: float, chunk: int, engine: str, step: int,
                   capacity: int) -> int:
    """Cuts power at every `step`-th flash operation of an inference (and of the store's
    idle work after it); returns how many cuts were made."""
    path = str(FIXTURES / name)
    g = load_model(path)
    p = plan(g, int(kib * 1024), chunk, schedule="layers")
    assert p.metadata["bytes_written_per_inference"] > 0
    xs = random_inputs(g, 3)
    _, ref = reference_outputs(path, xs)
    # 4 KiB segments on a small NOR partition: once the log has gone round, the store erases
    # segments during the inference and its idle work.
    dev = Device(p, "W25Q128JV", capacity, engine, segment_size=4096)
    for i in range(100):
        erases = dev.flash.ops["erases"]
        dev.infer(xs, i)
        if dev.flash.ops["erases"] > erases:
            break
    snapshot = dev.flash.copy()
    probe = Device(p, engine=engine, flash=snapshot.copy(), weights=dev.weights)
    before = probe.flash.ops_count
    probe.infer(xs)
    ops = probe.flash.ops_count - before
    assert probe.flash.ops["erases"] > snapshot.ops["erases"]  # erases are among the cuts
    cuts = 0
    for n in range(0, ops, step):
        flash = snapshot.copy()
        d = Device(p, engine=engine, flash=flash, weights=dev.weights)
        flash.power_cut_after(n)
        with pytest.raises(PowerCut):
            d.infer(xs)
        d.reboot()
        r = d.infer(xs)
        for y, want in zip(r.outputs, ref, strict=True):
            assert np.array_equal(y, want), f"cut after {n} operations: wrong output"
        for f in ("op", "key", "length"):  # the rerun is the plan, record for record
            assert np.array_equal(r.records[f], p.records[f])
        cuts += 1
    return cuts


@pytest.mark.parametrize("engine", ["python", "c"])
def test_power_cut_at_every_operation_then_rerun_is_bit_exact(engine):
    assert cut_everywhere("op_zoo.tflite", 5.5, 256, engine, 1, 32 << 10) > 30


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["python", "c"])
def test_power_cut_at_every_operation_resnet8(engine):
    assert cut_everywhere("ic_resnet8_32.tflite", 16, 1024, engine, 1, 256 << 10) > 300


@pytest.mark.parametrize("engine", ["python", "c"])
def test_damaged_chunk_is_reported(engine):
    g = load_model(str(FIXTURES / "ic_resnet8_32.tflite"))
    p = plan(g, 16 * 1024, 1024, schedule="layers")
    dev = Device(p, "W25Q128JV", 1 << 20, engine)
    dev.corrupt_after_write(3)
    with pytest.raises(CorruptError, match="chunk 3"):
        dev.infer(random_inputs(g, 0))


def test_run_reports_a_damaged_chunk_in_one_line(capsys):
    rc = main(["run", str(FIXTURES / "ic_resnet8_32.tflite"), "--sram", "16KiB", "--chunk",
               "1KiB", "--corrupt-chunk", "3"], console=make_console(file=io.StringIO()))
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("flashswap: error: chunk 3")
