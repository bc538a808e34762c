"""Turning lifetime results into what `flashswap lifetime` prints: tables, verdicts, JSON.

Every figure is printed whole, at any terminal width: cells never wrap or shorten, so a part's
figures go into one table when the terminal is wide enough for it, else into two narrower
ones (lifetime, then cost), else into the same two with terser headers, else into one table
per part with a row per figure and a column per store (`part_tables`; `--wide` forces the
single table, even if the terminal then folds its lines). Prose (titles, verdicts, the
legend) wraps between words.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from analyzer.rates import format_rate
from flashswap.numfmt import fmt
from flashswap.sizes import format_size

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # full header (lines separated by \n)
    terse: str  # header when space is short
    cell: Callable[[Row], str]


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


def _num(v: Any) -> str:
    return "n/a" if v is None else fmt(float(v))


def _sig(v: float) -> str:
    """Three significant digits, thousands separated (no spurious precision on big values)."""
    if v >= 100:
        return f"{round(v):,}"
    return f"{v:.3g}"


def _years(v: Any) -> str:
    if v is None:
        return "n/a"
    v = float(v)
    return "never" if not math.isfinite(v) else fmt(v)


def _pair(r: Row, a: str, b: str) -> str:
    """ "p1 / median" of two year figures."""
    if r.get(a) is None and r.get(b) is None:
        return "n/a"
    return f"{_years(r.get(a))} / {_years(r.get(b))}"


def _slowdown(r: Row) -> str:
    s, p = r.get("slowdown"), r.get("slowdown_prefetch")
    if s is None:
        return "n/a"
    return f"{s:.3g}x / {p:.3g}x" if p is not None else f"{s:.3g}x"


def _max_rate(r: Row) -> str:
    v = r.get("max_rate_per_s")
    return format_rate(v) if v is not None and math.isfinite(v) else "n/a"


STORE = Column("store", "store", "store", lambda r: r["store"])
LIFETIME = [
    Column("years", "years", "years", lambda r: _years(r["years"])),
    Column("first", "Weibull: 1st\nworn block\np1 / median", "1st worn\nblock\np1 / med.",
           lambda r: _pair(r, "years_first_worn_block_weibull_p1",
                           "years_first_worn_block_weibull_median")),
    Column("death", "Weibull:\nstore dies\np1 / median", "store\ndies\np1 / med.",
           lambda r: _pair(r, "years_weibull_p1", "years_weibull_median")),
    Column("ideal", "ideal\nyears", "ideal", lambda r: _years(r["ideal_years"])),
    Column("eff", "efficiency", "eff.", lambda r: _num(r["efficiency"])),
]
COST = [
    Column("ea", "erase\nampl.", "EA", lambda r: _num(r["erase_amplification"])),
    Column("wear", "wear\nmax/mean", "max/\nmean", lambda r: _num(r["wear_max_over_mean"])),
    Column("io", "I/O\nms/inf", "I/O\nms", lambda r: _sig(r["io_seconds_per_inference"] * 1e3)),
    Column("mj", "I/O\nmJ/inf", "I/O\nmJ", lambda r: _sig(r["io_energy_mj_per_inference"])),
    Column("slow", "slowdown\n(prefetch)", "slow-\ndown", _slowdown),
    Column("rate", "max\nrate", "max\nrate", _max_rate),
]
# Full table, then lifetime and cost apart, then the same with terse headers.
LAYOUTS: tuple[tuple[tuple[list[Column], ...], bool], ...] = (
    ((LIFETIME + COST,), False),
    ((LIFETIME, COST), False),
    ((LIFETIME, COST), True),
)


def _width(cols: Sequence[Column], rows: list[list[str]], terse: bool) -> int:
    """Columns the table needs with every cell whole: cells and header lines, a space of
    padding either side, and the rules between and around the columns."""
    total = len(cols) + 1
    for i, c in enumerate(cols):
        head = (c.terse if terse else c.header).split("\n")
        total += max(len(x) for x in head + [r[i] for r in rows]) + 2
    return total


def part_title(part: Row, results: list[Row], shape_note: str) -> str:
    """ "W25Q128JV (nor, 16 MiB replayed, 100,000 cycles; ...)": what was replayed, and the
    assumptions its figures rest on."""
    cell = f"/{part['cell']}" if part.get("cell") else ""
    bits = [f"{part['kind']}{cell}", f"{format_size(part['capacity'])} replayed",
            f"endurance {part['endurance']:,} cycles"]
    t = part.get("timing") or {}
    if t.get("bus"):
        b = t["bus"]
        bits.append(f"bus {b['width_bits']}-bit{' DDR' if b['ddr'] else ''} at "
                    f"{b['mhz']:g} MHz")
    if t.get("t_read_us"):
        basis = {"typ": "typical", "max": "datasheet max"}.get(t.get("t_read_basis") or "", "")
        bits.append(f"tR {t['t_read_us']:g} us{' ' + basis if basis else ''}")
    if part["kind"] == "nand" and part.get("ecc"):  # what the simulated reads are corrected with
        bits.append(part["ecc"])
    w = next((r["weibull"] for r in results if r.get("weibull")), None)
    if w:
        bits.append(f"Weibull k={w['shape']:g}{shape_note}")
    return f"{part['part']} ({', '.join(bits)})"


def configs_line(results: list[Row]) -> str:
    """ "flashswap: 64 KiB segments; littlefs: file per tensor, 4 KiB blocks (best of 2)"."""
    out = []
    for r in results:
        n = sum("error" not in c for c in r.get("candidates") or [])
        out.append(f"{r['store']}: {r['config']}" + (f" (best of {n})" if n > 1 else ""))
    return "configurations: " + "; ".join(out)


def part_tables(
    part: Row, results: list[Row], errors: list[dict], width: int, wide: bool = False,
    shape_note: str = "",
) -> list[Table | Text]:
    """The part's title, its figures in as few tables as fit `width` with every cell whole
    (module doc), and the configurations the stores ran with."""
    rows = [[STORE.cell(r)] + [c.cell(r) for c in LIFETIME + COST] for r in results]
    n = len(LIFETIME + COST)
    rows += [[e["store"]] + ["n/a"] * n for e in errors]
    index = {c.key: i + 1 for i, c in enumerate(LIFETIME + COST)}
    chosen = LAYOUTS[-1]
    for layout in LAYOUTS if not wide else LAYOUTS[:1]:
        groups, terse = layout
        if wide or all(_width([STORE, *g], _sub(rows, g, index), terse) <= width
                       for g in groups):
            chosen = layout
            break
    out: list[Table | Text] = [Text(part_title(part, results, shape_note))]
    stacked = _stacked(results, errors)
    if not wide and chosen is LAYOUTS[-1] and not all(
            _width([STORE, *g], _sub(rows, g, index), True) <= width for g in chosen[0]):
        out += [stacked, Text(configs_line(results))]
        return out
    groups, terse = chosen
    for g in groups:
        t = Table(box=box.HEAVY_HEAD, pad_edge=True, collapse_padding=False)
        for i, c in enumerate([STORE, *g]):
            t.add_column(c.terse if terse else c.header, justify="left" if i == 0 else "right",
                         no_wrap=True)
        for r in _sub(rows, g, index):
            t.add_row(*r)
        out.append(t)
    out.append(Text(configs_line(results)))
    return out


# (label, cell) rows of the stacked layout: a figure per row, pairs split in two
STACKED: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("years", LIFETIME[0].cell),
    ("Weibull 1st worn block p1", lambda r: _years(r.get("years_first_worn_block_weibull_p1"))),
    ("  median", lambda r: _years(r.get("years_first_worn_block_weibull_median"))),
    ("Weibull store dies p1", lambda r: _years(r.get("years_weibull_p1"))),
    ("  median", lambda r: _years(r.get("years_weibull_median"))),
    ("ideal years", LIFETIME[3].cell),
    ("efficiency", LIFETIME[4].cell),
    ("erase amplification", COST[0].cell),
    ("wear max/mean", COST[1].cell),
    ("I/O ms per inference", COST[2].cell),
    ("I/O mJ per inference", COST[3].cell),
    ("slowdown", lambda r: "n/a" if r.get("slowdown") is None else f"{r['slowdown']:.3g}x"),
    ("  with prefetch", lambda r: "n/a" if r.get("slowdown_prefetch") is None
     else f"{r['slowdown_prefetch']:.3g}x"),
    ("max rate", COST[5].cell),
)


def _stacked(results: list[Row], errors: list[dict]) -> Table:
    """A row per figure, a column per store: for terminals too narrow for a row per store."""
    t = Table(box=box.HEAVY_HEAD)
    t.add_column("", justify="left", no_wrap=True)
    for r in results:
        t.add_column(r["store"], justify="right", no_wrap=True)
    for e in errors:
        t.add_column(e["store"], justify="right", no_wrap=True)
    for label, cell in STACKED:
        t.add_row(label, *[cell(r) for r in results], *["n/a"] * len(errors))
    return t


def _sub(rows: list[list[str]], cols: list[Column], index: dict[str, int]) -> list[list[str]]:
    return [[r[0]] + [r[index[c.key]] for c in cols] for r in rows]


def table_width(renderables: list[Table | Text]) -> int:
    """Widest line the tables need (for `--wide`, which prints them unshrunk)."""
    widest = 0
    for t in renderables:
        if isinstance(t, Table):
            cells = [[str(c) for c in col.cells] for col in t.columns]
            total = len(t.columns) + 1
            for col, cs in zip(t.columns, cells, strict=True):
                head = str(col.header).split("\n")
                total += max(len(x) for x in head + cs) + 2
            widest = max(widest, total)
    return widest


LEGEND = (
    "years: until the first block reaches its rated endurance. Weibull: p1 / median years "
    "when each block's endurance is drawn from a Weibull distribution whose 1% point is the "
    "rating, to the first worn block, and until the store dies (it can no longer hold the "
    "working set; a store that cannot remap dies with its first worn block). "
    "I/O: flash busy time and energy per inference (with --encrypt, plus the crypto work); "
    "slowdown: against the same inference "
    "with its activations in SRAM, without / with prefetch."
)


def _flash_s(r: Row) -> float:
    """Flash time per inference, without the crypto work --encrypt adds to the I/O figures."""
    crypto = r.get("crypto")
    return float(crypto["flash_seconds_per_inference"] if crypto
                 else r["io_seconds_per_inference"])


def verdict(part: str, results: list[Row], errors: list[dict], rate: float) -> str:
    """One paragraph per part: how long flashswap lasts (the longest-lived store when
    flashswap did not run), how it compares with each other store in years and in flash
    time, saying plainly where its advantage is I/O time rather than years, and its cost."""
    if not results:
        why = errors[0]["error"] if errors else "no result"
        return f"{part}: no store could run ({why})"
    if all(r["years"] == math.inf for r in results):
        return f"{part}: the trace swaps nothing out, so no store wears the flash"
    lead = next((r for r in results if r["store"] == "flashswap"), None)
    if lead is None:
        lead = max(results, key=lambda r: r["years"] if r["years"] is not None else -1.0)
    line = f"{part}: {lead['store']} lasts {_fmt_years(lead['years'])} at {format_rate(rate)}"
    others = [_compare(lead, r) for r in results if r is not lead]
    others = [o for o in others if o]
    if others:
        line += "; " + "; ".join(others)
    crypto = lead.get("crypto")
    flash_mj = crypto["flash_energy_mj_per_inference"] if crypto else \
        lead["io_energy_mj_per_inference"]
    line += (
        f". Its flash work per inference: {_flash_s(lead) * 1e3:,.0f} ms "
        f"and {flash_mj:,.1f} mJ"
    )
    if crypto:
        line += (f", {lead['io_seconds_per_inference'] * 1e3:,.0f} ms and "
                 f"{lead['io_energy_mj_per_inference']:,.1f} mJ with encryption")
    if lead.get("slowdown") is not None and lead.get("slowdown_prefetch") is not None:
        line += (f"; an inference takes {lead['slowdown']:.3g}x as long as with its "
                 f"activations in SRAM ({lead['slowdown_prefetch']:.3g}x with prefetch)")
    if not lead["sustainable"]:
        line += f", too slow for {format_rate(rate)} (max {format_rate(lead['max_rate_per_s'])})"
    line += "."
    for e in errors:
        line += f" {e['store']}: {e['error']}."
    return line


SAME_YEARS = 0.1  # years within 10%: "as long as"
IO_EDGE = 1.5  # flash time 1.5x apart or more: an advantage worth naming


def _compare(lead: Row, other: Row) -> str:
    """How `lead` compares with `other`: years ratio, and flash time when it differs."""
    y, yo = lead["years"], other["years"]
    if y is None or yo is None or not math.isfinite(y) or yo <= 0:
        return ""
    r = y / yo if math.isfinite(yo) else 0.0
    io, io_o = _flash_s(lead), _flash_s(other)
    q = io_o / io if io > 0 else 1.0
    name = other["store"]
    if abs(r - 1) <= SAME_YEARS and q >= IO_EDGE:
        return (f"against {name} its advantage is I/O time, not years: it lasts {_x(r)} as "
                f"long with {_x(q)} less flash time per inference")
    text = f"{_x(r)} as long as {name}"
    if q >= IO_EDGE:
        text += f", with {_x(q)} less flash time"
    elif q <= 1 / IO_EDGE:
        text += f", with {_x(1 / q)} more flash time"
    return text


def _x(r: float) -> str:
    """A ratio: three significant digits, whole and thousands-separated from 100 on."""
    return f"{r:,.0f}x" if r >= 100 else f"{r:.3g}x"


def _fmt_years(y: float | None) -> str:
    if y is None:
        return "n/a"
    if not math.isfinite(y):
        return "forever (no wear)"
    if y >= 1:
        return f"{y:,.3g} years"
    days = y * 365.25
    return f"{days:,.3g} days" if days >= 1 else f"{days * 24:,.3g} hours"
