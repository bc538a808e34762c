"""Test helper: every planner step of a graph computed band by band through the kernel API,
against the reference interpreter's whole tensors.

The bands are what the tiled executor will pass: inputs cut to exactly the rows
`input_rows` names (so a kernel reading outside them fails), raw bytes as read from the
arena, weights as raw bytes from flash (a feature-split FC gets only its share), outputs
written into a raw byte buffer of exactly the band's size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from flashswap.exec.kernels import StepKernel, prepare
from flashswap.exec.kernels.layout import row_axis
from flashswap.exec.reference import run_reference
from flashswap.model.graph import Graph
from flashswap.planner.steps import build_steps


def splits(units: int, rng: np.random.Generator, random_splits: int = 2
           ) -> Iterator[list[tuple[int, int]]]:
    """Whole; every unit alone (first and last bands, every edge); two bands at the first,
    middle and last cut; random partitions."""
    yield [(0, units)]
    if units == 1:
        return
    yield [(u, u + 1) for u in range(units)]
    for cut in sorted({1, units // 2, units - 1}):
        yield [(0, cut), (cut, units)]
    for _ in range(random_splits):
        cuts = sorted(set(rng.integers(1, units, size=min(units - 1, 4)).tolist()))
        edges = [0, *cuts, units]
        yield list(zip(edges[:-1], edges[1:], strict=True))


def rows_of(arr: np.ndarray, a: int, b: int) -> np.ndarray:
    ax = row_axis(arr.ndim)
    if ax is None:
        return arr
    idx = [slice(None)] * arr.ndim
    idx[ax] = slice(a, b)
    return arr[tuple(idx)]


def raw(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def _inputs(k: StepKernel, store: dict[str, np.ndarray], u0: int, u1: int) -> dict:
    bands = {}
    for name in k.in_names:
        a, b = k.input_rows(name, u0, u1)
        bands[name] = (raw(rows_of(store[name], a, b)), a)
    return bands


def check_step(graph: Graph, k: StepKernel, store: dict[str, np.ndarray],
               rng: np.random.Generator) -> int:
    """Runs every split of the step; returns the number of bands computed."""
    whole = store[k.out]
    weights = {w: raw(graph.constants[w]) for w in k.weight_names}
    count = 0
    for split in splits(k.units, rng):
        if k.mode == "reduce":
            acc = np.empty(k.acc_shape(), dtype=k.acc_dtype)
            k.reduce_start(acc)
            for u0, u1 in split:
                k.reduce_rows(_inputs(k, store, u0, u1), acc, u0, u1)
            out = np.zeros(whole.nbytes, np.uint8)
            k.reduce_finish(acc, weights, out, np.zeros(k.scratch_bytes(0, k.units), np.uint8))
            np.testing.assert_array_equal(out.view(whole.dtype).reshape(whole.shape), whole,
                                          err_msg=f"{k.node.name}: reduce split {split}")
            count += len(split)
            continue
        got = []
        for u0, u1 in split:
            scratch = np.zeros(k.scratch_bytes(u0, u1), np.uint8)
            if k.mode == "features":
                w = dict(weights)
                host = k.host
                filt = graph.constants[host.w_name]
                w[host.w_name] = raw(filt[u0:u1])
                if host.bias:
                    w[host.bias] = raw(graph.constants[host.bias][u0:u1])
                out = np.zeros((u1 - u0) * whole.itemsize, np.uint8)
                k.run_features(_inputs(k, store, u0, u1), w, out, u0, u1, scratch)
            else:
                out = np.zeros(rows_of(whole, *k.span(u0, u1)).nbytes, np.uint8)
                k.run_rows(_inputs(k, store, u0, u1), weights, out, u0, u1, scratch)
            got.append(out)
            count += 1
        joined = np.concatenate(got).view(whole.dtype)
        np.testing.assert_array_equal(joined, whole.reshape(-1),
                                      err_msg=f"{k.node.name} ({k.mode}): split {split}")
    return count


def check_graph(graph: Graph, inputs: dict[str, np.ndarray], seed: int = 0) -> dict[str, int]:
    """Every step of `graph`, every split: returns {mode: bands computed}."""
    store: dict[str, np.ndarray] = {}
    run_reference(graph, inputs, tensors=store)
    rng = np.random.default_rng(seed)
    counts = {"rows": 0, "features": 0, "reduce": 0}
    for step in build_steps(graph).steps:
        if step.virtual:
            continue
        k = prepare(graph, step.node_index, step.fused)
        if step.units != k.units:  # a step the planner cannot band: one unit, every row
            assert step.units == 1 and k.node.attrs.get("rows_axis"), step.name
            k = prepare(graph, step.node_index, step.fused, step.units)
        assert step.units == k.units, (step.name, step.units, k.units)
        counts[k.mode] += check_step(graph, k, store, rng)
    return counts
