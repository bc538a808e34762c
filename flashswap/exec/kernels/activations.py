"""Int8 activation ops that are not a clamp: LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, and
int8 DIV (TFLite reference semantics).

- LOGISTIC / TANH: LiteRT's reference kernel looks values up in a 256-entry table built in
  float32 at Prepare (LUTPopulate): dequantize, apply the function, multiply by 1/out_scale,
  round half away from zero, add the zero point, clamp. The function is evaluated here in
  float64 and rounded to float32 (the correctly rounded value; libm's expf/tanhf agree to
  within an ulp, which could only matter at an exact rounding tie).
- HARD_SWISH: reference_ops::HardSwish's int16 fixed point (a "hi-res" input at 1/128 of
  the input scale, a ReLU6-ish ramp scaled to 3/32768, a truncating doubling high multiply).
- LEAKY_RELU: two requantizations, identity for x >= 0 and alpha for x < 0.
- DIV: the divisor's reciprocal by Newton-Raphson (GetReciprocal), the dividend normalized by
  its leading sign bits, then one requantization by s1 / (s2 * s_out) (float32 quotient).
"""

from __future__ import annotations

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.kernels.base import Weights, int_range
from flashswap.exec.kernels.elementwise import Elementwise
from flashswap.exec.kernels.fixedpoint import (
    activation_range,
    mbqm,
    quantize_multiplier,
    rdbpot,
    round_half_away_array,
    srdhm,
)
from flashswap.exec.kernels.softmax import one_over_one_plus_x
from flashswap.model.graph import Graph, Node


class LookupInt8(Elementwise):
    """LOGISTIC and TANH through LiteRT's 256-entry table."""

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        xq, oq = self.quant(self.inputs[0]), self.quant(self.out)
        lo, hi = int_range(graph.tensors[self.out].dtype)
        codes = np.arange(lo, hi + 1, dtype=np.int64)
        x = (np.float32(xq.scale[0]) * (codes - xq.zero_point[0]).astype(np.float32))
        if node.op_type == "Sigmoid":
            e = np.exp(-x.astype(np.float64)).astype(np.float32)
            y = np.float32(1.0) / (np.float32(1.0) + e)
        else:
            y = np.tanh(x.astype(np.float64)).astype(np.float32)
        inv = np.float32(1.0) / np.float32(oq.scale[0])
        q = round_half_away_array((y * inv).astype(np.float32)).astype(np.float32)
        q = (q + np.float32(oq.zero_point[0])).astype(np.int64)
        self.table = np.clip(q, lo, hi)
        self.lo = lo

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.int64)
        out[...] = self.table[x - self.lo].astype(self.out_dtype).reshape(out.shape)


