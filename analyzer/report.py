"""Turning lifetime results into what `flashswap lifetime` prints: tables, verdicts, JSON."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from analyzer.rates import format_rate
from flashswap.cli.output import fmt

COLUMNS = [
    "store",
    "years",
    "Weibull p1",
    "ideal years",
    "efficiency",
    "erase ampl.",
    "wear max/mean",
    "I/O ms/inf",
    "I/O mJ/inf",
    "slowdown",
    "max rate",
]


def clean(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars become Python numbers, non-finite floats become None
    (JSON has no Infinity)."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _num(v: Any) -> Any:
    return "n/a" if v is None else float(v)


def _sig(v: float) -> str:
    """Three significant digits, thousands separated (no spurious precision on big values)."""
    if v >= 100:
        return f"{round(v):,}"
    return f"{v:.3g}"


def _slowdown(r: dict[str, Any]) -> str:
    s, p = r.get("slowdown"), r.get("slowdown_prefetch")
    if s is None:
        return "n/a"
    return f"{s:.3g}x / {p:.3g}x" if p is not None else f"{s:.3g}x"


def _years(v: Any) -> Any:
    if v is None:
        return "n/a"
    v = float(v)
    if not math.isfinite(v):
        return "never"
    return v


def part_table(part: dict[str, Any], results: list[dict[str, Any]], errors: list[dict]) -> Table:
    """One table per part: a row per store (see COLUMNS), then rows for stores that could not
    run on it, with the reason."""
    title = (
        f"{part['part']} ({part['kind']}{'/' + part['cell'] if part.get('cell') else ''}, "
        f"{_size(part['capacity'])} replayed, endurance {part['endurance']:,} cycles"
    )
    if part["kind"] == "nand" and part.get("ecc"):  # what the simulated reads are corrected with
        title += f"; {part['ecc']}"
    fs = next((r for r in results if r["store"] == "flashswap" and r.get("engine")), None)
    if fs:  # its unit of erase and retirement: the Weibull life depends on it
        title += f"; flashswap segments {_size(fs['engine']['segment_size'])}"
    title += ")"
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(COLUMNS):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in results:
        t.add_row(
            r["store"],
            fmt(_years(r["years"])),
            fmt(_years(r["years_weibull_p1"])),
            fmt(_years(r["ideal_years"])),
            fmt(_num(r["efficiency"])),
            fmt(_num(r["erase_amplification"])),
            fmt(_num(r["wear_max_over_mean"])),
            _sig(r["io_seconds_per_inference"] * 1e3),
            _sig(r["io_energy_mj_per_inference"]),
            _slowdown(r),
            format_rate(r["max_rate_per_s"]) if math.isfinite(r["max_rate_per_s"]) else "n/a",
        )
    for e in errors:
        t.add_row(e["store"], *(["n/a"] * (len(COLUMNS) - 2)), "")
    return t


def verdict(part: str, results: list[dict[str, Any]], errors: list[dict], rate: float) -> str:
    """One line: the longest-lived store, how it compares with the others, and its cost."""
    if not results:
        why = errors[0]["error"] if errors else "no result"
        return f"{part}: no store could run ({why})"
    if all(r["years"] == math.inf for r in results):
        return f"{part}: the trace swaps nothing out, so no store wears the flash"
    best = max(results, key=lambda r: r["years"] if r["years"] is not None else -1.0)
    y = best["years"]
    line = f"{part}: {best['store']} lasts {_fmt_years(y)} at {format_rate(rate)}"
    others = []
    for r in results:
        if r is best or not r["years"]:
            continue
        if y is not None and math.isfinite(y) and r["years"] > 0:
            others.append(f"{y / r['years']:.3g}x {r['store']}")
    if others:
        line += " (" + ", ".join(others) + ")"
    line += (
        f"; swapping costs {best['io_seconds_per_inference'] * 1e3:,.0f} ms and "
        f"{best['io_energy_mj_per_inference']:,.1f} mJ of flash work per inference"
    )
    if best.get("slowdown") is not None and best.get("slowdown_prefetch") is not None:
        line += (f"; an inference takes {best['slowdown']:.3g}x as long as with its "
                 f"activations in SRAM ({best['slowdown_prefetch']:.3g}x with prefetch)")
    if not best["sustainable"]:
        line += f", too slow for {format_rate(rate)} (max {format_rate(best['max_rate_per_s'])})"
    for e in errors:
        line += f"; {e['store']}: {e['error']}"
    return line


def _fmt_years(y: float | None) -> str:
    if y is None:
        return "n/a"
    if not math.isfinite(y):
        return "forever (no wear)"
    if y >= 1:
        return f"{y:,.3g} years"
    days = y * 365.25
    return f"{days:,.3g} days" if days >= 1 else f"{days * 24:,.3g} hours"


def _size(n: int) -> str:
    for unit, s in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= s and n % s == 0:
            return f"{n // s} {unit}"
    return f"{n} B"
