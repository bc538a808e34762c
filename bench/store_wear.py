"""Wear of the store on a steady activation-swap workload (issue targets, SPEC.md §8/§10).

Per inference: write a fixed set of chunks of 1-64 KiB, read each back, drop them all with one
bulk invalidation, sync. Repeated for many full passes over the device. Reports erased bytes per
payload byte, erase-count evenness, and the projected lifetime against the ideal bound, on NOR and
NAND, with and without half of the device holding long-lived chunks.

    python bench/store_wear.py [--passes N] [--json-only]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from rich.console import Console
from rich.table import Table

from analyzer.readme import table, update
from flashswap import FlashSim, Store

PINNED_BASE = 1 << 20


def run(part: str, capacity: int, passes: int, long_lived: float, seed: int = 1,
        wl_threshold: int | None = None) -> dict[str, float]:
    flash = FlashSim.from_part(part, capacity=capacity)
    store = Store.format(flash, wl_threshold=wl_threshold)
    rng = random.Random(seed)
    chunk_sizes = [rng.randrange(1024, 64 * 1024 + 1) for _ in range(24)]
    blob = rng.randbytes(64 * 1024)
    # Long-lived data first: pinned chunks filling `long_lived` of the device, never dropped.
    pinned_bytes = 0
    key = PINNED_BASE
    while pinned_bytes < long_lived * capacity:
        n = rng.randrange(16 * 1024, 64 * 1024 + 1)
        store.put(key, blob[:n])
        key += 1
        pinned_bytes += n
    store.sync()
    flash.reset_counters()
    seg = store.geo.seg_size // flash.erase_size
    payload = 0
    per_inf = sum(chunk_sizes)
    inferences = int(passes * capacity / per_inf) + 1
    warm = inferences // 5  # steady-state window: the last 80% of the run
    start_counts = None
    t0 = time.perf_counter()
    for i in range(inferences):
        if i == warm:
            start_counts = flash.erase_counts[::seg].copy()
            warm_payload = payload
        for k, n in enumerate(chunk_sizes):
            store.put(k, blob[:n])
        for k, n in enumerate(chunk_sizes):
            assert len(store.get(k)) == n
        store.trim_range(0, len(chunk_sizes) - 1)
        store.sync()
        payload += per_inf
    elapsed = time.perf_counter() - t0
    counts = flash.erase_counts[::seg]  # one entry per segment
    good = store.state != 3
    c = counts[good]
    erased = int(flash.erase_counts.sum()) * flash.erase_size
    window = (counts - start_counts)[good]
    window_inf = inferences - warm
    mean_rate = window.mean() / window_inf
    max_rate = window.max() / window_inf
    window_payload = payload - warm_payload
    ea_window = window.sum() * store.geo.seg_size / window_payload
    # Years to the first block at endurance vs the ideal bound (endurance x capacity / payload):
    # the endurance and the inference rate cancel in the ratio.
    efficiency = (window_payload / window_inf) / (capacity * max_rate)
    return {
        "part": part, "capacity": capacity, "long_lived": long_lived,
        "segment_size": store.geo.seg_size, "passes": payload / capacity,
        "erased_over_payload": erased / payload, "erased_over_payload_steady": ea_window,
        "wear_max_over_mean": float(c.max() / c.mean()),
        "wear_max_minus_min": int(c.max() - c.min()),
        "rate_max_over_mean": float(max_rate / mean_rate), "lifetime_efficiency": efficiency,
        "payload_mb_per_s": payload / elapsed / 1e6, "wl_threshold": store.wl_threshold,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=float, default=60)
    ap.add_argument("--json-only", action="store_true")
    ap.add_argument("--update-readme", action="store_true",
                    help="write the table into README.md between its markers")
    a = ap.parse_args()
    cases = [
        ("W25Q128JV", 4 << 20, 0.0, None),
        ("W25N01GV", 16 << 20, 0.0, None),
        ("W25Q128JV", 4 << 20, 0.5, None),
        ("W25N01GV", 16 << 20, 0.5, None),
    ]
    rows = [run(p, cap, a.passes, ll, wl_threshold=wl) for p, cap, ll, wl in cases]
    if not a.json_only:
        t = Table(title=f"store wear, {a.passes:g} passes (python bench/store_wear.py)")
        for col in ("part", "MiB", "long-lived", "passes", "erased/payload", "steady",
                    "max/mean", "max-min", "rate max/mean", "lifetime/ideal", "MB/s"):
            t.add_column(col, justify="right")
        for r in rows:
            t.add_row(r["part"], f"{r['capacity'] >> 20}", f"{r['long_lived']:.0%}",
                      f"{r['passes']:.0f}", f"{r['erased_over_payload']:.4f}",
                      f"{r['erased_over_payload_steady']:.4f}", f"{r['wear_max_over_mean']:.4f}",
                      str(r["wear_max_minus_min"]), f"{r['rate_max_over_mean']:.4f}",
                      f"{r['lifetime_efficiency']:.3f}", f"{r['payload_mb_per_s']:.0f}")
        Console().print(t)
    print(json.dumps({"bench": "store_wear", "results": rows}, default=float))
    if a.update_readme:
        print(f"updated {update('store-wear', readme_table(rows))}")
    return 0


def readme_table(rows: list[dict]) -> str:
    """README's store-wear table: one row per case, the figures the issue targets name."""
    kinds = {"W25Q128JV": "NOR", "W25N01GV": "NAND"}
    out = []
    for r in rows:
        seg = r["segment_size"] >> 10
        where = f"{r['capacity'] >> 20} MiB, {seg} KiB segments"
        out.append((f"{r['part']} {kinds.get(r['part'], '')} ({where})", f"{r['long_lived']:.0%}",
                    f"{r['erased_over_payload']:.3f}", f"{r['erased_over_payload_steady']:.3f}",
                    f"{r['wear_max_over_mean']:.3f}", r["wear_max_minus_min"],
                    f"{r['lifetime_efficiency']:.3f}"))
    return table(("part (partition)", "long-lived", "erased / payload", "steady",
                  "max/mean count", "max−min", "lifetime / ideal"), out)


if __name__ == "__main__":
    sys.exit(main())
