"""The one internal graph every importer produces and the planner consumes.

A `Graph` is a list of `Node`s in execution order over named `Tensor`s. Each tensor is either
a weight (constant: lives in flash, streamed as WEIGHT_READ) or an activation (produced at run
time: lives in the SRAM arena or is swapped to flash). Shapes stay in the source layout (NCHW
for ONNX, NHWC for TFLite); what the planner needs from a shape is `rows`: the number of
row bands the tensor splits into for tiling (N*H for feature maps, 1 for vectors). The planner
stores every activation row-major by rows (NHWC, as CMSIS-NN and TFLite Micro do), so a band
of rows is one contiguous byte range whatever the source layout.

Op types use one vocabulary (`OP_KINDS`) whatever the source format, so the planner has a
single table of how each kind of op can be tiled.

For execution an imported graph also carries `constants` (weights and parameters, in the
executor's layout: TFLite's own, ONNX filters as OHWI), `quant` (scale, zero point and
quantized axis per quantized tensor) and, in each node's attrs, the options its kernel needs
(flashswap/exec/kernels). Element types are the model's own, tensor by tensor; built-in graphs
have shapes and types only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flashswap.errors import ModelError

DTYPE_BYTES: dict[str, int] = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "float16": 2,
    "int32": 4,
    "float32": 4,
    "int64": 8,
    "float64": 8,
}
ACTIVATION_DTYPES = ("int8", "int16", "float32")

# How each op type is planned (see flashswap/planner/steps.py):
#   spatial   output rows need a window of input rows (kernel, stride, padding)
#   rowwise   output row r needs input row r (elementwise, per-pixel ops, channel concat)
#   pad       like rowwise, shifted by the top padding
#   fc        fully connected: output features need the whole input
#   reduce    global pooling: many input rows fold into one small output
#   whole     needs every input byte for every output byte
#   alias     a view of its input (reshape, flatten, dropout at inference): no step, no copy
OP_KINDS: dict[str, str] = {
    "Conv": "spatial",
    "DepthwiseConv": "spatial",
    "MaxPool": "spatial",
    "AveragePool": "spatial",
    "GlobalAveragePool": "reduce",
    "FullyConnected": "fc",
    "Add": "rowwise",
    "Sub": "rowwise",
    "Mul": "rowwise",
    "Div": "rowwise",
    "Max": "rowwise",
    "Min": "rowwise",
    "Relu": "rowwise",
    "Relu6": "rowwise",
    "LeakyRelu": "rowwise",
    "Sigmoid": "rowwise",
    "Tanh": "rowwise",
    "HardSwish": "rowwise",
    "BatchNormalization": "rowwise",
    "Quantize": "rowwise",
    "Dequantize": "rowwise",
    "LRN": "rowwise",
    "Softmax": "rowwise",
    "Concat": "rowwise",
    "Transpose": "rowwise",
    "Pad": "pad",
    "Reshape": "alias",
}

# Ops with one activation input that a deployed kernel applies in its producer's epilogue
# (TFLite converters fold them the same way); the planner fuses them into the producer.
FUSABLE = frozenset(
    {"Relu", "Relu6", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "BatchNormalization",
     "Add", "Sub", "Mul", "Div", "Quantize", "Dequantize"}
)


@dataclass(frozen=True)
class Tensor:
    """A named tensor: shape in the source layout, element type, and its tiling rows."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    is_weight: bool
    rows: int = 1

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.elements * DTYPE_BYTES[self.dtype]

    @property
    def row_bytes(self) -> int:
        return self.nbytes // self.rows


