"""The planner's options shared by `flashswap trace plan` and `flashswap run`."""

from __future__ import annotations

import argparse

from flashswap.errors import InputError
from flashswap.planner import SCHEDULES
from flashswap.planner.fused.cost import DEFAULT_PART, OBJECTIVES, CostModel


def add_plan_options(p: argparse.ArgumentParser, part: bool = True) -> None:
    p.add_argument("--schedule", choices=SCHEDULES, default="fused",
                   help="fused (default): runs of spatial ops computed patch by patch where the "
                   "part's cost model says so; layers: layer by layer, row-tiled (the "
                   "schedule before fusion)")
    p.add_argument("--objective", choices=OBJECTIVES, default="wear",
                   help="what the fused planner minimizes on the part: bytes programmed "
                   "(wear, default), flash + compute time, or flash energy")
    p.add_argument("--max-slowdown", type=_slowdown, default=None, metavar="X",
                   help="cap the inference's time against the same inference with its "
                   "activations in SRAM (e.g. 1.5; needs the MCU's rate)")
    if part:
        p.add_argument("--part", default=DEFAULT_PART, metavar="NAME",
                       help=f"flash part whose costs the planner weighs (default {DEFAULT_PART})")


def _slowdown(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = 0.0
    if not v >= 1 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid slowdown {text!r} (a factor >= 1)")
    return v


def cost_model(args: argparse.Namespace, part: str | None, macs_per_s: float) -> CostModel:
    """The cost model of the options; the MAC rate defaults to the analyzer's default MCU
    (flashswap lifetime's) when none is given, so recomputation is priced in time."""
    if not macs_per_s:
        from analyzer.mcus import DEFAULT_MCU, get_mcu

        macs_per_s = get_mcu(DEFAULT_MCU).macs_per_s
    if args.schedule == "layers" and (args.objective != "wear" or args.max_slowdown):
        raise InputError("--objective and --max-slowdown choose among fused plans: they need "
                         "--schedule fused")
    return CostModel.for_part(part or DEFAULT_PART, macs_per_s, args.objective,
                              args.max_slowdown)
