"""`flashswap advise --plot`: years against the SRAM budget, one line per part (and store),
one panel per model, the target marked. Both axes are logarithmic: budgets usually double and
years span orders of magnitude. Filled markers meet every constraint, hollow ones miss one
(years, rate or slowdown); a plan that swaps nothing wears nothing and is drawn at the top edge
with an upward triangle; failed configurations are left out (their reasons are in the text).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from analyzer.advise_report import Target, num
from analyzer.rates import format_rate
from flashswap.sizes import format_size


def write_plot(path: str, rows: Sequence[dict[str, Any]], target: Target) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    stores = {r["store"] for r in rows}
    fig, axes = plt.subplots(len(models), 1, figsize=(9, 4.8 * len(models)), squeeze=False)
    drawn = [r for r in rows if not r["failed"] and r["years"] is not None]
    finite = [r["years"] for r in drawn if math.isfinite(r["years"])] + [target.years]
    top = max(finite) * (3 if len(finite) <= len(drawn) else 1.5)  # room for "no wear"
    markers = "osD^vP*X"
    for ax, model in zip(axes[:, 0], models, strict=True):
        mine = [r for r in drawn if r["model"] == model]
        for n, (part, store) in enumerate(dict.fromkeys((r["part"], r["store"]) for r in mine)):
            pts = sorted((r["sram"] / 1024, r) for r in mine
                         if r["part"] == part and r["store"] == store)
            label = part if len(stores) == 1 else f"{part} ({store})"
            # parts of one geometry and endurance coincide: distinct markers and dashes
            m = markers[n % len(markers)]
            # a plan that swaps nothing has no wear-out: a marker at the top, off the line
            (line,) = ax.plot([x for x, _ in pts],
                              [r["years"] if math.isfinite(r["years"]) else math.nan
                               for _, r in pts],
                              linestyle=("-", "--", ":", "-.")[n // len(markers) % 4],
                              marker=m, markerfacecolor="none", markersize=7 - (n % 3),
                              label=label, alpha=0.8)
            for x, r in pts:
                wears = math.isfinite(r["years"])
                if r["meets"] or not wears:
                    ax.plot(x, min(r["years"], top), m if wears else "^",
                            color=line.get_color(), markersize=7 - (n % 3),
                            markerfacecolor=line.get_color() if r["meets"] else "none")
        if any(math.isinf(r["years"]) for r in mine):
            ax.text(0.01, 0.98, "▲ at the top: nothing swapped, no wear", fontsize=8,
                    transform=ax.transAxes, va="top")
        ax.axhline(target.years, color="black", linestyle="--", linewidth=1,
                   label=f"target {num(target.years)} years")
        budgets = sorted({r["sram"] for r in rows if r["model"] == model})
        ax.set_xscale("log", base=2)
        ax.set_xticks([b / 1024 for b in budgets], [format_size(b) for b in budgets],
                      fontsize=8)
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_ylim(top=top * 1.2)
        ax.set_xlabel("SRAM budget")
        ax.set_ylabel(f"years at {format_rate(target.rate_per_s)}")
        ax.set_title(f"{model}: {target.describe()} (filled: meets the target)", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
