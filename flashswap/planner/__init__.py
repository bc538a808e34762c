"""The swap planner: from a model graph, an SRAM budget and a chunk size to a program and trace.

`plan(graph, sram, chunk)` runs the scheduler (schedule.py: the policy, which counts bytes
in a pool the size of the budget) into a program (program.py: every SRAM, flash and compute
operation of one inference), then lays its buffers out at real offsets (program.layout: first
fit, compacting when fragmented). The trace is derived from the program, and the executor
(flashswap/exec/) follows the same program, so what runs is what was planned. The budget
covers every buffer the executor allocates: activations, chunk windows, the staging buffer of
parameters streamed from flash, kernel scratch and accumulators (params.py). `peak_sram` is the
scheduler's own count of the most bytes it holds at once (resident tensors and each step's
buffers; planning asserts the program's allocations peak at exactly that) and
`arena_high_water` the highest address used; both are <= the budget. bound.py gives a lower
bound on the bytes any plan writes at a budget.

`no_swap_budget` is the smallest budget at which nothing is swapped: the most bytes live at
once (inputs and outputs of a step together, 16-byte aligned) plus that step's smallest
extras. `tflm_greedy_arena` is what TFLite Micro's static greedy planner needs for the
activations of the graph unswapped: the price of never moving a buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import numpy as np

from flashswap import __version__
from flashswap.errors import BudgetError, InputError
from flashswap.model.graph import Graph
from flashswap.planner.arena import align
from flashswap.planner.fused.cost import CostModel
from flashswap.planner.lifetimes import live_between_steps, live_per_step, tflm_greedy_arena
from flashswap.planner.params import Needs, step_needs
from flashswap.planner.program import LayoutError, Program, layout
from flashswap.planner.schedule import (
    Infeasible,
    Schedule,
    Scheduler,
    fixed_extras,
    min_step_need,
)
from flashswap.planner.steps import StepGraph, build_steps
from flashswap.sizes import format_size, kib_ceil
from flashswap.trace import Op

if TYPE_CHECKING:
    from flashswap.planner.fused.runs import Config

__all__ = ["SCHEDULES", "Plan", "plan"]

ARENA_POLICY = (
    "byte pool of the budget holding activations, chunk windows, parameter staging, kernel "
    "scratch and accumulators; Belady eviction (farthest next use first), each chunk written "
    "once per inference, ops tiled with the largest tiles that fit, parameters streamed by "
    "channel group; buffers allocated first-fit at 16-byte-aligned offsets, compacted "
    "(memmove) when fragmented"
)


@dataclass
class Plan:
    """A planned inference: its program (laid out), records (one inference) and metadata."""

    graph: Graph
    steps: StepGraph
    needs: list[Needs]
    schedule: Schedule
    program: Program
    metadata: dict[str, Any]

    @cached_property
    def records(self) -> np.ndarray:
        return self.program.records()


def _budget_error(sram: int, step_name: str, op_type: str, need: int) -> BudgetError:
    return BudgetError(
        f"SRAM budget {format_size(sram)} is too small: op '{step_name}' ({op_type}) "
        f"needs at least {kib_ceil(need)} KiB even tiled"
    )


SCHEDULES = ("fused", "layers")


def plan(graph: Graph, sram: int, chunk: int = 4096, macs_per_s: int = 0, *,
         schedule: str = "fused", cost: CostModel | None = None, max_steps: int | None = None
         ) -> Plan:
    """Plans one inference of `graph` in `sram` bytes.

    schedule "layers": layer by layer (schedule.py), with `chunk`-byte swap chunks.
    schedule "fused" (the default): the fused planner (fused/: runs of spatial ops computed
    patch by patch, in-place layer steps, branches in the order of lower peak, chosen by the
    part's cost model `cost`, default the NOR part of README's sample with compute priced
    at `macs_per_s`, or if 0 at the default MCU's measured rate (flashswap/mcus.py), as the
    CLI prices it);
    `chunk` is the largest chunk it uses: it halves the chunk, down to the part's program
    unit, until the budget is feasible, chooses the chunk per tensor (_widen), and keeps the
    layer plan instead when that scores better on the cost model's objective. The plan's
    graph is the model's with its nodes in the order planned.
    """
    if chunk <= 0:
        raise InputError(f"invalid chunk size {chunk}: must be at least 1 byte")
    if chunk > 0xFFFFFFFF:
        raise InputError(f"invalid chunk size {chunk}: must fit in 32 bits")
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r} (choose {', '.join(SCHEDULES)})")
    sg = build_steps(graph)
    needs = step_needs(graph, sg)
    if schedule == "layers":
        p = _plan_layers(graph, sg, needs, sram, chunk, macs_per_s)
        p.metadata["schedule"] = "layers"
        if cost is not None:
            _add_cost(p, cost)
        return p
    from flashswap.planner.fused.order import reorder

    ordered = reorder(graph)  # branches in the order of lower peak (fused/order.py)
    if ordered is not graph:
        graph, sg = ordered, build_steps(ordered)
        needs = step_needs(graph, sg)
    if max_steps is None:  # runs of up to 24 steps; 12 in networks of over 150 steps
        max_steps = 24 if len(sg.steps) <= 150 else 12
    return _plan_fused(graph, sg, needs, sram, chunk, macs_per_s,
                       cost or CostModel.for_part(macs_per_s=macs_per_s or None), max_steps)


def _plan_layers(graph: Graph, sg: StepGraph, needs: list[Needs], sram: int, chunk: int,
                 macs_per_s: int, chunks: dict[int, int] | None = None) -> Plan:
    mins = [min_step_need(sg, s, chunk, needs[s.index]) for s in sg.steps]
    worst = int(np.argmax(mins)) if mins else 0
    min_budget = max(mins, default=0)
    if min_budget > sram:
        s = sg.steps[worst]
        raise _budget_error(sram, s.name, s.op_type, min_budget)
    try:
        sched = Scheduler(sg, needs, sram, chunk, macs_per_s, chunks).run()
    except Infeasible as e:  # pragma: no cover - min_step_need already ruled this out
        raise _budget_error(sram, e.step.name, e.step.op_type, max(e.need, min_budget)) from None
    prog = layout(sched.program, sram)
    assert prog.peak <= prog.high_water <= sram, (prog.peak, prog.high_water, sram)
    meta = _metadata(graph, sg, needs, sched, prog, sram, chunk, macs_per_s, min_budget, worst)
    return Plan(graph, sg, needs, sched, prog, meta)


def chunk_choices(chunk: int, unit: int) -> list[int]:
    """`chunk`, then powers of two below it down to the program unit `unit` (a chunk below
    the unit is taken as given)."""
    out = [chunk]
    c = 1 << (chunk.bit_length() - 1)
    if c == chunk:
        c //= 2
    while c >= unit:
        out.append(c)
        c //= 2
    return out


# Rebuilds a plan with the same stages and chunk, and per-tensor chunk sizes (see _widen).
Rebuild = Callable[[dict[int, int]], Plan]


def _plan_fused(graph: Graph, sg: StepGraph, needs: list[Needs], sram: int, chunk: int,
                macs_per_s: int, cm: CostModel, max_steps: int) -> Plan:
    """The better of the layer plan and the fused plan (see `plan`).

    Chunks: each schedule takes the largest chunk of `chunk_choices` at which it is feasible;
    the fused search is also priced at a quarter of that chunk (smaller windows can keep more
    in SRAM) when it would write anything, and the cheaper estimate is scheduled. Then the
    chunk is chosen per tensor (_widen)."""
    from flashswap.planner.fused.plan import extras_of
    from flashswap.planner.fused.schedule import MIN_GROUP
    from flashswap.planner.fused.search import run_profiles, search

    extras = extras_of(needs)
    runs = run_profiles(graph, sg, extras, max_steps)
    choices = chunk_choices(chunk, cm.part.page_size)
    options: list[tuple[Plan, Rebuild]] = []
    for c in choices:
        try:
            options.append((_plan_layers(graph, sg, needs, sram, c, macs_per_s),
                            partial(_plan_layers, graph, sg, needs, sram, c, macs_per_s)))
            break
        except BudgetError:
            continue
    # Parameters staged MIN_GROUP channels at a time where the budget allows (fewer kernel
    # calls per patch), else one channel at a time.
    for group in (MIN_GROUP, 1):
        found = _search_fused(graph, sg, needs, sram, choices, macs_per_s, cm, max_steps,
                              runs, group)
        if found:
            options += found
            break
    if not options:
        need, step = _min_budget(sg, needs, extras, runs, choices[-1])
        s = sg.steps[min(step, len(sg.steps) - 1)]
        raise BudgetError(
            f"SRAM budget {format_size(sram)} is too small: the model needs at least "
            f"{kib_ceil(need)} KiB (op '{s.name}' ({s.op_type}), chunks of {choices[-1]} B)")
    base = options[0][0] if "fused_runs" not in options[0][0].metadata else None
    for p, _ in options:
        p.metadata["schedule"] = "fused" if "fused_runs" in p.metadata else "layers"
        _add_cost(p, cm, base)
    if cm.max_slowdown is not None and not any(_within(cm, p) for p, _ in options):
        # The cheapest plans are too slow: the fastest fused plan the search finds.
        fast = replace(cm, objective="time", max_slowdown=None)
        for c in choices:
            stages = search(graph, sg, sram, c, fast, extras, max_steps, runs=runs)
            rebuild: Rebuild = partial(_fused_plan, graph, sg, needs, sram, c, macs_per_s, cm,
                              max_steps, runs, stages, 1)
            try:
                quick = rebuild({}) if stages else None
            except (Infeasible, LayoutError):
                quick = None
            if quick is not None:
                quick.metadata["schedule"] = "fused"
                _add_cost(quick, cm, base)
                options.append((quick, rebuild))
                break
        if not any(_within(cm, p) for p, _ in options):
            fastest = min(p.metadata["cost"]["slowdown"] for p, _ in options)
            raise BudgetError(f"--max-slowdown {cm.max_slowdown:g} cannot be met at "
                              f"{format_size(sram)}: the fastest plan found takes "
                              f"{fastest:.2f}x")
    if cm.max_slowdown is not None:
        options = [(p, r) for p, r in options if _within(cm, p)]
    # The best plan, then its chunks chosen per tensor: widening saves record headers, a few
    # per cent at most, so it is priced for the winner only (each pass is one more schedule).
    best, rebuild = min(options, key=lambda o: tuple(o[0].metadata["cost"]["score"]))
    wide = _widen(best, rebuild, chunk, cm, base)
    if _within(cm, wide):
        best = wide
    _fill_min_budget(best, sg, needs, extras, runs, choices[-1])
    best.metadata["chunk_choices"] = choices
    return best


def _widen(p: Plan, rebuild: Rebuild, cap: int, cm: CostModel, base: Plan | None) -> Plan:
    """The plan with a chunk chosen per tensor: `p`, or `p` rescheduled with every swapped
    tensor that no step streams through a chunk window in chunks of `cap`, whichever scores
    better on the part's cost model.

    Why: a small chunk pays only where a tensor is streamed (its window holds a chunk or two
    beyond a tile's band, so smaller chunks leave more SRAM to the step). A tensor evicted
    and read back whole needs no window, and each of its chunks costs a record header
    (programmed, and worn) and a read command; in chunks of `cap` it costs fewest. The
    rescheduled plan can differ beyond those tensors (a step may then stream one of them in
    a wider window, or a run may no longer fit), so it is kept only if it schedules and its
    score is no worse."""
    sched = p.schedule
    wide = {t: cap for t, k in enumerate(sched.first_key)
            if k >= 0 and t not in sched.windowed and sched.chunk[t] < cap}
    if not wide:
        return p
    try:
        q = rebuild(wide)
    except (Infeasible, LayoutError):
        return p
    q.metadata["schedule"] = p.metadata["schedule"]
    _add_cost(q, cm, base)
    return q if tuple(q.metadata["cost"]["score"]) <= tuple(p.metadata["cost"]["score"]) else p


def _fused_plan(graph: Graph, sg: StepGraph, needs: list[Needs], sram: int, chunk: int,
                macs_per_s: int, cm: CostModel, max_steps: int, runs: dict, stages: list[Any],
                group: int, chunks: dict[int, int]) -> Plan:
    """The fused plan of `stages` at `chunk` (per-tensor `chunks` where given)."""
    from flashswap.planner.fused.plan import schedule_fused

    r = schedule_fused(graph, sg, needs, sram, chunk, macs_per_s, cm, max_steps, runs, stages,
                       group, chunks)
    assert r is not None
    meta = _metadata(graph, sg, needs, r.schedule, r.program, sram, chunk, macs_per_s, 0, 0)
    meta.update(fused_runs=r.fused, in_place_steps=r.in_place)
    return Plan(graph, sg, needs, r.schedule, r.program, meta)


def _search_fused(graph: Graph, sg: StepGraph, needs: list[Needs], sram: int,
                  choices: list[int], macs_per_s: int, cm: CostModel, max_steps: int,
                  runs: dict, group: int) -> list[tuple[Plan, Rebuild]]:
    """Fused plans over the chunk choices (see _plan_fused): the search runs at the largest
    feasible chunk and, when that plan would write anything, at a smaller one; each is
    scheduled (the search's estimate prices every chunk at its stage's chunk, the schedule
    and _widen may then choose per tensor, so the estimates alone do not decide)."""
    from flashswap.planner.fused.plan import extras_of
    from flashswap.planner.fused.search import search

    extras = extras_of(needs, group)
    searched: list[tuple[float, int, list[Any]]] = []  # (estimate, chunk, stages)
    for c in choices:
        if searched and (len(searched) >= 2 or searched[0][0] == 0
                         or c * 4 < searched[0][1]):
            break
        stages = search(graph, sg, sram, c, cm, extras, max_steps, runs=runs)
        if stages:
            searched.append((sum(st.estimate for st in stages), c, stages))
    out: list[tuple[Plan, Rebuild]] = []
    for _, c, stages in searched:
        rebuild = partial(_fused_plan, graph, sg, needs, sram, c, macs_per_s, cm, max_steps,
                          runs, stages, group)
        try:
            out.append((rebuild({}), rebuild))
        except (Infeasible, LayoutError):
            continue
    return out


def _within(cm: CostModel, p: Plan) -> bool:
    s = p.metadata["cost"]["slowdown"]
    return cm.max_slowdown is None or s is None or s <= cm.max_slowdown * (1 + 1e-9)


def _min_budget(sg: StepGraph, needs: list[Needs], extras: list, runs: dict, chunk: int
                ) -> tuple[int, int]:
    from flashswap.planner.fused.search import min_budget

    layer = [min_step_need(sg, s, chunk, needs[s.index]) for s in sg.steps]
    return min_budget(sg, chunk, extras, layer, runs)


def _fill_min_budget(p: Plan, sg: StepGraph, needs: list[Needs], extras: list, runs: dict,
                     chunk: int) -> None:
    need, step = _min_budget(sg, needs, extras, runs, chunk)
    p.metadata["min_feasible_budget"] = need
    p.metadata["min_feasible_op"] = sg.steps[min(step, len(sg.steps) - 1)].name


def _add_cost(p: Plan, cm: CostModel, base: Plan | None = None) -> None:
    """The plan's predicted cost on the part (fused/cost.py), into its metadata."""
    rec = p.records
    graph_macs = sum(s.macs for s in p.steps.steps)
    base_rec = (base or p).records
    weights = base_rec[base_rec["op"] == Op.WEIGHT_READ] if base is None else None
    pc = cm.cost(cm.counts(rec), graph_macs,
                 cm.counts(weights) if weights is not None else cm.counts(base_rec))
    d = pc.as_dict()
    d.update(part=cm.part.name, objective=cm.objective, macs_per_s=cm.macs_per_s,
             max_slowdown=cm.max_slowdown, extra_macs=int(pc.counts.macs - graph_macs),
             score=list(cm.score(pc)))
    p.metadata["cost"] = d


def no_swap_budget(sg: StepGraph, needs: list[Needs]) -> int:
    """The smallest budget with nothing swapped (see the module docstring)."""
    live = live_per_step(sg)
    return int(max((int(live[s.index]) + align(needs[s.index].scratch(s.units))
                    + fixed_extras(needs[s.index]) for s in sg.steps), default=0))


def _metadata(graph: Graph, sg: StepGraph, needs: list[Needs], sched: Schedule, prog: Program,
              sram: int, chunk: int, macs_per_s: int, min_budget: int,
              worst: int) -> dict[str, Any]:
    rec = prog.records()
    op = rec["op"]
    greedy = tflm_greedy_arena(sg)
    act_bytes = sum(t.nbytes for t in sg.tensors)
    unfit = int(max(0, (live_between_steps(sg) - sram).max(initial=0)))
    tensors = [
        {"name": t.name, "bytes": t.nbytes, "dtype": graph.tensors[t.name].dtype,
         "producer": sg.steps[sg.producer[t.id]].name,
         "last_use": sg.steps[sg.last_use(t.id)].name, "first_key": sched.first_key[t.id],
         "chunk": sched.chunk[t.id] if sched.first_key[t.id] >= 0 else 0,
         "chunks": -(-t.nbytes // sched.chunk[t.id]) if sched.first_key[t.id] >= 0 else 0,
         "bytes_written": int(sched.written[t.id]), "bytes_read": int(sched.read[t.id])}
        for t in sg.tensors
    ]
    blocks = [{"block": n.block, "step": s.name, "bytes": n.block_bytes, "common": n.common,
               "per_channel": n.per_channel, "channels": n.channels}
              for s, n in zip(sg.steps, needs, strict=True) if n.block >= 0]
    by_role: dict[str, int] = {}
    for b in prog.buffers:
        by_role[b.role] = max(by_role.get(b.role, 0), b.size)
    dtypes = sorted({graph.tensors[t.name].dtype for t in sg.tensors})
    # The planned peak is the scheduler's own count; the program's allocations must agree.
    assert prog.peak == sched.peak, (prog.peak, sched.peak)
    return {
        "model": graph.name,
        "model_source": graph.source,
        "sram_budget": sram,
        # The largest chunk the plan writes (chunks are chosen per tensor; see _widen).
        "chunk_size": max((sched.chunk[t] for t, k in enumerate(sched.first_key) if k >= 0),
                          default=chunk),
        "generator": f"flashswap {__version__} planner",
        "peak_sram": sched.peak,
        "arena_high_water": prog.high_water,
        "activation_dtype": graph.tensors[graph.inputs[0]].dtype if graph.inputs else None,
        "activation_dtypes": dtypes,
        "macs_per_s": macs_per_s,
        "steps": len(sg.steps),
        "ops": len(graph.nodes),
        "macs_per_inference": int(rec["value"][op == Op.COMPUTE].sum()),
        "bytes_written_per_inference": int(rec["length"][op == Op.WRITE].sum()),
        "bytes_read_per_inference": int(rec["length"][op == Op.READ].sum()),
        "weight_bytes_read_per_inference": int(rec["length"][op == Op.WEIGHT_READ].sum()),
        "weight_bytes": graph.weight_bytes,
        "parameter_bytes": sum(b["bytes"] for b in blocks),
        "swap_writes_per_inference": int((op == Op.WRITE).sum()),
        "swap_reads_per_inference": int((op == Op.READ).sum()),
        "trims_per_inference": int((op == Op.TRIM).sum()),
        "key_count": sched.key_count,
        "activation_bytes": act_bytes,
        "unfit_activation_bytes": unfit,
        "no_swap_budget": no_swap_budget(sg, needs),
        "tflm_greedy_arena": greedy,
        "min_feasible_budget": min_budget,
        "min_feasible_op": sg.steps[worst].name if sg.steps else None,
        "largest_buffer_by_role": by_role,
        "compactions_per_inference": prog.compactions,
        "compaction_bytes_moved_per_inference": prog.bytes_moved,
        "tiled_steps": sum(1 for n in sched.tiles if n > 1),
        "max_tiles": max(sched.tiles, default=0),
        "max_channel_groups": max(sched.groups, default=0),
        "arena_policy": ARENA_POLICY,
        "parameter_blocks": blocks,
        "tensors": tensors,
    }


def plan_with_runs(graph: Graph, sram: int, chunk: int,
                   runs: list[tuple[int, int, Config]], macs_per_s: int = 0) -> Plan:
    """A plan with the given fused runs (first step, last step, configuration) and every other
    step a layer step, scheduled and laid out as `plan` does: for tests and experiments that
    need one configuration exactly. Raises Infeasible or LayoutError if it does not fit."""
    from flashswap.planner.fused.inplace import in_place_steps
    from flashswap.planner.fused.runs import candidate
    from flashswap.planner.fused.schedule import FusedScheduler, RunChoice

    sg = build_steps(graph)
    needs = step_needs(graph, sg)
    stages: list[tuple[int, int, RunChoice | None]] = []
    k = 0
    for first, last, cfg in sorted(runs, key=lambda r: r[0]):
        stages += [(s, s, None) for s in range(k, first)]
        stages.append((first, last, RunChoice(candidate(graph, sg, first, last), (cfg,))))
        k = last + 1
    stages += [(s, s, None) for s in range(k, len(sg.steps))]
    sch = FusedScheduler(graph, sg, needs, sram, chunk, stages, macs_per_s,
                         in_place_steps(graph, sg))
    sched = sch.run()
    prog = layout(sched.program, sram)
    meta = _metadata(graph, sg, needs, sched, prog, sram, chunk, macs_per_s, 0, 0)
    meta["fused_runs"] = sch.fused
    meta["in_place_steps"] = sch.in_place_done
    meta["schedule"] = "fused"
    return Plan(graph, sg, needs, sched, prog, meta)
