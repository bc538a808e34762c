"""The executor: one inference exactly as the plan's program says.

Every instruction is carried out for real: buffers are allocated, freed and moved in one
`Arena` the budget's size; chunks go to and from a `Store` (either engine) by its public API;
parameters are read from the weights region into the staging buffer; kernels compute from
arena views into arena views (ops.py). The trace of what happened is captured as it happens:
the store's own trace hook records every WRITE, READ, TRIM, INVALIDATE and SYNC it performed,
and the executor adds the records that do not go through the store (inference bounds,
WEIGHT_READ, COMPUTE) in between. So the executed trace is a measurement, and the tests hold it
equal to the planned one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from flashswap.errors import FlashswapError, InputError
from flashswap.exec.arena import Arena
from flashswap.exec.kernels import check_executable
from flashswap.exec.kernels.layout import from_storage, to_storage
from flashswap.exec.ops import StepRunner
from flashswap.exec.patches import PatchRunner
from flashswap.exec.weights import WeightsRegion, block_layouts, pack_blocks
from flashswap.planner import Plan
from flashswap.planner.program import (
    Alloc,
    Begin,
    Compute,
    Copy2D,
    End,
    Free,
    Instr,
    Invalidate,
    Move,
    Patch,
    Read,
    Slide,
    Sync,
    Trim,
    WeightRead,
    Write,
)
from flashswap.trace import RECORD_DTYPE, Op

_RECORD = struct.Struct("<BBHIIIQ")


class ExecError(FlashswapError):
    """The store did not do what the program expected (a chunk missing or of the wrong size)."""


@dataclass
class Result:
    """One executed inference."""

    outputs: list[np.ndarray]  # in the model's layout and dtype
    records: np.ndarray  # the executed trace (RECORD_DTYPE)
    peak_sram: int  # measured by the arena
    high_water: int
    bytes_moved: int  # compaction moves


class Executor:
    """Runs a plan's inferences on `store`, with its parameters in `weights`."""

    def __init__(self, plan: Plan, store: Any, weights: WeightsRegion | None = None,
                 part: str | None = None) -> None:
        if plan.graph.dtype_override is not None:
            raise InputError(f"model '{plan.graph.name}' was planned with its element types "
                             f"overridden ({plan.graph.dtype_override}): it cannot run")
        check_executable(plan.graph)
        self.plan = plan
        self.store = store
        self.layouts = block_layouts(plan)
        if weights is None:
            part = part or store.flash.part.name
            weights = WeightsRegion(pack_blocks(plan, self.layouts), part)
        self.weights = weights
        self.runner = StepRunner(plan, self.layouts)
        self.patches = PatchRunner(self.runner)
        # Called after every instruction (fault injection, observation); None: nothing.
        self.after: Callable[[Instr], None] | None = None

    def prepare_inputs(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The graph inputs as flat bytes in storage layout (channels-last)."""
        g = self.plan.graph
        out = []
        for name, x in zip(g.inputs, inputs, strict=True):
            t = g.tensors[name]
            x = np.asarray(x)
            if x.shape != t.shape or x.dtype != np.dtype(t.dtype):
                raise InputError(f"input '{name}' must be {t.dtype} {list(t.shape)}, not "
                                 f"{x.dtype} {list(x.shape)}")
            out.append(to_storage(g, name, x).reshape(-1).view(np.uint8))
        return out

    def run(self, inputs: list[np.ndarray], index: int = 0) -> Result:
        """One inference (number `index`, the INFERENCE_BEGIN value)."""
        plan, store, g = self.plan, self.store, self.plan.graph
        sg = plan.steps
        src = self.prepare_inputs(inputs)
        arena = Arena(plan.metadata["sram_budget"])
        outs = {name: np.empty(g.tensors[name].nbytes, dtype=np.uint8)
                for name in (sg.tensors[sg.storage_of(o)].name for o in g.outputs)}
        rec: list[bytes] = []
        add = rec.append
        theirs = store.trace  # a hook the caller set keeps receiving the store's records
        store.trace = add if theirs is None else (lambda r: (add(r), theirs(r)))
        try:
            for ins in plan.program.instrs:
                t = type(ins)
                if t is Compute:
                    s = sg.steps[ins.step]
                    if s.op_type == "Input":
                        self._input(arena, ins, src[g.inputs.index(sg.tensors[
                            s.outputs[0].tensor].name)])
                    elif s.op_type == "Output":
                        self._output(arena, ins, outs[sg.tensors[s.inputs[0].tensor].name])
                    else:
                        self.runner.run(arena, ins)
                        add(_RECORD.pack(Op.COMPUTE, 0, 0, ins.node, 0, ins.time_us, ins.macs))
                elif t is Patch:
                    self.patches.run(arena, ins)
                    add(_RECORD.pack(Op.COMPUTE, 0, 0, ins.node, 0, ins.time_us, ins.macs))
                elif t is Copy2D:
                    self.patches.copy(arena, ins)
                elif t is Read:
                    data = store.get(ins.key)
                    if len(data) != ins.length:
                        raise ExecError(f"chunk {ins.key} holds {len(data)} bytes, the plan "
                                        f"wrote {ins.length}")
                    arena.view(ins.buf, ins.at, ins.length)[:] = np.frombuffer(data, np.uint8)
                elif t is Write:
                    store.put(ins.key, arena.view(ins.buf, ins.at, ins.length).tobytes())
                elif t is WeightRead:
                    data = self.weights.read(ins.block, ins.start, ins.length)
                    arena.view(ins.buf, ins.at, ins.length)[:] = np.frombuffer(data, np.uint8)
                    add(_RECORD.pack(Op.WEIGHT_READ, 0, 0, ins.block, ins.length, 0, 0))
                elif t is Alloc:
                    arena.alloc(ins.buf, ins.offset, plan.program.buffers[ins.buf].size)
                elif t is Free:
                    arena.free(ins.buf)
                elif t is Slide:
                    arena.slide(ins.buf, ins.drop, ins.keep)
                elif t is Move:
                    arena.move(ins.buf, ins.src, ins.dst)
                elif t is Trim:
                    if not store.trim(ins.key):
                        raise ExecError(f"TRIM of chunk {ins.key}: the store holds no such chunk")
                elif t is Invalidate:
                    store.trim_range(ins.first, ins.last)
                elif t is Sync:
                    store.sync()
                elif t is Begin:
                    add(_RECORD.pack(Op.INFERENCE_BEGIN, 0, 0, 0, 0, 0, index))
                elif t is End:
                    add(_RECORD.pack(Op.INFERENCE_END, 0, 0, 0, 0, 0, 0))
                if self.after is not None:
                    self.after(ins)
        finally:
            store.trace = theirs
        results = []
        for name in g.outputs:
            y = outs[sg.tensors[sg.storage_of(name)].name].view(np.dtype(g.tensors[name].dtype))
            results.append(from_storage(g, name, y))
        records = np.frombuffer(b"".join(rec), dtype=RECORD_DTYPE)
        return Result(results, records, arena.peak, arena.high_water, arena.moved)

    def _input(self, arena: Arena, ins: Compute, data: np.ndarray) -> None:
        """The application writes rows [u0, u1) of the input into the plan's buffer."""
        b = ins.binds[0]
        t = self.plan.steps.tensors[b.tensor]
        rb = t.nbytes // t.rows
        a, z = ins.u0 * rb, ins.u1 * rb
        arena.view(b.buf, a - b.base, z - a)[:] = data[a:z]

    def _output(self, arena: Arena, ins: Compute, out: np.ndarray) -> None:
        """The application reads rows [u0, u1) of the output from the plan's buffer."""
        b = ins.binds[0]
        t = self.plan.steps.tensors[b.tensor]
        rb = t.nbytes // t.rows
        a, z = ins.u0 * rb, ins.u1 * rb
        out[a:z] = arena.view(b.buf, a - b.base, z - a)
