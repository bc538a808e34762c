"""The swap planner: from a model graph, an SRAM budget and a chunk size to a swap trace.

`plan(graph, sram, chunk)` runs the scheduler (schedule.py: the policy, which counts bytes
in a pool the size of the budget) and then lays its SRAM buffers out at real offsets
(arena.compacting_layout: first fit, compacting when fragmented). `peak_sram` is the most
bytes allocated at once and `arena_high_water` the highest address used; both are asserted
<= the budget.

`no_swap_budget` is the most bytes live at once (inputs and outputs of a step together,
16-byte aligned): with at least that much SRAM nothing is swapped, below it something must be.
`tflm_greedy_arena` is what TFLite Micro's static greedy planner needs to run the graph
unswapped: the price of never moving a buffer (it is >= no_swap_budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flashswap import __version__
from flashswap.errors import BudgetError, InputError
from flashswap.model.graph import Graph
from flashswap.planner.arena import Buffer, Layout, compacting_layout
from flashswap.planner.lifetimes import live_between_steps, live_per_step, tflm_greedy_arena
from flashswap.planner.schedule import Infeasible, Schedule, Scheduler, min_step_need
from flashswap.planner.steps import StepGraph, build_steps
from flashswap.sizes import format_size, kib_ceil
from flashswap.trace import Op

__all__ = ["Plan", "plan"]

ARENA_POLICY = (
    "byte pool of the budget; Belady eviction (farthest next use first), each chunk written "
    "once per inference, ops tiled with the largest tiles that fit; buffers allocated "
    "first-fit at 16-byte-aligned offsets, compacted (memmove) when fragmented"
)


@dataclass
class Plan:
    """A planned inference: its records (one inference), placement and metadata."""

    graph: Graph
    steps: StepGraph
    schedule: Schedule
    layout: Layout
    metadata: dict[str, Any]

    @property
    def records(self) -> np.ndarray:
        return self.schedule.records

    @property
    def buffers(self) -> list[Buffer]:
        return self.schedule.buffers


def _budget_error(sram: int, step_name: str, op_type: str, need: int) -> BudgetError:
    return BudgetError(
        f"SRAM budget {format_size(sram)} is too small: op '{step_name}' ({op_type}) "
        f"needs at least {kib_ceil(need)} KiB even tiled"
    )


def plan(graph: Graph, sram: int, chunk: int = 4096, macs_per_s: int = 0) -> Plan:
    """Plans one inference of `graph` in `sram` bytes with `chunk`-byte swap chunks."""
    if chunk <= 0:
        raise InputError(f"invalid chunk size {chunk}: must be at least 1 byte")
    if chunk > 0xFFFFFFFF:
        raise InputError(f"invalid chunk size {chunk}: must fit in 32 bits")
    sg = build_steps(graph)
    needs = [min_step_need(sg, s, chunk) for s in sg.steps]
    worst = int(np.argmax(needs)) if needs else 0
    min_budget = max(needs, default=0)
    if min_budget > sram:
        s = sg.steps[worst]
        raise _budget_error(sram, s.name, s.op_type, min_budget)
    try:
        sched = Scheduler(sg, sram, chunk, macs_per_s).run()
    except Infeasible as e:  # pragma: no cover - min_step_need already ruled this out
        raise _budget_error(sram, e.step.name, e.step.op_type, max(e.need, min_budget)) from None
    layout = compacting_layout(sched.buffers, sram)
    assert layout.peak_live <= layout.high_water <= sram, (layout, sram)
    meta = _metadata(graph, sg, sched, layout, sram, chunk, macs_per_s, min_budget, worst)
    return Plan(graph, sg, sched, layout, meta)


def _metadata(graph: Graph, sg: StepGraph, sched: Schedule, layout: Layout, sram: int,
              chunk: int, macs_per_s: int, min_budget: int, worst: int) -> dict[str, Any]:
    rec = sched.records
    op = rec["op"]
    greedy = tflm_greedy_arena(sg)
    act_bytes = sum(t.nbytes for t in sg.tensors)
    unfit = int(max(0, (live_between_steps(sg) - sram).max(initial=0)))
    tensors = [
        {"name": t.name, "bytes": t.nbytes, "producer": sg.steps[sg.producer[t.id]].name,
         "last_use": sg.steps[sg.last_use(t.id)].name, "first_key": sched.first_key[t.id],
         "chunks": -(-t.nbytes // chunk) if sched.first_key[t.id] >= 0 else 0,
         "bytes_written": int(sched.written[t.id]), "bytes_read": int(sched.read[t.id])}
        for t in sg.tensors
    ]
    return {
        "model": graph.name,
        "model_source": graph.source,
        "sram_budget": sram,
        "chunk_size": chunk,
        "generator": f"flashswap {__version__} planner",
        "peak_sram": layout.peak_live,
        "arena_high_water": layout.high_water,
        "activation_dtype": next((t.dtype for t in graph.activations()), "int8"),
        "macs_per_s": macs_per_s,
        "steps": len(sg.steps),
        "ops": len(graph.nodes),
        "macs_per_inference": int(rec["value"][op == Op.COMPUTE].sum()),
        "bytes_written_per_inference": int(rec["length"][op == Op.WRITE].sum()),
        "bytes_read_per_inference": int(rec["length"][op == Op.READ].sum()),
        "weight_bytes_read_per_inference": int(rec["length"][op == Op.WEIGHT_READ].sum()),
        "weight_bytes": graph.weight_bytes,
        "swap_writes_per_inference": int((op == Op.WRITE).sum()),
        "swap_reads_per_inference": int((op == Op.READ).sum()),
        "trims_per_inference": int((op == Op.TRIM).sum()),
        "key_count": sched.key_count,
        "activation_bytes": act_bytes,
        "unfit_activation_bytes": unfit,
        "no_swap_budget": int(live_per_step(sg).max(initial=0)),
        "tflm_greedy_arena": greedy,
        "min_feasible_budget": min_budget,
        "min_feasible_op": sg.steps[worst].name if sg.steps else None,
        "compactions_per_inference": layout.compactions,
        "compaction_bytes_moved_per_inference": layout.bytes_moved,
        "tiled_steps": sum(1 for n in sched.tiles if n > 1),
        "max_tiles": max(sched.tiles, default=0),
        "arena_policy": ARENA_POLICY,
        "tensors": tensors,
    }
