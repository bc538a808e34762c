"""Tensor lifetimes and the bounds they imply, independent of any swapping.

A storage tensor lives from the step that produces it to the last step that reads it, both
inclusive (TFLite Micro's rule: an op's inputs and outputs are live together, no in-place).
Time is counted in slots: step i runs in slot 2i+1; slot 2i is the moment before it, when the
planner writes out (evicts) tensors to make room.
"""

from __future__ import annotations

import numpy as np

from flashswap.planner.arena import Buffer, align, place
from flashswap.planner.steps import StepGraph


def lifetime_buffers(sg: StepGraph) -> list[Buffer]:
    """One buffer per activation for its whole lifetime: the no-swap plan."""
    return [Buffer(2 * sg.producer[t.id] + 1, 2 * sg.last_use(t.id) + 1, t.nbytes, t.name)
            for t in sg.tensors]


def tflm_greedy_arena(sg: StepGraph) -> int:
    """Arena TFLite Micro's greedy planner needs to run the graph with nothing swapped."""
    return place(lifetime_buffers(sg))[1]


def live_per_step(sg: StepGraph) -> np.ndarray:
    """Aligned bytes of every tensor live during each step (the no-swap byte demand)."""
    diff = np.zeros(len(sg.steps) + 1, dtype=np.int64)
    for t in sg.tensors:
        diff[sg.producer[t.id]] += align(t.nbytes)
        diff[sg.last_use(t.id) + 1] -= align(t.nbytes)
    return np.cumsum(diff)[:-1]


def live_between_steps(sg: StepGraph) -> np.ndarray:
    """Bytes produced by step <= i and still needed by a step > i, for each i.

    Whatever of this does not fit in SRAM must be in flash at that moment, so
    max(live - budget) bounds the bytes any plan writes per inference from below.
    """
    diff = np.zeros(len(sg.steps) + 1, dtype=np.int64)
    for t in sg.tensors:
        if sg.last_use(t.id) > sg.producer[t.id]:
            diff[sg.producer[t.id]] += t.nbytes
            diff[sg.last_use(t.id)] -= t.nbytes
    return np.cumsum(diff)[:-1]