@dataclass(frozen=True)
class Quant:
    """Affine quantization of a tensor: real = scale * (q - zero_point).

    Per-tensor when `scale` has one entry; per-channel along `axis` otherwise (TFLite's
    quantized_dimension: axis 0 of a CONV_2D/FULLY_CONNECTED filter, axis 3 of a
    DEPTHWISE_CONV_2D filter). Scales are the file's float32 values, held as Python floats
    (exact), so a kernel can derive its fixed-point multipliers from doubles as TFLite does.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True)
class Node:
    """One op: activation inputs, weight inputs, outputs, MACs and the attributes tiling needs.

    attrs used by the planner: kernel (kh, kw), stride (sh, sw), pads (top, left, bottom,
    right), dilation (dh, dw), group, rows_axis (True when a Concat/Transpose moves rows, so
    it cannot be tiled by rows). Importers add what a kernel needs, as plain Python values
    (so a Node stays comparable): source_op, activation (fused: NONE, RELU, RELU6,
    RELU_N1_TO_1), depth_multiplier, axis, keep_dims, beta, axes, perm, pad_value, alpha,
    epsilon, ... (each importer's docstring lists its keys).
    """

    name: str
    op_type: str
    inputs: tuple[str, ...]
    weights: tuple[str, ...]
    outputs: tuple[str, ...]
    macs: int = 0
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return OP_KINDS[self.op_type]


@dataclass
class Graph:
    """A model: tensors by name, nodes in execution order, graph inputs and outputs."""

    name: str
    tensors: dict[str, Tensor]
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]
    source: str = "builtin"
    # What execution needs beyond shapes (empty for built-in graphs, which have no data):
    # constant tensors (weights, biases, parameters) in the executor's layout, and the
    # quantization of every quantized tensor. Arrays are never mutated once imported.
    constants: Mapping[str, np.ndarray] = field(default_factory=dict)
    quant: dict[str, Quant] = field(default_factory=dict)
    # Storage layout of rank-4 activations in the source: "nhwc" (TFLite, built-ins) or
    # "nchw" (ONNX). The executor always stores them channels-last (see module docstring).
    layout: str = "nhwc"
    # Set when the caller overrode the model's element types (a what-if for planning a float
    # model as if deployed in int8): the graph plans but cannot be executed.
    dtype_override: str | None = None

    def activations(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if not t.is_weight]

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def weight_bytes(self) -> int:
        used = {w for n in self.nodes for w in n.weights}
        return sum(self.tensors[w].nbytes for w in sorted(used))

    def validate(self) -> Graph:
        """Checks the invariants the planner relies on; raises ModelError naming the fault."""
        produced = set(self.inputs)
        for name in self.inputs:
            self._tensor(name, "graph input")
        for node in self.nodes:
            if node.op_type not in OP_KINDS:
                raise ModelError(f"unsupported op '{node.op_type}' (node '{node.name}')")
            for name in node.inputs:
                t = self._tensor(name, f"input of node '{node.name}'")
                if t.is_weight or name not in produced:
                    raise ModelError(
                        f"node '{node.name}' ({node.op_type}) reads '{name}' before it is produced"
                    )
            for name in node.weights:
                if not self._tensor(name, f"weight of node '{node.name}'").is_weight:
                    raise ModelError(f"node '{node.name}': '{name}' is not a constant")
            if not node.outputs:
                raise ModelError(f"node '{node.name}' ({node.op_type}) has no output")
            for name in node.outputs:
                t = self._tensor(name, f"output of node '{node.name}'")
                if t.rows < 1 or t.elements % t.rows:
                    raise ModelError(f"tensor '{name}': {t.rows} rows do not divide {t.shape}")
                produced.add(name)
        for name in self.outputs:
            if name not in produced:
                raise ModelError(f"graph output '{name}' is never produced")
        return self

    def _tensor(self, name: str, role: str) -> Tensor:
        t = self.tensors.get(name)
        if t is None:
            raise ModelError(f"{role} '{name}' has no known shape")
        if any(d <= 0 for d in t.shape):
            raise ModelError(f"{role} '{name}' has an unresolved shape {list(t.shape)}")
        return t


def conv_macs(out_elements: int, kh: int, kw: int, in_channels: int, group: int) -> int:
    """MACs of a convolution: every output element sums kh*kw*in_c/group products."""
    return out_elements * kh * kw * (in_channels // group)


def dtype_bytes(dtype: str) -> int:
    if dtype not in DTYPE_BYTES:
        raise ModelError(f"unsupported dtype '{dtype}'")
    return DTYPE_BYTES[dtype]