def _srdhm16(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16."""
    ab = a.astype(np.int64) * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.abs(ab + nudge) // (1 << 15) * np.sign(ab + nudge)
    return np.where((a == b) & (a == -32768), 32767, q)


def _sat_left16(x: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(x * (1 << amount), -32768, 32767)


def _int16_multiplier(m32: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return 32767
    return (m32 + (1 << 15)) >> 16


class HardSwishInt8(Elementwise):
    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        xq, oq = self.quant(self.inputs[0]), self.quant(self.out)
        self.zpi, self.zpo = xq.zero_point[0], oq.zero_point[0]
        hires = np.float32(1.0 / 128.0) * np.float32(xq.scale[0])
        out_m = hires / np.float32(oq.scale[0])
        relu_m = hires / np.float32(np.float32(3.0) / np.float32(32768.0))
        m, self.out_exp = quantize_multiplier(float(out_m))
        self.out_m16 = _int16_multiplier(m)
        if self.out_exp > 0:
            raise ModelError(f"op '{node.name}': HARD_SWISH output multiplier exponent > 0")
        m, self.relu_exp = quantize_multiplier(float(relu_m))
        self.relu_m16 = _int16_multiplier(m)
        self.range = int_range(graph.tensors[self.out].dtype)

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.int64)
        hires = (x - self.zpi) * 128
        pre_out = _srdhm16(hires, self.out_m16)
        relu = hires
        if self.relu_exp > 0:
            relu = _sat_left16(relu, self.relu_exp - 1)
        relu = _srdhm16(relu, self.relu_m16)
        if self.relu_exp > 0:
            relu = _sat_left16(relu, 1)
        if self.relu_exp < 0:
            relu = rdbpot(relu, -self.relu_exp)
        relu = (relu + (1 << 15)) >> 1
        prod = relu * pre_out  # SaturatingDoublingHighMul: truncating, no overflow here
        pre = np.where(prod < 0, -((-prod) // (1 << 15)), prod // (1 << 15))
        y = rdbpot(pre, -self.out_exp) + self.zpo
        out[...] = np.clip(y, *self.range).astype(self.out_dtype).reshape(out.shape)


class LeakyReluInt8(Elementwise):
    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        xq, oq = self.quant(self.inputs[0]), self.quant(self.out)
        si, so = np.float32(xq.scale[0]), np.float32(oq.scale[0])
        alpha = np.float32(node.attrs.get("alpha", 0.2))
        self.zpi, self.zpo = xq.zero_point[0], oq.zero_point[0]
        m, self.alpha_shift = quantize_multiplier(float(si * alpha / so))
        self.alpha_neg = m < 0
        self.alpha_m = abs(m)
        self.ident = quantize_multiplier(float(si / so))
        self.range = int_range(graph.tensors[self.out].dtype)

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        v = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.int64) - self.zpi
        neg = mbqm(v, self.alpha_m, self.alpha_shift)
        y = np.where(v >= 0, mbqm(v, *self.ident), -neg if self.alpha_neg else neg)
        out[...] = np.clip(y + self.zpo, *self.range).astype(self.out_dtype).reshape(out.shape)


def _clz32(x: np.ndarray) -> np.ndarray:
    """CountLeadingZeros of uint32 values (32 for 0); frexp is exact below 2**53."""
    e = np.frexp(x.astype(np.float64))[1]
    return np.where(x == 0, 32, 32 - e)


class DivInt8(Elementwise):
    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        q1, q2, qo = self.quant(self.args[0]), self.quant(self.args[1]), self.quant(self.out)
        self.zp1, self.zp2, self.zpo = q1.zero_point[0], q2.zero_point[0], qo.zero_point[0]
        real = np.float32(q1.scale[0]) / (np.float32(q2.scale[0]) * np.float32(qo.scale[0]))
        self.mult, self.shift = quantize_multiplier(float(real))
        lo, hi = int_range(graph.tensors[self.out].dtype)
        self.act = activation_range(node.attrs.get("activation", "NONE"), qo.scale[0],
                                    self.zpo, lo, hi)

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        a, b = (v.astype(np.int64) for v in self.operands(xs, firsts, weights, r0, r1))
        v1, v2 = np.broadcast_arrays(a - self.zp1, b - self.zp2)
        flip = v2 < 0
        v1 = np.where(flip, -v1, v1)
        v2 = np.where(flip, -v2, v2)
        # GetReciprocal(v2, 31): shift the divisor to [1, 2) and invert it.
        head1 = _clz32(v2)
        recip_shift = 31 - head1
        shifted = ((v2 << (head1 & 31)) & 0xFFFFFFFF) - (1 << 31)
        inv = one_over_one_plus_x(shifted)
        # CountLeadingSignBits(v1)
        headroom = np.where(v1 >= 0, _clz32(v1) - 1, _clz32(2 * (-v1) - 1) - 1)
        quotient = srdhm(v1 << headroom, inv)
        total = self.shift - recip_shift - headroom
        y = rdbpot(srdhm(quotient, self.mult), -total) + self.zpo
        y = np.clip(y, *self.act)
        out[...] = np.broadcast_to(y, out.shape).astype(self.out_dtype)
