"""Pools and means: MAX_POOL_2D, AVERAGE_POOL_2D, MEAN (TFLite, int8 and float) and ONNX
MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (float).

Int8 semantics (TFLite reference_integer_ops::AveragePool / MaxPool): a window covers only
the taps inside the input (SAME padding is excluded, not zero); an average is the int32 sum of
the raw values divided by the number of taps, rounded half away from zero with C's
truncating division, then clamped to the fused activation's range (input and output share
one scale, so no rescaling). MEAN over H and W (reference QuantizedMeanOrSum): the sum minus
zero_point * n, times a multiplier derived from input_scale / output_scale with the 1/n folded
in (shift = floor(log2 n), capped), plus the output zero point, clamped to int8.

Reduce mode: a pool whose output is one row, and every MEAN / global pool, can accumulate
bands of input rows into a small accumulator (`reduce_start`, `reduce_rows`,
`reduce_finish`). Integer sums and maxima are associative, so any split of the rows gives the
whole computation's result exactly.
"""

from __future__ import annotations

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.kernels.base import Op, Weights, int_range
from flashswap.exec.kernels.conv import geometry
from flashswap.exec.kernels.fixedpoint import (
    activation_range,
    c_div,
    mbqm,
    quantize_multiplier,
)
from flashswap.exec.kernels.window import padded_window, tap
from flashswap.model.graph import Graph, Node


