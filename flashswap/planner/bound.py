"""A lower bound on the swap bytes a plan writes per inference, at a given SRAM budget.

The bound holds for every plan in the planner's model, layer by layer or fused: steps run in
one of the orders flashswap plans in (the model's, or fused/order.py's, whichever gives the
lower bound), a tensor is recomputed only inside a fused run, and SRAM holds the budget's
bytes. It rests on two facts.

1. A tensor that no fused run can hold internally is *materialized*: from the end of the step
   (or run) that produces it to the start of its last reader, all its bytes exist, each in
   SRAM or in flash. A run [a, b] holds internally the tensors produced in [a, b) - every
   one of them is read only inside the run (fused/runs.py: `candidates` applies that rule,
   with the planner's limit on run length). A graph input is materialized from the Input
   step on (the application writes it whole).
2. At the first compute of step s, SRAM also holds the step's fixed extras: its accumulators
   and the staging of its parameters for one channel (`fixed_extras`), whatever the plan.

So at the first compute of each step s, with M(s) the bytes of the materialized tensors
produced before s and read at s or after, at least M(s) - (budget - fixed_extras(s)) bytes
are in flash, and every byte in flash was written during the inference (keys are trimmed at
its end). The bound is the largest of these over the steps, and sum(graph inputs) - budget
at the Input step; 0 if none is positive. Taking the largest, not a sum, keeps it safe: the
bytes in flash at two moments may be the same bytes.

What it leaves out (so plans may write more): scratch and output space besides the extras,
16-byte rounding, the chunk granularity, and any reason to evict other than running out of
room at one moment.
"""

from __future__ import annotations

from dataclasses import dataclass

from flashswap.model.graph import Graph
from flashswap.planner.params import step_needs
from flashswap.planner.schedule import fixed_extras
from flashswap.planner.steps import StepGraph, build_steps


@dataclass(frozen=True)
class WriteBound:
    bytes: int  # at least this many bytes written per inference
    step: str  # the step whose first compute sets it ("" when the bound is 0)


def written_lower_bound(graph: Graph, budget: int, max_steps: int | None = None
                        ) -> WriteBound:
    """The bound of the module docstring for `graph` at `budget` bytes of SRAM. `max_steps`
    limits runs as `plan` does (None: its default for the graph's size)."""
    from flashswap.planner.fused.order import reorder

    ordered = reorder(graph)
    bounds = [_bound(g, build_steps(g), budget, max_steps)
              for g in ((graph,) if ordered is graph else (graph, ordered))]
    return min(bounds, key=lambda b: b.bytes)


def _bound(graph: Graph, sg: StepGraph, budget: int, max_steps: int | None) -> WriteBound:
    if max_steps is None:
        max_steps = 24 if len(sg.steps) <= 150 else 12
    needs = step_needs(graph, sg)
    internal = run_internal(graph, sg, max_steps)
    inputs = sum(graph.tensors[x].nbytes for x in graph.inputs)
    best = WriteBound(max(0, inputs - budget), "Input" if inputs > budget else "")
    # Materialized tensors live at each step, by a sweep over producers and last uses.
    born: dict[int, list[int]] = {}
    for t in range(len(sg.tensors)):
        if t not in internal and sg.producer[t] >= 0 and sg.last_use(t) > sg.producer[t]:
            born.setdefault(sg.producer[t], []).append(t)
    live: set[int] = set()
    for s in sg.steps:
        live = {t for t in live if sg.last_use(t) >= s.index}
        need = sum(sg.tensors[t].nbytes for t in live) + fixed_extras(needs[s.index])
        if need - budget > best.bytes:
            best = WriteBound(need - budget, s.name)
        live.update(born.get(s.index, ()))
    return best


def run_internal(graph: Graph, sg: StepGraph, max_steps: int) -> set[int]:
    """Storage tensors some fused run of at most `max_steps` steps holds internally (produced
    in [a, b) of a valid run [a, b], fused/runs.py's rule)."""
    from flashswap.planner.fused.runs import fusable, geometry, graph_outputs

    geo = geometry(graph, sg)
    ok, _ = fusable(graph, sg, geo)
    outputs = graph_outputs(sg)
    internal: set[int] = set()
    for a in range(len(sg.steps)):
        produced: list[int] = []
        for b in range(a, min(len(sg.steps), a + max_steps)):
            if not ok[b]:
                break
            t = sg.steps[b].outputs[0].tensor
            if b > a and not any(sg.last_use(x) > b or x in outputs for x in produced):
                internal.update(produced)
            produced.append(t)
    return internal
