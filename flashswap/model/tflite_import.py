"""TFLite flatbuffers into the internal graph, through the `tflite` package.

Reads subgraph 0. A tensor with data in its buffer is a weight (kept at its file dtype: int8
filters, int32 biases in an int8 model); every other tensor is an activation at `dtype`.
Tensors are NHWC, so rows = N*H for rank 4. Fused activation functions need no step of
their own. Operator codes: `OperatorCode.BuiltinCode()` in the tflite package returns the
deprecated int8 field whenever the new int32 field is below 127, so a file that only sets the
new field (as newer converters may) decodes every op as ADD; we read both fields and take
the larger, as the TFLite schema's own reader does.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from flashswap.errors import ModelError
from flashswap.model.graph import Graph, Node, Tensor, conv_macs

_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
           7: "int16", 9: "int8", 10: "float64"}
_SIMPLE = {
    "ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div", "MAXIMUM": "Max",
    "MINIMUM": "Min", "RELU": "Relu", "RELU6": "Relu6", "LEAKY_RELU": "LeakyRelu",
    "LOGISTIC": "Sigmoid", "TANH": "Tanh", "HARD_SWISH": "HardSwish", "QUANTIZE": "Quantize",
    "DEQUANTIZE": "Dequantize", "LOCAL_RESPONSE_NORMALIZATION": "LRN",
    "L2_NORMALIZATION": "LRN", "SOFTMAX": "Softmax",
}
_ALIAS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
# Ops whose constant inputs are parameters (shapes, axes, paddings), not streamed weights.
_PARAM_INPUTS = _ALIAS | {"PAD", "PADV2", "MEAN", "TRANSPOSE", "CONCATENATION"}


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


def load_tflite(path: str, dtype: str = "int8") -> Graph:
    """Reads a .tflite file; ModelError names the file, or the op that is not supported."""
    try:
        import tflite
        from tflite.utils import BUILTIN_OPCODE2NAME
    except ImportError as e:  # pragma: no cover - the `models` extra is not installed
        raise ModelError(f"reading TFLite needs the 'tflite' package: pip install tflite ({e})"
                         ) from None
    try:
        with open(path, "rb") as f:
            buf = f.read()
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
        model = tflite.Model.GetRootAs(buf, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("the model has no subgraph")
        return _Importer(tflite, BUILTIN_OPCODE2NAME, model, dtype).build(
            os.path.splitext(os.path.basename(path))[0])
    except ModelError:
        raise
    except Exception as e:  # a malformed flatbuffer fails anywhere inside the accessors
        raise ModelError(f"cannot read TFLite model '{path}': {e}") from None


class _Importer:
    def __init__(self, tflite: Any, names: dict[int, str], model: Any, dtype: str) -> None:
        self.tfl = tflite
        self.names = names
        self.model = model
        self.sg = model.Subgraphs(0)
        self.dtype = dtype
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.tname: list[str] = []
        self.const: list[bool] = []
        seen: dict[str, int] = {}
        for i in range(self.sg.TensorsLength()):
            t = self.sg.Tensors(i)
            name = (t.Name() or b"").decode("utf-8", "replace") or f"tensor{i}"
            if name in seen:  # names are not required to be unique in a flatbuffer
                name = f"{name}#{i}"
            seen[name] = i
            self.tname.append(name)
            b = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
            self.const.append(b is not None and (b.DataLength() > 0 or b.Size() > 0))

    def _shape(self, i: int) -> tuple[int, ...]:
        shape = tuple(int(d) for d in self.sg.Tensors(i).ShapeAsNumpy()) \
            if self.sg.Tensors(i).ShapeLength() else ()
        if any(d <= 0 for d in shape):
            raise ModelError(f"tensor '{self.tname[i]}' has a dynamic shape {list(shape)}")
        return shape

    def _add(self, i: int, weight: bool) -> str:
        name = self.tname[i]
        shape = self._shape(i)
        if weight:
            ttype = self.sg.Tensors(i).Type()
            if ttype not in _DTYPES:
                raise ModelError(f"weight '{name}' has unsupported type {ttype}")
            self.tensors[name] = Tensor(name, shape, _DTYPES[ttype], True)
        else:
            self.tensors[name] = Tensor(name, shape, self.dtype, False, _rows(shape))
        return name

    def _data(self, i: int) -> np.ndarray:
        t = self.sg.Tensors(i)
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()
        np_type = {2: np.int32, 4: np.int64}.get(t.Type())
        if np_type is None or isinstance(raw, int):
            raise ModelError(f"tensor '{self.tname[i]}': expected int32/int64 parameters")
        return np.frombuffer(raw.tobytes(), dtype=np_type)

    def build(self, name: str) -> Graph:
        inputs = [self._add(int(i), False) for i in self.sg.InputsAsNumpy()]
        for k in range(self.sg.OperatorsLength()):
            self._op(self.sg.Operators(k), k)
        outputs = [self.tname[int(i)] for i in self.sg.OutputsAsNumpy()]
        return Graph(name, self.tensors, self.nodes, inputs, outputs, "tflite").validate()

    def _options(self, op: Any, cls: Any) -> Any:
        table = op.BuiltinOptions()
        if table is None:
            return None
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def _op(self, op: Any, k: int) -> None:
        code = builtin_code(self.model.OperatorCodes(op.OpcodeIndex()))
        opname = self.names.get(code, f"BUILTIN_{code}")
        if code == 32:  # CUSTOM
            custom = self.model.OperatorCodes(op.OpcodeIndex()).CustomCode()
            opname = f"CUSTOM:{(custom or b'?').decode('utf-8', 'replace')}"
        ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        ins = [i for i in ins if i >= 0]
        outs = [int(i) for i in op.OutputsAsNumpy()]
        node_name = self.tname[outs[0]] if outs else f"op{k}"
        acts = [self.tname[i] for i in ins if not self.const[i]]
        weights = [] if opname in _PARAM_INPUTS else [self._add(i, True) for i in ins
                                                      if self.const[i]]
        if not acts:
            raise ModelError(f"op {k} ({opname}) has no activation input")
        out_shape = self._shape(outs[0])
        macs = 0
        attrs: dict[str, Any] = {"source_op": opname}
        if opname in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = opname == "DEPTHWISE_CONV_2D"
            cls = self.tfl.DepthwiseConv2DOptions if depthwise else self.tfl.Conv2DOptions
            o = self._options(op, cls)
            filt = self._shape(ins[1])
            kh, kw = filt[1], filt[2]
            in_shape = self._shape(ins[0])
            stride = (o.StrideH(), o.StrideW())
            dil = (o.DilationHFactor(), o.DilationWFactor())
            group = in_shape[3] if depthwise else in_shape[3] // filt[3]
            kind = "DepthwiseConv" if depthwise else "Conv"
            macs = conv_macs(int(np.prod(out_shape)), kh, kw, in_shape[3], group)
            attrs.update(kernel=(kh, kw), stride=stride, dilation=dil, group=group,
                         pads=_pads(o.Padding(), in_shape, out_shape, (kh, kw), stride, dil))
        elif opname in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            o = self._options(op, self.tfl.Pool2DOptions)
            in_shape = self._shape(ins[0])
            k2 = (o.FilterHeight(), o.FilterWidth())
            stride = (o.StrideH(), o.StrideW())
            kind = "AveragePool" if opname == "AVERAGE_POOL_2D" else "MaxPool"
            attrs.update(kernel=k2, stride=stride, dilation=(1, 1),
                         pads=_pads(o.Padding(), in_shape, out_shape, k2, stride, (1, 1)))
        elif opname == "FULLY_CONNECTED":
            kind = "FullyConnected"
            macs = int(np.prod(out_shape)) * self._shape(ins[1])[-1]
        elif opname == "MEAN":
            axes = sorted(int(a) % 4 for a in self._data(ins[1]))
            if len(self._shape(ins[0])) != 4 or axes != [1, 2]:
                raise ModelError(f"unsupported op 'MEAN' over axes {axes} (op {k})")
            kind = "GlobalAveragePool"
        elif opname == "CONCATENATION":
            o = self._options(op, self.tfl.ConcatenationOptions)
            rank = len(out_shape)
            axis = o.Axis() % rank
            kind = "Concat"
            attrs["rows_axis"] = axis in ((0, 1) if rank == 4 else (0,))
        elif opname in ("PAD", "PADV2"):
            pads = self._data(ins[1]).reshape(-1, 2)
            if len(pads) != 4 or pads[0].any():
                raise ModelError(f"unsupported op '{opname}' on the batch axis (op {k})")
            kind = "Pad"
            attrs["pads"] = (int(pads[1][0]), int(pads[2][0]), int(pads[1][1]), int(pads[2][1]))
        elif opname == "TRANSPOSE":
            perm = [int(p) for p in self._data(ins[1])]
            kind = "Transpose"
            rank = len(perm)
            attrs["rows_axis"] = any(perm[a] != a for a in ((0, 1) if rank == 4 else (0,)))
        elif opname in _ALIAS:
            kind = "Reshape"
        elif opname in _SIMPLE:
            kind = _SIMPLE[opname]
        else:
            raise ModelError(f"unsupported op '{opname}' (op {k}, output '{node_name}')")
        out_names = tuple(self._add(i, False) for i in outs)
        self.nodes.append(Node(node_name, kind, tuple(acts), tuple(weights), out_names, macs,
                               attrs))


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
