"""The executor holds a plan to its reservations: each kernel's own demand (scratch, staged
parameters, accumulators) must fit the buffer the plan gave it, a plan that reserves less is
an error naming the step and both sizes, and the peak it reports is measured from the bytes
instructions touched, not summed from the plan's allocations."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from flashswap.cli.run_cmd import random_inputs
from flashswap.exec.arena import Arena, ArenaError
from flashswap.exec.device import Device
from flashswap.model import load_model
from flashswap.planner import Plan, plan
from flashswap.planner.program import Compute, Patch

MODELS = Path(__file__).parent / "fixtures" / "models"
ZOO = str(MODELS / "op_zoo_float.tflite")  # convolutions with scratch, a global mean, FC


def zoo(schedule: str) -> Plan:
    return plan(load_model(ZOO), 12160, 256, schedule=schedule)


def run(p: Plan) -> object:
    return Device(p, capacity=1 << 20).infer(random_inputs(p.graph, 0))


@pytest.mark.parametrize("schedule", ["layers", "fused"])
def test_every_buffer_a_kernel_fills_is_caught_when_one_alignment_unit_short(schedule):
    """Each scratch, staging and accumulator buffer of the op zoo's plan, 16 bytes (one
    alignment unit) smaller: the run stops with an error, never a silent overrun."""
    p = zoo(schedule)
    bufs = p.program.buffers
    shrunk = [b for b in bufs if b.role in ("scratch", "staging", "accum")]
    assert {b.role for b in shrunk} == {"scratch", "staging", "accum"}
    for b in shrunk:
        bufs[b.id] = dataclasses.replace(b, size=b.size - 16)
        try:
            with pytest.raises(ArenaError, match=f"the plan reserved {b.size - 16:,} B$"):
                run(p)
        finally:
            bufs[b.id] = b
    run(p)  # and the unperturbed plan runs


def test_the_error_names_the_step_the_demand_and_the_reservation():
    p = zoo("fused")
    bufs = p.program.buffers
    acc = next(b for b in bufs if b.role == "accum")
    bufs[acc.id] = dataclasses.replace(acc, size=acc.size - 16)
    with pytest.raises(ArenaError) as e:
        run(p)
    assert str(e.value) == ("step 'op_zoo_1/global_average_pooling2d_1/Mean': the "
                            "accumulators: needs 128 B, the plan reserved 112 B")


def test_a_kernel_given_no_scratch_is_refused_not_run_in_host_memory():
    """Without a scratch buffer the kernels would keep their intermediates in numpy
    temporaries: the executor refuses instead."""
    p = zoo("layers")
    instrs = p.program.instrs
    i = next(i for i, ins in enumerate(instrs)
             if type(ins) in (Compute, Patch) and ins.scratch >= 0)
    size = p.program.buffers[instrs[i].scratch].size
    instrs[i] = dataclasses.replace(instrs[i], scratch=-1)
    with pytest.raises(ArenaError, match=r"the kernel's scratch for units \[\d+, \d+\): "
                                         r"needs \d+ B, the plan reserved 0 B$") as e:
        run(p)
    need = int(str(e.value).split("needs ")[1].split(" B")[0])
    assert 0 < need <= size


def test_the_measured_peak_counts_bytes_used_not_bytes_allocated():
    a = Arena(256)
    a.alloc(0, 0, 64)
    a.alloc(1, 64, 64)
    a.view(0, 0, 10)
    a.free(0)
    a.alloc(2, 0, 32)
    a.view(2, 16, 16)
    a.view(1, 40, 8)
    a.free(1)
    a.free(2)
    # lifetimes use 10, 48 and 32 bytes; 0 and 1 overlap, then 1 and 2: peak 48 + 32
    assert (a.peak, a.reserved_peak) == (80, 128)


@pytest.mark.parametrize(("schedule", "used", "reserved"),
                         [("layers", 12116, 12128), ("fused", 11968, 11968)])
def test_a_run_uses_at_most_what_the_plan_reserved(schedule, used, reserved):
    """Every buffer is rounded up to 16 bytes, the bytes used are not: the layer plan's peak
    holds 12 bytes it never touches; the fused plan's peak is all used."""
    p = zoo(schedule)
    r = run(p)
    assert (r.peak_sram, r.reserved_sram, p.metadata["peak_sram"]) == (used, reserved, reserved)
