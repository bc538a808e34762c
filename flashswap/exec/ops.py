"""One `Compute` instruction: a step's kernels over a tile, from arena views into arena views.

A step is a graph op and its fused epilogue (ops that rewrite the op's output in place). For
output units [u0, u1) and channels [c0, c1) of a `Compute`:

- inputs are views of the rows each kernel asks for (`input_rows`), cut from the bytes the
  program bound (a whole tensor, or a window of its chunks); the output is a view of the
  output rows in its buffer, so a kernel writes straight into the arena;
- parameters are views of the staging buffer (weights.BlockLayout.unpack): exactly the bytes
  the program read from flash for these channels;
- a convolution split into channel groups runs as the same kernel built on a channel slice of
  the graph (its filters, bias, scales and output channels [c0, c1)); the fixed-point
  multipliers and shifts it applies are the ones read from flash into the staging buffer;
- a fully connected layer split by features computes features [c0, c1) from their rows;
- a reduction (global pool, MEAN) tiled over input rows folds each band into its
  accumulator in the arena (int32 on the device; float32 for float models) and writes its
  output on the last band.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.arena import Arena
from flashswap.exec.kernels import make_op
from flashswap.exec.kernels.layout import as_band, storage_perm
from flashswap.exec.weights import MULTIPLIER, SHIFT, BlockLayout
from flashswap.model.graph import Graph, Quant, Tensor
from flashswap.planner import Plan
from flashswap.planner.program import Bind, Compute
from flashswap.planner.steps import Step


class StepRunner:
    """Runs `Compute` instructions of one plan (kernels built once per step and channel
    group)."""

    def __init__(self, plan: Plan, layouts: dict[int, BlockLayout]) -> None:
        self.plan = plan
        self.g = plan.graph
        self.sg = plan.steps
        self.layouts = layouts
        self._ops: dict[tuple[int, int, int], list[Any]] = {}

    def run(self, arena: Arena, ins: Compute) -> None:
        s = self.sg.steps[ins.step]
        n = self.plan.needs[ins.step]
        params: dict[str, np.ndarray] = {}
        if n.block >= 0:
            lay = self.layouts[n.block]
            channels = ins.c1 - ins.c0 if n.per_channel else n.channels
            params = lay.unpack(arena.view(ins.staging), channels)
        binds = {b.tensor: b for b in ins.binds}
        fc = s.op_type == "FullyConnected"
        split = not fc and n.per_channel > 0 and (ins.c0, ins.c1) != (0, n.channels)
        ops = self.ops(s, ins.c0, ins.c1) if split else self.ops(s, 0, n.channels)
        _use_staged_qparams(ops[0], params)
        if s.kind == "reduce":
            self._reduce(arena, ins, s, ops, binds)
        elif fc and n.per_channel:
            self._features(arena, ins, s, ops, binds, params)
        else:
            self._rows(arena, ins, s, ops, binds, params, split)

    # ---- kernels -------------------------------------------------------------------------
    def ops(self, s: Step, c0: int, c1: int) -> list[Any]:
        """The step's kernels (op, then epilogue), on a channel slice of the graph when
        [c0, c1) is not every channel."""
        key = (s.index, c0, c1)
        if key not in self._ops:
            n = self.plan.needs[s.index]
            graph = self.g
            if (c0, c1) != (0, n.channels):
                graph = channel_slice(self.g, s, self.layouts[n.block], c0, c1)
            self._ops[key] = [make_op(graph, graph.nodes[k]) for k in s.nodes]
        return self._ops[key]

    # ---- views ---------------------------------------------------------------------------
    def _view(self, arena: Arena, b: Bind, name: str, r0: int, r1: int) -> np.ndarray:
        """Rows [r0, r1) of tensor `name` (storage-shaped), from the buffer bound to it."""
        t = self.g.tensors[name]
        rb = t.nbytes // t.rows
        data = arena.view(b.buf, r0 * rb - b.base, (r1 - r0) * rb)
        return as_band(self.g, name, data, r0, r1)

    def _inputs(self, arena: Arena, binds: dict[int, Bind], op: Any, r0: int,
                r1: int) -> tuple[list[np.ndarray], list[int]]:
        xs, firsts = [], []
        for i, name in enumerate(op.inputs):
            a, b = op.input_rows(i, r0, r1)
            xs.append(self._view(arena, binds[self.sg.storage_of(name)], name, a, b))
            firsts.append(a)
        return xs, firsts

    # ---- the three shapes of a tile ------------------------------------------------------
    def _rows(self, arena: Arena, ins: Compute, s: Step, ops: list[Any],
              binds: dict[int, Bind], params: dict[str, np.ndarray], split: bool) -> None:
        """Output rows [u0, u1) (all rows for an untiled op), channels [c0, c1)."""
        host = ops[0]
        out_sid = self.sg.storage_of(host.out) if len(ops) == 1 else \
            self.sg.storage_of(ops[-1].out)
        r0, r1 = (ins.u0, ins.u1) if s.kind != "whole" else (0, self.g.tensors[host.out].rows)
        xs, firsts = self._inputs(arena, binds, host, r0, r1)
        if split and s.op_type == "DepthwiseConv":
            xs = [x[..., ins.c0:ins.c1] for x in xs]
        for k, op in enumerate(ops):
            out = self._view(arena, binds[out_sid], op.out, r0, r1)
            if split:
                out = out[..., ins.c0:ins.c1]
            if k:
                xs, firsts = [out], [r0]  # the epilogue rewrites the output band in place
            op.compute(xs, firsts, params, r0, r1, out)

    def _features(self, arena: Arena, ins: Compute, s: Step, ops: list[Any],
                  binds: dict[int, Bind], params: dict[str, np.ndarray]) -> None:
        """Output features [c0, c1) of a fully connected layer, for output rows [u0, u1)
        (every row when the step is tiled by features)."""
        op = ops[0]
        n = self.plan.needs[s.index]
        out_name = ops[-1].out
        r0, r1 = (0, self.g.tensors[out_name].rows) if n.by_channel else (ins.u0, ins.u1)
        xs, _ = self._inputs(arena, binds, op, r0, r1)
        out = self._view(arena, binds[self.sg.storage_of(out_name)], out_name, r0, r1)
        out = out.reshape(-1, out.shape[-1])[:, ins.c0:ins.c1]
        op.compute_features(xs[0], params, ins.c0, ins.c1, out)
        for e in ops[1:]:
            e.compute([out], [r0], params, r0, r1, out)

    def _reduce(self, arena: Arena, ins: Compute, s: Step, ops: list[Any],
                binds: dict[int, Bind]) -> None:
        """Input rows [u0, u1) into the accumulator; the output after the last band."""
        op = ops[0]
        name = op.inputs[0]
        x = self._view(arena, binds[self.sg.storage_of(name)], name, ins.u0, ins.u1)
        acc_dev = arena.view(ins.accum)
        shape = op.acc_shape()
        entries = int(np.prod(shape))
        dev_dtype = np.dtype(np.int32) if op.acc_dtype.kind == "i" else np.dtype(np.float32)
        dev = acc_dev[:entries * 4].view(dev_dtype).reshape(shape)
        acc = np.empty(shape, dtype=op.acc_dtype)
        if ins.u0 == 0:
            op.reduce_start(acc)
        else:
            acc[...] = dev
        op.reduce_rows(x, ins.u0, ins.u0, ins.u1, acc)
        if op.acc_dtype.kind == "i" and (acc.min() < -(1 << 31) or acc.max() >= 1 << 31):
            raise ModelError(f"op '{op.node.name}': int32 accumulator overflow")
        dev[...] = acc
        if ins.u1 == s.units:
            out_name = ops[-1].out
            t = self.g.tensors[out_name]
            out = self._view(arena, binds[self.sg.storage_of(out_name)], out_name, 0, t.rows)
            op.reduce_finish(dev.astype(op.acc_dtype), out)
            for e in ops[1:]:
                e.compute([out], [0], {}, 0, t.rows, out)


def _use_staged_qparams(op: Any, params: dict[str, np.ndarray]) -> None:
    """The kernel applies the multipliers and shifts read from flash, not ones it derived."""
    if MULTIPLIER in params and hasattr(op, "mult"):
        op.mult = params[MULTIPLIER].astype(np.int64)
        op.shift = params[SHIFT].astype(np.int64)


def _channel_axis(graph: Graph, t: Tensor) -> int:
    """The channel axis of an activation in its source shape."""
    rank = len(t.shape)
    perm = storage_perm(rank, graph.layout)
    return perm[-1] if rank == 4 else rank - 1


def _slice_tensor(t: Tensor, axis: int, n: int) -> Tensor:
    shape = list(t.shape)
    shape[axis] = n
    return dataclasses.replace(t, shape=tuple(shape))


def channel_slice(graph: Graph, s: Step, lay: BlockLayout, c0: int, c1: int) -> Graph:
    """A copy of the graph in which the step's ops see only output channels [c0, c1): their
    output tensors, per-channel weights and scales (and a depthwise input) sliced."""
    tensors = dict(graph.tensors)
    constants = dict(graph.constants)
    quant = dict(graph.quant)
    n = c1 - c0
    nodes = [graph.nodes[k] for k in s.nodes]
    acts = [o for nd in nodes for o in nd.outputs]
    if s.op_type == "DepthwiseConv":
        acts.append(nodes[0].inputs[0])
    for name in acts:
        t = graph.tensors[name]
        tensors[name] = _slice_tensor(t, _channel_axis(graph, t), n)
    for f in lay.per:
        if f.name in (MULTIPLIER, SHIFT):
            continue
        idx = [slice(None)] * len(f.shape)
        idx[f.axis] = slice(c0, c1)
        constants[f.name] = graph.constants[f.name][tuple(idx)]
        tensors[f.name] = _slice_tensor(graph.tensors[f.name], f.axis, n) \
            if len(graph.tensors[f.name].shape) == len(f.shape) else graph.tensors[f.name]
        q = graph.quant.get(f.name)
        if q is not None and q.per_channel:
            quant[f.name] = Quant(q.scale[c0:c1], q.zero_point[c0:c1]
                                  if len(q.zero_point) > 1 else q.zero_point, q.axis)
    return dataclasses.replace(graph, tensors=tensors, constants=constants, quant=quant)
