"""Elementwise ops: output row r needs input row r (broadcast operands are read whole).

Int8 (TFLite reference semantics):
- ADD / SUB: both operands offset by their zero points, shifted left 20 bits, scaled by
  multipliers (scale_i / (2 * max scale)), summed (or subtracted), scaled by
  2 * max scale / (2**20 * output scale), offset, clamped to the fused activation.
- MUL: (x1 - zp1) * (x2 - zp2) scaled by s1 * s2 / s_out (computed in float32, as TFLite
  does), offset, clamped.
- MAXIMUM / MINIMUM: on the raw values (one scale for all).
- RELU / RELU6 (unfused): requantized by s_in / s_out (float32 quotient), clamped.
- QUANTIZE: float32 -> int8 as round(x / scale) + zp (float32 division, ties away from
  zero), or int8 -> int8 requantization by double(s_in) / double(s_out).
- DEQUANTIZE: int8 -> float32 as float(double(scale) * (q - zp)).
Float ops compute in float32 (ONNX Runtime's type) except where noted.
"""

from __future__ import annotations

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.kernels.base import Op, Weights, int_range
from flashswap.exec.kernels.fixedpoint import (
    activation_range,
    mbqm,
    quantize_float32,
    quantize_multiplier,
    round_half_away_array,
)
from flashswap.model.graph import Graph, Node

FLOAT_ACTS = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}
QUANT_DTYPES = ("int8", "uint8", "int16")


class Elementwise(Op):
    """Operands in source order (activations and constants): `operands()` returns them
    sliced to the band."""

    elementwise = True

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        args = node.attrs.get("args") or (*node.inputs, *node.weights)
        self.args = tuple(a for a in args if a and a in graph.tensors)

    def operands(self, xs, firsts, weights, r0, r1) -> list[np.ndarray]:
        ops = []
        for name in self.args:
            if name in self.inputs:
                i = self.inputs.index(name)
                ops.append(self.slice_input(i, xs[i], firsts[i], r0, r1))
            else:
                ops.append(self.weight(weights, name))
        return ops

    def is_quantized(self, name: str) -> bool:
        return self.graph.tensors[name].dtype in QUANT_DTYPES


# ---- binary ----------------------------------------------------------------------------


class BinaryInt8(Elementwise):
    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        if len(self.args) != 2:
            raise ModelError(f"op '{node.name}' ({node.op_type}) needs two operands")
        q1, q2, qo = (self.quant(self.args[0]), self.quant(self.args[1]),
                      self.quant(self.out))
        self.zp1, self.zp2, self.zpo = q1.zero_point[0], q2.zero_point[0], qo.zero_point[0]
        lo, hi = int_range(graph.tensors[self.out].dtype)
        self.range = (lo, hi)
        self.act = activation_range(node.attrs.get("activation", "NONE"), qo.scale[0],
                                    self.zpo, lo, hi)
        op = node.op_type
        s1, s2, so = (np.float32(q1.scale[0]), np.float32(q2.scale[0]),
                      np.float32(qo.scale[0]))
        if op in ("Add", "Sub"):
            self.left_shift = 20
            twice_max = float(np.float32(2) * max(s1, s2))
            self.m1 = quantize_multiplier(float(s1) / twice_max)
            self.m2 = quantize_multiplier(float(s2) / twice_max)
            self.mo = quantize_multiplier(twice_max / float(np.float32(1 << 20) * so))
        elif op == "Mul":
            self.mo = quantize_multiplier(float(s1 * s2 / so))  # float32 arithmetic
        elif op in ("Max", "Min"):
            if (q1.scale, q1.zero_point) != (qo.scale, qo.zero_point) or \
                    (q2.scale, q2.zero_point) != (qo.scale, qo.zero_point):
                raise ModelError(f"op '{node.name}' ({op}): int8 operands and output must "
                                 "share one quantization")
        else:
            raise ModelError(f"no int8 kernel for op '{node.attrs.get('source_op', op)}'")

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        a, b = (v.astype(np.int64) for v in self.operands(xs, firsts, weights, r0, r1))
        op = self.node.op_type
        if op in ("Add", "Sub"):
            ls = 1 << self.left_shift
            sa = mbqm((a - self.zp1) * ls, *self.m1)
            sb = mbqm((b - self.zp2) * ls, *self.m2)
            y = mbqm(sa + sb if op == "Add" else sa - sb, *self.mo) + self.zpo
            y = np.clip(y, *self.act)
        elif op == "Mul":
            y = np.clip(mbqm((a - self.zp1) * (b - self.zp2), *self.mo) + self.zpo, *self.act)
        elif op == "Max":
            y = np.clip(np.maximum(a, b), *self.act)
        else:
            y = np.clip(np.minimum(a, b), *self.act)
        out[...] = np.broadcast_to(y, out.shape).astype(self.out_dtype)


