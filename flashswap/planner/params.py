"""What a step needs in SRAM besides its activations: parameters, scratch, accumulators.

Parameters. Each step with weights owns one parameter block in the weights region on flash
(flashswap/exec/weights.py writes it in this layout): a common part, then one record per
output channel (a convolution's filter, bias and fixed-point multiplier and shift for that
channel; a fully connected layer's row of weights, bias, ...). A tile of the step streams the
block into a staging buffer: the common part once, then the records of a group of channels at a
time, each group followed by the compute of those channels (`WEIGHT_READ`, `COMPUTE`). The
group size is the planner's choice (the most channels that fit), so a layer whose weights do not
fit in SRAM still runs; the bytes read per tile are the same whatever the grouping.

- Convolutions, depthwise convolutions and fully connected layers are split by channel: a
  weight with an axis as long as the output channels contributes nbytes / channels to every
  record, any other weight goes to the common part.
- Int8 layers with per-channel quantization add a 32-bit multiplier and a 32-bit shift per
  channel (as CMSIS-NN and TFLite Micro hold them); per-tensor parameters (a few scalars per
  op) are constants of the compiled program and take no SRAM buffer.
- Other steps with weights (an unfused batch normalisation, an add of a constant) read their
  whole block in the common part.

Scratch: what the step's kernel needs besides its inputs and outputs, from the kernels'
scratch-size function. Accumulators: a reduction tiled over its input rows (a global pool,
MEAN) keeps one 32-bit sum per channel across the tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np

from flashswap.errors import ModelError
from flashswap.model.graph import Graph, Node, Quant, Tensor
from flashswap.planner.steps import Step, StepGraph

QPARAM_BYTES = 8  # int32 multiplier + int32 shift per output channel
SPLIT_OPS = ("Conv", "DepthwiseConv", "FullyConnected")


@dataclass(frozen=True)
class Needs:
    """A step's SRAM needs besides its activation buffers."""

    block: int = -1  # parameter block id (WEIGHT_READ key), -1: none
    common: int = 0  # block bytes read once per tile
    per_channel: int = 0  # bytes of one channel record
    channels: int = 1  # output channels (features for a fully connected layer)
    by_channel: bool = False  # the step's units are its channels (tiled by features)
    accum: int = 0  # bytes held across the step's tiles
    group_channels: int = 1  # output channels per convolution group
    conv_groups: int = 1  # a convolution's groups (> 1: its channel groups read input slices)
    # Kernel scratch for a tile of n units (the kernels' scratch-size function).
    scratch_of: Callable[[int], int] | None = field(default=None, compare=False, repr=False)

    @property
    def block_bytes(self) -> int:
        return self.common + self.per_channel * self.channels

    def staging(self, group: int) -> int:
        """Staging bytes for `group` channels (0 if the step has no parameters)."""
        return self.common + self.per_channel * group if self.block >= 0 else 0

    def min_staging(self) -> int:
        return self.staging(1 if self.per_channel else 0)

    def cuts(self, c0: int, c1: int, group: int) -> list[int]:
        """Boundaries of the channel groups of [c0, c1) with at most `group` channels each.
        A grouped convolution's groups never straddle one of its convolution groups: they
        are whole convolution groups, or parts of one."""
        og = self.group_channels
        if og <= 1 or group >= og:
            step = group if og <= 1 else group // og * og
            return [*range(c0, c1, step), c1]
        cuts = {c1}
        for g0 in range(c0 - c0 % og, c1, og):
            cuts.update(range(max(c0, g0), min(c1, g0 + og), group))
        return sorted(cuts)

    def scratch(self, units: int) -> int:
        return self.scratch_of(units) if self.scratch_of is not None else 0


def channels_of(graph: Graph, t: Tensor) -> int:
    """Output channels of an activation (channels-last storage whatever the source layout)."""
    if len(t.shape) == 4:
        return t.shape[1] if graph.layout == "nchw" or graph.source == "onnx" else t.shape[3]
    return t.shape[-1] if t.shape else 1


def step_needs(graph: Graph, sg: StepGraph) -> list[Needs]:
    """The needs of every step; parameter blocks are numbered in step order."""
    out: list[Needs] = []
    block = 0
    stub = _ShapeStub(graph)
    for s in sg.steps:
        n = _needs(graph, sg, s, block)
        if n.block >= 0:
            block += 1
        if not s.virtual:
            n = replace(n, scratch_of=stub.scratch_function(s))
        out.append(n)
    return out


