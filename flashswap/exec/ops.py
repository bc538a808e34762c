"""One `Compute` instruction: a step's kernels over a tile, from arena views into arena views.

The kernels (flashswap/exec/kernels, `prepare` -> StepKernel) compute a step - a graph op and
its fused epilogue - band by band. For output units [u0, u1) and channels [c0, c1) of a
`Compute`:

- inputs are views of the rows the kernel asks for (`input_rows`), cut from the bytes the
  program bound (a whole tensor, or a window of its chunks); the output is a view of the
  output rows in their buffer, so the kernel writes straight into the arena;
- parameters are views of the staging buffer (weights.BlockLayout.unpack): exactly the bytes
  the program read from flash for these channels; an int8 convolution applies the fixed-point
  multipliers and shifts read there;
- scratch and accumulators are the program's buffers;
- a step split into channel groups runs the same kernels built on a channel slice of the
  graph (its filters, bias, scales and output channels [c0, c1); a depthwise convolution's
  input channels too). The kernels write contiguous bands, so a group's output band is
  computed into a host temporary and copied into its channels of the arena band (a device
  kernel writes those strided positions directly);
- a fully connected layer split by features computes features [c0, c1) from their rows;
- a reduction tiled over input rows folds each band into its accumulator, kept in the arena
  between tiles as a device keeps it (int32; float32 for float models), and writes its output
  after the last band.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.arena import Arena
from flashswap.exec.kernels import StepKernel, prepare
from flashswap.exec.kernels.layout import storage_perm
from flashswap.exec.weights import MULTIPLIER, SHIFT, BlockLayout
from flashswap.model.graph import Graph, Quant, Tensor
from flashswap.planner import Plan
from flashswap.planner.program import Compute
from flashswap.planner.steps import Step


class StepRunner:
    """Runs the `Compute` instructions of one plan (kernels prepared once per step and
    channel group)."""

    def __init__(self, plan: Plan, layouts: dict[int, BlockLayout]) -> None:
        self.plan = plan
        self.g = plan.graph
        self.sg = plan.steps
        self.layouts = layouts
        self._kernels: dict[tuple[int, int, int], StepKernel] = {}

    def kernel(self, s: Step, c0: int, c1: int) -> StepKernel:
        """The step's kernel, on a channel slice of the graph unless [c0, c1) is every
        channel."""
        key = (s.index, c0, c1)
        if key not in self._kernels:
            n = self.plan.needs[s.index]
            graph = self.g
            if (c0, c1) != (0, n.channels):
                graph = channel_slice(self.g, s, self.layouts[n.block], c0, c1)
            self._kernels[key] = prepare(graph, s.node_index, s.fused, s.units)
        return self._kernels[key]

    def run(self, arena: Arena, ins: Compute) -> None:
        s = self.sg.steps[ins.step]
        n = self.plan.needs[ins.step]
        params: dict[str, np.ndarray] = {}
        if n.block >= 0:
            channels = ins.c1 - ins.c0 if n.per_channel else n.channels
            params = self.layouts[n.block].unpack(arena.view(ins.staging), channels)
        scratch = arena.view(ins.scratch) if ins.scratch >= 0 else None
        binds = {b.tensor: b for b in ins.binds}

        def band(name: str, r0: int, r1: int) -> np.ndarray:
            """Bytes of rows [r0, r1) of tensor `name` in the buffer bound to its storage."""
            b = binds[self.sg.storage_of(name)]
            t = self.g.tensors[name]
            rb = t.nbytes // t.rows
            return arena.view(b.buf, r0 * rb - b.base, (r1 - r0) * rb)

        if s.kind == "reduce":
            self._reduce(arena, ins, s, band)
        elif n.by_channel:  # a fully connected layer tiled by output features
            k = self.kernel(s, 0, n.channels)
            inputs = {x: (band(x, *k.input_rows(x, 0, 1)), k.input_rows(x, 0, 1)[0])
                      for x in k.in_names}
            b = binds[self.sg.storage_of(k.out)]  # features [c0, c1) of the one-row output
            size = k.out_dtype.itemsize
            out = arena.view(b.buf, ins.c0 * size - b.base, (ins.c1 - ins.c0) * size)
            k.run_features(inputs, params, out, ins.c0, ins.c1, scratch)
        else:
            self._rows(ins, s, band, params, scratch)

    def _rows(self, ins: Compute, s: Step, band: object, params: dict[str, np.ndarray],
              scratch: np.ndarray | None) -> None:
        """Output units [u0, u1): rows [r0, r1) = k.span(u0, u1)."""
        n = self.plan.needs[s.index]
        whole = self.kernel(s, 0, n.channels)
        u0, u1 = ins.u0, ins.u1
        r0, r1 = whole.span(u0, u1)
        split = (ins.c0, ins.c1) != (0, n.channels)
        k = self.kernel(s, ins.c0, ins.c1) if split else whole
        _use_staged_qparams(k, params)
        inputs = {}
        for x in k.in_names:
            a, b = whole.input_rows(x, u0, u1)
            data = band(x, a, b)  # type: ignore[operator]
            if split and n.conv_groups > 1:  # a grouped conv reads its groups' channels
                i0, i1 = input_channels(self.g, s, n.group_channels, ins.c0, ins.c1)
                shape = whole.host.band_shape(x, a, b)
                data = data.view(np.dtype(self.g.tensors[x].dtype)).reshape(shape)
                data = data[..., i0:i1]
            inputs[x] = (data, a)
        out = band(k.out, r0, r1)  # type: ignore[operator]
        if not split:
            k.run_rows(inputs, params, out, u0, u1, scratch)
            return
        shape = whole.host.band_shape(whole.out, r0, r1)
        tmp = np.empty((*shape[:-1], ins.c1 - ins.c0), dtype=k.out_dtype)
        k.run_rows(inputs, params, tmp, u0, u1, scratch)
        out.view(k.out_dtype).reshape(shape)[..., ins.c0:ins.c1] = tmp

    def _reduce(self, arena: Arena, ins: Compute, s: Step, band: object) -> None:
        """Input rows [u0, u1) into the accumulator; the output after the last band."""
        k = self.kernel(s, 0, self.plan.needs[s.index].channels)
        if k.acc_bytes != self.plan.needs[s.index].accum:
            raise ModelError(f"step '{s.name}': the kernel accumulates {k.acc_bytes} bytes, "
                             f"the plan holds {self.plan.needs[s.index].accum}")
        shape = k.acc_shape()
        dev_dtype = np.dtype(np.int32) if k.acc_dtype.kind == "i" else np.dtype(np.float32)
        dev = arena.view(ins.accum, 0, k.acc_bytes).view(dev_dtype).reshape(shape)
        acc = np.empty(shape, dtype=k.acc_dtype)
        if ins.u0 == 0:
            k.reduce_start(acc)
        else:
            acc[...] = dev
        r0, r1 = k.span(ins.u0, ins.u1)
        inputs = {x: (band(x, r0, r1), r0) for x in k.in_names}  # type: ignore[operator]
        k.reduce_rows(inputs, acc, ins.u0, ins.u1)
        if dev_dtype.kind == "i" and acc.size and (acc.min() < -(1 << 31)
                                                   or acc.max() >= 1 << 31):
            raise ModelError(f"step '{s.name}': int32 accumulator overflow")
        dev[...] = acc
        if ins.u1 == s.units:
            out = band(k.out, 0, self.g.tensors[k.out].rows)  # type: ignore[operator]
            k.reduce_finish(dev.astype(k.acc_dtype), {}, out)


def _use_staged_qparams(k: StepKernel, params: dict[str, np.ndarray]) -> None:
    """The kernel applies the multipliers and shifts read from flash, not the ones it
    derived when it was prepared (they are the same numbers: the weights region holds what
    TFLite's Prepare computes)."""
    host = k.host
    if MULTIPLIER in params and hasattr(host, "mult"):
        if np.shape(host.mult) != params[MULTIPLIER].shape:
            raise ModelError(f"op '{host.node.name}': {params[MULTIPLIER].size} multipliers "
                             f"staged for {np.size(host.mult)} channels")
        host.mult = params[MULTIPLIER].astype(np.int64)
        host.shift = params[SHIFT].astype(np.int64)


def _channel_axis(graph: Graph, t: Tensor) -> int:
    """The channel axis of an activation in its source shape (last in storage order)."""
    return storage_perm(len(t.shape), graph.layout)[-1]


def _slice_tensor(t: Tensor, axis: int, n: int) -> Tensor:
    shape = list(t.shape)
    shape[axis] = n
    return dataclasses.replace(t, shape=tuple(shape))


def input_channels(graph: Graph, s: Step, og: int, c0: int, c1: int) -> tuple[int, int]:
    """Input channels that output channels [c0, c1) of a grouped convolution read (the
    convolution groups they belong to; planner/params.py `Needs.cuts` keeps them whole or
    within one group)."""
    node = graph.nodes[s.node_index]
    t_in, t_out = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    cin = t_in.shape[_channel_axis(graph, t_in)]
    groups = t_out.shape[_channel_axis(graph, t_out)] // og
    ig = cin // groups
    return c0 // og * ig, ((c1 - 1) // og + 1) * ig


def channel_slice(graph: Graph, s: Step, lay: BlockLayout, c0: int, c1: int) -> Graph:
    """A copy of the graph in which the step's ops see only output channels [c0, c1): their
    output tensors, per-channel weights and scales sliced; a grouped convolution's input
    is cut to the channels of its groups in the slice."""
    tensors = dict(graph.tensors)
    constants = dict(graph.constants)
    quant = dict(graph.quant)
    nodes = list(graph.nodes)
    n = c1 - c0
    acts = [o for k in s.nodes for o in graph.nodes[k].outputs]
    for name in acts:
        t = graph.tensors[name]
        tensors[name] = _slice_tensor(t, _channel_axis(graph, t), n)
    og = lay.needs.group_channels
    if lay.needs.conv_groups > 1:
        host = graph.nodes[s.node_index]
        i0, i1 = input_channels(graph, s, og, c0, c1)
        t = graph.tensors[host.inputs[0]]
        tensors[host.inputs[0]] = _slice_tensor(t, _channel_axis(graph, t), i1 - i0)
        if "group" in host.attrs:
            groups = max(1, n // og)  # whole groups in the slice, or one
            nodes[s.node_index] = dataclasses.replace(host, attrs={**host.attrs,
                                                                   "group": groups})
    for f in lay.per:
        if f.name in (MULTIPLIER, SHIFT):
            continue
        idx = [slice(None)] * len(f.shape)
        idx[f.axis] = slice(c0, c1)
        constants[f.name] = graph.constants[f.name][tuple(idx)]
        t = graph.tensors[f.name]
        if t.shape == f.shape:
            tensors[f.name] = _slice_tensor(t, f.axis, n)
        q = graph.quant.get(f.name)
        if q is not None and q.per_channel:
            zp = q.zero_point[c0:c1] if len(q.zero_point) > 1 else q.zero_point
            quant[f.name] = Quant(q.scale[c0:c1], zp, q.axis)
    return dataclasses.replace(graph, tensors=tensors, constants=constants, quant=quant,
                               nodes=nodes)
