"""TFLite flatbuffers into the internal graph, through the `tflite` package.

Reads subgraph 0. Every tensor keeps the element type the file states (an int8 model with a
float32 input has a 4-byte-per-element input). A tensor with data in its buffer is a
constant: weights (filters, biases, constant operands) are streamed from flash, parameters
(shapes, axes, paddings) are not. Tensors are NHWC, so rows = N*H for rank 4.

Kept for execution: `Graph.constants` (the buffers' data, read-only views of the file),
`Graph.quant` (scale, zero point and quantized dimension of every quantized tensor), and in
each `Node.attrs`: `args` (the op's inputs in order, '' for an absent optional one),
`activation` (fused: NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT), `padding` (SAME or
VALID), kernel/stride/dilation/pads/group (spatial ops), `depth_multiplier`, `axis`,
`keep_dims`, `axes`, `beta`, `paddings` ((before, after) per axis), `pad_value` (PADV2),
`perm`, `alpha` (LEAKY_RELU), `radius`/`bias`/`alpha`/`beta` (LRN).

Static-shape subgraphs are folded: SHAPE of a tensor whose shape the file fixes, and
STRIDED_SLICE, PACK, GATHER, CONCATENATION, RESHAPE, SQUEEZE, EXPAND_DIMS, CAST and
integer arithmetic on constants, become constants, so a RESHAPE fed by SHAPE ->
STRIDED_SLICE -> PACK is a plain view. Every op the planner cannot take is named in one
error line.

Operator codes: `OperatorCode.BuiltinCode()` in the tflite package returns the deprecated int8
field whenever the new int32 field is below 127, so a file that only sets the new field (as
newer converters may) decodes every op as ADD; we read both fields and take the larger, as
the TFLite schema's own reader does.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from flashswap.errors import ModelError
from flashswap.model.graph import ACTIVATION_DTYPES, Graph, Node, Quant, Tensor, conv_macs

_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
           7: "int16", 9: "int8", 10: "float64"}
# The schema's other TensorType values, to name them in errors.
_OTHER_TYPES = {5: "STRING", 8: "COMPLEX64", 11: "COMPLEX128", 12: "UINT64", 13: "RESOURCE",
                14: "VARIANT", 15: "UINT32", 16: "UINT16", 17: "INT4", 18: "BFLOAT16"}
_NP = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "uint8": np.uint8,
       "int64": np.int64, "bool": np.bool_, "int16": np.int16, "int8": np.int8,
       "float64": np.float64}
_SIMPLE = {
    "ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div", "MAXIMUM": "Max",
    "MINIMUM": "Min", "RELU": "Relu", "RELU6": "Relu6", "RELU_N1_TO_1": "Relu6",
    "LEAKY_RELU": "LeakyRelu", "LOGISTIC": "Sigmoid", "TANH": "Tanh",
    "HARD_SWISH": "HardSwish", "QUANTIZE": "Quantize", "DEQUANTIZE": "Dequantize",
    "LOCAL_RESPONSE_NORMALIZATION": "LRN", "L2_NORMALIZATION": "LRN", "SOFTMAX": "Softmax",
}
_ALIAS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
# Ops whose constant inputs are parameters (shapes, axes, paddings), not streamed weights.
_PARAM_INPUTS = _ALIAS | {"PAD", "PADV2", "MEAN", "TRANSPOSE"}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
# Ops evaluated at import time when every input is constant (shape arithmetic).
_FOLDABLE = {"SHAPE", "STRIDED_SLICE", "PACK", "GATHER", "CONCATENATION", "RESHAPE", "SQUEEZE",
             "EXPAND_DIMS", "CAST", "ADD", "SUB", "MUL", "FLOOR_DIV", "DEQUANTIZE"}
_OPTIONS = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
            "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions",
            "FULLY_CONNECTED": "FullyConnectedOptions", "CONCATENATION": "ConcatenationOptions",
            "ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions",
            "SOFTMAX": "SoftmaxOptions", "MEAN": "ReducerOptions",
            "LEAKY_RELU": "LeakyReluOptions",
            "LOCAL_RESPONSE_NORMALIZATION": "LocalResponseNormalizationOptions",
            "STRIDED_SLICE": "StridedSliceOptions", "PACK": "PackOptions",
            "GATHER": "GatherOptions", "SHAPE": "ShapeOptions", "L2_NORMALIZATION":
            "L2NormOptions"}


def _rows(shape: tuple[int, ...]) -> int:
    if len(shape) == 4:
        return shape[0] * shape[1]
    return shape[0] if len(shape) == 2 else 1


def builtin_code(opcode: Any) -> int:
    """The operator's builtin code from both schema fields (see the module docstring)."""
    import flatbuffers  # a dependency of tflite

    deprecated = int(opcode.DeprecatedBuiltinCode())
    tab = opcode._tab
    off = tab.Offset(10)
    new = int(tab.Get(flatbuffers.number_types.Int32Flags, off + tab.Pos)) if off else 0
    return max(deprecated, new)


