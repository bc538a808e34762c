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

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np

from flashswap.errors import ModelError
from flashswap.model.graph import Graph, Quant, Tensor
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


def _splittable(graph: Graph, s: Step) -> bool:
    """Ops whose output channels can be computed group by group from their own weights."""
    node = graph.nodes[s.node_index]
    if node.op_type == "FullyConnected":
        return True
    if node.op_type == "Conv":
        return node.attrs.get("group", 1) == 1
    if node.op_type == "DepthwiseConv":  # one input channel per output channel
        t_in, t_out = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
        return channels_of(graph, t_in) == channels_of(graph, t_out)
    return False


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
    if out is None or not _splittable(graph, s):
        return Needs(block, total, 0, 1, False, accum)
    ch = channels_of(graph, out)
    per = sum(w.nbytes // ch for w in weights if ch in w.shape)
    common = total - per * ch
    if _per_channel_quant(graph, node.op_type, weights[0]):
        per += QPARAM_BYTES
    return Needs(block, common, per, ch, s.split_weights, accum)


def _per_channel_quant(graph: Graph, op_type: str, filt: Tensor) -> bool:
    if filt.dtype not in ("int8", "int16"):
        return False
    q = getattr(graph, "quant", {}).get(filt.name)
    if q is not None:
        return bool(q.per_channel)
    # No quantization data (built-in graphs, planning what-ifs): TFLite's converter quantizes
    # convolution filters per channel and fully connected weights per tensor.
    return op_type in ("Conv", "DepthwiseConv")


class _ShapeStub:
    """The kernels' scratch-size function (flashswap.exec.kernels: StepKernel.scratch_bytes)
    for any graph. Kernels are prepared from a graph's constants and quantization; a graph
    without them (a built-in network, a planning what-if) gets stand-ins of the right shapes
    and dtypes - scratch depends on shapes only."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    @cache  # noqa: B019 - one stub per planning call
    def stub(self) -> Graph:
        g = self.graph
        weights = {w for n in g.nodes for w in n.weights}
        constants = dict(g.constants)
        for w in weights - set(constants):
            t = g.tensors[w]
            constants[w] = np.broadcast_to(np.zeros((), dtype=t.dtype), t.shape)
        quant = dict(g.quant)
        for name, t in g.tensors.items():
            if name not in quant and t.dtype in ("int8", "uint8", "int16"):
                quant[name] = Quant((1.0,), (0,))
        return replace(g, constants=constants, quant=quant, dtype_override=None)

    def scratch_function(self, s: Step) -> Callable[[int], int]:
        from flashswap.exec.kernels import prepare

        try:
            k = prepare(self.stub(), s.node_index, s.fused, s.units)
        except ModelError:
            return lambda units: 0  # no kernel: the plan is made, running it fails
        return cache(lambda units: int(k.scratch_bytes(0, units)))
