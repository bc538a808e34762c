"""The prepared kernel of one graph node: what every op family implements.

An `Op` is built once per node from the graph (options, quantization, fixed-point
multipliers resolved, as TFLite's Prepare does) and then computes bands of its output:

- `compute(xs, firsts, weights, r0, r1, out)`: output rows [r0, r1) into `out` (a storage-
  shaped band, see layout.py). `xs[i]` is a band of input i holding its rows
  [firsts[i], firsts[i] + len) - at least the rows `input_rows(i, r0, r1)` says it needs.
- `input_rows(i, r0, r1)`: the rows of input i that output rows [r0, r1) read, clipped to the
  tensor (rows outside it are padding, which each op supplies with its own semantics).

Weights arrive from the caller (the executor reads them from flash), as typed arrays or raw
bytes, keyed by tensor name; `weight()` views them with the constant's dtype and shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.kernels.layout import (
    NP_DTYPES,
    band_shape,
    check_batch,
    row_axis,
    storage_shape,
)
from flashswap.model.graph import Graph, Node, Quant

INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}
Weights = Mapping[str, np.ndarray]  # weight name -> array (typed, or raw bytes)


class Op:
    """Base of every kernel; subclasses set `elementwise` when out row r needs input row r."""

    elementwise = False

    def __init__(self, graph: Graph, node: Node) -> None:
        self.graph = graph
        self.node = node
        self.out = node.outputs[0]
        self.inputs = node.inputs
        for name in (*node.inputs, *node.outputs):
            check_batch(graph, name)
        self.out_dtype = np.dtype(NP_DTYPES[graph.tensors[self.out].dtype])

    # ---- shapes -----------------------------------------------------------------------
    def rows(self, name: str) -> int:
        shape = storage_shape(self.graph, name)
        ax = row_axis(len(shape))
        return 1 if ax is None else shape[ax]

    def sshape(self, name: str) -> tuple[int, ...]:
        return storage_shape(self.graph, name)

    def band_shape(self, name: str, r0: int, r1: int) -> tuple[int, ...]:
        return band_shape(self.graph, name, r0, r1)

    def input_rows(self, i: int, r0: int, r1: int) -> tuple[int, int]:
        """Rows of input i that output rows [r0, r1) need; elementwise ops: the same rows
        when the input has the output's rows, else all of it (a broadcast operand)."""
        name = self.inputs[i]
        n = self.rows(name)
        if n == self.rows(self.out):
            return r0, r1
        return 0, n

    def slice_input(self, i: int, x: np.ndarray, first: int, r0: int, r1: int) -> np.ndarray:
        """Rows input_rows(i, r0, r1) of input i out of a band starting at row `first`."""
        a, b = self.input_rows(i, r0, r1)
        ax = row_axis(x.ndim)
        if ax is None:
            return x
        if a < first or b - first > x.shape[ax]:
            raise ModelError(f"op '{self.node.name}': input '{self.inputs[i]}' band starts at "
                             f"row {first} with {x.shape[ax]} rows; rows [{a}, {b}) needed")
        idx = [slice(None)] * x.ndim
        idx[ax] = slice(a - first, b - first)
        return x[tuple(idx)]

    # ---- data -------------------------------------------------------------------------
    def quant(self, name: str) -> Quant:
        q = self.graph.quant.get(name)
        if q is None:
            raise ModelError(f"op '{self.node.name}' ({self.node.attrs.get('source_op')}): "
                             f"tensor '{name}' has no quantization")
        return q

    def weight(self, weights: Mapping[str, np.ndarray], name: str,
               shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Weight `name` from the caller, viewed with the constant's dtype and `shape`
        (default: the constant's shape)."""
        const = self.graph.constants[name]
        if name not in weights:
            raise ModelError(f"op '{self.node.name}': weight '{name}' was not passed")
        arr = np.asarray(weights[name])
        if arr.dtype != const.dtype:
            if arr.dtype != np.uint8:
                raise ModelError(f"weight '{name}': got {arr.dtype}, expected {const.dtype}")
            arr = np.ascontiguousarray(arr).reshape(-1).view(const.dtype)
        shape = const.shape if shape is None else shape
        if arr.size != int(np.prod(shape)):
            raise ModelError(f"weight '{name}': {arr.size} elements, expected {shape}")
        return arr.reshape(shape)

    def arg(self, k: int) -> str:
        """The op's k-th source input (activation, weight or parameter); '' if absent."""
        args = self.node.attrs.get("args", ())
        return args[k] if k < len(args) else ""

    # ---- interface ----------------------------------------------------------------------
    def compute(self, xs: list[np.ndarray], firsts: list[int],
                weights: Mapping[str, np.ndarray], r0: int, r1: int, out: np.ndarray) -> None:
        raise NotImplementedError

    def scratch_bytes(self, r0: int, r1: int) -> int:
        """Scratch a device kernel needs for output rows [r0, r1) (see the package doc)."""
        return 0

    @property
    def param_bytes(self) -> int:
        """Bytes of derived parameters a device keeps in SRAM while the op runs
        (per-channel multipliers and shifts: 4 + 4 bytes a channel)."""
        return 0


def int_range(dtype: str) -> tuple[int, int]:
    if dtype not in INT_RANGES:
        raise ModelError(f"no integer range for dtype '{dtype}'")
    return INT_RANGES[dtype]


def store(out: np.ndarray, values: np.ndarray) -> None:
    """Writes computed values into the caller's `out`, with a shape check."""
    if out.shape != values.shape:
        out = out.reshape(values.shape)
    out[...] = values
