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


def write_plot(path: str, rows: Sequence[dict[str, Any]], target: Target) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    stores = {r["store"] for r in rows}
    fig, axes = plt.subplots(len(models), 1, figsize=(8, 4.5 * len(models)), squeeze=False)
    finite = [r["years"] for r in rows if r["years"] is not None and math.isfinite(r["years"])]
    top = max(finite + [target.years]) * 3
    for ax, model in zip(axes[:, 0], models, strict=True):
        mine = [r for r in rows if r["model"] == model]
        for (part, store) in dict.fromkeys((r["part"], r["store"]) for r in mine):
            pts = sorted((r["sram"] / 1024, r) for r in mine
                         if r["part"] == part and r["store"] == store and not r["failed"]
                         and r["years"] is not None)
            if not pts:
                continue
            xs = [x for x, _ in pts]
            ys = [min(r["years"], top) for _, r in pts]
            label = part if len(stores) == 1 else f"{part} ({store})"
            (line,) = ax.plot(xs, ys, "-", label=label)
            for x, r in pts:
                wears = math.isfinite(r["years"])
                ax.plot(x, min(r["years"], top), "o" if wears else "^",
                        color=line.get_color(),
                        markerfacecolor=line.get_color() if r["meets"] else "none")
        ax.axhline(target.years, color="black", linestyle="--", linewidth=1,
                   label=f"target {num(target.years)} years")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_ylim(top=top * 1.5)
        ax.set_xlabel("SRAM budget (KiB)")
        ax.set_ylabel(f"years at {format_rate(target.rate_per_s)}")
        ax.set_title(f"{model}: {target.describe()} (filled: meets the target)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
