"""The fused planner end to end: plan(), its metadata, its choices against the layer schedule,
errors, and the CLI options. (Execution: tests/test_fused_exec.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

from flashswap.cli import main
from flashswap.errors import BudgetError, InputError
from flashswap.model import load_model
from flashswap.model.builtin import GraphBuilder
from flashswap.planner import chunk_choices, plan
from flashswap.planner.fused.cost import CostModel
from flashswap.trace import Op, Trace

MBV2_SMALL = "builtin:mobilenet_v2_0.35_96"


@pytest.fixture(scope="module")
def mbv2():
    return load_model(MBV2_SMALL)


def written(p) -> int:
    return p.metadata["bytes_written_per_inference"]


@pytest.mark.parametrize("kib", [48, 32, 24])
def test_fused_never_costs_more_than_layers(mbv2, kib):
    f = plan(mbv2, kib * 1024)
    lay = plan(mbv2, kib * 1024, schedule="layers", cost=CostModel.for_part())
    assert f.metadata["cost"]["bytes_programmed"] <= lay.metadata["cost"]["bytes_programmed"]
    assert written(f) < written(lay)
    assert f.metadata["peak_sram"] <= f.metadata["arena_high_water"] <= kib * 1024
    rec = f.records
    assert rec["op"][0] == Op.INFERENCE_BEGIN and rec["op"][-1] == Op.INFERENCE_END
    assert int(rec["value"][rec["op"] == Op.COMPUTE].sum()) == (
        mbv2.macs + f.metadata["cost"]["extra_macs"])


def test_fused_plan_writes_nothing_where_layers_must_swap(mbv2):
    f = plan(mbv2, 64 * 1024)
    lay = plan(mbv2, 64 * 1024, schedule="layers")
    assert written(f) == 0 < written(lay)
    md = f.metadata
    assert md["schedule"] == "fused" and md["fused_runs"]
    assert md["cost"]["extra_macs"] == 0  # halos cached, not recomputed
    for r in md["fused_runs"]:
        assert set(r) >= {"first", "last", "steps", "grid", "patch", "cache_rows",
                          "cache_cols", "workspace", "extra_macs", "streamed"}
    c = md["cost"]
    assert c["part"] == "W25Q128JV" and c["objective"] == "wear"
    assert c["bytes_written"] == 0 and c["program_ms"] == 0 and c["erase_ms"] == 0


def test_layers_schedule_is_unchanged_by_the_cost_model(mbv2):
    a = plan(mbv2, 32 * 1024, schedule="layers")
    b = plan(mbv2, 32 * 1024, schedule="layers", cost=CostModel.for_part("W25N01GV"))
    assert np.array_equal(a.records, b.records)
    assert a.metadata["schedule"] == "layers" and "cost" not in a.metadata
    assert b.metadata["cost"]["part"] == "W25N01GV"


def test_chunk_choices_halve_down_to_the_program_unit():
    assert chunk_choices(4096, 256) == [4096, 2048, 1024, 512, 256]
    assert chunk_choices(3000, 256) == [3000, 2048, 1024, 512, 256]
    assert chunk_choices(4096, 2048) == [4096, 2048]
    assert chunk_choices(128, 256) == [128]  # below the unit: taken as given


def test_a_tight_budget_takes_smaller_chunks(mbv2):
    p = plan(mbv2, 12 * 1024)
    assert p.metadata["chunk_size"] < 4096
    assert p.metadata["chunk_choices"][0] == 4096
    with pytest.raises(BudgetError):
        plan(mbv2, 12 * 1024, schedule="layers")


def chunk_of(p) -> dict[str, int]:
    return {t["name"]: t["chunk"] for t in p.metadata["tensors"] if t["chunk"]}


def test_chunks_are_chosen_per_tensor():
    """ResNet-8 at 14 KiB streams one tensor through a chunk window (in 512 B chunks) and
    evicts another whole: that one is written in one 4 KiB chunk, which programs fewer
    record headers than the same plan in 512 B chunks throughout."""
    g = load_model("tests/fixtures/models/ic_resnet8_32.tflite")
    p = plan(g, 14 * 1024)
    chunks = chunk_of(p)
    windowed = {p.steps.tensors[t].name for t in p.schedule.windowed}
    assert windowed and set(chunks) - windowed
    assert {chunks[n] for n in windowed} == {512}
    assert {chunks[n] for n in set(chunks) - windowed} == {4096}
    assert p.metadata["chunk_size"] == 4096  # the largest chunk the trace holds
    # The trace agrees: each tensor's keys, and no WRITE longer than its tensor's chunk.
    rec = p.records
    w = rec[rec["op"] == Op.WRITE]
    by_key = {}
    for t in p.metadata["tensors"]:
        for k in range(t["first_key"], t["first_key"] + t["chunks"]):
            by_key[k] = t["chunk"]
    assert p.metadata["key_count"] == len(by_key) == sum(
        t["chunks"] for t in p.metadata["tensors"])
    assert all(int(n) <= by_key[int(k)] for k, n in zip(w["key"], w["length"], strict=True))
    uniform = plan(g, 14 * 1024, chunk=512)
    assert set(chunk_of(uniform).values()) == {512}
    a, b = p.metadata["cost"], uniform.metadata["cost"]
    assert a["bytes_written"] == b["bytes_written"]
    assert a["bytes_programmed"] < b["bytes_programmed"]


def test_impossible_budget_names_the_smallest_budget(mbv2):
    with pytest.raises(BudgetError) as e:
        plan(mbv2, 2 * 1024)
    msg = str(e.value)
    assert msg.startswith("SRAM budget 2 KiB is too small: the model needs at least ")
    assert msg.endswith("chunks of 256 B)")
    need = int(msg.split("at least ")[1].split(" KiB")[0])
    plan(mbv2, need * 1024)  # and it plans there


def test_max_slowdown_and_objectives(mbv2):
    rate = 4.407 * 12_501_632  # a Cortex-M4's measured rate (analyzer/mcus.py)
    wear = plan(mbv2, 16 * 1024, cost=CostModel.for_part(macs_per_s=rate))
    fast = plan(mbv2, 16 * 1024, cost=CostModel.for_part(macs_per_s=rate, objective="time"))
    sw, sf = wear.metadata["cost"]["slowdown"], fast.metadata["cost"]["slowdown"]
    assert wear.metadata["cost"]["extra_macs"] > 0  # wear buys bytes with recomputation
    assert sf <= sw and wear.metadata["cost"]["bytes_programmed"] <= (
        fast.metadata["cost"]["bytes_programmed"])
    capped = plan(mbv2, 16 * 1024, cost=CostModel.for_part(macs_per_s=rate, max_slowdown=sw))
    assert np.array_equal(capped.records, wear.records)
    with pytest.raises(BudgetError, match=r"--max-slowdown 1.05 cannot be met at 16 KiB: "
                                          r"the fastest plan found takes \d\.\d\dx"):
        plan(mbv2, 16 * 1024, cost=CostModel.for_part(macs_per_s=rate, max_slowdown=1.05))


def test_unknown_schedule():
    with pytest.raises(InputError, match="unknown schedule 'rows' \\(choose fused, layers\\)"):
        plan(load_model("builtin:ds_cnn"), 1 << 20, schedule="rows")


def test_a_residual_block_fuses_into_one_run():
    b = GraphBuilder("block")
    x0 = b.input(64, 64, 16)  # 64 KiB
    x = x0
    for k in range(4):
        x = b.conv(x, 16, 3, name=f"c{k}")
    g = b.build([b.add(x0, x, name="res")])
    # 160 KiB holds the input and the output, not a third 64 KiB tensor: layer by layer
    # the input must wait in flash for the add; fused, the convolutions' outputs never
    # exist whole.
    p = plan(g, 160 * 1024)
    assert written(p) == 0 < written(plan(g, 160 * 1024, schedule="layers"))
    (run,) = p.metadata["fused_runs"]
    # The four convolutions in one run; the add in it, or in place over its output.
    assert (run["first"], run["last"]) in (("c0", "res"), ("c0", "c3"))
    assert run["extra_macs"] == 0


def test_cli_plan_options(tmp_path, capsys):
    out = tmp_path / "t.bin"
    assert main(["trace", "plan", MBV2_SMALL, "--sram", "32KiB", "-o", str(out),
                 "--json"]) == 0
    md = json.loads(capsys.readouterr().out)
    assert md["schedule"] == "fused" and md["cost"]["part"] == "W25Q128JV"
    assert Trace.open(out).metadata["fused_runs"] == md["fused_runs"]
    assert main(["trace", "plan", MBV2_SMALL, "--sram", "32KiB", "-o", str(out),
                 "--schedule", "layers", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schedule"] == "layers"
    assert main(["trace", "plan", MBV2_SMALL, "--sram", "32KiB", "-o", str(out),
                 "--max-slowdown", "0.5"]) == 2
    assert "invalid slowdown '0.5' (a factor >= 1)" in capsys.readouterr().err
    assert main(["trace", "plan", MBV2_SMALL, "--sram", "32KiB", "-o", str(out),
                 "--schedule", "layers", "--objective", "time"]) == 2
    assert ("--objective and --max-slowdown choose among fused plans: they need --schedule "
            "fused") in capsys.readouterr().err


def test_depthwise_in_place_halves_its_need():
    b = GraphBuilder("dw")
    x = b.input(64, 64, 32)  # 128 KiB
    g = b.build([b.conv(x, 0, 3, depthwise=True, name="dw")])
    # Layer by layer the input and the output do not fit in 160 KiB together; in place the
    # output takes the input's buffer and a one-channel temporary (64 x 64 bytes).
    p = plan(g, 160 * 1024)
    assert p.metadata["in_place_steps"] == ["dw"]
    assert written(p) == 0 < written(plan(g, 160 * 1024, schedule="layers"))
    # + the parameters of all 32 channels: 9 filter bytes, a 4-byte bias and an 8-byte
    # multiplier and shift each.
    assert p.metadata["peak_sram"] == 128 * 1024 + 64 * 64 + 32 * (9 + 4 + 8)


@pytest.mark.parametrize("spec", ["builtin:mobilenet_v1_0.5_128", "builtin:mobilenet_v2_0.5_96",
                                  "builtin:resnet18_64", "builtin:resnet8", "builtin:ds_cnn"])
@pytest.mark.parametrize("kib", [512, 128, 48, 24])
def test_fused_programs_fit_their_budget(spec, kib):
    """The scheduler's byte accounting is the layout's: a searched fused program always
    lays out within the budget (a LayoutError would drop the fused plan silently)."""
    from flashswap.planner.fused.plan import extras_of, schedule_fused
    from flashswap.planner.params import step_needs
    from flashswap.planner.steps import build_steps

    g = load_model(spec)
    sg = build_steps(g)
    needs = step_needs(g, sg)
    cm = CostModel.for_part()
    for chunk in (4096, 1024):
        from flashswap.planner.fused.search import search

        stages = search(g, sg, kib * 1024, chunk, cm, extras_of(needs))
        if not stages:
            continue
        r = schedule_fused(g, sg, needs, kib * 1024, chunk, 0, cm, stages=stages)
        assert r is not None and r.program.peak <= r.program.high_water <= kib * 1024


def check_fused_invariants(p, budget: int) -> None:
    """What any plan promises, from its program and records alone (as test_planner's
    check_invariants, less the layer schedule's own bounds)."""
    from flashswap.exec.arena import Arena
    from flashswap.planner.program import Alloc, Free, Move

    md = p.metadata
    arena = Arena(budget)
    for ins in p.program.instrs:
        if isinstance(ins, Alloc):
            arena.alloc(ins.buf, ins.offset, p.program.buffers[ins.buf].size)
        elif isinstance(ins, Free):
            arena.free(ins.buf)
        elif isinstance(ins, Move):
            arena.move(ins.buf, ins.src, ins.dst)
    assert arena.reserved_peak == md["peak_sram"] <= budget and not arena.live
    rec = p.records
    written: dict[int, int] = {}
    trimmed: set[int] = set()
    for r in rec:
        op, key, length = int(r["op"]), int(r["key"]), int(r["length"])
        if op == Op.WRITE:
            assert key not in written and 0 < length <= md["chunk_size"]
            written[key] = length
        elif op == Op.READ:
            assert written.get(key) == length and key not in trimmed
        elif op == Op.TRIM:
            assert key in written and key not in trimmed
            trimmed.add(key)
    assert sorted(written) == list(range(md["key_count"]))
    macs = int(rec["value"][rec["op"] == Op.COMPUTE].sum())
    assert macs == md["macs_per_inference"] == p.graph.macs + md["cost"]["extra_macs"]
    # Layer steps compute every MAC once: the recomputed ones are the runs' own count.
    assert md["cost"]["extra_macs"] == sum(r["extra_macs"] for r in md.get("fused_runs", []))
    # The part's figures are those of the trace's records.
    cm = CostModel.for_part(md["cost"]["part"])
    assert cm.counts(rec).bytes_written == md["cost"]["bytes_written"] == written_bytes(rec)


def written_bytes(rec) -> int:
    return int(rec["length"][rec["op"] == Op.WRITE].sum())


@pytest.mark.parametrize("spec", ["builtin:mobilenet_v1", "builtin:mobilenet_v2",
                                  "builtin:resnet18", "builtin:resnet8", "builtin:ds_cnn"])
@pytest.mark.parametrize("kib", [256, 96])
def test_fused_invariants_on_sample_models(spec, kib):
    g = load_model(spec)
    p = plan(g, kib * 1024)
    check_fused_invariants(p, kib * 1024)
    lay = plan(g, kib * 1024, schedule="layers")
    assert written(p) <= written(lay)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["squeezenet", "inception_v2", "shufflenet", "resnet50"])
@pytest.mark.parametrize("kib", [256, 512])
def test_fused_invariants_on_onnx_sample_models(name, kib):
    from flashswap.planner.samples import samples

    spec = next(s.spec for s in samples() if s.name == name)
    g = load_model(spec, "int8")
    p = plan(g, kib * 1024)
    check_fused_invariants(p, kib * 1024)
    assert written(p) <= written(plan(g, kib * 1024, schedule="layers"))
