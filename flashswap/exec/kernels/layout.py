"""How an activation is laid out in the executor's memory, and bands of its rows.

The planner stores every activation row-major by rows, channels last (graph.py): a band of
rows is one contiguous byte range. For a tensor of source shape `shape`:

- the *storage shape* is the source shape permuted to channels-last: TFLite (NHWC) tensors
  keep theirs; an ONNX (NCHW) tensor of rank r >= 4 becomes (N, H, W, C) (generally: axes
  0, r-2, r-1, then 1..r-3, so a channel axis split in two stays a view); ranks below 4 keep
  their source order;
- its *row axis* is axis 1 (H) for rank >= 4 and axis 0 for rank 2; other ranks are one row.
  With a batch of 1 (the only batch the executor runs) the rows of a rank-4 tensor are its H.

A band of rows [r0, r1) is the storage-shaped array with the row axis cut to r1 - r0.
"""

from __future__ import annotations

import numpy as np

from flashswap.errors import ModelError
from flashswap.model.graph import Graph, Tensor

NP_DTYPES: dict[str, type] = {
    "bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
    "float16": np.float16, "int32": np.int32, "float32": np.float32, "int64": np.int64,
    "float64": np.float64,
}


def np_dtype(t: Tensor) -> np.dtype:
    return np.dtype(NP_DTYPES[t.dtype])


def storage_perm(rank: int, layout: str) -> tuple[int, ...]:
    """The axes of the source shape in storage order (see the module docstring)."""
    if layout == "nchw" and rank >= 4:
        return (0, rank - 2, rank - 1, *range(1, rank - 2))
    return tuple(range(rank))


def storage_shape(graph: Graph, name: str) -> tuple[int, ...]:
    t = graph.tensors[name]
    return tuple(t.shape[a] for a in storage_perm(len(t.shape), graph.layout))


def row_axis(rank: int) -> int | None:
    """The axis whose bands are the tensor's rows (None: the tensor is one row)."""
    if rank >= 4:
        return 1
    return 0 if rank == 2 else None


def check_batch(graph: Graph, name: str) -> None:
    """The executor runs batch 1: rank >= 4 tensors whose rows would mix N and H are refused."""
    t = graph.tensors[name]
    if len(t.shape) >= 4 and t.shape[0] != 1:
        raise ModelError(f"tensor '{name}' has batch {t.shape[0]}; the executor runs batch 1")


def band_shape(graph: Graph, name: str, r0: int, r1: int) -> tuple[int, ...]:
    """Storage shape of rows [r0, r1) of tensor `name`."""
    shape = list(storage_shape(graph, name))
    ax = row_axis(len(shape))
    if ax is not None:
        shape[ax] = r1 - r0
    return tuple(shape)


def as_band(graph: Graph, name: str, data: np.ndarray, r0: int, r1: int) -> np.ndarray:
    """`data` (rows [r0, r1) of `name`, any shape, or raw bytes) as its storage-shaped band."""
    t = graph.tensors[name]
    dt = np_dtype(t)
    arr = np.asarray(data)
    if arr.dtype != dt:
        if arr.dtype != np.uint8:
            raise ModelError(f"tensor '{name}': got {arr.dtype} data, expected {dt}")
        arr = np.ascontiguousarray(arr).reshape(-1).view(dt)
    shape = band_shape(graph, name, r0, r1)
    if arr.size != int(np.prod(shape)):
        raise ModelError(f"tensor '{name}': rows [{r0}, {r1}) need {int(np.prod(shape))} "
                         f"elements, got {arr.size}")
    return arr.reshape(shape)


def to_storage(graph: Graph, name: str, source: np.ndarray) -> np.ndarray:
    """A whole tensor in source layout (as the model's user sees it) -> storage layout."""
    t = graph.tensors[name]
    arr = np.asarray(source)
    if arr.shape != t.shape:
        arr = arr.reshape(t.shape)
    return np.ascontiguousarray(arr.transpose(storage_perm(arr.ndim, graph.layout)))


def from_storage(graph: Graph, name: str, stored: np.ndarray) -> np.ndarray:
    """A whole tensor in storage layout -> source layout."""
    perm = storage_perm(len(graph.tensors[name].shape), graph.layout)
    arr = np.asarray(stored).reshape(storage_shape(graph, name))
    return np.ascontiguousarray(arr.transpose(np.argsort(perm)))