def _conv_groups(graph: Graph, s: Step) -> tuple[int, int] | None:
    """(groups, output channels per group) of a step whose output channels can be computed
    group by group from their own weights ((1, 1): any split; None: not splittable)."""
    node = graph.nodes[s.node_index]
    if node.op_type == "FullyConnected":
        return 1, 1
    if node.op_type in ("Conv", "DepthwiseConv"):
        t_in, t_out = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
        cin, cout = channels_of(graph, t_in), channels_of(graph, t_out)
        groups = cin if node.op_type == "DepthwiseConv" else node.attrs.get("group", 1)
        if groups <= 1:
            return 1, 1
        if cin % groups or cout % groups:
            return None
        return groups, cout // groups
    return None


def _needs(graph: Graph, sg: StepGraph, s: Step, block: int) -> Needs:
    if s.virtual:
        return Needs()
    node = graph.nodes[s.node_index]
    out = graph.tensors[sg.tensors[s.outputs[0].tensor].name] if len(s.outputs) == 1 else None
    accum = 4 * out.elements if s.kind == "reduce" and out is not None else 0
    weights = [graph.tensors[sg.weight_names[w]] for w, _ in s.weights]
    if not weights:
        return Needs(accum=accum)
    total = sum(w.nbytes for w in weights)
    grouping = _conv_groups(graph, s) if out is not None else None
    if out is None or grouping is None:
        return Needs(block, total, 0, 1, False, accum)
    ch = channels_of(graph, out)
    per = sum(w.nbytes // ch for w in weights if ch in w.shape)
    common = total - per * ch
    if _per_channel_quant(graph, node.op_type, weights[0]):
        per += QPARAM_BYTES
    return Needs(block, common, per, ch, s.split_weights, accum, grouping[1], grouping[0])


def _per_channel_quant(graph: Graph, op_type: str, filt: Tensor) -> bool:
    if filt.dtype not in ("int8", "int16"):
        return False
    q = getattr(graph, "quant", {}).get(filt.name)
    if q is not None:
        return bool(q.per_channel)
    # No quantization data (built-in graphs, planning what-ifs): TFLite's converter quantizes
    # convolution filters per channel and fully connected weights per tensor.
    return op_type in ("Conv", "DepthwiseConv")


class _StandIns(Mapping):
    """Constants for preparing kernels without reading weights: every weight is a zero-cost
    stand-in (a broadcast zero) of its dtype and the shape it has in the executor's layout
    (OHWI convolution filters, (1, kh, kw, C) depthwise filters, (out, in) fully connected
    weights, as TFLite stores them; an ONNX model's source layouts are converted); other
    constants (shape parameters) are the graph's."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.shapes: dict[str, tuple[int, ...]] = {}
        for n in graph.nodes:
            for w in n.weights:
                self.shapes[w] = _executor_shape(graph, n, w)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.shapes:
            t = self.graph.tensors[name]
            return np.broadcast_to(np.zeros((), dtype=t.dtype), self.shapes[name])
        return self.graph.constants[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self.shapes, *self.graph.constants]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self.shapes, *self.graph.constants]))


def _executor_shape(graph: Graph, node: Node, w: str) -> tuple[int, ...]:
    shape = graph.tensors[w].shape
    if graph.layout != "nchw":
        return shape
    args = node.attrs.get("args", ())
    if len(args) > 1 and args[1] == w:
        if node.op_type in ("Conv", "DepthwiseConv") and len(shape) == 4:
            return (shape[0], shape[2], shape[3], shape[1])  # OIHW -> OHWI
        if node.op_type == "FullyConnected" and len(shape) == 2:
            out = graph.tensors[node.outputs[0]].shape[-1]
            return shape if shape[0] == out else (shape[1], shape[0])
    return shape


class _ShapeStub:
    """The kernels' scratch-size function (flashswap.exec.kernels: StepKernel.scratch_bytes)
    for any graph, without reading a weight: a TFLite model's kernels are prepared on the
    model itself (its constants are views of the file); any other graph on stand-ins
    (`_StandIns`) and, where it states none, unit quantization - scratch depends on shapes
    only."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    @cache  # noqa: B019 - one stub per planning call
    def stub(self) -> Graph:
        g = self.graph
        if g.source == "tflite" and g.dtype_override is None:
            return g
        quant = dict(g.quant)
        for name, t in g.tensors.items():
            if name not in quant and t.dtype in ("int8", "uint8", "int16"):
                quant[name] = Quant((1.0,), (0,))
        return replace(g, constants=_StandIns(g), quant=quant, dtype_override=None)

    def scratch_function(self, s: Step) -> Callable[[int], int]:
        from flashswap.exec.kernels import prepare

        # A what-if graph may fuse ops that have no kernel in its types (an int8 batch norm):
        # then the host's own scratch; no kernel at all: none (the plan is made, running it
        # fails).
        for fused in (s.fused, ()):
            try:
                k = prepare(self.stub(), s.node_index, fused, s.units)
            except ModelError:
                continue
            return cache(lambda units, k=k: int(k.scratch_bytes(0, units)))
        return lambda units: 0
