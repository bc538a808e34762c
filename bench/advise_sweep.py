"""`flashswap advise` sweep time: 1 model × 8 SRAM budgets × 4 parts on each backend, one run.

    python bench/advise_sweep.py [MODEL] [--workers N]

Sweeps MODEL (default builtin:mobilenet_v2) at 64..512 KiB in 64 KiB steps on a NOR, a second
NOR, an SLC NAND and an MLC NAND part under the flashswap store, at 1/min, without the result
cache: in this process (1 worker), on a local pool of 1 and of N worker processes (default: one
per CPU), and on a Dask LocalCluster of N single-threaded worker processes (its start-up timed
apart), then once more from a warm cache. Every backend must give the serial run's results
exactly. The serial run also times each task (plan or replay, per part) to show where the time
goes. Each row also gives the CPU seconds it used (this process and its reaped worker
processes; for Dask including the cluster's start-up and shut-down) and the table the load
average: on a shared machine wall times only compare when the CPUs were free. Prints a table
and one JSON line; the issue's target is the sweep on all workers within 120 s on the 2-core
development machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from analyzer.advise import Config, Model, Sweep, parse_budgets, run_sweep
from analyzer.lifetime import Options
from analyzer.mcus import DEFAULT_MCU, get_mcu
from analyzer.readme import table, update
from analyzer.sweep import LocalPool, Serial
from analyzer.sweep_cache import ResultCache

PARTS = ("W25Q128JV", "IS25LX128", "W25N01GV", "FNNL41A-8Gb")
BUDGETS = "64KiB..512KiB:64KiB"
TARGET_S = 120.0


def cpu_s() -> float:
    """CPU seconds of this process and of every child it has reaped."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Timed:
    """Serial, recording how long each task took (the time between its result and the one
    before it: tasks run one after another in this process)."""

    name = "serial"
    workers = 1

    def __init__(self) -> None:
        self.times: dict[object, float] = {}

    def run(self, tasks, done, tick=None) -> None:
        last = [time.perf_counter()]

        def timed(key, result) -> None:
            now = time.perf_counter()
            self.times[key] = now - last[0]
            last[0] = now
            done(key, result)

        Serial().run(tasks, timed, tick)


