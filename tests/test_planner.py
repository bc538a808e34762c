"""Planner: exact records on hand-sized cases, invariants on every sample model and on random
graphs (hypothesis), budget errors, determinism, placement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashswap.errors import BudgetError, InputError
from flashswap.exec.arena import Arena
from flashswap.model import load_model
from flashswap.model.builtin import GraphBuilder
from flashswap.planner import plan as _plan
from flashswap.planner.arena import Buffer, align, overlaps, place
from flashswap.planner.lifetimes import live_between_steps, live_per_step
from flashswap.planner.program import Alloc, BufferSpec, Free, Move, Program, layout
from flashswap.planner.samples import samples
from flashswap.planner.steps import IDENTITY, RowMap, StepIO, build_steps
from flashswap.planner.tiling import tile_bounds, touch
from flashswap.trace import FLAG_PINNED, RECORD_DTYPE, Op

UNLIMITED = 1 << 40


def plan(*args, **kwargs):
    """These tests are the layer schedule's (`--schedule layers`); the fused planner's are in
    tests/test_fused_*.py."""
    return _plan(*args, schedule="layers", **kwargs)


def check_invariants(p, budget: int) -> None:
    """The planner's promises, checked from its records and buffers alone."""
    rec = p.records
    assert rec.dtype == RECORD_DTYPE
    md = p.metadata
    # SRAM never exceeds the budget: the buffers' placements and moves replayed in an arena
    # of the budget's size (it refuses overlaps and overruns, and measures the peak).
    arena = Arena(budget)
    for ins in p.program.instrs:
        if isinstance(ins, Alloc):
            arena.alloc(ins.buf, ins.offset, p.program.buffers[ins.buf].size)
        elif isinstance(ins, Free):
            arena.free(ins.buf)
        elif isinstance(ins, Move):
            arena.move(ins.buf, ins.src, ins.dst)
    assert arena.peak == md["peak_sram"] and not arena.live
    assert md["peak_sram"] <= md["arena_high_water"] == arena.high_water <= budget
    # Key rules, per inference (the plan is one inference).
    assert rec["op"][0] == Op.INFERENCE_BEGIN and rec["op"][-1] == Op.INFERENCE_END
    written: dict[int, int] = {}
    trimmed: set[int] = set()
    for r in rec:
        op, key, length = int(r["op"]), int(r["key"]), int(r["length"])
        if op == Op.WRITE:
            assert key not in written, f"key {key} written twice"
            assert 0 < length <= md["chunk_size"]
            written[key] = length
        elif op == Op.READ:
            assert written.get(key) == length, f"READ of key {key} without a matching WRITE"
            assert key not in trimmed, f"READ of key {key} after its TRIM"
        elif op == Op.TRIM:
            assert key in written and key not in trimmed
            trimmed.add(key)
        elif op == Op.INVALIDATE:
            assert (key, int(r["value"])) == (0, md["key_count"] - 1)
    assert sorted(written) == list(range(md["key_count"]))
    # At least the activation bytes that cannot fit between two steps are swapped out.
    sg = build_steps(p.graph)
    unfit = int(max(0, (live_between_steps(sg) - budget).max(initial=0)))
    assert md["bytes_written_per_inference"] >= unfit == md["unfit_activation_bytes"]
    # Every op's MACs, once.
    assert md["macs_per_inference"] == p.graph.macs


def records_of(p) -> list[tuple[str, int, int, int]]:
    return [(Op(int(r["op"])).name, int(r["key"]), int(r["length"]), int(r["value"]))
            for r in p.records]


# --- exact plans -------------------------------------------------------------------------


