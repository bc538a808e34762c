"""Writing a plan as a trace file: the one place the planner calls the trace writer."""

from __future__ import annotations

import os

from flashswap.errors import InputError
from flashswap.planner import Plan
from flashswap.trace import Op, TraceWriter


def write_trace(plan: Plan, path: str | os.PathLike[str], inferences: int = 1) -> int:
    """Writes `inferences` copies of the plan's inference (numbered 0..N-1); returns records.

    Every inference is identical (same keys, same order), as on a device that runs the same
    model again and again; only INFERENCE_BEGIN's value changes.
    """
    if inferences < 1:
        raise InputError(f"invalid inference count {inferences}: must be at least 1")
    rec = plan.records.copy()
    begins = rec["op"] == Op.INFERENCE_BEGIN
    with TraceWriter(path, {**plan.metadata, "inferences": inferences}) as w:
        for n in range(inferences):
            rec["value"][begins] = n
            w.write_records(rec)
        return w.count
