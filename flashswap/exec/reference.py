"""The reference interpreter: a whole graph through the kernels, whole tensors, no swapping.

It is the oracle for the tiled executor (which must produce the same bytes) and the first
proof of the kernels (tests compare it with LiteRT and ONNX Runtime). Every node runs on its
own (no fusion), each tensor is held whole in storage layout, views share their input's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from flashswap.errors import InputError
from flashswap.exec.kernels import (
    check_executable,
    from_storage,
    make_op,
    storage_shape,
    to_storage,
)
from flashswap.exec.kernels.layout import np_dtype
from flashswap.model.graph import Graph


def check_input(graph: Graph, name: str, value: np.ndarray) -> np.ndarray:
    """A graph input as given by a user: its shape and dtype must be the model's."""
    t = graph.tensors[name]
    arr = np.asarray(value)
    want = np_dtype(t)
    if arr.dtype != want:
        raise InputError(f"input '{name}' has dtype {arr.dtype}; the model takes {want}")
    if tuple(arr.shape) != t.shape:
        raise InputError(f"input '{name}' has shape {list(arr.shape)}; the model takes "
                         f"{list(t.shape)}")
    return arr


def run_reference(graph: Graph, inputs: Mapping[str, np.ndarray],
                  tensors: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Runs `graph` on `inputs` ({input name: array in the model's layout}); returns
    {output name: array in the model's layout}. If `tensors` is given, it receives every
    activation (views too) in storage layout, the bytes the executor's arena must hold."""
    check_executable(graph)
    missing = [n for n in graph.inputs if n not in inputs]
    if missing:
        raise InputError(f"missing model input(s): {', '.join(missing)}")
    store: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        store[name] = to_storage(graph, name, check_input(graph, name, inputs[name]))
    ops = [make_op(graph, n) for n in graph.nodes if n.op_type != "Reshape"]
    it = iter(ops)
    for node in graph.nodes:
        out = node.outputs[0]
        if node.op_type == "Reshape":  # a view: same bytes, read with the new shape
            store[out] = store[node.inputs[0]].reshape(storage_shape(graph, out))
            continue
        op = next(it)
        dst = np.empty(storage_shape(graph, out), dtype=np_dtype(graph.tensors[out]))
        op.compute([store[x] for x in node.inputs], [0] * len(node.inputs), graph.constants,
                   0, op.rows(out), dst)
        store[out] = dst
    if tensors is not None:
        tensors.update(store)
    return {name: from_storage(graph, name, store[name]) for name in graph.outputs}
