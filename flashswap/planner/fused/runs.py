"""Runs of steps that can execute fused, patch by patch, and what a patch grid costs them.

A run is a contiguous range of steps [first, last] in which

- every step is spatial in both axes: a convolution, depthwise convolution or pooling with a
  local window, a Pad, or an op that maps each pixel to the same pixel (elementwise ops such as
  a residual Add, channel concatenation, requantization), on batch-1 feature maps;
- every tensor produced before `last` is read only inside the run, so none of them is ever
  materialized whole; the output of `last` (the sink) is the only tensor the run produces
  for later steps.

A configuration cuts the sink into patches (`patch_h` x `patch_w`; the last row and column
of patches take the remainder) and chooses, per axis, whether halos are cached or recomputed
(regions.py):

- band: full-width patches, rows cached. Each intermediate tensor's window is a band of
  rows that shifts up between patches: nothing is recomputed; a window is the rows one band
  needs, full width.
- line buffers: 2-D patches, rows cached. The rows a tensor's next patch row needs again are
  kept in a line buffer (those rows, full width), columns are cached in the window (it shifts
  left between patches) or recomputed (then the line buffer has two halves, read and
  written in turn, since neighbouring patches both read the overlap). Nothing is recomputed
  with both caches, and buffers are a patch's window plus a few rows.
- rows recomputed, columns cached or not: windows only, at the price of recomputing each
  patch row's halo rows (MCUNetV2's patch-based inference recomputes both axes).

Memory of a configuration. Every intermediate tensor has one window buffer sized for the
largest region any patch needs of it. A window that carries pixels between patches (a cached
axis) lives for the whole run; otherwise it lives, within each patch, from the op that produces
it to the last op that reads it. Windows and line buffers are placed like TFLite Micro places
tensors (arena.place: greedy, largest first); the run's workspace is that arena's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from flashswap.model.graph import DTYPE_BYTES, Graph
from flashswap.planner.arena import Buffer, align, place
from flashswap.planner.fused.regions import (
    Intervals,
    Regions,
    Run,
    RunOp,
    Window,
    closure,
    derive,
    patch_bounds,
)
from flashswap.planner.steps import Step, StepGraph

__all__ = ["Candidate", "Config", "Geo", "RunPlan", "candidate", "candidates", "configs",
           "evaluate", "geometry"]

SPATIAL = frozenset({"Conv", "DepthwiseConv", "MaxPool", "AveragePool"})
PIXELWISE = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Relu", "Relu6", "LeakyRelu",
                       "Sigmoid", "Tanh", "HardSwish", "BatchNormalization", "Quantize",
                       "Dequantize", "Concat"})


@dataclass(frozen=True)
class Geo:
    """A batch-1 feature map as the planner stores it: rows of width x channels."""

    h: int
    w: int
    c: int
    itemsize: int

    @property
    def pixel(self) -> int:
        return self.c * self.itemsize

    @property
    def row(self) -> int:
        return self.w * self.pixel

    @property
    def nbytes(self) -> int:
        return self.h * self.row


def geometry(graph: Graph, sg: StepGraph) -> list[Geo | None]:
    """Height, width, channels of each storage tensor that is a batch-1 feature map."""
    nchw = getattr(graph, "layout", "nchw" if graph.source == "onnx" else "nhwc") == "nchw"
    out: list[Geo | None] = []
    for st in sg.tensors:
        t = graph.tensors[st.name]
        if len(t.shape) != 4 or t.shape[0] != 1:
            out.append(None)
            continue
        _, a, b, c = t.shape
        h, w, ch = (b, c, a) if nchw else (a, b, c)
        out.append(Geo(h, w, ch, DTYPE_BYTES[t.dtype]))
    return out


def windows(graph: Graph, s: Step) -> tuple[Window, Window] | None:
    """The step's (rows, columns) windows if it can run inside a fused run, else None."""
    if s.virtual:
        return None
    node = graph.nodes[s.node_index]
    a = node.attrs
    if node.op_type in SPATIAL:
        (kh, kw), (sh, sw) = a["kernel"], a["stride"]
        dh, dw = a.get("dilation", (1, 1))
        top, left = a["pads"][0], a["pads"][1]
        return Window(kh, sh, top, dh), Window(kw, sw, left, dw)
    if node.op_type == "Pad":
        return Window(1, 1, a["pads"][0]), Window(1, 1, a["pads"][1])
    if node.op_type in PIXELWISE and not a.get("rows_axis", False):
        return Window(), Window()
    return None


