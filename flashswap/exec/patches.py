"""Fused runs: a step's kernels over a 2-D patch, and the SRAM copies that move windows.

The kernels compute bands of full-width rows (flashswap/exec/kernels). A patch computes output
rows [r0, r1) x columns [x0, x1) of a step. The columns are handled by running the same
kernels on a *column window* of the step (`column_slice`): a copy of the graph in which the
step's output is x1 - x0 columns wide, each input is the columns [v0, v1) that those outputs
read, and the op's left and right padding are what remains of its padding at that window:

- a window op (convolution, depthwise convolution, pooling) with stride s, dilation d, left
  padding p and kernel width k reads, for outputs [x0, x1), input columns
  [x0*s - p, (x1-1)*s - p + (k-1)*d + 1); clipped to the input that is [v0, v1), and the
  window's own left padding is v0 - (x0*s - p) (0 unless the window touches the left edge).
  Taps outside [v0, v1) are exactly the taps outside the real input, so padding - zero point,
  max pool's ignored taps, average pool's divisor - is what the whole row would have;
- a Pad reads columns [x0 - p, x1 - p) clipped, with the rest of its padding on either side;
- pixelwise ops read the same columns.

So every patch is computed by the tested row kernels, unchanged, with the same arithmetic.

Inputs come from `Bind2D` regions; pixels of the window the kernel is given that the bound
buffer does not hold (outside a fused window's frame) are never read by any tap (the frame is
the bounding box of the taps), and are zero-filled. The output goes into a host array and is
copied into its region (a device kernel writes the region's strided rows directly). A channel
group is a channel slice of the graph (ops.channel_slice) before the column window.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.arena import Arena
from flashswap.exec.kernels import StepKernel, prepare
from flashswap.exec.kernels.layout import np_dtype
from flashswap.exec.ops import StepRunner, _use_staged_qparams, channel_slice, input_channels
from flashswap.model.graph import Graph
from flashswap.planner.program import Bind2D, Copy2D, Patch
from flashswap.planner.steps import Step

SPATIAL = ("Conv", "DepthwiseConv", "MaxPool", "AveragePool")


def _width_axis(graph: Graph, rank: int) -> int:
    return 3 if graph.layout == "nchw" else 2


def column_window(graph: Graph, node_index: int, x: str, x0: int, x1: int) -> tuple[int, int]:
    """Columns [v0, v1) of input `x` that output columns [x0, x1) of the node read."""
    node = graph.nodes[node_index]
    t = graph.tensors[x]
    w = t.shape[_width_axis(graph, len(t.shape))]
    a = node.attrs
    if node.op_type in SPATIAL:
        s, k = a["stride"][1], a["kernel"][1]
        d = a.get("dilation", (1, 1))[1]
        lo, hi = x0 * s - a["pads"][1], (x1 - 1) * s - a["pads"][1] + (k - 1) * d + 1
    elif node.op_type == "Pad":
        lo, hi = x0 - a["pads"][1], x1 - a["pads"][1]
    else:
        lo, hi = x0, x1
    v0, v1 = max(0, lo), min(w, hi)
    return v0, max(v0, v1)


def column_slice(graph: Graph, s: Step, x0: int, x1: int
                 ) -> tuple[Graph, dict[str, tuple[int, int]]]:
    """The graph in which step `s` computes output columns [x0, x1) of its rows from column
    windows of its inputs (see the module docstring), and those windows."""
    tensors = dict(graph.tensors)
    nodes = list(graph.nodes)
    host = graph.nodes[s.node_index]
    a = dict(host.attrs)

    def set_width(name: str, w: int) -> None:
        t = tensors[name]
        shape = list(t.shape)
        shape[_width_axis(graph, len(shape))] = w
        tensors[name] = dataclasses.replace(t, shape=tuple(shape))

    wins = {x: column_window(graph, s.node_index, x, x0, x1) for x in dict.fromkeys(host.inputs)}
    x = host.inputs[0]
    full_w = graph.tensors[x].shape[_width_axis(graph, len(graph.tensors[x].shape))]
    v0, v1 = wins[x]
    if host.op_type in SPATIAL:
        st = a["stride"][1]
        top, left, bottom, right = a["pads"]
        a["pads"] = (top, v0 - (x0 * st - left), bottom, full_w + right - v1)
    elif host.op_type == "Pad":
        top, left, bottom, right = a["pads"]
        before = v0 - (x0 - left)
        after = (x1 - x0) - before - (v1 - v0)
        a["pads"] = (top, before, bottom, after)
        pads = [list(p) for p in a["paddings"]]
        pads[_width_axis(graph, len(pads))] = [before, after]
        a["paddings"] = tuple(tuple(p) for p in pads)
    nodes[s.node_index] = dataclasses.replace(host, attrs=a)
    for name, (c0, c1) in wins.items():
        set_width(name, c1 - c0)
    for k in s.nodes:
        for o in graph.nodes[k].outputs:
            set_width(o, x1 - x0)
    return dataclasses.replace(graph, tensors=tensors, nodes=nodes), wins


class PatchRunner:
    """Runs the `Patch` and `Copy2D` instructions of one plan."""

    def __init__(self, steps: StepRunner) -> None:
        self.steps = steps
        self.plan = steps.plan
        self.g = steps.g
        self.sg = steps.sg
        self._kernels: dict[tuple[int, int, int, int, int],
                            tuple[StepKernel, dict[str, tuple[int, int]]]] = {}

    def split(self, s: Step, c0: int, c1: int) -> bool:
        """Whether [c0, c1) is a channel group of a step split by output channel."""
        n = self.plan.needs[s.index]
        return n.block >= 0 and n.per_channel > 0 and (c0, c1) != (0, n.channels)

    def kernel(self, s: Step, c0: int, c1: int, x0: int, x1: int
               ) -> tuple[StepKernel, dict[str, tuple[int, int]]]:
        key = (s.index, c0, c1, x0, x1)
        if key not in self._kernels:
            n = self.plan.needs[s.index]
            graph = self.g
            if self.split(s, c0, c1):
                graph = channel_slice(graph, s, self.steps.layouts[n.block], c0, c1)
            graph, wins = column_slice(graph, s, x0, x1)
            self._kernels[key] = (prepare(graph, s.node_index, s.fused), wins)
        return self._kernels[key]

    def region(self, arena: Arena, b: Bind2D, name: str, rows: tuple[int, int],
               cols: tuple[int, int], channels: tuple[int, int] | None = None) -> np.ndarray:
        """Pixels rows x cols of tensor `name` from its bound region, zero where the region
        holds none; (rows, cols, C) typed."""
        t = self.g.tensors[name]
        dt = np_dtype(t)
        ch = t.nbytes // (t.rows * max(1, _width(self.g, name))) // dt.itemsize
        out = np.zeros((rows[1] - rows[0], cols[1] - cols[0], ch), dtype=dt)
        r0, r1 = max(rows[0], b.row0), min(rows[1], b.row0 + b.rows)
        c0, c1 = max(cols[0], b.col0), min(cols[1], b.col0 + b.cols)
        if r0 < r1 and c0 < c1:
            px = ch * dt.itemsize
            for r in range(r0, r1):
                at = b.offset + (r - b.row0) * b.pitch + (c0 - b.col0) * px
                row = arena.view(b.buf, at, (c1 - c0) * px).view(dt).reshape(c1 - c0, ch)
                out[r - rows[0], c0 - cols[0]:c1 - cols[0]] = row
        if channels is not None:
            out = out[..., channels[0]:channels[1]]
        return out

    def write(self, arena: Arena, b: Bind2D, name: str, rows: tuple[int, int],
              cols: tuple[int, int], channels: tuple[int, int], values: np.ndarray) -> None:
        t = self.g.tensors[name]
        dt = np_dtype(t)
        ch = t.nbytes // (t.rows * max(1, _width(self.g, name))) // dt.itemsize
        px = ch * dt.itemsize
        values = values.reshape(rows[1] - rows[0], cols[1] - cols[0], -1)
        whole = channels == (0, ch) or channels[1] - channels[0] == values.shape[-1] == ch
        for r in range(rows[0], rows[1]):
            at = b.offset + (r - b.row0) * b.pitch + (cols[0] - b.col0) * px
            dst = arena.view(b.buf, at, (cols[1] - cols[0]) * px).view(dt)
            dst = dst.reshape(cols[1] - cols[0], ch)
            if whole:
                dst[...] = values[r - rows[0]]
            else:
                dst[:, channels[0]:channels[1]] = values[r - rows[0]]

    def run(self, arena: Arena, ins: Patch) -> None:
        s = self.sg.steps[ins.step]
        n = self.plan.needs[ins.step]
        if s.op_type == "Pad":
            x = self.g.nodes[s.node_index].inputs[0]
            v0, v1 = column_window(self.g, s.node_index, x, ins.x0, ins.x1)
            if v0 >= v1:  # every output column is padding: no input to window
                self._pad_only(arena, ins, s)
                return
        k, wins = self.kernel(s, ins.c0, ins.c1, ins.x0, ins.x1)
        params: dict[str, np.ndarray] = {}
        if n.block >= 0:
            lay = self.steps.layouts[n.block]
            channels = ins.c1 - ins.c0 if n.per_channel else n.channels
            view = arena.view(ins.staging, ins.staging_at)
            if ins.staging_base != n.common:  # the whole block is staged: pick the records
                size = n.common + channels * n.per_channel
                head = view[:n.common]
                recs = view[ins.staging_base:ins.staging_base + channels * n.per_channel]
                view = np.concatenate([head, recs])[:size]
            params = lay.unpack(view, channels)
        _use_staged_qparams(k, params)
        scratch = arena.view(ins.scratch) if ins.scratch >= 0 else None
        binds = {b.tensor: b for b in ins.binds}
        split = self.split(s, ins.c0, ins.c1)
        inputs = {}
        for x in k.in_names:
            a, b = k.input_rows(x, ins.r0, ins.r1)
            chans = None
            if split and n.conv_groups > 1:  # a grouped convolution reads its groups' inputs
                chans = input_channels(self.g, s, n.group_channels, ins.c0, ins.c1)
            data = self.region(arena, binds[self.sg.storage_of(x)], x, (a, b), wins[x], chans)
            inputs[x] = (data, a)
        out = np.empty(k.host.band_shape(k.out, ins.r0, ins.r1), dtype=k.out_dtype)
        k.run_rows(inputs, params, out, ins.r0, ins.r1, scratch)
        self.write(arena, binds[self.sg.storage_of(k.out)], k.out, (ins.r0, ins.r1),
                   (ins.x0, ins.x1), (ins.c0, ins.c1), out)

    def _pad_only(self, arena: Arena, ins: Patch, s: Step) -> None:
        """A Pad patch whose columns are all padding: the pad value (the step's own kernel
        says which; a fused epilogue would need its kernel, and the planner fuses none after
        a Pad)."""
        whole = self.steps.kernel(s, 0, self.plan.needs[s.index].channels)
        if whole.chain:
            raise ModelError(f"step '{s.name}': a patch of padding only with a fused epilogue")
        name = whole.out
        t = self.g.tensors[name]
        ch = t.nbytes // (t.rows * max(1, _width(self.g, name))) // np_dtype(t).itemsize
        values = np.full((ins.r1 - ins.r0, ins.x1 - ins.x0, ch), whole.host.value,
                         dtype=np_dtype(t))
        binds = {b.tensor: b for b in ins.binds}
        self.write(arena, binds[self.sg.storage_of(name)], name, (ins.r0, ins.r1),
                   (ins.x0, ins.x1), (0, ch), values)

    def copy(self, arena: Arena, ins: Copy2D) -> None:
        rows = []
        for r in range(ins.rows):
            rows.append(arena.view(ins.src, ins.src_off + r * ins.src_pitch, ins.nbytes).copy())
        for r, data in enumerate(rows):
            arena.view(ins.dst, ins.dst_off + r * ins.dst_pitch, ins.nbytes)[:] = data


def _width(graph: Graph, name: str) -> int:
    t = graph.tensors[name]
    return t.shape[_width_axis(graph, len(t.shape))] if len(t.shape) == 4 else 1
