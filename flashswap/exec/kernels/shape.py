"""Data movement: PAD, CONCATENATION, TRANSPOSE and RESHAPE (int8 and float alike).

PAD fills with the output zero point for int8 (TFLite pads quantized tensors with the value
that represents 0.0), PADV2's constant, or ONNX's constant value. INT8 concatenation copies
(TFLite requires every input to share the output's quantization).
"""

from __future__ import annotations

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.kernels.base import Op, Weights
from flashswap.exec.kernels.layout import row_axis, storage_perm
from flashswap.model.graph import Graph, Node


class Pad(Op):
    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        a = node.attrs
        if a.get("mode", "constant") != "constant":
            raise ModelError(f"op '{node.name}': Pad mode '{a['mode']}' has no kernel")
        src = a["paddings"]  # (before, after) per source axis
        perm = storage_perm(len(src), graph.layout)
        self.paddings = [tuple(src[p]) for p in perm]
        value = a.get("pad_value")
        if value is None:
            q = graph.quant.get(self.out)
            value = q.zero_point[0] if q is not None else 0
        self.value = value
        self.ax = row_axis(len(src))
        self.top = self.paddings[self.ax][0] if self.ax is not None else 0

    def input_rows(self, i: int, r0: int, r1: int) -> tuple[int, int]:
        n = self.rows(self.inputs[0])
        a, b = max(0, r0 - self.top), min(n, r1 - self.top)
        return a, max(a, b)

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1)
        band = np.full(self.band_shape(self.out, r0, r1), self.value, dtype=self.out_dtype)
        idx = []
        for ax, (before, _after) in enumerate(self.paddings):
            if ax == self.ax:
                a, _b = self.input_rows(0, r0, r1)
                start = a + self.top - r0
                idx.append(slice(start, start + x.shape[ax]))
            else:
                idx.append(slice(before, before + x.shape[ax]))
        band[tuple(idx)] = x
        out[...] = band.reshape(out.shape)


class Concat(Op):
    elementwise = True

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        rank = len(graph.tensors[self.out].shape)
        axis = int(node.attrs["axis"]) % rank
        self.axis = storage_perm(rank, graph.layout).index(axis)
        if node.attrs.get("activation", "NONE") != "NONE":  # LiteRT refuses these too
            raise ModelError(f"op '{node.name}': CONCATENATION with a fused activation")
        q = graph.quant.get(self.out)
        if q is not None:
            for name in node.inputs:
                qi = graph.quant.get(name)
                if qi is None or (qi.scale, qi.zero_point) != (q.scale, q.zero_point):
                    raise ModelError(f"op '{node.name}': quantized CONCATENATION inputs must "
                                     "share the output's scale and zero point")

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        parts = [self.slice_input(i, xs[i], firsts[i], r0, r1) for i in range(len(self.inputs))]
        out[...] = np.concatenate(parts, axis=self.axis).reshape(out.shape)


class Transpose(Op):
    elementwise = True

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        rank = len(graph.tensors[self.out].shape)
        p = list(node.attrs["perm"])
        s_in = storage_perm(rank, graph.layout)
        s_out = storage_perm(rank, graph.layout)
        self.axes = tuple(int(np.argsort(s_in)[p[s]]) for s in s_out)

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        x = self.slice_input(0, xs[0], firsts[0], r0, r1)
        out[...] = np.transpose(x, self.axes).reshape(out.shape)


class Reshape(Op):
    """A view: the bytes do not change (the planner gives it no step; this copies them)."""

    elementwise = True

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        out.reshape(-1)[...] = xs[0].reshape(-1)