@dataclass(frozen=True)
class Candidate:
    """A range of steps that can run fused (see the module docstring)."""

    first: int
    last: int
    run: Run  # tensor ids are storage tensor ids
    geo: dict[int, Geo]
    macs: dict[int, int]  # step index -> MACs of the whole output
    step_of: dict[int, int]  # produced tensor -> step index

    @property
    def sink(self) -> int:
        return self.run.sink

    @property
    def external(self) -> list[int]:
        return self.run.external

    @property
    def steps(self) -> range:
        return range(self.first, self.last + 1)


def fusable(graph: Graph, sg: StepGraph, geo: list[Geo | None]
            ) -> tuple[list[bool], list[tuple[Window, Window] | None]]:
    """Per step: can it run inside a fused run, and its (rows, columns) windows."""
    win = [windows(graph, s) for s in sg.steps]
    ok = [False] * len(sg.steps)
    for s in sg.steps:
        ios = (*s.inputs, *s.outputs)
        good = (win[s.index] is not None and len(s.outputs) == 1
                and all(io.rowmap is not None and geo[io.tensor] is not None for io in ios))
        if good:
            hw = {(g.h, g.w) for io in ios if (g := geo[io.tensor]) is not None}
            # A pixelwise op needs every operand at the output's size (no broadcasting).
            good = win[s.index] != (Window(), Window()) or len(hw) == 1
        ok[s.index] = good
    return ok, win


def graph_outputs(sg: StepGraph) -> set[int]:
    """Storage tensors the application reads after the inference."""
    return {io.tensor for s in sg.steps if s.op_type == "Output" for io in s.inputs}


def candidate(graph: Graph, sg: StepGraph, first: int, last: int) -> Candidate:
    """The run [first, last] (ValueError if it is not one)."""
    for c in candidates(graph, sg, last - first + 1, first):
        if c.last == last:
            return c
    raise ValueError(f"steps {first}..{last} are not a fusable run")


def candidates(graph: Graph, sg: StepGraph, max_steps: int = 24, only: int | None = None
               ) -> list[Candidate]:
    """Every run of 2..`max_steps` steps (starting at step `only` if given; see the module
    docstring)."""
    geo = geometry(graph, sg)
    ok, win = fusable(graph, sg, geo)
    outputs = graph_outputs(sg)
    out: list[Candidate] = []
    for a in range(len(sg.steps)) if only is None else (only,):
        ops: list[RunOp] = []
        produced: dict[int, int] = {}
        for b in range(a, min(len(sg.steps), a + max_steps)):
            if not ok[b]:
                break
            s = sg.steps[b]
            wr, wc = win[b]  # type: ignore[misc]
            t = s.outputs[0].tensor
            ops.append(RunOp(tuple(io.tensor for io in s.inputs), t, wr, wc))
            produced[t] = b
            # Valid when everything produced before b is read only inside [a, b].
            if b == a or any(sg.last_use(x) > b or x in outputs for x in produced if x != t):
                continue
            tensors = {x for op in ops for x in (*op.inputs, op.output)}
            geos = {x: g for x in tensors if (g := geo[x]) is not None}
            run = Run(tuple(ops), {x: (g.h, g.w) for x, g in geos.items()}, t)
            out.append(Candidate(a, b, run, geos,
                                 {k: sg.steps[k].macs for k in range(a, b + 1)},
                                 dict(produced)))
    return out


