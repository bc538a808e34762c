"""ONNX models into the internal graph, through the `onnx` package and its shape inference.

Element types come from the model tensor by tensor (a float32 model has 4-byte activations
and weights). `dtype` is a what-if for planning a float model as an int8 deployment
would store it: activations at `dtype`, weights int8, Conv/Gemm biases int32; such a graph
plans but cannot be executed (`Graph.dtype_override`).

Constants are initializers, outputs of Constant/ConstantOfShape nodes, and outputs of nodes
whose inputs are all constant (the onnx wheel's light ImageNet graphs build their weights with
ConstantOfShape, DenseNet unsqueezes its BN scales). A constant read by a non-constant node is
a weight, except the parameters of Pad, Clip, Reshape and the like. A symbolic batch dimension
is fixed to 1 before shape inference (an MCU runs one sample at a time); `input_shapes`
pins any other dynamic dimension.

For execution, `Graph.constants` maps each weight to its data in the executor's layout,
computed when first read (the light models' weights are hundreds of MB once materialized):
Conv filters OIHW -> OHWI; Gemm/MatMul weights -> (out_features, in_features), their columns
permuted when the input is a flattened NCHW map (the executor stores activations channels-
last, so a flatten of a C x H x W map reads H, W, C order); elementwise constants broadcast
against the channels-last activation. Node attrs add: args (inputs in order), count_include_pad,
alpha/beta (Gemm, LeakyRelu), epsilon, min/max (Clip), size/alpha/beta/bias (LRN), axis,
perm, paddings/pad_value/mode (Pad), storage_axes (Softmax).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from flashswap.errors import ModelError
from flashswap.model.graph import ACTIVATION_DTYPES, Graph, Node, Quant, Tensor, conv_macs

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
_SUPPORTED = _ALIAS | set(_SIMPLE) | {"Conv", "MaxPool", "AveragePool", "Gemm", "MatMul",
                                      "Concat", "Transpose", "Softmax", "Pad"}


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


def _storage_perm(rank: int) -> tuple[int, ...]:
    """Channels-last storage order of an NCHW-style shape (exec/kernels/layout.py)."""
    return (0, rank - 2, rank - 1, *range(1, rank - 2)) if rank >= 4 else tuple(range(rank))


def load_onnx(path: str, dtype: str | None = None,
              input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Graph:
    """Reads an .onnx file; ModelError names the file, or every op that is not supported."""
    try:
        import onnx
        from onnx import helper, shape_inference
    except ImportError as e:  # pragma: no cover - the `models` extra is not installed
        raise ModelError(f"reading ONNX needs the 'onnx' package: pip install onnx ({e})") from None
    try:
        model = onnx.load(path)
    except Exception as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise ModelError(f"cannot read ONNX model '{path}': {msg}") from None
    if not model.graph.node or not model.graph.output:
        raise ModelError(f"cannot read ONNX model '{path}': no graph (empty or truncated file)")
    init_names = {t.name for t in model.graph.initializer}
    pins = dict(input_shapes or {})
    real_inputs = [vi for vi in model.graph.input if vi.name not in init_names]
    for name in pins:
        if name not in {vi.name for vi in real_inputs}:
            raise ModelError(f"--input-shape names '{name}', but the model's inputs are "
                             f"{', '.join(vi.name for vi in real_inputs) or 'none'}")
    for vi in real_inputs:
        dims = vi.type.tensor_type.shape.dim
        if vi.name in pins:
            shape = tuple(int(d) for d in pins[vi.name])
            if len(shape) != len(dims) or any(d.dim_value and d.dim_value != s
                                              for d, s in zip(dims, shape, strict=True)):
                have = [d.dim_value or (d.dim_param or "?") for d in dims]
                raise ModelError(f"input '{vi.name}' has shape {have}; {list(shape)} does "
                                 "not fit it")
            for d, s in zip(dims, shape, strict=True):
                d.dim_value = s
        if dims:
            d0 = dims[0]
            if not d0.dim_value:
                d0.dim_value = 1
            elif d0.dim_value != 1:
                raise ModelError(f"'{path}': input '{vi.name}' has batch {d0.dim_value}; "
                                 "only batch 1 is planned")
    try:
        model = shape_inference.infer_shapes(model)
    except Exception as e:
        msg = " ".join(str(e).split())
        raise ModelError(f"'{path}': ONNX shape inference failed: {msg}") from None
    name = os.path.splitext(os.path.basename(path))[0]
    return _Importer(model, helper, dtype).build(name)


class _Importer:
    def __init__(self, model: Any, helper: Any, dtype: str | None) -> None:
        self.model = model
        self.g = model.graph
        self.helper = helper
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          13)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.types: dict[str, str] = {}
        for vi in [*self.g.input, *self.g.value_info, *self.g.output]:
            tt = vi.type.tensor_type
            if tt.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value or -1 for d in tt.shape.dim)
            if tt.elem_type:
                self.types[vi.name] = _ONNX_DTYPES.get(tt.elem_type, f"onnx_type_{tt.elem_type}")
        for t in self.g.initializer:
            self.shapes[t.name] = tuple(t.dims)
            self.types[t.name] = _ONNX_DTYPES.get(t.data_type, f"onnx_type_{t.data_type}")
        self.constants = {t.name for t in self.g.initializer}
        self.const_nodes: dict[str, Any] = {}  # constant tensor -> the node computing it
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.quant: dict[str, Quant] = {}
        self.values = _ConstantValues(model, self.const_nodes)
        self.layout_fixes: dict[str, Any] = {}  # weight -> function to exec layout
        self.alias_of: dict[str, str] = {}  # view -> its input
        self.dtype = dtype
        self.override = self._override(dtype)

    def _override(self, dtype: str | None) -> str | None:
        if dtype is None:
            return None
        if dtype not in ACTIVATION_DTYPES:
            raise ModelError(f"unsupported activation dtype '{dtype}' "
                             f"(choose {', '.join(ACTIVATION_DTYPES)})")
        stated = {self.types.get(vi.name, "float32") for vi in self.g.input
                  if vi.name not in self.constants}
        stated |= {self.types[o] for n in self.g.node for o in n.output if o in self.types}
        stated -= {"int32", "int64", "bool"}
        if stated == {dtype}:
            return None
        if not stated <= {"float32", "float16", "float64"}:
            raise ModelError(f"the model states its element types ({', '.join(sorted(stated))})"
                             f"; a dtype override is a what-if for float models only")
        return dtype

    def build(self, name: str) -> Graph:
        inputs = [vi.name for vi in self.g.input if vi.name not in self.constants]
        for n in inputs:
            self._activation(n)
        unsupported: list[str] = []
        for i, node in enumerate(self.g.node):
            ins = [x for x in node.input if x]
            if node.op_type in _CONSTANT_OPS or (ins and all(x in self.constants for x in ins)):
                for o in node.output:
                    if o:
                        self.constants.add(o)
                        self.const_nodes[o] = node
                continue
            node_name = node.name or f"{node.op_type}_{i}"
            if node.op_type not in _SUPPORTED:
                unsupported.append(f"'{node.op_type}' (node '{node_name}')")
                continue
            if unsupported:
                continue
            self._node(node, node_name)
        if len(unsupported) == 1:
            raise ModelError(f"unsupported op {unsupported[0]}")
        if unsupported:
            kinds = list(dict.fromkeys(u.split(" (")[0].strip("'") for u in unsupported))
            raise ModelError(f"{len(unsupported)} unsupported ops ({', '.join(kinds)}): "
                             + "; ".join(unsupported))
        outputs = [vi.name for vi in self.g.output]
        self._fix_flatten_fc()
        consts = _LazyConstants(self.values, self.layout_fixes,
                                [w for n in self.nodes for w in n.weights])
        return Graph(name, self.tensors, self.nodes, inputs, outputs, "onnx", constants=consts,
                     quant=self.quant, layout="nchw", dtype_override=self.override).validate()

    # ---- tensors ----------------------------------------------------------------------------
    def _shape(self, name: str) -> tuple[int, ...]:
        shape = self.shapes.get(name)
        if shape is None or any(d <= 0 for d in shape):
            raise ModelError(f"tensor '{name}' has no static shape after shape inference "
                             "(pin dynamic input dimensions with --input-shape NAME=1x3x224x224)")
        return shape

    def _activation(self, name: str) -> str:
        shape = self._shape(name)
        dtype = self.override or self.types.get(name, "float32")
        self.tensors[name] = Tensor(name, shape, dtype, False, _rows(shape))
        return name

    def _weight(self, name: str, bias: bool) -> str:
        dtype = self.types.get(name, "float32")
        if self.override is not None and dtype.startswith("float"):
            dtype = "int32" if bias else "int8"
        self.tensors[name] = Tensor(name, self._shape(name), dtype, True)
        return name

    def _param(self, name: str) -> np.ndarray:
        if name not in self.constants:
            raise ModelError(f"tensor '{name}' must be constant")
        return self.values[name]

    def _attrs(self, node: Any) -> dict[str, Any]:
        out = {}
        for a in node.attribute:
            v = self.helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, list):
                v = tuple(x.decode() if isinstance(x, bytes) else x for x in v)
            out[a.name] = v
        return out

    # ---- nodes ------------------------------------------------------------------------------
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
            weights.append(self._weight(x, bias))
        macs = 0
        extra: dict[str, Any] = {"args": tuple(node.input)}
        if op in _ALIAS:
            kind = "Reshape"
            self.alias_of[out] = acts[0]
        elif op in ("Conv", "MaxPool", "AveragePool"):
            kind, macs, sp = self._spatial(node, name, attrs, acts[0], out_shape)
            extra.update(sp)
            if op == "Conv":
                self.layout_fixes[node.input[1]] = _ohwi
            else:
                extra["count_include_pad"] = int(attrs.get("count_include_pad", 0))
                if len([o for o in node.output if o]) > 1:
                    raise ModelError(f"unsupported op 'MaxPool' with an indices output "
                                     f"(node '{name}')")
        elif op in ("Gemm", "MatMul"):
            if len(acts) != 1 or not consts or node.input[0] != acts[0]:
                raise ModelError(f"unsupported op '{op}' with two activation inputs "
                                 f"(node '{name}')")
            if attrs.get("transA", 0):
                raise ModelError(f"unsupported op 'Gemm' with transA (node '{name}')")
            a_shape = self._shape(acts[0])
            k = a_shape[-1]
            kind, macs = "FullyConnected", _prod(out_shape) * k
            trans_b = bool(attrs.get("transB", 0)) if op == "Gemm" else False
            self.layout_fixes[node.input[1]] = _fc_weight(trans_b)
            if len(node.input) > 2 and node.input[2]:
                n_out = out_shape[-1]
                self.layout_fixes[node.input[2]] = _fc_bias(n_out)
            extra.update(alpha=float(attrs.get("alpha", 1.0)), beta=float(attrs.get("beta", 1.0)))
        elif op in _SIMPLE:
            kind = _SIMPLE[op]
            extra.update(self._simple(node, name, attrs, acts, consts, out_shape))
        elif op == "Concat":
            rank = len(out_shape)
            axis = attrs["axis"] % rank
            if consts:
                raise ModelError(f"unsupported op 'Concat' with a constant operand (node "
                                 f"'{name}')")
            kind = "Concat"
            extra.update(axis=axis, rows_axis=axis in _row_axes(rank))
        elif op == "Transpose":
            rank = len(out_shape)
            perm = list(attrs["perm"]) if "perm" in attrs else list(range(rank))[::-1]
            kind = "Transpose"
            extra.update(perm=tuple(perm),
                         rows_axis=any(perm[a] != a for a in _row_axes(rank)))
        elif op == "Softmax":
            rank = len(out_shape)
            axis = attrs.get("axis", 1 if self.opset < 13 else -1) % rank
            # Before opset 13 Softmax flattens every axis from `axis` on into one row.
            spans = tuple(range(axis, rank)) if self.opset < 13 else (axis,)
            kind = "Softmax"
            order = _storage_perm(rank)
            extra.update(rows_axis=any(a in _row_axes(rank) for a in spans),
                         storage_axes=tuple(sorted(order.index(a) for a in spans)))
        elif op == "Pad":
            kind = "Pad"
            extra.update(self._pad(node, name, attrs, out_shape))
        else:  # pragma: no cover - _SUPPORTED lists every branch above
            raise ModelError(f"unsupported op '{op}' (node '{name}')")
        self._activation(out)
        self.nodes.append(Node(name, kind, tuple(acts), tuple(weights), (out,), macs,
                               {**extra, "source_op": op}))

    def _simple(self, node: Any, name: str, attrs: dict[str, Any], acts: list[str],
                consts: list[str], out_shape: tuple[int, ...]) -> dict[str, Any]:
        op = node.op_type
        extra: dict[str, Any] = {}
        if op == "Clip":
            lo, hi = attrs.get("min"), attrs.get("max")
            if len(node.input) > 1 and node.input[1]:
                lo = float(self._param(node.input[1]).reshape(-1)[0])
            if len(node.input) > 2 and node.input[2]:
                hi = float(self._param(node.input[2]).reshape(-1)[0])
            extra.update(min=lo, max=hi)
        elif op == "LeakyRelu":
            extra["alpha"] = float(attrs.get("alpha", 0.01))
        elif op == "BatchNormalization":
            extra["epsilon"] = float(attrs.get("epsilon", 1e-5))
        elif op == "LRN":
            extra.update(size=int(attrs["size"]), alpha=float(attrs.get("alpha", 1e-4)),
                         beta=float(attrs.get("beta", 0.75)), bias=float(attrs.get("bias", 1.0)))
        elif op in ("QuantizeLinear", "DequantizeLinear"):
            scale = self._param(node.input[1]).reshape(-1)
            zp = (self._param(node.input[2]).reshape(-1) if len(node.input) > 2
                  and node.input[2] else np.zeros(scale.shape, np.int64))
            q = Quant(tuple(float(s) for s in scale), tuple(int(z) for z in zp),
                      int(attrs.get("axis", 1)))
            self.quant[node.output[0] if op == "QuantizeLinear" else acts[0]] = q
        elif op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Sum"):
            rank = len(out_shape)
            for c in consts:
                self.layout_fixes[c] = _broadcast_const(rank)
            for a in acts:
                r = len(self._shape(a))
                if r != rank and rank >= 4 and _prod(self._shape(a)) > 1:
                    raise ModelError(f"unsupported op '{op}' broadcasting a rank-{r} "
                                     f"activation over a rank-{rank} map (node '{name}')")
        return extra

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
        auto_pad = attrs.get("auto_pad", "NOTSET")
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
            pads = [int(p) for p in attrs["pads"]]
        else:
            src = node.input[1] if len(node.input) > 1 else ""
            if src not in self.constants:
                raise ModelError(f"unsupported op 'Pad' with computed pads (node '{name}')")
            pads = [int(v) for v in self._param(src).reshape(-1)]
        rank = len(out_shape)
        if rank != 4 or pads[0] or pads[rank]:
            raise ModelError(f"unsupported op 'Pad' on the batch axis (node '{name}')")
        value = float(attrs.get("value", 0.0))
        if len(node.input) > 2 and node.input[2]:
            value = float(self._param(node.input[2]).reshape(-1)[0])
        return {"pads": (pads[2], pads[3], pads[2 + rank], pads[3 + rank]),
                "paddings": tuple((pads[a], pads[a + rank]) for a in range(rank)),
                "pad_value": value, "mode": attrs.get("mode", "constant")}

    # ---- flatten of NCHW maps into a fully connected layer ---------------------------------
    def _root(self, name: str) -> str:
        while name in self.alias_of:
            name = self.alias_of[name]
        return name

    def _fix_flatten_fc(self) -> None:
        """A view of a channels-last map read in NCHW order: Gemm/MatMul filters get their
        input columns permuted; any other reader of such a view cannot run (its consumer's
        `layout_error` says so when a kernel is made)."""
        for k, node in enumerate(self.nodes):
            for x in node.inputs:
                root = self._root(x)
                if root == x:
                    continue
                order = _storage_order(self._shape(root), self._shape(x))
                if order is None:
                    continue
                if node.op_type == "FullyConnected" and len(self._shape(x)) == 2:
                    w = node.weights[0]
                    self.layout_fixes[w] = _then(self.layout_fixes.get(w), _permute_cols(order))
                else:
                    attrs = {**node.attrs, "layout_error": (
                        f"op '{node.name}' reads '{x}', a reshape of the channels-last map "
                        f"'{root}' that changes its element order")}
                    self.nodes[k] = Node(node.name, node.op_type, node.inputs, node.weights,
                                         node.outputs, node.macs, attrs)


def _storage_order(root_shape: tuple[int, ...], view_shape: tuple[int, ...]
                   ) -> np.ndarray | None:
    """For each element of the view in its source (C) order, its position in the root's
    channels-last storage; None when that equals the view's own storage order."""
    if len(root_shape) < 4 and len(view_shape) < 4:
        return None  # both stored in source order
    n = _prod(root_shape)
    if _prod(view_shape) != n:
        raise ModelError(f"a reshape from {list(root_shape)} to {list(view_shape)} changes "
                         "the number of elements")
    src = np.arange(n, dtype=np.int64).reshape(root_shape)
    pos = np.empty(n, dtype=np.int64)
    pos[src.transpose(_storage_perm(len(root_shape))).reshape(-1)] = np.arange(n)
    view_src_pos = pos  # source flat index i of the view = source flat index i of the root
    own = np.arange(n, dtype=np.int64).reshape(view_shape)
    own_pos = np.empty(n, dtype=np.int64)
    own_pos[own.transpose(_storage_perm(len(view_shape))).reshape(-1)] = np.arange(n)
    return None if np.array_equal(view_src_pos, own_pos) else view_src_pos