class ReduceOp(Op):
    """An op that can fold bands of input rows into an accumulator (see the module doc)."""

    acc_dtype: np.dtype = np.dtype(np.int64)

    def acc_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def acc_init(self) -> float | int:
        return 0

    def reduce_start(self, acc: np.ndarray) -> None:
        acc[...] = self.acc_init()

    def reduce_rows(self, x: np.ndarray, first: int, a: int, b: int, acc: np.ndarray) -> None:
        raise NotImplementedError

    def reduce_finish(self, acc: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    @property
    def acc_bytes(self) -> int:
        """What a device keeps between bands: int32 (or float32) per accumulator entry."""
        return 4 * int(np.prod(self.acc_shape()))

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        """The whole op: every input row through the accumulator."""
        acc = np.empty(self.acc_shape(), dtype=self.acc_dtype)
        self.reduce_start(acc)
        n = self.rows(self.inputs[0])
        self.reduce_rows(self.slice_input(0, xs[0], firsts[0], 0, 1), 0, 0, n, acc)
        self.reduce_finish(acc, out)

    def input_rows(self, i: int, r0: int, r1: int) -> tuple[int, int]:
        return 0, self.rows(self.inputs[0])


class Pool(ReduceOp):
    """MaxPool / AveragePool, int8 (TFLite) or float (TFLite, ONNX)."""

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        self.g = geometry(self)
        self.is_max = node.op_type == "MaxPool"
        self.quantized = graph.tensors[self.out].dtype in ("int8", "uint8", "int16")
        act = node.attrs.get("activation", "NONE")
        if self.quantized:
            q = self.quant(self.out)
            lo, hi = int_range(graph.tensors[self.out].dtype)
            self.act: tuple[float, float] = activation_range(act, q.scale[0], q.zero_point[0],
                                                             lo, hi)
            self.acc_dtype = np.dtype(np.int64)
        else:
            self.act = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0),
                        "RELU_N1_TO_1": (-1.0, 1.0)}.get(act, (-np.inf, np.inf))
            self.acc_dtype = np.dtype(np.float64)
        # ONNX AveragePool count_include_pad: the divisor counts padding inside the pads.
        self.include_pad = bool(node.attrs.get("count_include_pad", 0))
        pads = node.attrs["pads"]
        self.bottom, self.right = pads[2], pads[3]

    @property
    def fill(self) -> float | int:
        if not self.is_max:
            return 0
        return -(1 << 31) if self.quantized else -np.inf

    def input_rows(self, i: int, r0: int, r1: int) -> tuple[int, int]:
        return self.g.input_rows(r0, r1)

    def _counts(self, r0: int, r1: int) -> np.ndarray:
        g = self.g
        if self.include_pad:
            rows = np.arange(r0, r1)[:, None] * g.sh - g.top + np.arange(g.kh)[None, :]
            cols = np.arange(g.out_w)[:, None] * g.sw - g.left + np.arange(g.kw)[None, :]
            rc = ((rows >= -g.top) & (rows < g.in_h + self.bottom)).sum(axis=1)
            cc = ((cols >= -g.left) & (cols < g.in_w + self.right)).sum(axis=1)
        else:
            rc, cc = g.row_counts(r0, r1), g.col_counts()
        return rc[:, None, None] * cc[None, :, None]

    def _finish_values(self, total: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if self.is_max:
            y = total
        elif self.quantized:
            half = counts // 2
            y = np.where(total > 0, c_div(total + half, counts), c_div(total - half, counts))
        else:
            y = (total / counts).astype(np.float32)
        y = np.clip(y, *self.act)
        return y.astype(self.out_dtype)

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        rows = r1 - r0
        g = self.g
        x = xs[0].astype(self.acc_dtype)
        win = padded_window(x, firsts[0], g, r0, r1, self.fill)
        total = None
        for ky, kx in g.taps():
            t = tap(win, g, ky, kx, rows)
            if total is None:
                total = t.copy()
            elif self.is_max:
                np.maximum(total, t, out=total)
            else:
                total += t
        assert total is not None  # a window has at least one tap
        out[...] = self._finish_values(total, self._counts(r0, r1)).reshape(out.shape)

    # ---- reduce mode: a pool with a single output row ---------------------------------------
    def acc_shape(self) -> tuple[int, ...]:
        return (self.g.out_w, self.sshape(self.out)[3])

    def acc_init(self) -> float | int:
        return self.fill

    def reduce_rows(self, x: np.ndarray, first: int, a: int, b: int, acc: np.ndarray) -> None:
        g = self.g
        if g.out_h != 1:
            raise ModelError(f"op '{self.node.name}': reduce mode needs a one-row output")
        lo, hi = max(a, -g.top), min(b, -g.top + g.kh)  # window rows of output row 0
        if hi <= lo:
            return
        band = x[0, lo - first:hi - first].astype(self.acc_dtype)
        col = band.max(axis=0) if self.is_max else band.sum(axis=0)  # (W, C)
        win = np.full((g.left + g.in_w + g.kw + g.out_w * g.sw, col.shape[-1]), self.fill,
                      dtype=self.acc_dtype)
        win[g.left:g.left + g.in_w] = col
        for kx in range(g.kw):
            t = win[kx:kx + (g.out_w - 1) * g.sw + 1:g.sw]
            if self.is_max:
                np.maximum(acc, t, out=acc)
            else:
                acc += t.astype(acc.dtype)

    def reduce_finish(self, acc: np.ndarray, out: np.ndarray) -> None:
        out[...] = self._finish_values(acc[None], self._counts(0, 1)).reshape(out.shape)


class Mean(ReduceOp):
    """MEAN over H and W (TFLite, int8 or float) and ONNX GlobalAveragePool/GlobalMaxPool."""

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        shape = self.sshape(self.inputs[0])
        if len(shape) != 4:
            raise ModelError(f"op '{node.name}': a global pool needs a rank-4 input")
        self.n = shape[1] * shape[2]
        self.channels = shape[3]
        self.is_max = node.attrs.get("source_op") == "GlobalMaxPool"
        dtype = graph.tensors[self.out].dtype
        self.quantized = dtype in ("int8", "uint8", "int16")
        if self.quantized:
            xq, oq = self.quant(self.inputs[0]), self.quant(self.out)
            mult, shift = quantize_multiplier(xq.scale[0] / oq.scale[0])
            # QuantizedMeanOrSum folds 1/n into the multiplier.
            s = min(self.n.bit_length() - 1, 32, 31 + shift)
            self.mult = int((mult << s) // self.n)
            self.shift = shift - s
            self.in_zp, self.out_zp = xq.zero_point[0], oq.zero_point[0]
            self.range = int_range(dtype)
            self.acc_dtype = np.dtype(np.int64)
        else:
            self.acc_dtype = np.dtype(np.float64)

    def acc_shape(self) -> tuple[int, ...]:
        return (self.channels,)

    def acc_init(self) -> float | int:
        return -np.inf if self.is_max else 0

    def reduce_rows(self, x: np.ndarray, first: int, a: int, b: int, acc: np.ndarray) -> None:
        band = x[0, a - first:b - first].astype(self.acc_dtype)
        if self.is_max:
            np.maximum(acc, band.max(axis=(0, 1)), out=acc)
        else:
            acc += band.sum(axis=(0, 1))

    def reduce_finish(self, acc: np.ndarray, out: np.ndarray) -> None:
        if self.quantized:
            y = mbqm(acc - self.in_zp * self.n, self.mult, self.shift) + self.out_zp
            y = np.clip(y, *self.range)
        elif self.is_max:
            y = acc
        else:
            y = acc / self.n
        out[...] = y.astype(self.out_dtype).reshape(out.shape)