class BinaryFloat(Elementwise):
    FUNCS = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
             "Max": np.maximum, "Min": np.minimum}

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        if node.op_type not in self.FUNCS:
            raise ModelError(f"no float kernel for op '{node.op_type}'")
        self.act = FLOAT_ACTS.get(node.attrs.get("activation", "NONE"))

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        vals = [v.astype(np.float32) for v in self.operands(xs, firsts, weights, r0, r1)]
        y = vals[0]
        for v in vals[1:]:  # ONNX Sum / Max / Min take any number of operands
            y = self.FUNCS[self.node.op_type](y, v)
        if self.act is not None:
            y = np.clip(y, *self.act)
        out[...] = np.broadcast_to(y, out.shape).astype(self.out_dtype)


# ---- unary ------------------------------------------------------------------------------


class ReluInt8(Elementwise):
    """TFLite RELU / RELU6 / RELU_N1_TO_1 as separate ops (QuantizedReluX)."""

    BOUNDS = {"Relu": (0.0, None), "Relu6": (0.0, 6.0)}

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        xq, oq = self.quant(self.inputs[0]), self.quant(self.out)
        self.zpi, self.zpo = xq.zero_point[0], oq.zero_point[0]
        self.m = quantize_multiplier(float(np.float32(xq.scale[0]) / np.float32(oq.scale[0])))
        lo, hi = int_range(graph.tensors[self.out].dtype)
        src = node.attrs.get("source_op", node.op_type)
        amin, amax = (-1.0, 1.0) if src == "RELU_N1_TO_1" else self.BOUNDS[node.op_type]
        self.lo = max(lo, quantize_float32(amin, oq.scale[0], self.zpo))
        self.hi = hi if amax is None else min(hi, quantize_float32(amax, oq.scale[0], self.zpo))

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.int64)
        y = mbqm(x - self.zpi, *self.m) + self.zpo
        out[...] = np.clip(y, self.lo, self.hi).astype(self.out_dtype).reshape(out.shape)


class Quantize(Elementwise):
    """TFLite QUANTIZE (float -> int8, or int8 -> int8 requantization) and ONNX
    QuantizeLinear (float -> int8, ties to even as ONNX specifies)."""

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        oq = self.quant(self.out)
        self.scale, self.zpo = oq.scale[0], oq.zero_point[0]
        self.range = int_range(graph.tensors[self.out].dtype)
        self.requant = self.is_quantized(self.inputs[0])
        if self.requant:
            xq = self.quant(self.inputs[0])
            self.zpi = xq.zero_point[0]
            self.m = quantize_multiplier(float(xq.scale[0]) / float(oq.scale[0]))
        self.onnx = node.attrs.get("source_op") == "QuantizeLinear"

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1)
        if self.requant:
            y = mbqm(x.astype(np.int64) - self.zpi, *self.m) + self.zpo
        elif self.onnx:
            y = np.rint(x.astype(np.float32) / np.float32(self.scale)) + self.zpo
        else:
            q = x.astype(np.float32) / np.float32(self.scale)  # float32, as TFLite
            y = round_half_away_array(q) + self.zpo
        out[...] = np.clip(y, *self.range).astype(self.out_dtype).reshape(out.shape)


class Dequantize(Elementwise):
    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        xq = self.quant(self.inputs[0])
        if xq.per_channel:
            raise ModelError(f"op '{node.name}': per-channel DEQUANTIZE of an activation")
        self.scale, self.zp = xq.scale[0], xq.zero_point[0]

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.float64)
        out[...] = (self.scale * (x - self.zp)).astype(self.out_dtype).reshape(out.shape)


class UnaryFloat(Elementwise):
    """Float activations: Relu, Relu6 / Clip, LeakyRelu, Sigmoid, Tanh, HardSwish, and
    BatchNormalization (inference: (x - mean) / sqrt(var + eps) * scale + bias)."""

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.float32)
        op, a = self.node.op_type, self.node.attrs
        if op == "Relu":
            y = np.maximum(x, np.float32(0))
        elif op == "Relu6":
            lo, hi = a.get("min", 0.0), a.get("max", 6.0)
            y = np.clip(x, np.float32(-np.inf if lo is None else lo),
                        np.float32(np.inf if hi is None else hi))
        elif op == "LeakyRelu":
            y = np.where(x >= 0, x, x * np.float32(a.get("alpha", 0.01)))
        elif op == "Sigmoid":
            y = (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)
        elif op == "Tanh":
            y = np.tanh(x)
        elif op == "HardSwish":
            y = x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1)
        elif op == "BatchNormalization":
            scale, bias, mean, var = (self.weight(weights, self.arg(k)).astype(np.float64)
                                      for k in range(1, 5))
            inv = scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))
            y = ((x - mean) * inv + bias).astype(np.float32)
        else:
            raise ModelError(f"no float kernel for op '{op}'")
        out[...] = y.astype(self.out_dtype).reshape(out.shape)
