"""Softmax (int8 and float) and the channel normalizations (LRN, L2 normalization, float).

Int8 softmax is TFLite's reference_ops::Softmax, built on gemmlowp fixed point: per row,
differences from the row maximum, scaled by beta * input_scale into Q5.26 (PreprocessSoftmaxScaling;
differences below diff_min contribute nothing and output -128), exp() in Q0.31 by gemmlowp's
exp_on_negative_values, the sum in Q12.19, its reciprocal by Newton-Raphson
(one_over_one_plus_x_for_x_in_0_1), and each output = exp * reciprocal rounded into
[-128, 127] with scale 1/256 and zero point -128 ([0, 255], zero point 0, for a legacy uint8
model's softmax). All of it is integer; here it runs on int64
arrays holding the int32 values, with int32 wrap-around where C would wrap.
"""

from __future__ import annotations

import math

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.kernels.base import Op, Weights, int_range
from flashswap.exec.kernels.fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    c_div,
    mbqm,
    quantize_multiplier,
    rdbpot,
    srdhm,
    wrap32,
)
from flashswap.model.graph import Graph, Node

SCALED_DIFF_INT_BITS = 5  # the exp() input is Q5.26
ACCUM_INT_BITS = 12  # the sum of exps is Q12.19


def _sat_shift_left(x: np.ndarray, e: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0 on int32."""
    threshold = (1 << (31 - e)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << e))


def _exp_quarter(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp's Taylor expansion)."""
    constant_term = 1895147668  # exp(-1/8)
    one_third = 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(wrap32(srdhm(wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_BARREL = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
           (2, 39332535), (3, 720401), (4, 242)]


def exp_on_negative_values(a: np.ndarray, int_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: a <= 0 in Q(int_bits).(31-int_bits) -> Q0.31."""
    frac = 31 - int_bits
    quarter = 1 << (frac - 2)
    a_mod = wrap32((a & (quarter - 1)) - quarter)
    result = _exp_quarter(_sat_shift_left(a_mod, int_bits) if int_bits else a_mod)
    remainder = wrap32(a_mod - a)
    for exponent, mult in _BARREL:
        if int_bits > exponent:
            bit = (remainder & (1 << (frac + exponent))) != 0
            result = np.where(bit, srdhm(result, mult), result)
    if int_bits > 5:
        result = np.where(a < -(1 << (36 - int_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 in and out (Newton-Raphson)."""
    s = a + INT32_MAX
    half_denominator = c_div(s + np.where(s >= 0, 1, -1), 2)  # RoundingHalfSum(a, One)
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 * d, Q2.29
    one = 1 << 29
    for _ in range(3):
        one_minus = wrap32(one - srdhm(half_denominator, x))
        x = wrap32(x + _sat_shift_left(srdhm(x, one_minus), 2))
    return _sat_shift_left(x, 1)


def _clz32(x: np.ndarray) -> np.ndarray:
    """Count of leading zeros of positive int32 values (frexp is exact below 2**53)."""
    return 32 - np.frexp(x.astype(np.float64))[1]


class SoftmaxInt8(Op):
    elementwise = True

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        xq = self.quant(self.inputs[0])
        oq = self.quant(self.out)
        # The output's zero point is its type's minimum (int8: -128; a legacy uint8 model's
        # softmax: 0), as TFLite requires: probabilities [0, 1) over the whole range.
        dtype = graph.tensors[self.out].dtype
        self.lo, self.hi = int_range(dtype)
        if oq.zero_point[0] != self.lo or abs(oq.scale[0] - 1 / 256) > 0.001 / 256:
            raise ModelError(f"op '{node.name}': {dtype} softmax output must be scale 1/256, "
                             f"zero point {self.lo}")
        beta = float(node.attrs.get("beta", 1.0))
        real = min(beta * xq.scale[0] * (1 << (31 - SCALED_DIFF_INT_BITS)), (1 << 31) - 1.0)
        self.mult, self.left_shift = quantize_multiplier(real)
        radius = math.floor(((1 << SCALED_DIFF_INT_BITS) - 1)
                            * (1 << (31 - SCALED_DIFF_INT_BITS)) / (1 << self.left_shift))
        self.diff_min = -radius

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.int64)
        diff = x - x.max(axis=-1, keepdims=True)
        live = diff >= self.diff_min
        scaled = srdhm(diff << self.left_shift, self.mult)  # Q5.26
        exps = exp_on_negative_values(scaled, SCALED_DIFF_INT_BITS)  # Q0.31
        # Rescale<12>: Q0.31 -> Q12.19; the sum is positive (the maximum contributes 1.0).
        total = wrap32(np.where(live, rdbpot(exps, ACCUM_INT_BITS), 0)
                       .sum(axis=-1, keepdims=True))
        headroom = _clz32(total)  # GetReciprocal
        bits_over_unit = ACCUM_INT_BITS - headroom
        shifted = (total << headroom) - (1 << 31)
        recip = one_over_one_plus_x(shifted)
        exponent = bits_over_unit + 31 - 8
        y = rdbpot(srdhm(recip, exps), exponent) + self.lo
        y = np.where(live, np.clip(y, self.lo, self.hi), self.lo)
        out[...] = y.astype(self.out_dtype).reshape(out.shape)


class SoftmaxFloat(Op):
    """Softmax over the last storage axis (channels), or over the source axes from `axis`
    on (ONNX before opset 13), on the whole tensor."""

    elementwise = True

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.float64)
        beta = float(self.node.attrs.get("beta", 1.0))
        axes = self.node.attrs.get("storage_axes")
        if axes is None:
            axes = (x.ndim - 1,)
        x = x * beta
        e = np.exp(x - x.max(axis=axes, keepdims=True))
        y = e / e.sum(axis=axes, keepdims=True)
        out[...] = y.astype(self.out_dtype).reshape(out.shape)


def inv_sqrt_multiplier(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite GetInvSqrtQuantizedMultiplierExp(acc, kReverseShift=-1): 1/sqrt(acc) as a Q31
    multiplier and a left shift, by five Newton-Raphson steps in gemmlowp Q3.28."""
    x_in = np.asarray(acc, dtype=np.int64).copy()
    small = x_in <= 1
    x_in = np.where(small, 4, x_in)  # any valid value; replaced below
    shift = np.full(x_in.shape, 11, dtype=np.int64)
    while (big := x_in >= (1 << 29)).any():
        x_in = np.where(big, x_in // 4, x_in)
        shift += big
    pairs = ((32 - np.frexp(x_in.astype(np.float64))[1]) - 1) // 2 - 1
    shift -= pairs
    x_in = x_in << (2 * pairs)
    f_in = x_in >> 1  # Q3.28
    half_in = rdbpot(f_in, 1)
    half_three = (1 << 28) + (1 << 27)
    x = np.full(x_in.shape, 1 << 28, dtype=np.int64)  # 1.0 in Q3.28
    for _ in range(5):
        x3 = _sat_shift_left(srdhm(srdhm(x, x), x), 6)  # Q9 -> Q3
        x = _sat_shift_left(wrap32(srdhm(half_three, x) - srdhm(half_in, x3)), 3)
    inv = srdhm(x, 1518500250)  # * sqrt(2)/2
    neg = shift < 0
    inv = np.where(neg, inv << np.where(neg, -shift, 0), inv)
    shift = np.where(neg, 0, shift)
    return np.where(small, INT32_MAX, inv), np.where(small, 0, -shift)


class L2NormInt8(Op):
    """TFLite L2_NORMALIZATION, int8 (reference_integer_ops::L2Normalization): output scale
    1/128, zero point 0."""

    elementwise = True

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        self.zp = self.quant(self.inputs[0]).zero_point[0]

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.int64) - self.zp
        acc = (x * x).sum(axis=-1, keepdims=True)
        inv, shift = inv_sqrt_multiplier(acc)
        y = np.clip(mbqm(x, inv, shift + 7), -128, 127)
        out[...] = y.astype(self.out_dtype).reshape(out.shape)


class ChannelNorm(Op):
    """LRN (ONNX: size, alpha/size; TFLite: radius, alpha) and L2 normalization, float."""

    elementwise = True

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1).astype(np.float64)
        a = self.node.attrs
        src = a.get("source_op")
        if src == "L2_NORMALIZATION":
            ss = (x * x).sum(axis=-1, keepdims=True)
            y = x / np.maximum(np.sqrt(ss), 1e-6)  # TFLite: the norm floored at 1e-6
        else:
            if src == "LRN":  # ONNX
                size = int(a["size"])
                lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
                alpha = float(a.get("alpha", 1e-4)) / size
                bias = float(a.get("bias", 1.0))
            else:
                lo = hi = int(a.get("radius", 5))
                alpha, bias = float(a.get("alpha", 1.0)), float(a.get("bias", 1.0))
            beta = float(a.get("beta", 0.75))
            sq = x * x
            c = x.shape[-1]
            cs = np.concatenate([np.zeros((*x.shape[:-1], 1)), np.cumsum(sq, axis=-1)], -1)
            idx = np.arange(c)
            window = cs[..., np.minimum(idx + hi + 1, c)] - cs[..., np.maximum(idx - lo, 0)]
            y = x / (bias + alpha * window) ** beta
        out[...] = y.astype(self.out_dtype).reshape(out.shape)
