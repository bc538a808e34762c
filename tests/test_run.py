"""Running plans: every fixture model at three budgets (nothing swapped; tiled and swapped;
tiled and swapped harder) on both store engines gives LiteRT's output bit for bit (the float
fixtures, `*_float`, within flashswap.exec.verdict's tolerance: float sums in another order),
the executed trace is the planned trace record for record, and the arena's measured peak is
the planned peak, within the budget. After a run, the store's flash counters are what the
analyzer's replay of the planned trace gives on the same part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analyzer.device import ReplayFlash
from analyzer.engine_flashswap import FlashswapEngine
from analyzer.replay import Replayer
from analyzer.workload import Workload
from flashswap.cli.run_cmd import random_inputs
from flashswap.exec.device import Device
from flashswap.exec.verdict import compare, float_compute, reference_outputs
from flashswap.model import load_model
from flashswap.parts import get_part
from flashswap.planner import plan
from flashswap.trace import Op

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MODELS = sorted(p.name for p in FIXTURES.glob("*.tflite"))
# The autoencoder's activations are 640 bytes: only chunks this small can be swapped at all.
CHUNK = {"ad_autoencoder_640.tflite": 32}
ENGINES = ["python", "c"]

pytest.importorskip("ai_edge_litert")


def budgets(graph, chunk: int, low_fraction: float) -> list[int]:
    """No swapping (the no-swap budget), halfway, and `low_fraction` of the way from the
    smallest feasible budget to the no-swap one."""
    md = plan(graph, 1 << 30, chunk, schedule="layers").metadata
    lo, nsb = md["min_feasible_budget"], md["no_swap_budget"]
    return [nsb, (lo + nsb) // 2, lo + int(low_fraction * (nsb - lo))]


def same_trace(planned: np.ndarray, executed: np.ndarray) -> bool:
    return len(planned) == len(executed) and all(
        np.array_equal(planned[f], executed[f]) for f in ("op", "key", "length"))


def check_model(name: str, engine: str, low_fraction: float) -> None:
    path = str(FIXTURES / name)
    chunk = CHUNK.get(name, 256)
    g = load_model(path)
    xs = random_inputs(g, 0)
    reference, ref = reference_outputs(path, xs)
    floating = float_compute(g)
    assert floating == name.endswith("_float.tflite")
    for i, budget in enumerate(budgets(g, chunk, low_fraction)):
        p = plan(g, budget, chunk, schedule="layers")
        md = p.metadata
        if i == 0:
            assert md["bytes_written_per_inference"] == 0
        else:  # the budget forces tiling and swapping
            assert md["bytes_written_per_inference"] > 0 and md["tiled_steps"] > 0
        r = Device(p, engine=engine, capacity=1 << 20).infer(xs)
        for y, want in zip(r.outputs, ref, strict=True):
            assert y.dtype == want.dtype and y.shape == want.shape
        v = compare(reference, r.outputs, ref, floating)
        assert v.bit_exact or (floating and v.ok), f"{name} at {budget} B differs: {v}"
        assert same_trace(p.records, r.records)
        assert r.peak_sram == md["peak_sram"] <= budget


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", MODELS)
def test_fixture_bit_exact_at_three_budgets(name, engine):
    check_model(name, engine, 1 / 8)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", MODELS)
def test_fixture_bit_exact_at_the_smallest_budget(name, engine):
    """The smallest feasible budget: one channel per parameter group, one row per tile."""
    check_model(name, engine, 0.0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("name", "kib", "chunk", "part", "capacity"), [
    ("ic_resnet8_32.tflite", 16, 1024, "W25Q128JV", 1 << 20),
    ("mobilenet_v2_035_96.tflite", 48, 4096, "W25N01GV", 8 << 20),
])
def test_flash_counters_equal_the_analyzers_replay(name, kib, chunk, part, capacity, engine):
    g = load_model(str(FIXTURES / name))
    p = plan(g, kib * 1024, chunk, schedule="layers")
    assert p.metadata["bytes_written_per_inference"] > 0
    dev = Device(p, part, capacity, engine)
    xs = random_inputs(g, 1)
    runs = [dev.infer(xs, i) for i in range(3)]
    flash = ReplayFlash(get_part(part), capacity)
    replay = Replayer(FlashswapEngine(flash, implementation=engine),
                      Workload.from_records(p.records))
    for _ in range(3):
        replay.step()
    a, b = dev.flash, flash
    assert a.ops == b.ops and a.ops_count == b.ops_count
    for counter in ("erase_counts", "program_bytes", "read_bytes"):
        assert np.array_equal(getattr(a, counter), getattr(b, counter)), counter
    assert a.time_s == pytest.approx(b.time_s, rel=1e-12)
    written = sum(int(r.records["length"][r.records["op"] == Op.WRITE].sum()) for r in runs)
    assert written == 3 * p.metadata["bytes_written_per_inference"]