def load_tflite(path: str, dtype: str | None = None,
                input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Graph:
    """Reads a .tflite file; ModelError names the file, or every op that is not supported.

    `dtype` is a planning what-if for a float model only (every activation float32):
    activations counted at `dtype`, weights as an int8 deployment stores them (int8, int32
    biases); the graph then plans but cannot run. A model that states quantized types
    refuses it. `input_shapes` pins inputs whose shape the file leaves dynamic.
    """
    try:
        import tflite
        from tflite.utils import BUILTIN_OPCODE2NAME
    except ImportError as e:  # pragma: no cover - the `models` extra is not installed
        raise ModelError(f"reading TFLite needs the 'tflite' package: pip install tflite ({e})"
                         ) from None
    try:
        with open(path, "rb") as f:
            buf = f.read()
        if not buf:
            raise ValueError("the file is empty")
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
        model = tflite.Model.GetRootAs(buf, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("the model has no subgraph")
        importer = _Importer(tflite, BUILTIN_OPCODE2NAME, model, buf, dtype,
                             dict(input_shapes or {}))
        return importer.build(os.path.splitext(os.path.basename(path))[0])
    except ModelError:
        raise
    except Exception as e:  # a malformed flatbuffer fails anywhere inside the accessors
        msg = " ".join(str(e).split()) or type(e).__name__
        if isinstance(e, struct.error | IndexError):
            msg = f"truncated or corrupt flatbuffer ({msg})"
        raise ModelError(f"cannot read TFLite model '{path}': {msg}") from None


class _Importer:
    def __init__(self, tflite: Any, names: dict[int, str], model: Any, buf: bytes,
                 dtype: str | None, input_shapes: dict[str, tuple[int, ...]]) -> None:
        self.tfl = tflite
        self.names = names
        self.model = model
        self.buf = buf
        self.sg = model.Subgraphs(0)
        self.dtype = dtype
        self.input_shapes = input_shapes
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.constants: dict[str, np.ndarray] = {}
        self.quant: dict[str, Quant] = {}
        self.tname: list[str] = []
        self.values: dict[int, np.ndarray] = {}  # tensor index -> constant (file or folded)
        self.unsupported: list[str] = []
        seen: dict[str, int] = {}
        for i in range(self.sg.TensorsLength()):
            t = self.sg.Tensors(i)
            name = (t.Name() or b"").decode("utf-8", "replace") or f"tensor{i}"
            if name in seen:  # names are not required to be unique in a flatbuffer
                name = f"{name}#{i}"
            seen[name] = i
            self.tname.append(name)
        self.shapes = [self._file_shape(i) for i in range(self.sg.TensorsLength())]
        self.override = self._override()

    # ---- tensors ------------------------------------------------------------------------
    def _type(self, i: int) -> str:
        ttype = self.sg.Tensors(i).Type()
        if ttype not in _DTYPES:
            raise ModelError(f"tensor '{self.tname[i]}' has unsupported type "
                             f"{_OTHER_TYPES.get(ttype, ttype)}")
        return _DTYPES[ttype]

    def _file_shape(self, i: int) -> tuple[int, ...]:
        t = self.sg.Tensors(i)
        return tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    def _override(self) -> str | None:
        """The what-if dtype, checked against the types the file states."""
        if self.dtype is None:
            return None
        if self.dtype not in ACTIVATION_DTYPES:
            raise ModelError(f"unsupported activation dtype '{self.dtype}' "
                             f"(choose {', '.join(ACTIVATION_DTYPES)})")
        stated = {self._type(int(i)) for i in self.sg.InputsAsNumpy()}
        for k in range(self.sg.OperatorsLength()):
            op = self.sg.Operators(k)
            outs = op.OutputsAsNumpy() if op.OutputsLength() else []
            stated.update(self._type(int(i)) for i in outs)
        stated -= {"int32", "int64", "bool"}  # shape arithmetic, folded away
        if stated == {self.dtype}:
            return None
        if stated != {"float32"}:
            raise ModelError(f"the model states its element types ({', '.join(sorted(stated))})"
                             f"; a dtype override is a what-if for float models only")
        return self.dtype

    def _shape(self, i: int) -> tuple[int, ...]:
        shape = self.shapes[i]
        if any(d <= 0 for d in shape):
            raise ModelError(f"tensor '{self.tname[i]}' has a dynamic shape {list(shape)}")
        return shape

    def _data(self, i: int) -> np.ndarray | None:
        """The constant data of tensor i from its buffer, or None if it has none."""
        t = self.sg.Tensors(i)
        if t.Buffer() <= 0 or t.Buffer() >= self.model.BuffersLength():
            return None
        b = self.model.Buffers(t.Buffer())
        dtype = np.dtype(_NP[self._type(i)])
        if b.Offset() > 1:  # data after the flatbuffer (models over 2 GB)
            start, size = int(b.Offset()), int(b.Size())
            if start + size > len(self.buf):
                raise ModelError(f"tensor '{self.tname[i]}': its data lies past the end of "
                                 "the file (truncated)")
            raw = np.frombuffer(self.buf, np.uint8, size, start)
        elif b.DataLength() > 0:
            raw = b.DataAsNumpy()
        else:
            return None
        shape = self._shape(i)
        n = int(np.prod(shape)) * dtype.itemsize
        if raw.size != n:
            raise ModelError(f"tensor '{self.tname[i]}': {raw.size} data bytes for shape "
                             f"{list(shape)} of {dtype} ({n} bytes)")
        arr = raw.view(dtype).reshape(shape)
        arr.flags.writeable = False
        return arr

    def _is_const(self, i: int) -> bool:
        if i not in self.values:
            data = self._data(i)
            if data is None:
                return False
            self.values[i] = data
        return True

    def _quant(self, i: int) -> None:
        q = self.sg.Tensors(i).Quantization()
        if q is None or q.ScaleLength() == 0:
            return
        scales = tuple(float(s) for s in q.ScaleAsNumpy())
        zps = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else \
            (0,) * len(scales)
        self.quant[self.tname[i]] = Quant(scales, zps, int(q.QuantizedDimension()))

    def _add(self, i: int, weight: bool, bias: bool = False) -> str:
        name = self.tname[i]
        shape = self._shape(i)
        dtype = self._type(i)
        if weight:
            if self.override is not None and dtype == "float32":
                dtype = "int32" if bias else "int8"  # as an int8 deployment stores them
            self.tensors[name] = Tensor(name, shape, dtype, True)
            self.constants[name] = self.values[i]
        else:
            dtype = self.override or dtype
            self.tensors[name] = Tensor(name, shape, dtype, False, _rows(shape))
        self._quant(i)
        return name

    def _param(self, i: int) -> np.ndarray:
        if not self._is_const(i):
            raise ModelError(f"tensor '{self.tname[i]}' must be constant")
        self.constants[self.tname[i]] = self.values[i]
        return self.values[i]

    # ---- graph --------------------------------------------------------------------------
    def _pin_inputs(self) -> None:
        inputs = [int(i) for i in self.sg.InputsAsNumpy()]
        names = {self.tname[i]: i for i in inputs}
        for name, shape in self.input_shapes.items():
            if name not in names:
                raise ModelError(f"--input-shape names '{name}', but the model's inputs are "
                                 f"{', '.join(names) or 'none'}")
            i = names[name]
            t = self.sg.Tensors(i)
            sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if \
                t.ShapeSignatureLength() else self.shapes[i]
            pinned = tuple(int(d) for d in shape)
            if len(pinned) != len(sig) or any(s > 0 and s != p for s, p in zip(sig, pinned,
                                                                            strict=True)):
                raise ModelError(f"input '{name}' has shape {list(sig)} (-1: dynamic); "
                                 f"{list(pinned)} does not fit it")
            if any(d > 0 for d in self.shapes[i]) and pinned != self.shapes[i]:
                raise ModelError(f"input '{name}': the file's shapes are computed for "
                                 f"{list(self.shapes[i])}; pinning {list(pinned)} would need "
                                 "shape propagation, which the TFLite importer does not do")
            self.shapes[i] = pinned

    def build(self, name: str) -> Graph:
        self._pin_inputs()
        inputs = [self._add(int(i), False) for i in self.sg.InputsAsNumpy()]
        for k in range(self.sg.OperatorsLength()):
            self._op(self.sg.Operators(k), k)
        if self.unsupported:
            kinds = list(dict.fromkeys(u.split(" (")[0].strip("'") for u in self.unsupported))
            if len(self.unsupported) == 1:
                raise ModelError(f"unsupported op {self.unsupported[0]}")
            raise ModelError(f"{len(self.unsupported)} unsupported ops ({', '.join(kinds)}): "
                             + "; ".join(self.unsupported))
        outputs = [self.tname[int(i)] for i in self.sg.OutputsAsNumpy()]
        for o in outputs:
            if o not in self.tensors:
                raise ModelError(f"graph output '{o}' is constant or never produced")
        return Graph(name, self.tensors, self.nodes, inputs, outputs, "tflite",
                     constants=self.constants, quant=self.quant,
                     dtype_override=self.override).validate()

    def _options(self, op: Any, opname: str) -> Any:
        cls_name = _OPTIONS.get(opname)
        table = op.BuiltinOptions()
        if cls_name is None or table is None:
            return None
        opts = getattr(self.tfl, cls_name)()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def _op(self, op: Any, k: int) -> None:
        code = builtin_code(self.model.OperatorCodes(op.OpcodeIndex()))
        opname = self.names.get(code, f"BUILTIN_{code}")
        if code == 32:  # CUSTOM
            custom = self.model.OperatorCodes(op.OpcodeIndex()).CustomCode()
            opname = f"CUSTOM:{(custom or b'?').decode('utf-8', 'replace')}"
        raw_ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        ins = [i for i in raw_ins if i >= 0]
        outs = [int(i) for i in op.OutputsAsNumpy()]
        node_name = self.tname[outs[0]] if outs else f"op{k}"
        where = f"'{opname}' (op {k}, output '{node_name}')"
        if any(self.tname[i] not in self.tensors and not self._is_const(i) for i in ins):
            # An input of an op already refused: the refusal names the model's problem.
            if self.unsupported:
                self._skip(outs)
                return
        if ins and all(self._is_const(i) for i in ins) or (opname == "SHAPE" and ins):
            if opname in _FOLDABLE:
                self._fold(op, opname, ins, outs, k)
                return
        acts = [self.tname[i] for i in ins if not self._is_const(i)]
        if not acts:
            if opname not in _FOLDABLE and opname not in _KINDS:
                self.unsupported.append(where)
                self._skip(outs)
                return
            raise ModelError(f"op {k} ({opname}) has no activation input")
        if opname not in _KINDS:
            self.unsupported.append(where)
            self._skip(outs)
            return
        if self.unsupported:  # keep scanning for more unsupported ops, build nothing
            self._skip(outs)
            return
        has_bias = opname in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        weights = [] if opname in _PARAM_INPUTS else [
            self._add(i, True, has_bias and len(raw_ins) > 2 and i == raw_ins[2])
            for i in ins if self._is_const(i)]
        attrs: dict[str, Any] = {
            "source_op": opname,
            "args": tuple(self.tname[i] if i >= 0 else "" for i in raw_ins),
        }
        opts = self._options(op, opname)
        if opts is not None and hasattr(opts, "FusedActivationFunction"):
            act = int(opts.FusedActivationFunction())
            attrs["activation"] = _ACTIVATIONS.get(act, f"UNKNOWN_{act}")
        kind, macs = _KINDS[opname](self, op, opts, ins, outs, attrs, k)
        out_names = tuple(self._add(i, False) for i in outs)
        self.nodes.append(Node(node_name, kind, tuple(acts), tuple(weights), out_names, macs,
                               attrs))

    def _skip(self, outs: list[int]) -> None:
        """Marks the outputs of a refused op as known, so later ops are still checked."""
        for i in outs:
            self.values.pop(i, None)
            self.tensors.setdefault(self.tname[i], Tensor(self.tname[i], (1,), "int8", False))

    # ---- folding --------------------------------------------------------------------------
    def _fold(self, op: Any, opname: str, ins: list[int], outs: list[int], k: int) -> None:
        opts = self._options(op, opname)
        # Every input is constant, except SHAPE's (None: only its shape is read).
        vals: list[Any] = [self.values.get(i) for i in ins]
        out_dtype = _NP[self._type(outs[0])]
        res: Any
        if opname == "SHAPE":
            res = np.array(self._shape(ins[0]), dtype=out_dtype)
        elif opname == "STRIDED_SLICE":
            res = _strided_slice(vals[0], vals[1], vals[2], vals[3], opts)
        elif opname == "PACK":
            res = np.stack(vals, axis=int(opts.Axis()) if opts else 0)
        elif opname == "GATHER":
            res = np.take(vals[0], vals[1], axis=int(opts.Axis()) if opts else 0)
        elif opname == "CONCATENATION":
            res = np.concatenate(vals, axis=int(opts.Axis()) if opts else 0)
        elif opname in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
            res = vals[0].reshape(self._shape(outs[0]))
        elif opname == "CAST":
            res = vals[0]
        elif opname == "DEQUANTIZE":
            q = self.sg.Tensors(ins[0]).Quantization()
            res = vals[0]
            if q is not None and q.ScaleLength():
                scale = q.ScaleAsNumpy().astype(np.float64)
                zp = (q.ZeroPointAsNumpy().astype(np.float64) if q.ZeroPointLength()
                      else np.zeros_like(scale))
                shape = [1] * res.ndim
                if scale.size > 1:
                    shape[int(q.QuantizedDimension())] = scale.size
                res = (res.astype(np.float64) - zp.reshape(shape)) * scale.reshape(shape)
        else:
            if any(v.dtype.kind not in "iu" for v in vals):
                self.unsupported.append(f"'{opname}' (op {k}, output '{self.tname[outs[0]]}', "
                                        "on float constants)")
                self._skip(outs)
                return
            func = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply,
                    "FLOOR_DIV": np.floor_divide}[opname]
            res = func(vals[0], vals[1])
        # np.array, not ascontiguousarray: that turns a 0-d result into 1-d
        arr: np.ndarray = np.array(res, dtype=out_dtype, order="C")
        if self.shapes[outs[0]] and arr.shape != self.shapes[outs[0]] and \
                arr.size == int(np.prod(self.shapes[outs[0]])):
            arr = arr.reshape(self.shapes[outs[0]])
        arr.flags.writeable = False
        self.values[outs[0]] = arr
        self.shapes[outs[0]] = arr.shape


def _strided_slice(x: np.ndarray, begin: np.ndarray, end: np.ndarray, strides: np.ndarray,
                   opts: Any) -> np.ndarray:
    """TFLite STRIDED_SLICE on a constant (begin/end/shrink masks; no ellipsis or new axis)."""
    bm, em, sm = ((int(opts.BeginMask()), int(opts.EndMask()), int(opts.ShrinkAxisMask()))
                  if opts else (0, 0, 0))
    if opts and (opts.EllipsisMask() or opts.NewAxisMask()):
        raise ModelError("STRIDED_SLICE with an ellipsis or new-axis mask on constants")
    idx: list[Any] = []
    for a in range(len(begin)):
        b, e, s = int(begin[a]), int(end[a]), int(strides[a])
        if sm >> a & 1:
            idx.append(b)
            continue
        idx.append(slice(None if bm >> a & 1 else b, None if em >> a & 1 else e, s))
    return np.asarray(x[tuple(idx)])


# ---- op converters: (importer, op, options, inputs, outputs, attrs, k) -> (kind, macs) -----


def _conv(im: _Importer, op, o, ins, outs, attrs, k):
    depthwise = attrs["source_op"] == "DEPTHWISE_CONV_2D"
    filt = im._shape(ins[1])
    kh, kw = filt[1], filt[2]
    in_shape, out_shape = im._shape(ins[0]), im._shape(outs[0])
    stride = (o.StrideH(), o.StrideW())
    dil = (o.DilationHFactor(), o.DilationWFactor())
    group = in_shape[3] if depthwise else in_shape[3] // filt[3]
    attrs.update(kernel=(kh, kw), stride=stride, dilation=dil, group=group,
                 padding="SAME" if o.Padding() == 0 else "VALID",
                 pads=_pads(o.Padding(), in_shape, out_shape, (kh, kw), stride, dil))
    if depthwise:
        attrs["depth_multiplier"] = out_shape[3] // in_shape[3]
    macs = conv_macs(int(np.prod(out_shape)), kh, kw, in_shape[3], group)
    return ("DepthwiseConv" if depthwise else "Conv"), macs


def _pool(im: _Importer, op, o, ins, outs, attrs, k):
    in_shape, out_shape = im._shape(ins[0]), im._shape(outs[0])
    k2 = (o.FilterHeight(), o.FilterWidth())
    stride = (o.StrideH(), o.StrideW())
    attrs.update(kernel=k2, stride=stride, dilation=(1, 1),
                 padding="SAME" if o.Padding() == 0 else "VALID",
                 pads=_pads(o.Padding(), in_shape, out_shape, k2, stride, (1, 1)))
    return ("AveragePool" if attrs["source_op"] == "AVERAGE_POOL_2D" else "MaxPool"), 0


def _fc(im: _Importer, op, o, ins, outs, attrs, k):
    if o is not None:
        if int(o.WeightsFormat()) != 0:
            raise ModelError(f"unsupported op 'FULLY_CONNECTED' with shuffled weights (op {k})")
        attrs["keep_num_dims"] = bool(o.KeepNumDims())
    return "FullyConnected", int(np.prod(im._shape(outs[0]))) * im._shape(ins[1])[-1]


def _mean(im: _Importer, op, o, ins, outs, attrs, k):
    rank = len(im._shape(ins[0]))
    axes = sorted(int(a) % max(rank, 1) for a in im._param(ins[1]).reshape(-1))
    if rank != 4 or axes != [1, 2]:
        raise ModelError(f"unsupported op 'MEAN' over axes {axes} (op {k})")
    attrs.update(axes=tuple(axes), keep_dims=bool(o.KeepDims()) if o is not None else False)
    return "GlobalAveragePool", 0


def _concat(im: _Importer, op, o, ins, outs, attrs, k):
    rank = len(im._shape(outs[0]))
    axis = o.Axis() % rank
    attrs.update(axis=axis, rows_axis=axis in ((0, 1) if rank == 4 else (0,)))
    if any(im._is_const(i) for i in ins):
        raise ModelError(f"unsupported op 'CONCATENATION' with a constant operand (op {k})")
    return "Concat", 0


def _pad(im: _Importer, op, o, ins, outs, attrs, k):
    pads = im._param(ins[1]).reshape(-1, 2)
    if len(pads) != 4 or pads[0].any():
        raise ModelError(f"unsupported op '{attrs['source_op']}' on the batch axis (op {k})")
    attrs["pads"] = (int(pads[1][0]), int(pads[2][0]), int(pads[1][1]), int(pads[2][1]))
    attrs["paddings"] = tuple((int(a), int(b)) for a, b in pads)
    if attrs["source_op"] == "PADV2" and len(ins) > 2:
        attrs["pad_value"] = im._param(ins[2]).reshape(-1)[0].item()
    return "Pad", 0


def _transpose(im: _Importer, op, o, ins, outs, attrs, k):
    perm = [int(p) for p in im._param(ins[1]).reshape(-1)]
    attrs["perm"] = tuple(perm)
    attrs["rows_axis"] = any(perm[a] != a for a in ((0, 1) if len(perm) == 4 else (0,)))
    return "Transpose", 0


def _alias(im: _Importer, op, o, ins, outs, attrs, k):
    for i in ins[1:]:
        im._param(i)
    return "Reshape", 0


def _simple(im: _Importer, op, o, ins, outs, attrs, k):
    src = attrs["source_op"]
    if src == "SOFTMAX" and o is not None:
        attrs["beta"] = float(o.Beta())
    elif src == "RELU_N1_TO_1":  # planned as a clamp like RELU6, with its own bounds
        attrs.update(min=-1.0, max=1.0)
    elif src == "LEAKY_RELU" and o is not None:
        attrs["alpha"] = float(o.Alpha())
    elif src == "LOCAL_RESPONSE_NORMALIZATION" and o is not None:
        attrs.update(radius=int(o.Radius()), bias=float(o.Bias()), alpha=float(o.Alpha()),
                     beta=float(o.Beta()))
    return _SIMPLE[src], 0


_KINDS = {"CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "AVERAGE_POOL_2D": _pool,
          "MAX_POOL_2D": _pool, "FULLY_CONNECTED": _fc, "MEAN": _mean,
          "CONCATENATION": _concat, "PAD": _pad, "PADV2": _pad, "TRANSPOSE": _transpose,
          **{a: _alias for a in _ALIAS}, **{s: _simple for s in _SIMPLE}}


def _pads(padding: int, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
          k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]) -> tuple[int, ...]:
    """(top, left, bottom, right) for TFLite's SAME (0) or VALID (1) padding on NHWC."""
    if padding != 0:
        return (0, 0, 0, 0)
    pad = []
    for i in range(2):
        total = max((out_shape[1 + i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_shape[1 + i], 0)
        pad.append((total // 2, total - total // 2))
    return (pad[0][0], pad[1][0], pad[0][1], pad[1][1])