def test_row_tiled_conv_exact_records():
    b = GraphBuilder("one_conv")
    x = b.conv(b.input(8, 8, 16), 16, 3, name="conv")
    g = b.build([x])
    # Input and output are 1024 B each (8 rows of 128 B). A channel's parameters: 3x3x16
    # filter bytes + int32 bias + int32 multiplier and shift = 156 B (staging 160 B aligned).
    # The kernel's scratch (CMSIS-NN's im2col of two int16 patches) is 4 x 9 x 16 = 576 B.
    # 2048 B hold the input, 160 B of staging, the scratch and 288 B of output window: two
    # rows (one 256 B chunk) per tile, four tiles; the 192 B left for staging hold one channel.
    p = plan(g, 2048, chunk=256)
    macs = 8 * 8 * 16 * 9 * 16 // 4 // 16  # per tile, per channel
    group = [("WEIGHT_READ", 0, 156, 0), ("COMPUTE", 0, 0, macs)]
    tiles = [r for k in range(4) for r in [*group * 16, ("WRITE", k, 256, 0)]]
    assert records_of(p) == [
        ("INFERENCE_BEGIN", 0, 0, 0), *tiles,
        *[("READ", k, 256, 0) for k in range(4)],
        *[("TRIM", k, 0, 0) for k in range(4)],
        ("INVALIDATE", 0, 0, 3), ("SYNC", 0, 0, 0), ("INFERENCE_END", 0, 0, 0),
    ]
    assert p.metadata["tiled_steps"] == 1
    assert p.metadata["peak_sram"] == 1024 + 256 + 160 + 576
    assert [(b.label, b.size, b.role) for b in p.program.buffers] == [
        ("input", 1024, "tensor"), ("conv/out (tiles)", 256, "window"),
        ("conv (parameters)", 160, "staging"), ("conv (scratch)", 576, "scratch"),
        ("conv/out", 1024, "tensor")]
    check_invariants(p, 2048)
    # With room for all of it the staging buffer holds as many channels as fit: 4096 B leave
    # 4096 - 2048 - 576 = 1472 B for parameters, 9 channels (1404 B): two groups per tile.
    wide = plan(g, 4096, chunk=256)
    wr = wide.records[wide.records["op"] == Op.WEIGHT_READ]
    assert wr["length"].tolist() == [9 * 156, 7 * 156]
    assert wide.schedule.groups == [1, 2, 1]
    check_invariants(wide, 4096)


def test_fc_tiled_by_features_streams_its_rows():
    b = GraphBuilder("fc")
    y = b.fc(b.input(1, 1, 2048), 1000)
    g = b.build([y])
    # One feature's parameters: 2048 weight bytes + an int32 bias (per-tensor quantization:
    # no per-channel multiplier), 2064 B of staging aligned. 4900 B hold the input (2048),
    # that staging and 788 B of output window: two tiles of 500 features (752 B, a chunk
    # pending across the tile boundary).
    p = plan(g, 4900, chunk=256)
    rec = p.records
    wr = rec[rec["op"] == Op.WEIGHT_READ]
    assert wr["length"].tolist() == [2052] * 1000
    assert int(wr["length"].sum()) == p.graph.weight_bytes == 2048 * 1000 + 4 * 1000
    writes = rec[rec["op"] == Op.WRITE]
    assert writes["length"].tolist() == [256, 256, 256, 232]
    assert p.schedule.tiles == [1, 2, 1]
    check_invariants(p, 4900)
    with pytest.raises(BudgetError, match="needs at least 5 KiB even tiled"):
        plan(g, 4096, chunk=256)


def test_streamed_input_halo_chunks_read_once():
    b = GraphBuilder("halo")
    x = b.conv(b.input(32, 32, 8), 8, 3, name="c1")  # 8 KiB in, 8 KiB out
    x = b.conv(x, 8, 3, name="c2")
    p = plan(b.build([x]), 6 * 1024, chunk=256)
    rec = p.records
    reads = rec["key"][rec["op"] == Op.READ]
    assert len(reads) == len(set(reads.tolist()))  # halos overlap, chunks are read once
    check_invariants(p, 6 * 1024)


def test_residual_tensor_evicted_by_farthest_next_use():
    b = GraphBuilder("skip")
    x0 = b.input(16, 16, 16)  # 4 KiB
    x = b.conv(x0, 16, 1, name="a")
    x = b.conv(x, 16, 1, name="b")
    x = b.conv(x, 16, 1, name="c")
    y = b.add(x0, x, name="add")
    p = plan(b.build([y]), 10 * 1024, chunk=1024)
    # x0 is needed last (by add): it is the one written out, once, flagged long-lived.
    rec = p.records
    writes = rec[rec["op"] == Op.WRITE]
    assert writes["key"].tolist() == [0, 1, 2, 3]
    assert (writes["flags"] == FLAG_PINNED).all()
    assert p.metadata["tensors"][0]["name"] == "input"
    assert p.metadata["tensors"][0]["bytes_written"] == 4096
    check_invariants(p, 10 * 1024)