@dataclass(frozen=True)
class Config:
    patch_h: int
    patch_w: int
    cache_rows: bool
    cache_cols: bool

    def describe(self, sink: Geo) -> str:
        gh, gw = -(-sink.h // self.patch_h), -(-sink.w // self.patch_w)
        mode = "band" if self.cache_rows else "patch"
        return f"{mode} {gh}x{gw} ({self.patch_h}x{self.patch_w})"


@dataclass
class RunPlan:
    """A candidate under a configuration: regions, buffers, MACs (see the module docstring)."""

    cand: Candidate
    config: Config
    regions: Regions
    window: dict[int, int]  # internal tensor -> window buffer bytes (aligned)
    offset: dict[int, int]  # internal tensor -> offset in the workspace
    workspace: int
    macs: int  # including recomputed halos
    line: dict[int, int] = field(default_factory=dict)  # internal tensor -> line buffer bytes
    line_offset: dict[int, int] = field(default_factory=dict)

    @property
    def grid(self) -> tuple[int, int]:
        return self.regions.grid

    @property
    def patches(self) -> int:
        gh, gw = self.grid
        return gh * gw

    @property
    def extra_macs(self) -> int:
        return self.macs - sum(self.cand.macs.values())

    @cached_property
    def ext_rows(self) -> dict[int, Intervals]:
        """Rows of each external input a patch row needs (monotone: streamable in order)."""
        return {x: closure(self.regions.rows.required[x]) for x in self.cand.external}

    def active(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Per patch row and per patch column, whether the producer of t computes anything."""
        return (self.regions.rows.computed[t].sizes > 0,
                self.regions.cols.computed[t].sizes > 0)

    def op_patches(self, t: int) -> int:
        """Patches in which the producer of t computes something (and reads its weights)."""
        r, c = self.active(t)
        return int(r.sum()) * int(c.sum())


def evaluate(cand: Candidate, cfg: Config) -> RunPlan:
    """The run under `cfg`: regions, window and line buffers and their placement, MACs."""
    sink = cand.geo[cand.sink]
    ph, pw = min(cfg.patch_h, sink.h), min(cfg.patch_w, sink.w)
    reg = derive(cand.run, patch_bounds(sink.h, ph), patch_bounds(sink.w, pw), cfg.cache_rows,
                 cfg.cache_cols)
    gw = reg.cols.tiles
    band = cfg.cache_rows and gw == 1
    # Window buffers carry pixels between patches when an axis is cached within them: a
    # band (rows cached, full width) or a column cache. Otherwise they are transient.
    persistent = band or cfg.cache_cols
    line_copies = 0 if band or not cfg.cache_rows else (1 if cfg.cache_cols else 2)
    ops = cand.run.ops
    pos = {op.output: k for k, op in enumerate(ops)}
    last_read: dict[int, int] = {}
    for k, op in enumerate(ops):
        for x in op.inputs:
            last_read[x] = k
    bufs: list[Buffer] = []
    internal = [op.output for op in ops if op.output != cand.sink]
    sizes: dict[int, int] = {}
    lines: dict[int, int] = {}
    for t in internal:
        g = cand.geo[t]
        rq = reg.rows.required[t]
        sizes[t] = align(rq.extent * reg.cols.required[t].extent * g.pixel)
        start, end = (0, len(ops)) if persistent else (pos[t], last_read.get(t, pos[t]))
        bufs.append(Buffer(start, end, sizes[t], str(t)))
        if line_copies:
            keep = rq.sizes > 0  # rows the next patch row that needs any of t needs again
            lo, hi = rq.lo[keep], rq.hi[keep]
            ov = np.maximum(hi[:-1] - lo[1:], 0)
            lines[t] = align(int(ov.max(initial=0)) * g.w * g.pixel) * line_copies
            if lines[t]:
                bufs.append(Buffer(0, len(ops), lines[t], f"{t} line"))
    offsets, arena = place(bufs)
    offs = offsets.tolist()
    macs = 0
    for op in ops:
        g = cand.geo[op.output]
        step = cand.step_of[op.output]
        # An op's MACs are proportional to the pixels it computes (floored: exact when
        # every pixel is computed once).
        macs += cand.macs[step] * reg.computed_pixels(op.output) // (g.h * g.w)
    k = 0
    offset: dict[int, int] = {}
    line_offset: dict[int, int] = {}
    for t in internal:
        offset[t] = int(offs[k])
        k += 1
        if lines.get(t):
            line_offset[t] = int(offs[k])
            k += 1
    return RunPlan(cand, cfg, reg, sizes, offset, arena, macs, lines, line_offset)


def patch_sizes(n: int) -> list[int]:
    """Distinct patch sizes that cut n into 1..n tiles, largest first."""
    return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


def configs(sink: Geo, max_patches: int | None = None) -> list[Config]:
    """Band configurations (every distinct band height), then square-ish 2-D patches with
    every choice of caches; the number of patches capped by `max_patches`."""
    out = [Config(ph, sink.w, True, True) for ph in patch_sizes(sink.h)]
    for pw in patch_sizes(sink.w)[1:]:
        ph = max(1, round(pw * sink.h / sink.w))
        for rows in (True, False):
            for cols in (True, False):
                out.append(Config(min(ph, sink.h), pw, rows, cols))
    if max_patches:
        out = [c for c in out
               if math.ceil(sink.h / c.patch_h) * math.ceil(sink.w / c.patch_w) <= max_patches]
    return out

