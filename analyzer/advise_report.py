"""Judging an advise sweep against a target, and the parts of the answer: the configurations
that meet it (smallest SRAM first, then most years), the margin on each constraint, per part the
smallest SRAM that meets it, what fell short and by how much, and one recommendation.

A configuration meets the target when its flash lasts at least `years` at the inference rate
(the rated-endurance projection `flashswap lifetime` prints as "years"), an inference can run
at that rate at all (flash I/O plus compute fit in the interval), and, with a slowdown limit,
the inference takes at most that many times as long as with its activations in SRAM (without
prefetch: the cautious figure).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.advise import Config
from analyzer.rates import format_rate
from flashswap.sizes import format_size

CSV_COLUMNS = (
    "model", "sram", "part", "store", "kind", "years", "years_weibull_p1", "slowdown",
    "slowdown_prefetch", "io_ms_per_inference", "io_energy_mj_per_inference", "max_rate_per_s",
    "swap_bytes_per_inference", "peak_sram", "margin_years", "margin_slowdown", "meets",
    "failed", "reason",
)


@dataclass(frozen=True)
class Target:
    years: float
    rate_per_s: float
    max_slowdown: float | None = None

    def describe(self) -> str:
        unit = "year" if self.years == 1 else "years"
        s = f"{num(self.years)} {unit} at {format_rate(self.rate_per_s)}"
        return s + (f", at most {num(self.max_slowdown)}x slowdown" if self.max_slowdown else "")


def num(v: float | None) -> str:
    """Three significant digits, no exponent below a million (years, ratios, mJ)."""
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "∞"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def kind_label(kind: str | None, cell: str | None) -> str:
    if kind == "nand":
        return f"{(cell or '').upper()} NAND".strip()
    if kind == "managed":
        return f"managed ({cell})" if cell else "managed"
    if kind == "internal":
        return "MCU internal flash"
    return (kind or "?").upper()


def evaluate(cfg: Config, res: dict[str, Any], target: Target) -> dict[str, Any]:
    """One configuration's row: its figures, whether it meets the target, the margins, and the
    reason it does not (None when it does)."""
    row: dict[str, Any] = {
        "model": cfg.model, "sram": cfg.sram, "part": cfg.part, "store": cfg.store,
        "kind": None, "years": None, "slowdown": None, "io_energy_mj_per_inference": None,
        "meets": False, "reason": None, "failed": "error" in res,
        "margin_years": None, "margin_slowdown": None,
    }
    for k in ("years_weibull_p1", "slowdown_prefetch", "io_ms_per_inference",
              "max_rate_per_s", "swap_bytes_per_inference", "peak_sram"):
        row[k] = res.get(k)
    if row["failed"]:
        row["reason"] = res["error"]
        return row
    row.update(kind=kind_label(res["kind"], res["cell"]), years=res["years"],
               slowdown=res["slowdown"],
               io_energy_mj_per_inference=res["io_energy_mj_per_inference"])
    misses = []
    years, slow, max_rate = res["years"], res["slowdown"], res["max_rate_per_s"]
    if years is None:
        misses.append("no lifetime projection")
    else:
        row["margin_years"] = years - target.years
        if years < target.years:
            misses.append(f"lasts {num(years)} years, {num(target.years - years)} short of "
                          f"{num(target.years)}")
    if max_rate is not None and max_rate < target.rate_per_s:
        misses.append(f"cannot run {format_rate(target.rate_per_s)}: at most "
                      f"{format_rate(max_rate)}")
    if target.max_slowdown is not None:
        if slow is None:
            misses.append("slowdown unknown (no compute time)")
        else:
            row["margin_slowdown"] = target.max_slowdown - slow
            if slow > target.max_slowdown:
                misses.append(f"slowdown {num(slow)}x, {num(slow - target.max_slowdown)}x over "
                              f"{num(target.max_slowdown)}x")
    row["meets"] = not misses
    row["reason"] = "; ".join(misses) or None
    return row


def _years_key(r: dict[str, Any]) -> float:
    return -(r["years"] if r["years"] is not None else -math.inf)


def ranked(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that meet the target: smallest SRAM first, then most years; equal years (parts
    of one geometry and endurance) go by the smaller slowdown, then the sweep's order."""
    return sorted((r for r in rows if r["meets"]),
                  key=lambda r: (r["sram"], _years_key(r), r["slowdown"] or 0.0))


def _at(r: dict[str, Any], part: bool = True) -> str:
    return f"{r['part']} at {format_size(r['sram'])}" if part else f"at {format_size(r['sram'])}"


