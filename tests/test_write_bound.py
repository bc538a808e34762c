"""The lower bound on bytes written (flashswap/planner/bound.py): its value on a graph worked
by hand, and no plan of either schedule below it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashswap.errors import BudgetError
from flashswap.model import load_model
from flashswap.model.builtin import GraphBuilder
from flashswap.model.graph import Graph
from flashswap.planner import plan
from flashswap.planner.bound import WriteBound, written_lower_bound
from flashswap.planner.samples import samples
from flashswap.trace import Trace

MODELS = Path(__file__).parent / "fixtures" / "models"
TRACES = Path(__file__).resolve().parent.parent / "traces"


def skip_over_a_global_pool() -> Graph:
    """input 16x16x4 -> c1 (3x3, 16 ch) -> c2 (3x3, 16 ch) -> global average pool, and c1's
    output read again after the pool by c3 (1x1): int8, 4,096 bytes each of c1/out, c2/out."""
    b = GraphBuilder("skip", "int8")
    x = b.input(16, 16, 4)
    t1 = b.conv(x, 16, 3, name="c1")
    t2 = b.conv(t1, 16, 3, name="c2")
    g = b.global_pool(t2, name="gap")
    y = b.conv(t1, 16, 1, name="c3")
    return b.build([g, y])


def test_a_tensor_held_across_a_step_no_run_can_fuse_is_counted():
    """No run holds c1/out or c2/out internally (the pool cannot join a run and c1/out is
    read after it), so at the pool's first compute both exist whole, beside its 16 int32
    accumulators: 4,096 + 4,096 + 64 - 6,144 = 2,112 bytes must be in flash. The input
    alone (1,024 bytes) fits: the former bound was 0."""
    g = skip_over_a_global_pool()
    assert written_lower_bound(g, 6 * 1024) == WriteBound(2112, "gap")
    assert written_lower_bound(g, 9 * 1024) == WriteBound(0, "")
    for schedule in ("layers", "fused"):
        p = plan(g, 6 * 1024, 256, schedule=schedule)
        assert p.metadata["bytes_written_per_inference"] == 8192 >= 2112


@pytest.mark.parametrize("name", sorted(p.name for p in MODELS.glob("*.tflite")))
def test_no_fixture_plan_writes_less_than_the_bound(name):
    g = load_model(str(MODELS / name))
    big = plan(g, 1 << 30, 256, schedule="layers").metadata
    lo, nsb = big["min_feasible_budget"], big["no_swap_budget"]
    for budget in (lo, (lo + nsb) // 2):
        bound = written_lower_bound(g, budget).bytes
        for schedule in ("layers", "fused"):
            try:
                p = plan(g, budget, 256, schedule=schedule)
            except BudgetError:
                continue
            assert p.metadata["bytes_written_per_inference"] >= bound, (schedule, budget)


@pytest.mark.slow
@pytest.mark.parametrize("sample", samples(), ids=lambda s: s.name)
def test_no_sample_trace_writes_less_than_the_bound(sample):
    g = load_model(sample.spec, "int8")
    for kib in sample.budgets_kib:
        md = Trace.open(TRACES / f"{sample.name}_{kib}k.bin").metadata
        assert md["bytes_written_per_inference"] >= written_lower_bound(g, kib * 1024).bytes
