"""Inference rates as users write them: `1/s`, `10/min`, `3/h`, `24/day`.

Kept separate from size parsing because the unit set (per time) and the error wording
("rate") are different; the CLI calls `parse_rate` and gets inferences per second.
"""

from __future__ import annotations

import math
import re

from flashswap.errors import InputError

SECONDS_PER_YEAR = 365.25 * 24 * 3600.0

_UNITS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "day": 86400.0,
    "d": 86400.0,
    "week": 7 * 86400.0,
    "year": SECONDS_PER_YEAR,
    "y": SECONDS_PER_YEAR,
}

_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*([a-zA-Z]+)\s*$")


def parse_rate(text: str) -> float:
    """Inferences per second from `COUNT/UNIT`; bad text raises InputError naming it."""
    m = _RATE_RE.match(text)
    if not m:
        raise InputError(
            f"bad rate {text!r}: expected COUNT/UNIT such as 1/s, 10/min, 3/h or 24/day"
        )
    count = float(m.group(1))
    unit = m.group(2).lower()
    if unit not in _UNITS and unit.endswith("s") and unit[:-1] in _UNITS:
        unit = unit[:-1]  # "10/mins", "2/hours"
    if unit not in _UNITS:
        units = ", ".join(sorted({"s", "min", "h", "day", "week", "year"}))
        raise InputError(f"bad rate {text!r}: unknown unit {m.group(2)!r} (use one of {units})")
    if not math.isfinite(count) or count <= 0:
        raise InputError(f"bad rate {text!r}: the count must be a positive number")
    return count / _UNITS[unit]


def format_rate(per_s: float) -> str:
    """A rate in the largest unit that keeps the count >= 1 (for tables and verdicts)."""
    for unit, seconds in (("s", 1.0), ("min", 60.0), ("h", 3600.0), ("day", 86400.0)):
        count = per_s * seconds
        if count >= 1 or unit == "day":
            return f"{count:.3g}/{unit}"
    raise AssertionError("unreachable")
