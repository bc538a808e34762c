"""ONNX models into the internal graph, through the `onnx` package and its shape inference.

Constants are initializers, outputs of Constant/ConstantOfShape nodes, and outputs of nodes
whose inputs are all constant (the onnx wheel's light ImageNet graphs build their weights with
ConstantOfShape, DenseNet unsqueezes its BN scales). A constant read by a non-constant node is
a weight. Weights are counted at `weight_dtype` (int8) and Conv/Gemm biases as int32, the way
an int8 deployment stores them; activations at `dtype`. A symbolic batch dimension is fixed to
1 before shape inference (an MCU runs one sample at a time).
"""

from __future__ import annotations

import os
from typing import Any

from flashswap.errors import ModelError
from flashswap.model.graph import Graph, Node, Tensor, conv_macs

# ONNX op -> internal op type, for ops that map one to one.
_SIMPLE = {
    "Relu": "Relu", "LeakyRelu": "LeakyRelu", "Sigmoid": "Sigmoid", "Tanh": "Tanh",
    "HardSwish": "HardSwish", "Clip": "Relu6", "BatchNormalization": "BatchNormalization",
    "LRN": "LRN", "Add": "Add", "Sum": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div",
    "Max": "Max", "Min": "Min", "QuantizeLinear": "Quantize",
    "DequantizeLinear": "Dequantize", "GlobalAveragePool": "GlobalAveragePool",
    "GlobalMaxPool": "GlobalAveragePool",
}
_ALIAS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Dropout", "Identity"}
# Inputs that are parameters of the op rather than data streamed from flash.
_PARAM_INPUTS = _ALIAS | {"Pad", "Clip", "QuantizeLinear", "DequantizeLinear"}
_CONSTANT_OPS = {"Constant", "ConstantOfShape"}
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
                9: "bool", 10: "float16", 11: "float64"}


def _row_axes(rank: int) -> tuple[int, ...]:
    """Axes of an NCHW-style shape whose product is the tensor's rows (N and H)."""
    if rank >= 4:
        return (0, rank - 2)
    return (0,) if rank == 2 else ()


def _rows(shape: tuple[int, ...]) -> int:
    r = 1
    for a in _row_axes(len(shape)):
        r *= shape[a]
    return r


def load_onnx(path: str, dtype: str = "int8", weight_dtype: str = "int8") -> Graph:
    """Reads an .onnx file; ModelError names the file, or the op that is not supported."""
    try:
        import onnx
        from onnx import helper, shape_inference
    except ImportError as e:  # pragma: no cover - the `models` extra is not installed
        raise ModelError(f"reading ONNX needs the 'onnx' package: pip install onnx ({e})") from None
    try:
        model = onnx.load(path)
    except Exception as e:
        raise ModelError(f"cannot read ONNX model '{path}': {e}") from None
    init_names = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name not in init_names and vi.type.tensor_type.shape.dim:
            d0 = vi.type.tensor_type.shape.dim[0]
            if not d0.dim_value:
                d0.dim_value = 1
            elif d0.dim_value != 1:
                raise ModelError(f"'{path}': input '{vi.name}' has batch {d0.dim_value}; "
                                 "only batch 1 is planned")
    try:
        model = shape_inference.infer_shapes(model)
    except Exception as e:
        raise ModelError(f"'{path}': ONNX shape inference failed: {e}") from None
    name = os.path.splitext(os.path.basename(path))[0]
    return _Importer(model, helper, dtype, weight_dtype).build(name)