# ---- weight layout transforms (source array -> executor layout) ---------------------------


def _ohwi(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1))


def _fc_weight(trans_b: bool):
    def fix(w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(w if trans_b else w.T)
    return fix


def _fc_bias(n_out: int):
    def fix(b: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.broadcast_to(b.reshape(-1) if b.size == n_out else b,
                                                    (n_out,)))
    return fix


def _broadcast_const(rank: int):
    """An elementwise constant broadcast against a rank-`rank` activation, channels-last."""
    def fix(c: np.ndarray) -> np.ndarray:
        full = c.reshape((1,) * (rank - c.ndim) + c.shape) if c.ndim < rank else c
        return np.ascontiguousarray(full.transpose(_storage_perm(full.ndim)))
    return fix


def _permute_cols(order: np.ndarray):
    def fix(w: np.ndarray) -> np.ndarray:
        out = np.empty_like(w)
        out[:, order] = w
        return out
    return fix


def _then(first, second):
    if first is None:
        return second
    return lambda w: second(first(w))


class _ConstantValues:
    """Values of constant tensors: initializers, and constant nodes evaluated on demand with
    onnx's reference evaluator (only when a value is read: planning never reads weights)."""

    def __init__(self, model: Any, const_nodes: dict[str, Any]) -> None:
        self.model = model
        self.const_nodes = const_nodes
        self.inits = {t.name: t for t in model.graph.initializer}
        self.cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.cache:
            self.cache[name] = self._compute(name)
        return self.cache[name]

    def _compute(self, name: str) -> np.ndarray:
        from onnx import helper, numpy_helper
        from onnx.reference import ReferenceEvaluator

        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        nodes, inits, seen = [], [], set()
        stack = [name]
        while stack:  # the constant node's ancestors
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in self.inits:
                inits.append(self.inits[t])
            elif t in self.const_nodes:
                node = self.const_nodes[t]
                if node not in nodes:
                    nodes.append(node)
                stack.extend(x for x in node.input if x)
        order = [n for n in self.model.graph.node if any(n is m for m in nodes)]
        out = helper.make_tensor_value_info(name, 0, None)
        g = helper.make_graph(order, "const", [], [out], inits)
        m = helper.make_model(g, opset_imports=self.model.opset_import)
        return np.asarray(ReferenceEvaluator(m).run(None, {})[0])  # type: ignore[index]


class _LazyConstants(Mapping):
    """Graph.constants of an ONNX model: weights in the executor's layout, computed on first
    read and kept (read-only arrays)."""

    def __init__(self, values: _ConstantValues, fixes: dict[str, Any], names: list[str]) -> None:
        self._source = values  # not `values`: that is Mapping.values()
        self._fixes = fixes
        self._names = list(dict.fromkeys(names))
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._cache:
            arr = self._source[name]
            fix = self._fixes.get(name)
            arr = np.ascontiguousarray(fix(arr) if fix else arr)
            arr.flags.writeable = False
            self._cache[name] = arr
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


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
