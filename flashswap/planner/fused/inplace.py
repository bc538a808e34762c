"""In-place layer steps: a depthwise or elementwise op writing its output over a dying input.

Layer by layer, an op holds its input and its output at once. Two kinds of op can do with one
buffer when an input dies at the op (its last reader) and the output takes no more room:

- Elementwise ops (a residual Add, an activation, a requantization to the same type): output
  element k depends only on input element k, so writing it over input element k, in any
  order, never overwrites anything still to be read.
- Depthwise convolutions with one output channel per input channel (TinyEngine's in-place
  depthwise, Lin et al., MCUNet, NeurIPS 2020): output channel c depends only on input channel
  c. The kernel computes channel c whole into a one-channel temporary (out_h x out_w values),
  then copies it over channel c's bytes: in the channels-last layout, output pixel p's channel
  c sits where input pixel p's channel c was, so those bytes all held channel c, which is
  dead once the temporary is computed. The temporary is the only extra SRAM.

The output must be exactly as large as the input (a stride-1 depthwise convolution, an
elementwise op of one type): the output then owns the input's whole buffer. (A strided
depthwise convolution could run in place too, but the rest of its input's buffer would stay
allocated until the output dies: the program has no way to shrink a buffer.)

The fused schedule (schedule.py) runs such a step untiled in the input's buffer when that fits
and the input is not needed after it; the search (search.py) prices the step with the output
counted as the temporary. `--schedule layers` keeps the plain layer schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from flashswap.model.graph import DTYPE_BYTES, Graph
from flashswap.planner.fused.runs import PIXELWISE, geometry
from flashswap.planner.steps import StepGraph

__all__ = ["InPlace", "in_place_steps"]


@dataclass(frozen=True)
class InPlace:
    """Step `step` may write its output over input `tensor`; `temp` bytes of temporary."""

    step: int
    tensor: int
    temp: int


def in_place_steps(graph: Graph, sg: StepGraph) -> dict[int, InPlace]:
    """The steps that can run in place, by step index (see the module docstring)."""
    geo = geometry(graph, sg)
    outputs = {io.tensor for s in sg.steps if s.op_type == "Output" for io in s.inputs}
    out: dict[int, InPlace] = {}
    for s in sg.steps:
        if s.virtual or len(s.outputs) != 1:
            continue
        y = s.outputs[0].tensor
        ty = graph.tensors[sg.tensors[y].name]
        node = graph.nodes[s.node_index]
        for io in s.inputs:
            x = io.tensor
            if sg.last_use(x) != s.index or x in outputs or sg.producer[x] < 0:
                continue
            tx = graph.tensors[sg.tensors[x].name]
            if tx.dtype != ty.dtype or sg.tensors[y].nbytes != sg.tensors[x].nbytes:
                continue  # a smaller output would leave the rest of x's buffer unusable
            if node.op_type == "DepthwiseConv":
                gx, gy = geo[x], geo[y]
                if gx is None or gy is None or gx.c != gy.c:
                    continue  # a depth multiplier: output channels outnumber input channels
                out[s.index] = InPlace(s.index, x, gy.h * gy.w * DTYPE_BYTES[ty.dtype])
                break
            if (node.op_type in PIXELWISE and node.op_type != "Concat"
                    and sg.tensors[y].nbytes == sg.tensors[x].nbytes):
                out[s.index] = InPlace(s.index, x, 0)
                break
    return out
