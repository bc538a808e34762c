"""`--plot FILE.png`: per raw-flash part, the erase-count distribution each store leaves when
the device wears out, and the worst block's wear over the years."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analyzer import projection as pj
from flashswap.errors import InputError

POINTS = 200


def worst_curve(c: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(years, worst unit's wear / endurance) from a fresh device to the projected end."""
    rates, counts, now, life = c["rates"], c["counts"], c["now"], c["life"]
    end = life if np.isfinite(life) else now * 10.0 + 1
    t = np.geomspace(max(end * 1e-4, 1e-9), end, POINTS)
    spread = c.get("spread", 0.0)
    z = pj.extreme_z(rates.size)
    ahead = np.maximum(t - now, 0.0)
    # Up to `now` the replay's own counts scale linearly; beyond, each unit follows its rate.
    worst = np.array(
        [
            float((counts * min(1.0, ti / max(now, 1)) + rates * a).max())
            + (z * np.sqrt(spread * a) if spread > 0 else 0.0)
            for ti, a in zip(t, ahead, strict=True)
        ]
    )
    return pj.years(1, c["rate_per_s"]) * t, worst / c["endurance"]


def end_of_life_wear(c: dict[str, Any]) -> np.ndarray:
    """Each unit's wear (fraction of the endurance) when the device wears out."""
    ahead = c["life"] - c["now"] if np.isfinite(c["life"]) else 0.0
    return (c["counts"] + c["rates"] * ahead) / c["endurance"]


def write_plot(path: str | Path, runs: list[tuple[str, str, dict[str, Any]]], title: str) -> None:
    """runs: (part, store, curves) for every raw-flash result; one row of panels per part."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is an optional extra
        raise InputError("--plot needs matplotlib (pip install 'flashswap[plot]')") from None
    parts = list(dict.fromkeys(p for p, _, _ in runs))
    if not parts:
        raise InputError("--plot: no raw-flash result to plot (managed devices have no blocks)")
    fig, axes = plt.subplots(len(parts), 2, figsize=(12, 3.6 * len(parts)), squeeze=False)
    for row, part in enumerate(parts):
        dist, worst = axes[row]
        for p, store, c in runs:
            if p != part:
                continue
            wear = end_of_life_wear(c)
            dist.hist(wear, bins=60, histtype="step", label=store, linewidth=1.4)
            yrs, w = worst_curve(c)
            worst.plot(yrs, w, label=store, linewidth=1.4)
        dist.set_title(f"{part}: erase counts when the first block wears out")
        dist.set_xlabel("erase count / rated endurance")
        dist.set_ylabel("erase units")
        dist.set_yscale("log")
        dist.legend()
        worst.set_title(f"{part}: worst block's wear")
        worst.set_xscale("log")
        worst.set_xlabel("years")
        worst.set_ylabel("erase count / rated endurance")
        worst.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        worst.legend()
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise InputError(f"--plot {path}: cannot write ({e.strerror or e})") from None
    finally:
        plt.close(fig)