class _Importer:
    def __init__(self, model: Any, helper: Any, dtype: str, weight_dtype: str) -> None:
        self.g = model.graph
        self.helper = helper
        self.dtype = dtype
        self.weight_dtype = weight_dtype
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          13)
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in [*self.g.input, *self.g.value_info, *self.g.output]:
            dims = vi.type.tensor_type.shape.dim
            if vi.type.tensor_type.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.dim_value else -1 for d in dims)
        for t in self.g.initializer:
            self.shapes[t.name] = tuple(t.dims)
        self.constants = {t.name for t in self.g.initializer}
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []

    def build(self, name: str) -> Graph:
        inputs = [vi.name for vi in self.g.input if vi.name not in self.constants]
        for n in inputs:
            self._activation(n)
        for i, node in enumerate(self.g.node):
            ins = [x for x in node.input if x]
            if node.op_type in _CONSTANT_OPS or (ins and all(x in self.constants for x in ins)):
                self.constants.update(o for o in node.output if o)
                continue
            self._node(node, node.name or f"{node.op_type}_{i}")
        outputs = [vi.name for vi in self.g.output]
        return Graph(name, self.tensors, self.nodes, inputs, outputs, "onnx").validate()

    def _shape(self, name: str) -> tuple[int, ...]:
        shape = self.shapes.get(name)
        if shape is None or any(d <= 0 for d in shape):
            raise ModelError(f"tensor '{name}' has no static shape after shape inference")
        return shape

    def _activation(self, name: str) -> str:
        shape = self._shape(name)
        self.tensors[name] = Tensor(name, shape, self.dtype, False, _rows(shape))
        return name

    def _weight(self, name: str, dtype: str) -> str:
        self.tensors[name] = Tensor(name, self._shape(name), dtype, True)
        return name

    def _attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: self.helper.get_attribute_value(a) for a in node.attribute}

    def _node(self, node: Any, name: str) -> None:
        op = node.op_type
        ins = [x for x in node.input if x]
        acts = [x for x in ins if x not in self.constants]
        consts = [] if op in _PARAM_INPUTS else [x for x in ins if x in self.constants]
        if not acts:
            raise ModelError(f"node '{name}' ({op}) has no activation input")
        attrs = self._attrs(node)
        out = node.output[0]
        out_shape = self._shape(out)
        weights = []
        for x in consts:
            bias = op in ("Conv", "Gemm") and len(node.input) > 2 and x == node.input[2]
            weights.append(self._weight(x, "int32" if bias else self.weight_dtype))
        macs = 0
        extra: dict[str, Any] = {}
        if op in _ALIAS:
            kind = "Reshape"
        elif op in ("Conv", "MaxPool", "AveragePool"):
            kind, macs, extra = self._spatial(node, name, attrs, acts[0], out_shape)
        elif op in ("Gemm", "MatMul"):
            if len(acts) != 1 or not consts:
                raise ModelError(f"unsupported op '{op}' with two activation inputs "
                                 f"(node '{name}')")
            a_shape = self._shape(acts[0])
            k = a_shape[0] if attrs.get("transA", 0) else a_shape[-1]
            kind, macs = "FullyConnected", _prod(out_shape) * k
        elif op in _SIMPLE:
            kind = _SIMPLE[op]
        elif op == "Concat":
            rank = len(out_shape)
            kind, extra = "Concat", {"rows_axis": attrs["axis"] % rank in _row_axes(rank)}
        elif op == "Transpose":
            rank = len(out_shape)
            perm = list(attrs["perm"]) if "perm" in attrs else list(range(rank))[::-1]
            kind = "Transpose"
            extra = {"rows_axis": any(perm[a] != a for a in _row_axes(rank))}
        elif op == "Softmax":
            rank = len(out_shape)
            axis = attrs.get("axis", 1 if self.opset < 13 else -1) % rank
            # Before opset 13 Softmax flattens every axis from `axis` on into one row.
            spans = range(axis, rank) if self.opset < 13 else (axis,)
            kind = "Softmax"
            extra = {"rows_axis": any(a in _row_axes(rank) for a in spans)}
        elif op == "Pad":
            kind, extra = "Pad", self._pad(node, name, attrs, out_shape)
        else:
            raise ModelError(f"unsupported op '{op}' (node '{name}')")
        self._activation(out)
        self.nodes.append(Node(name, kind, tuple(acts), tuple(weights), (out,), macs,
                               {**extra, "source_op": op}))

    def _spatial(self, node: Any, name: str, attrs: dict[str, Any], x: str,
                 out_shape: tuple[int, ...]) -> tuple[str, int, dict[str, Any]]:
        in_shape = self._shape(x)
        if len(in_shape) != 4:
            raise ModelError(f"unsupported op '{node.op_type}' on rank-{len(in_shape)} "
                             f"input (node '{name}'): only 2-D spatial ops are planned")
        if node.op_type == "Conv":
            w_shape = self._shape(node.input[1])
            kh, kw = attrs.get("kernel_shape", w_shape[2:4])
        else:
            kh, kw = attrs["kernel_shape"]
        sh, sw = attrs.get("strides", (1, 1))
        dh, dw = attrs.get("dilations", (1, 1))
        pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pads = tuple(_same_pads(in_shape[2:4], out_shape[2:4], (kh, kw), (sh, sw), (dh, dw),
                                    auto_pad == "SAME_LOWER"))
        group = attrs.get("group", 1)
        in_c = in_shape[1]
        macs = 0
        kind = node.op_type
        if kind == "Conv":
            macs = conv_macs(_prod(out_shape), kh, kw, in_c, group)
            if group > 1 and group == in_c:
                kind = "DepthwiseConv"
        return kind, macs, {"kernel": (kh, kw), "stride": (sh, sw), "dilation": (dh, dw),
                            "pads": pads, "group": group}

    def _pad(self, node: Any, name: str, attrs: dict[str, Any],
             out_shape: tuple[int, ...]) -> dict[str, Any]:
        if "pads" in attrs:
            pads = list(attrs["pads"])
        else:
            src = node.input[1] if len(node.input) > 1 else ""
            init = {t.name: t for t in self.g.initializer}.get(src)
            if init is None:
                raise ModelError(f"unsupported op 'Pad' with computed pads (node '{name}')")
            from onnx import numpy_helper

            pads = [int(v) for v in numpy_helper.to_array(init)]
        rank = len(out_shape)
        if rank != 4 or pads[0] or pads[rank]:
            raise ModelError(f"unsupported op 'Pad' on the batch axis (node '{name}')")
        return {"pads": (pads[2], pads[3], pads[2 + rank], pads[3 + rank])}


def _same_pads(in_hw: tuple[int, ...], out_hw: tuple[int, ...], k: tuple[int, int],
               s: tuple[int, int], d: tuple[int, int], lower: bool) -> list[int]:
    begin, end = [], []
    for i in range(2):
        total = max((out_hw[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i], 0)
        small = total // 2
        begin.append(total - small if lower else small)
        end.append(small if lower else total - small)
    return [*begin, *end]


def _prod(shape: tuple[int, ...]) -> int:
    p = 1
    for d in shape:
        p *= d
    return p