def test_unlimited_budget_swaps_nothing_and_no_swap_budget_is_tight():
    g = load_model("builtin:mobilenet_v2_0.35_96")
    p = plan(g, UNLIMITED)
    ops = set(p.records["op"].tolist())
    assert not ops & {Op.WRITE, Op.READ, Op.TRIM, Op.INVALIDATE}
    nsb = p.metadata["no_swap_budget"]
    at = plan(g, nsb)
    assert at.metadata["bytes_written_per_inference"] == 0
    assert at.metadata["peak_sram"] == nsb
    below = plan(g, nsb - 16)
    assert below.metadata["bytes_written_per_inference"] > 0
    # TFLite Micro's arena holds the activations only; never less than the most live at once.
    assert p.metadata["tflm_greedy_arena"] >= int(live_per_step(build_steps(g)).max())


def test_impossible_budget_names_minimum_and_op():
    g = load_model("builtin:mobilenet_v2")
    with pytest.raises(BudgetError) as e:
        plan(g, 16 * 1024)
    assert str(e.value) == ("SRAM budget 16 KiB is too small: op 'block2/dw' (DepthwiseConv) "
                            "needs at least 49 KiB even tiled")
    ok = plan(g, 49 * 1024)
    assert ok.metadata["min_feasible_budget"] <= 49 * 1024
    check_invariants(ok, 49 * 1024)


def test_bad_chunk_size():
    with pytest.raises(InputError, match="invalid chunk size 0"):
        plan(load_model("builtin:resnet8"), 1 << 20, chunk=0)


def test_deterministic():
    g = load_model("builtin:resnet18_64")
    a, b = plan(g, 64 * 1024, 1024), plan(load_model("builtin:resnet18_64"), 64 * 1024, 1024)
    assert a.records.tobytes() == b.records.tobytes()
    assert a.metadata == b.metadata


def test_macs_rate_gives_durations():
    g = load_model("builtin:ds_cnn")
    p = plan(g, 1 << 20, macs_per_s=100_000_000)
    comp = p.records[p.records["op"] == Op.COMPUTE]
    expected = (comp["value"].astype(np.int64) * 1_000_000 + 50_000_000) // 100_000_000
    assert comp["time_us"].tolist() == expected.tolist()
    assert int(comp["value"].sum()) == g.macs


# --- every sample model ------------------------------------------------------------------


@pytest.mark.parametrize("sample", samples(), ids=lambda s: s.name)
@pytest.mark.parametrize("kib", [96, 256, 512])
def test_invariants_on_sample_models(sample, kib):
    p = plan(load_model(sample.spec, "int8"), kib * 1024)  # as flashswap.planner.samples
    check_invariants(p, kib * 1024)


# --- random graphs -----------------------------------------------------------------------


@st.composite
def random_graphs(draw):
    b = GraphBuilder("random", draw(st.sampled_from(["int8", "int16", "float32"])))
    x = b.input(draw(st.integers(3, 20)), draw(st.integers(3, 20)), draw(st.integers(1, 12)))
    tensors = [x]
    for i in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["conv", "dw", "pool", "add", "concat"]))
        h, w = b.shape(x)[1:3]
        if kind == "conv":
            x = b.conv(x, draw(st.integers(1, 24)), draw(st.sampled_from([1, 3, 5])),
                       draw(st.sampled_from([1, 2])), name=f"conv{i}")
        elif kind == "dw":
            x = b.conv(x, 0, 3, draw(st.sampled_from([1, 2])), depthwise=True, name=f"dw{i}")
        elif kind == "pool" and min(h, w) >= 2:
            x = b.pool(x, 2, 2, name=f"pool{i}")
        elif kind == "add":
            same = [t for t in tensors if b.shape(t) == b.shape(x) and t != x]
            if same:
                x = b.add(draw(st.sampled_from(same)), x, name=f"add{i}")
        elif kind == "concat":
            same = [t for t in tensors if b.shape(t)[:3] == b.shape(x)[:3] and t != x]
            if same:
                x = b.concat([draw(st.sampled_from(same)), x], name=f"cat{i}")
        tensors.append(x)
    if draw(st.booleans()):
        x = b.fc(b.global_pool(x), draw(st.integers(1, 64)))
    return b.build([x])