def shortfall(rows: Sequence[dict[str, Any]], target: Target, part: bool = True) -> str:
    """Which constraint keeps every one of `rows` from the target, and by how much at best
    (for rows none of which meets it); `part=False` leaves the part's name out of it."""
    ran = [r for r in rows if not r["failed"]]
    if not ran:
        reasons = list(dict.fromkeys(r["reason"] for r in rows))
        return "no configuration ran: " + reasons[-1]  # the largest budget's reason
    rate = format_rate(target.rate_per_s)
    lasting = [r for r in ran if r["years"] is not None and r["years"] >= target.years]
    if not lasting:
        best = max(ran, key=lambda r: (r["years"] or 0.0, -r["sram"]))
        return (f"lasts {num(best['years'])} years at most ({_at(best, part)}), "
                f"{num(target.years - (best['years'] or 0.0))} short of {num(target.years)} "
                f"at {rate}")
    fast = [r for r in lasting if r["max_rate_per_s"] is None
            or r["max_rate_per_s"] >= target.rate_per_s]
    if not fast:
        best = max(lasting, key=lambda r: (r["max_rate_per_s"], -r["sram"]))
        return (f"cannot run {rate} where it lasts {num(target.years)} years: at most "
                f"{format_rate(best['max_rate_per_s'])} ({_at(best, part)})")
    limit = target.max_slowdown
    assert limit is not None, "a row that lasts and keeps up with no slowdown limit meets it"
    best = min(fast, key=lambda r: (r["slowdown"], r["sram"]))
    both = "" if len(fast) == len(ran) else f" where it lasts {num(target.years)} years"
    return (f"slowdown {num(best['slowdown'])}x at least{both} ({_at(best, part)}), "
            f"{num(best['slowdown'] - limit)}x over {num(limit)}x")


def smallest_per_part(rows: Sequence[dict[str, Any]], target: Target) -> list[dict[str, Any]]:
    """Per (model, part, store), in sweep order: the smallest SRAM that meets the target and
    its figures, or sram None and why not."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["part"], r["store"]), []).append(r)
    out = []
    for (model, part, store), rs in groups.items():
        meets = ranked(rs)
        kind = next((r["kind"] for r in rs if r["kind"]), None)
        if meets:
            b = meets[0]
            out.append({"model": model, "part": part, "store": store, "kind": kind,
                        "sram": b["sram"], "years": b["years"], "slowdown": b["slowdown"],
                        "io_energy_mj_per_inference": b["io_energy_mj_per_inference"],
                        "reason": None})
        else:
            out.append({"model": model, "part": part, "store": store, "kind": kind,
                        "sram": None, "years": None, "slowdown": None,
                        "io_energy_mj_per_inference": None,
                        "reason": shortfall(rs, target, part=False)})
    return out


def _budgets(rows: Iterable[dict[str, Any]]) -> str:
    srams = sorted({r["sram"] for r in rows})
    return f"up to {format_size(srams[-1])}" if srams else ""


def _kind_shortfall(kind: str, rows: Sequence[dict[str, Any]], target: Target,
                    where: str) -> str:
    """Why no `kind` part among `rows` (none of which meets the target) meets it `where`."""
    ran = [r for r in rows if not r["failed"]]
    if ran and all(r["years"] is None or r["years"] < target.years for r in ran):
        best = max(ran, key=lambda r: (r["years"] or 0.0, -r["sram"]))
        return (f"at {format_rate(target.rate_per_s)} no {kind} part lasts "
                f"{num(target.years)} years {where} (closest: {_at(best)}, "
                f"{num(best['years'])} years, {num(target.years - (best['years'] or 0.0))} "
                "short)")
    return f"no {kind} part meets the target {where}: {shortfall(rows, target)}"


def by_kind(rows: Sequence[dict[str, Any]], target: Target) -> list[str]:
    """One line per kind of part (NOR, SLC NAND, ...): from which SRAM budget some part of
    that kind meets the target, and which constraint fails below it and by how much, e.g.
    "at 1/min no NOR part lasts 10 years below 512 KiB (closest: ...)"."""
    kinds: dict[str, str] = {}
    for r in rows:
        if r["kind"]:
            kinds.setdefault(r["part"], r["kind"])
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(kinds.get(r["part"], ""), []).append(r)
    lines = []
    for kind, rs in groups.items():
        if not kind:  # parts where nothing ran: the failures say why
            continue
        meets = ranked(rs)
        if not meets:
            lines.append(_kind_shortfall(kind, rs, target, _budgets(rs)))
            continue
        b = meets[0]
        first = (f"{kind}: from {format_size(b['sram'])} ({b['part']}, "
                 f"{num(b['years'])} years)")
        below = [r for r in rs if r["sram"] < b["sram"]]
        if not below:
            lines.append(f"{first}, the smallest budget tried")
        else:
            lines.append(f"{first}; "
                         + _kind_shortfall(kind, below, target,
                                           f"below {format_size(b['sram'])}"))
    return lines


def recommendation(model: str, rows: Sequence[dict[str, Any]], target: Target,
                   several_stores: bool = False) -> str:
    """One line: the first ranked configuration, or why there is none."""
    best = ranked(rows)
    if not best:
        return (f"{model}: nothing {_budgets(rows)} meets the target "
                f"({target.describe()}): {shortfall(rows, target)}")
    b = best[0]
    store = f" under {b['store']}" if several_stores else ""
    years = (f"{num(b['years'])} years ({num(b['years'] / target.years)}x the target)"
             if b["years"] is not None and not math.isinf(b["years"])
             else "no flash wear (nothing is swapped)")
    slow = f"{num(b['slowdown'])}x slowdown" if b["slowdown"] is not None else "slowdown n/a"
    mj = b["io_energy_mj_per_inference"]
    return (f"{model}: {b['part']} ({b['kind']}){store} with {format_size(b['sram'])} of SRAM: "
            f"{years} at {format_rate(target.rate_per_s)}, {slow}, "
            f"{num(mj)} mJ of flash I/O per inference")


def write_csv(path: str, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r.get(k) is None else r.get(k) for k in CSV_COLUMNS})
