"""TFLite's integer arithmetic, vectorized: the building blocks every int8 kernel shares.

Each function reproduces one routine of TFLite's reference kernels (and gemmlowp's
fixedpoint.h, which they use) bit for bit, on numpy int64 arrays holding int32 values:

- `quantize_multiplier`: QuantizeMultiplier, a double scale -> (Q31 multiplier, shift);
- `srdhm`: SaturatingRoundingDoublingHighMul (ARM's VQRDMULH);
- `rdbpot`: RoundingDivideByPOT, a rounding arithmetic right shift (ties away from zero);
- `mbqm`: MultiplyByQuantizedMultiplier in its double-rounding form (TFLite builds with
  TFLITE_SINGLE_ROUNDING=0 by default);
- `round_half_away`: std::round / TfLiteRound, which rounds ties away from zero (numpy's
  np.round rounds them to even);
- `c_div`: C integer division, which truncates toward zero (numpy's // floors).

Values are carried as int64 so that intermediate products never overflow; results that C
keeps in int32 are in int32 range by the same invariants TFLite relies on, and `wrap32`
reproduces int32 wrap-around where gemmlowp's additions can wrap.
"""

from __future__ import annotations

import math

import numpy as np

from flashswap.errors import ModelError

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def round_half_away(x: float) -> int:
    """std::round on a double: ties away from zero."""
    r = math.floor(abs(x) + 0.5)
    return int(math.copysign(r, x)) if r else 0


def round_half_away_array(x: np.ndarray) -> np.ndarray:
    """std::round elementwise on float32 or float64 values, exactly (no x + 0.5 rounding)."""
    a = np.abs(x.astype(np.float64))
    f = np.floor(a)
    r = f + (a - f >= 0.5)
    return np.copysign(r, x)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = q * 2**(shift - 31) with q in [2**30, 2**31)."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:  # flushed to zero, as TFLite does
        return 0, 0
    return q_fixed, shift


def quantize_multipliers(ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`quantize_multiplier` for each double of `ms` (per-channel parameters)."""
    pairs = [quantize_multiplier(float(m)) for m in ms]
    return (np.array([p[0] for p in pairs], dtype=np.int64),
            np.array([p[1] for p in pairs], dtype=np.int64))


def wrap32(x: np.ndarray) -> np.ndarray:
    """int32 two's-complement wrap-around of int64 values."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def c_div(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """C's integer division: the quotient truncated toward zero."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (np.asarray(b) < 0), -q, q)


def srdhm(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (held as int64)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = c_div(ab + nudge, 1 << 31)
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, high)


def rdbpot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2**exponent rounded to nearest, ties away from 0."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def mbqm(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (double rounding) on int32 values."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot(srdhm(np.asarray(x, dtype=np.int64) << left, multiplier), right)


def mbqm_int64(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier overload for int64 accumulators."""
    reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF
    total = 15 - shift
    return (np.asarray(x, dtype=np.int64) * reduced + (1 << (total - 1))) >> total


def quantize_float32(value: float, scale: float, zero_point: int) -> int:
    """TFLite's Quantize in CalculateActivationRangeQuantized: zp + round(f / scale), the
    division done in float32 as the C++ does."""
    q = np.float32(value) / np.float32(scale)
    return zero_point + round_half_away(float(q))


def activation_range(activation: str, scale: float, zero_point: int, qmin: int,
                     qmax: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the clamp a fused activation applies."""
    if activation == "RELU":
        return max(qmin, quantize_float32(0.0, scale, zero_point)), qmax
    if activation == "RELU6":
        return (max(qmin, quantize_float32(0.0, scale, zero_point)),
                min(qmax, quantize_float32(6.0, scale, zero_point)))
    if activation == "RELU_N1_TO_1":
        return (max(qmin, quantize_float32(-1.0, scale, zero_point)),
                min(qmax, quantize_float32(1.0, scale, zero_point)))
    if activation != "NONE":
        raise ModelError(f"no int8 kernel for the fused activation '{activation}'")
    return qmin, qmax
