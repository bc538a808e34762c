"""What the planner itself says about a model at a budget, for tests of the tools built on it
(their expectations follow the planner instead of copying its figures)."""

from __future__ import annotations

from flashswap.errors import BudgetError
from flashswap.model import load_model
from flashswap.planner import plan


def budget_error(spec: str, sram: int, chunk: int = 4096) -> str:
    """The planner's message for a budget below the model's smallest."""
    try:
        plan(load_model(spec), sram, chunk)
    except BudgetError as e:
        return str(e)
    raise AssertionError(f"{spec} plans in {sram} bytes")


def swap_bytes(spec: str, sram: int, chunk: int = 4096) -> int:
    """Bytes an inference of the plan writes to the swap store."""
    return int(plan(load_model(spec), sram, chunk).metadata["bytes_written_per_inference"])
