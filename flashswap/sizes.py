"""Human-readable byte sizes: parse "256KiB", "1MiB", "300k", "4096"; format them back.

Binary units (KiB, MiB, GiB) are powers of 1024; SI units (k/kB, M/MB, G/GB) are powers of
1000, as on datasheets and in the IEC 80000-13 convention. Units are case-insensitive except
that a lone "b" is not accepted (bits vs bytes is a common and costly confusion).
"""

from __future__ import annotations

import re

from flashswap.errors import InputError

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int, what: str = "size") -> int:
    """Bytes in `text`; raises InputError naming the text when it is not a whole byte count."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise InputError(f"invalid {what} {text}: must not be negative")
        return text
    m = _PATTERN.match(str(text))
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS or m.group(2) == "b":
        raise InputError(
            f"invalid {what} {str(text)!r}: expected a number with an optional unit "
            "(B, k, KiB, M, MiB, G, GiB), e.g. 256KiB"
        )
    number = m.group(1)
    if "." in number:
        whole, frac = number.split(".")
        # Exact rational arithmetic: 1.5MiB is a whole number of bytes, 1.5B is not.
        num = int(whole + frac) * _UNITS[unit]
        den = 10 ** len(frac)
        if num % den:
            raise InputError(f"invalid {what} {str(text)!r}: not a whole number of bytes")
        return num // den
    return int(number) * _UNITS[unit]


def format_size(n: int) -> str:
    """Compact binary-unit text for a byte count: 262144 -> "256 KiB", 1000 -> "1000 B"."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            if n % scale == 0:
                return f"{n // scale} {unit}"
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n} B"


def kib_ceil(n: int) -> int:
    """Whole KiB needed to hold n bytes (for messages that state a minimum)."""
    return -(-n // 1024)