@given(random_graphs(), st.sampled_from([16, 64, 256, 1000, 4096]), st.floats(0, 1.3))
def test_invariants_on_random_graphs(g, chunk, frac):
    p0 = plan(g, UNLIMITED, chunk)
    nsb = p0.metadata["no_swap_budget"]
    assert nsb >= int(live_per_step(build_steps(g)).max())
    lo = p0.metadata["min_feasible_budget"]
    budget = int(lo + frac * (nsb - lo))
    p = plan(g, budget, chunk)
    check_invariants(p, budget)
    if budget >= nsb:
        assert p.metadata["bytes_written_per_inference"] == 0
    if lo > 16:
        with pytest.raises(BudgetError, match="is too small"):
            plan(g, lo - 16, chunk)


# --- pieces ------------------------------------------------------------------------------


def test_rowmap_bands():
    rm = RowMap(stride=2, extent=3, offset=-1)  # 3x3 stride 2, pad 1
    assert rm.band(0, 1, 8) == (0, 2)
    assert rm.band(1, 3, 8) == (1, 6)
    assert rm.band(3, 4, 8) == (5, 8)


def test_touch_sliding_window():
    io = StepIO(0, RowMap(1, 3, -1), 100)  # 3x3 conv on 10 rows of 100 B, 256 B chunks
    t = touch(io, 1000, tile_bounds(10, 2), 256)
    # Tile k needs rows [2k-1, 2k+3): bytes [0,300) [100,500) [300,700) [500,900) [700,1000).
    assert t.first.tolist() == [0, 0, 2, 3]
    assert t.last.tolist() == [1, 3, 4, 4]
    assert t.held.tolist() == [512, 512, 512, 744, 488]
    assert t.buffer == 752
    whole = touch(StepIO(0, None, 100), 1000, tile_bounds(10, 5), 256)
    assert whole.first.tolist() == [0] * 4 and whole.last.tolist() == [1] * 4
    out = touch(StepIO(0, IDENTITY, 100), 1000, tile_bounds(10, 3), 256)
    assert out.last.tolist() == [0, 1, 2, 3]  # a chunk is written after its last producer
    assert out.first.tolist() == [0, 0, 1, 2]


def test_greedy_placement_matches_tflm_rule():
    bufs = [Buffer(0, 2, 100), Buffer(1, 3, 200), Buffer(3, 4, 100), Buffer(4, 5, 50)]
    offsets, arena = place(bufs)
    assert offsets.tolist() == [208, 0, 208, 0]
    assert arena == 320 and overlaps(bufs, offsets) is None


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 8), st.integers(1, 5000)),
                min_size=1, max_size=40))
def test_layout_fits_live_bytes(spec):
    """Any allocation order fits in an arena as large as the most bytes live at once."""
    bufs = [Buffer(s, s + d, n) for s, d, n in spec]
    live = max(sum(align(b.size) for b in bufs if b.start <= t <= b.end) for t in range(40))
    events = sorted([(b.start, 1, i) for i, b in enumerate(bufs)]
                    + [(b.end, 2, i) for i, b in enumerate(bufs)])
    prog = Program([BufferSpec(i, align(b.size), "", "tensor") for i, b in enumerate(bufs)],
                   [Alloc(i) if kind == 1 else Free(i) for _, kind, i in events])
    lay = layout(prog, live)
    assert lay.peak == live and lay.high_water <= live
    arena = Arena(live)
    for ins in lay.instrs:
        if isinstance(ins, Alloc):
            arena.alloc(ins.buf, ins.offset, lay.buffers[ins.buf].size)
        elif isinstance(ins, Free):
            arena.free(ins.buf)
        else:
            arena.move(ins.buf, ins.src, ins.dst)
    assert arena.peak == live
    offsets, arena_size = place(bufs)
    assert overlaps(bufs, offsets) is None and arena_size >= live