def readme_table(rows: list[tuple[str, int, float, float]], dask_start: float | None) -> str:
    """README's sweep-time table: wall and CPU seconds per backend (the cluster's start-up
    beside its wall time, not in it)."""
    names = {"serial (in process)": "serial, in process", "dask LocalCluster": "Dask LocalCluster"}
    out = []
    for name, w, wall, cpu in rows:
        dask = name == "dask LocalCluster" and dask_start is not None
        out.append((names.get(name, name), w,
                    f"{wall:.1f} (+{dask_start:.1f} start-up)" if dask else
                    (f"{wall:.2f}" if wall < 1 else f"{wall:.1f}"),
                    f"{cpu:.1f} (with start-up)" if dask else f"{cpu:.1f}"))
    return table(("backend", "workers", "wall s", "CPU s"), out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="builtin:mobilenet_v2")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--update-readme", action="store_true",
                    help="write the table into README.md between its markers")
    args = ap.parse_args()
    n = args.workers
    sweep = Sweep((Model.load(args.model),), tuple(parse_budgets(BUDGETS)), PARTS,
                  ("flashswap",), Options(rate_per_s=1 / 60),
                  macs_per_s=get_mcu(DEFAULT_MCU).macs_per_s)
    configs = len(sweep.configs())
    rows: list[tuple[str, int, float, float]] = []  # backend, workers, wall s, CPU s
    load0 = os.getloadavg()[0]

    timed = Timed()
    c = cpu_s()
    ref = run_sweep(sweep, timed, ResultCache(None))
    rows.append(("serial (in process)", 1, ref.stats["wall_s"], cpu_s() - c))
    for w in (1, n):
        c = cpu_s()
        out = run_sweep(sweep, LocalPool(w), ResultCache(None))
        assert out.results == ref.results, f"local pool of {w} differs from the serial run"
        rows.append(("local pool", w, out.stats["wall_s"], cpu_s() - c))
    dask_start = None
    try:
        from analyzer.sweep import DaskCluster

        c = cpu_s()
        t = time.perf_counter()
        with DaskCluster("local", n) as cluster:
            dask_start = time.perf_counter() - t
            out = run_sweep(sweep, cluster, ResultCache(None))
        assert out.results == ref.results, "the Dask cluster differs from the serial run"
        rows.append(("dask LocalCluster", n, out.stats["wall_s"], cpu_s() - c))
    except ImportError:
        print("dask[distributed] not installed: no cluster row")
    with tempfile.TemporaryDirectory() as d:
        run_sweep(sweep, LocalPool(n), ResultCache(Path(d)))
        c = cpu_s()
        warm = run_sweep(sweep, LocalPool(n), ResultCache(Path(d)))
        assert warm.results == ref.results and warm.stats["computed"] == 0
        rows.append(("local pool, warm cache", n, warm.stats["wall_s"], cpu_s() - c))
    load1 = os.getloadavg()[0]

    serial = rows[0][2]
    print(f"{args.model}: {len(sweep.budgets)} budgets ({BUDGETS}) × {len(PARTS)} parts "
          f"({', '.join(PARTS)}) = {configs} configurations, flashswap store, 1/min; "
          f"{os.cpu_count()} CPUs, load average {load0:.1f} before, {load1:.1f} after")
    print(f"{'backend':<24} {'workers':>7} {'wall s':>8} {'vs serial':>9} {'CPU s':>7}")
    for name, w, s, cpu in rows:
        print(f"{name:<24} {w:>7} {s:>8.2f} {serial / s if s else float('inf'):>8.2f}x "
              f"{cpu:>7.1f}")
    if dask_start is not None:
        print(f"(Dask LocalCluster start-up, not in its wall time: {dask_start:.2f} s)")
    if args.update_readme:
        print(f"updated {update('advise-sweep', readme_table(rows, dask_start))}")

    plan_s = sum(v for k, v in timed.times.items() if not isinstance(k, Config))
    per_part = {p: sum(v for k, v in timed.times.items()
                       if isinstance(k, Config) and k.part == p) for p in PARTS}
    total = plan_s + sum(per_part.values())
    print(f"where the serial run's {total:.2f} s go: planning {plan_s:.2f} s "
          f"({plan_s / total:.0%}); replay " + ", ".join(
              f"{p} {s:.2f} s ({s / total:.0%})" for p, s in per_part.items()))
    by = {(name, w): s for name, w, s, _ in rows}
    cpu = {(name, w): round(c, 2) for name, w, _, c in rows}
    pool_n = by[("local pool", n)]
    dask_n = by.get(("dask LocalCluster", n))
    print(json.dumps({
        "bench": "advise_sweep", "model": args.model, "configurations": configs,
        "workers": n, "serial_s": serial, "pool_1_s": by[("local pool", 1)],
        "pool_n_s": pool_n, "dask_n_s": dask_n,
        "dask_startup_s": round(dask_start, 3) if dask_start is not None else None,
        "warm_cache_s": by[("local pool, warm cache", n)],
        "speedup_pool_n_vs_1": round(by[("local pool", 1)] / pool_n, 3),
        "speedup_pool_n_vs_serial": round(serial / pool_n, 3),
        "dask_vs_pool": round(pool_n / dask_n, 3) if dask_n else None,
        "plan_s": round(plan_s, 3), "replay_s": {p: round(s, 3) for p, s in per_part.items()},
        "cpu_s": {f"{name} x{w}": c for (name, w), c in cpu.items()},
        "loadavg": [round(load0, 2), round(load1, 2)], "identical_results": True,
        "target_s": TARGET_S, "within_target": pool_n <= TARGET_S,
    }))


if __name__ == "__main__":
    main()
