"""Fully connected: TFLite FULLY_CONNECTED (int8, float) and ONNX Gemm / MatMul (float).

Filters are (out_features, in_features) rows - TFLite's layout; the ONNX importer stores
Gemm/MatMul weights that way - so output features [f0, f1) read filter rows [f0, f1), the
bias entries [f0, f1) and those channels' scales: a tile of a feature-split step reads only
its share of the weights.

Int8 requantization follows LiteRT's reference kernel (reference_integer_ops::
FullyConnected and FullyConnectedPerChannel, since April 2025): the int32 accumulator
(sum of filter * (input - input_zero_point), plus bias) is scaled in double precision,
round(double(acc) * double(input_scale) * double(filter_scale) / double(output_scale)) with
ties away from zero, then offset and clamped. LiteRT's optimized kernels and CMSIS-NN use the
fixed-point MultiplyByQuantizedMultiplier instead; `requant="fixed"` selects that (it can
differ by one in the last bit from the reference).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.kernels.base import Op, Weights, int_range
from flashswap.exec.kernels.fixedpoint import (
    activation_range,
    mbqm,
    quantize_multipliers,
    round_half_away_array,
)
from flashswap.model.graph import Graph, Node

FLOAT_ACTS = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


class FullyConnected(Op):
    """out[b, f] = sum_k x[b, k] * W[f, k] (+ bias[f]); rows of the output are its batches."""

    def __init__(self, graph: Graph, node: Node, requant: str = "reference") -> None:
        super().__init__(graph, node)
        self.w_name = self.arg(1)
        self.bias = self.arg(2)
        w = graph.constants[self.w_name]
        if w.ndim != 2:
            raise ModelError(f"op '{node.name}': filter '{self.w_name}' is not 2-D")
        self.features, self.depth = w.shape
        self.quantized = graph.tensors[self.out].dtype in ("int8", "uint8", "int16")
        self.requant = requant
        act = node.attrs.get("activation", "NONE")
        # ONNX Gemm's alpha and beta (1.0 for TFLite and MatMul).
        self.alpha = float(node.attrs.get("alpha", 1.0))
        self.beta = float(node.attrs.get("beta", 1.0))
        if self.quantized:
            xq, wq, oq = self.quant(self.inputs[0]), self.quant(self.w_name), self.quant(self.out)
            scales = np.array(wq.scale * (self.features if len(wq.scale) == 1 else 1),
                              np.float64)
            self.scale = float(xq.scale[0]) * scales / float(oq.scale[0])
            self.mult, self.shift = quantize_multipliers(self.scale)
            self.in_zp, self.out_zp = xq.zero_point[0], oq.zero_point[0]
            self.w_zp = wq.zero_point[0] if len(wq.zero_point) == 1 else 0
            lo, hi = int_range(graph.tensors[self.out].dtype)
            self.act: tuple[float, float] = activation_range(act, oq.scale[0], self.out_zp,
                                                             lo, hi)
        else:
            self.act = FLOAT_ACTS.get(act, (-np.inf, np.inf))

    def _x(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(-1, self.depth)

    def input_rows(self, i: int, r0: int, r1: int) -> tuple[int, int]:
        n = self.rows(self.inputs[0])
        return (r0, r1) if n == self.rows(self.out) else (0, n)

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1)
        self._features(x, weights, self.weight(weights, self.w_name), 0, self.features, out)

    def compute_features(self, x: np.ndarray, weights: Mapping[str, np.ndarray], f0: int,
                         f1: int, out: np.ndarray) -> None:
        """Output features [f0, f1) of every batch from the whole input; `weights` holds
        filter rows [f0, f1) and bias [f0, f1) only."""
        w = self.weight(weights, self.w_name, (f1 - f0, self.depth))
        self._features(x, weights, w, f0, f1, out)

    def _features(self, x: np.ndarray, weights: Mapping[str, np.ndarray], w: np.ndarray,
                  f0: int, f1: int, out: np.ndarray) -> None:
        xm = self._x(x)
        if self.quantized:
            acc = (xm.astype(np.float64) - self.in_zp) @ (w.astype(np.float64) - self.w_zp).T
            acc = acc.astype(np.int64)
            if self.bias:
                acc += self.weight(weights, self.bias, (f1 - f0,)).astype(np.int64)
            if self.requant == "fixed":
                y = mbqm(acc, self.mult[f0:f1], self.shift[f0:f1])
            else:
                y = round_half_away_array(acc.astype(np.float64) * self.scale[f0:f1])
                y = y.astype(np.int64)
            y = np.clip(y + self.out_zp, *self.act)
        else:
            y = (xm.astype(np.float64) @ w.astype(np.float64).T) * self.alpha
            if self.bias:
                y = y + self.beta * self.weight(weights, self.bias, (f1 - f0,)).astype(
                    np.float64)
            y = np.clip(y, *self.act)
        if out.size != y.size:
            raise ModelError(f"op '{self.node.name}': output band holds {out.size} values, "
                             f"features [{f0}, {f1}) of {xm.shape[0]} rows are {y.size}")
        out[...] = y.astype(self.out_dtype).reshape(out.shape)

    @property
    def param_bytes(self) -> int:
        return 8 * self.features if self.quantized else 0
