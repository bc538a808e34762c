"""Activations as numpy views of arena bytes.

The executor stores every activation channels-last and row-major by rows (N*H rows of W*C
elements for a feature map, as CMSIS-NN and TFLite Micro do; an ONNX NCHW tensor is transposed
at the graph's edges), so a band of rows is one contiguous byte range: the planner's chunks and
tiles cut tensors along rows. A view never copies: a kernel writing into it writes the arena.
"""

from __future__ import annotations

import math

import numpy as np

from flashswap.errors import ModelError
from flashswap.model.graph import Graph, Tensor


def storage_shape(graph: Graph, t: Tensor) -> tuple[int, ...]:
    """The tensor's shape as the executor stores it (channels-last for rank-4 NCHW)."""
    if len(t.shape) == 4 and graph.layout == "nchw":
        n, c, h, w = t.shape
        return (n, h, w, c)
    return t.shape


def row_shape(graph: Graph, t: Tensor, rows: int) -> tuple[int, ...]:
    """Shape of a band of `rows` rows of t (a whole tensor when t has a single row)."""
    shape = storage_shape(graph, t)
    if t.rows == 1:
        return shape
    if len(shape) == 4:
        if shape[0] != 1:
            raise ModelError(f"tensor '{t.name}': batch {shape[0]}, only batch 1 runs")
        return (1, rows, *shape[2:])
    per_row = math.prod(shape) // t.rows
    return (rows, per_row) if len(shape) == 2 else (rows, *_tail(shape, per_row))


def _tail(shape: tuple[int, ...], per_row: int) -> tuple[int, ...]:
    """The trailing dims of `shape` whose product is one row (falls back to flat)."""
    tail: list[int] = []
    for d in reversed(shape):
        if math.prod(tail) == per_row:
            break
        tail.insert(0, d)
    return tuple(tail) if math.prod(tail) == per_row else (per_row,)


def band(buf: np.ndarray, graph: Graph, t: Tensor, base: int, r0: int, r1: int) -> np.ndarray:
    """Rows [r0, r1) of tensor t held in `buf` (uint8 arena bytes whose byte 0 is tensor byte
    `base`), as a typed view of the band's shape."""
    rb = t.row_bytes
    a, b = r0 * rb - base, r1 * rb - base
    if a < 0 or b > buf.size:
        raise ModelError(f"rows [{r0}, {r1}) of '{t.name}' are not in its buffer "
                         f"(holds bytes [{base}, {base + buf.size}))")
    return buf[a:b].view(np.dtype(t.dtype)).reshape(row_shape(graph, t, r1 - r0))
