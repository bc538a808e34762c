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

from dataclasses import dataclass

from flashswap.model.graph import Graph, Tensor
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
    scratch_fixed: int = 0  # kernel scratch, independent of the tile

    @property
    def block_bytes(self) -> int:
        return self.common + self.per_channel * self.channels

    def staging(self, group: int) -> int:
        """Staging bytes for `group` channels (0 if the step has no parameters)."""
        return self.common + self.per_channel * group if self.block >= 0 else 0

    def min_staging(self) -> int:
        return self.staging(1 if self.per_channel else 0)

    def scratch(self, rows: int) -> int:  # noqa: ARG002 - band-dependent scratch: none yet
        return self.scratch_fixed


def channels_of(graph: Graph, t: Tensor) -> int:
    """Output channels of an activation (channels-last storage whatever the source layout)."""
    if len(t.shape) == 4:
        return t.shape[1] if graph.layout == "nchw" or graph.source == "onnx" else t.shape[3]
    return t.shape[-1] if t.shape else 1


def step_needs(graph: Graph, sg: StepGraph) -> list[Needs]:
    """The needs of every step; parameter blocks are numbered in step order."""
    out: list[Needs] = []
    block = 0
    for s in sg.steps:
        n = _needs(graph, sg, s, block)
        if n.block >= 0:
            block += 1
        out.append(n)
    return out


def _needs(graph: Graph, sg: StepGraph, s: Step, block: int) -> Needs:
    if s.virtual:
        return Needs()
    node = graph.nodes[s.node_index]
    accum = 0
    if s.kind == "reduce":
        accum = 4 * channels_of(graph, graph.tensors[node.inputs[0]])
    scratch = kernel_scratch(graph, s)
    weights = [graph.tensors[sg.weight_names[w]] for w, _ in s.weights]
    if not weights:
        return Needs(accum=accum, scratch_fixed=scratch)
    total = sum(w.nbytes for w in weights)
    if node.op_type not in SPLIT_OPS or len(s.outputs) != 1:
        return Needs(block, total, 0, 1, False, accum, scratch)
    ch = channels_of(graph, graph.tensors[sg.tensors[s.outputs[0].tensor].name])
    per = sum(w.nbytes // ch for w in weights if ch in w.shape and w.elements % ch == 0)
    common = total - per * ch
    if _per_channel_quant(graph, node.op_type, weights[0]):
        per += QPARAM_BYTES
    return Needs(block, common, per, ch, s.split_weights, accum, scratch)


def _per_channel_quant(graph: Graph, op_type: str, filt: Tensor) -> bool:
    if filt.dtype not in ("int8", "int16"):
        return False
    q = getattr(graph, "quant", {}).get(filt.name)
    if q is not None:
        return bool(q.per_channel)
    # No quantization data (built-in graphs, planning what-ifs): TFLite's converter quantizes
    # convolution filters per channel and fully connected weights per tensor.
    return op_type in ("Conv", "DepthwiseConv")


def kernel_scratch(graph: Graph, s: Step) -> int:  # noqa: ARG001
    """Scratch bytes of the step's kernel (the kernels' scratch-size function)."""
    return 0
