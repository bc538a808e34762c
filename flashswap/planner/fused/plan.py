"""`plan_fused`: the fused schedule of a model for a budget on a part (see traces/README.md).

It searches the stages (search.py), schedules them into a program (schedule.py), lays the
program out in the arena and reports what the plan costs on the part (cost.py). The layer
schedule is one of the plans the search can return (every stage a layer step); the plan
with the better score on the part's cost model is kept, so a fused plan never costs more
than the layer plan on the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

from flashswap.model.graph import Graph
from flashswap.planner.fused.cost import CostModel
from flashswap.planner.fused.inplace import in_place_steps
from flashswap.planner.fused.runs import candidate
from flashswap.planner.fused.schedule import FusedScheduler, RunChoice, group_staging
from flashswap.planner.fused.search import Extras, Stage, search
from flashswap.planner.params import Needs
from flashswap.planner.program import Program, layout
from flashswap.planner.schedule import Schedule
from flashswap.planner.steps import StepGraph


@dataclass
class FusedResult:
    stages: list[Stage]
    schedule: Schedule
    program: Program
    fused: list[dict]
    in_place: list[str]


def extras_of(needs: list[Needs], min_group: int = 1) -> list[Extras]:
    """Per step, the search's view of its parameters, staging (`min_group` channels at
    least) and scratch."""
    return [Extras(n.block_bytes if n.block >= 0 else 0, group_staging(n, min_group),
                   n.scratch(1)) for n in needs]


def schedule_fused(graph: Graph, sg: StepGraph, needs: list[Needs], sram: int, chunk: int,
                   macs_per_s: int, cm: CostModel, max_steps: int = 24,
                   runs: dict | None = None, stages: list[Stage] | None = None,
                   min_group: int = 1, chunks: dict[int, int] | None = None
                   ) -> FusedResult | None:
    """The fused program for `sram` bytes (of `stages`, searched if not given, with staging
    for `min_group` channels; chunks of `chunk` bytes, or per tensor `chunks`), or None if
    the search finds no stages."""
    if stages is None:
        stages = search(graph, sg, sram, chunk, cm, extras_of(needs, min_group), max_steps,
                        runs=runs)
    if not stages:
        return None
    plan_stages: list[tuple[int, int, RunChoice | None]] = []
    for st in stages:
        if st.config is None:
            plan_stages.append((st.first, st.last, None))
        else:
            cand = candidate(graph, sg, st.first, st.last)
            plan_stages.append((st.first, st.last,
                                RunChoice(cand, (st.config, *st.alternatives))))
    sch = FusedScheduler(graph, sg, needs, sram, chunk, plan_stages, macs_per_s,
                         in_place_steps(graph, sg), min_group, chunks)
    sched = sch.run()
    prog = layout(sched.program, sram)
    return FusedResult(stages, sched, prog, sch.fused, sch.in_place_done)
