"""Compact human formatting of numbers for tables, shared by the CLI and the analyzer's report
(a leaf module: the analyzer must not depend on `flashswap.cli`)."""

from __future__ import annotations

from typing import Any


def fmt(v: Any) -> str:
    """Compact human formatting of a cell: about four significant digits, thousands
    separated, scientific notation for the very large and very small."""
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:,.3f}".rstrip("0").rstrip(".")
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)
