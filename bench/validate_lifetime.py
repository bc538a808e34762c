"""littlefs lifetime projection vs replay to failure on small devices (analyzer/README.md).

For each case (trace, part, number of blocks) one replay without wear-out gives the first
wear-out for every endurance at once (analyzer.validate.first_failures), and the projection
runs once per endurance (analyzer.lifetime.analyze, as `flashswap lifetime` does). Cases with
`remount` unmount and mount littlefs every that many inferences in the replay to failure (a
reboot: littlefs restarts its allocator at a pseudo-random block), and compare it with the
stint model on its own premise (analyzer.validate.premise_life). Prints a Markdown table.

    python bench/validate_lifetime.py                   # every case (about 90 min on 2 cores)
    python bench/validate_lifetime.py --only small-nor  # one group
    python bench/validate_lifetime.py --only remount    # the premise check (66 min)
    python bench/validate_lifetime.py --cache v.json    # reuse replays to failure across runs
    python bench/validate_lifetime.py --only basic --update-readme  # the table of every store

The `basic` group is the analyzer/README.md validation table: each store (flashswap, naive,
littlefs in two layouts) projected and replayed to its first worn block on small devices,
and the flashswap store's Weibull median against replays to the store's death;
`--update-readme` writes it between its markers. The other groups are littlefs's file per
chunk, whose metadata stints are the hardest case for the projection.

`--cache` keeps the replays to failure (keyed by case) so that projections from another
checkout (the method before a change) can be compared on the same truths:
`PYTHONPATH=<old checkout> python bench/validate_lifetime.py --cache v.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from analyzer.lifetime import Options, analyze
from analyzer.rates import SECONDS_PER_YEAR
from analyzer.synth import write_chain_trace
from analyzer.workload import Workload
from flashswap.parts import get_part

try:
    from analyzer.validate import REMOUNT_PERIODS
except ImportError:  # an older checkout on PYTHONPATH (`--cache` comparisons): the same draws
    REMOUNT_PERIODS = (13, 17, 20, 23, 27, 31, 37, 41, 47)

ROOT = Path(__file__).resolve().parent.parent
ENDURANCES = (300, 1000, 3000)
NOR, NAND = "W25Q128JV", "W25N01GV"

# (group, trace, part, blocks, remount_every)
CASES = [
    *[("small-nor", "small", NOR, b, None) for b in (60, 64, 68, 124, 128, 130, 132, 250, 253,
                                                     256)],
    *[("small-nand", "small", NAND, b, None) for b in (60, 64, 68)],
    ("chain-nor", "chain", NOR, 128, None),
    *[("alexnet-nor", "alexnet_512k.bin", NOR, b, None) for b in (256, 512)],
    *[("remount", "small", NOR, b, k) for b in (64, 128, 256) for k in REMOUNT_PERIODS],
    *[("remount", "small", NAND, 64, k) for k in REMOUNT_PERIODS],
    *[("remount", "alexnet_512k.bin", NOR, 256, k) for k in REMOUNT_PERIODS],
]


def load(trace: str, tmp: Path) -> Workload:
    """The test fixtures' synthetic traces by name (tests/test_analyzer_steady.py), or a file
    in traces/."""
    if trace == "small":
        return Workload.load(write_chain_trace(tmp / "s.bin", (8192, 4096, 2048), chunk=2048))
    if trace == "chain":
        return Workload.load(
            write_chain_trace(tmp / "c.bin", (16384, 8192, 4096, 1000), chunk=4096)
        )
    if trace == "pinned":
        return Workload.load(
            write_chain_trace(tmp / "p.bin", (16384, 8192, 4096), chunk=4096, pinned=3)
        )
    return Workload.load(ROOT / "traces" / trace)


def key(case: tuple) -> str:
    _, trace, part, blocks, remount = case
    return f"{trace}/{part}/{blocks}" + (f"/remount{remount}" if remount else "")


def actual(case: tuple) -> dict[str, int | None]:
    from analyzer.validate import first_failures  # (not in checkouts before it)

    _, trace, part, blocks, remount = case
    with tempfile.TemporaryDirectory() as tmp:
        wl = load(trace, Path(tmp))
        cap = blocks * get_part(part).erase_size
        got = first_failures(wl, part, "littlefs-chunk", cap, ENDURANCES, remount_every=remount)
    return {str(e): v for e, v in got.items()}


def projected(case: tuple) -> dict[str, dict]:
    """The projection per endurance; for a remount case the premise projection, which does
    not depend on the period (the caller asks once per geometry)."""
    _, trace, part, blocks, remount = case
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        wl = load(trace, Path(tmp))
        cap = blocks * get_part(part).erase_size
        for e in ENDURANCES:
            t = time.perf_counter()
            if remount:
                from analyzer.validate import premise_life  # (not in checkouts before it)

                life, replayed = premise_life(wl, part, cap, e)
            else:
                res = analyze(wl, part, "littlefs-chunk", Options(capacity=cap, endurance=e,
                                                            rate_per_s=1.0))
                life, replayed = res.data["years"] * SECONDS_PER_YEAR, res.steady.inferences
            out[str(e)] = {"inferences": life, "replayed": replayed,
                           "s": time.perf_counter() - t}
    return out


# (trace, part, capacity, store, endurance, options, description)
BASIC = [
    ("chain", NOR, 512 << 10, "flashswap", 300, {}, ""),
    ("chain", NOR, 512 << 10, "flashswap", 1000, {}, ""),
    ("pinned", NOR, 512 << 10, "flashswap", 1000, {}, "chain (16/8/4 KiB layers) + 3 "
     "long-lived chunks"),
    ("chain", NAND, 1 << 20, "flashswap", 150, {}, ""),
    ("chain", NAND, 2 << 20, "flashswap", 500, {}, ""),
    ("chain", NOR, 256 << 10, "naive", 400, {}, ""),
    ("chain", NAND, 1 << 20, "naive", 400, {}, ""),
    ("small", NOR, 256 << 10, "littlefs-chunk", 300, {}, ""),
    ("small", NOR, 256 << 10, "littlefs-chunk", 1000, {}, ""),
    ("small", NOR, 512 << 10, "littlefs-chunk", 1000, {}, ""),
    ("small", NOR, 256 << 10, "littlefs-chunk", 1000, {"block_cycles": -1}, ""),
    ("small", NOR, 256 << 10, "littlefs-tensor", 300, {}, ""),
    ("small", NOR, 256 << 10, "littlefs-tensor", 1000, {}, ""),
    ("small", NAND, 64 << 17, "littlefs-tensor", 1000, {}, ""),
]
WEIBULL_SEEDS = 5


def basic(case: tuple) -> dict:
    from analyzer.validate import check  # (not in checkouts before it)

    trace, part, cap, store, endurance, extra, _ = case
    with tempfile.TemporaryDirectory() as tmp:
        wl = load(trace, Path(tmp))
        c = check(wl, part, store, cap, endurance, Options(**extra))
    return {"projected": c.projected, "actual": c.actual, "error": c.error}


def weibull_death(seed: int | None) -> float:
    """The flashswap store with 4 KiB segments on a 512 KiB NOR partition, per-block
    endurance Weibull(2, 400): its projected median store death (seed None), or one replay
    to its death with the simulator's endurances drawn with `seed`."""
    from analyzer.validate import to_failure

    opt = Options(capacity=512 << 10, rate_per_s=1.0, weibull_scale=400.0,
                  store_config={"segment_size": 4096})
    with tempfile.TemporaryDirectory() as tmp:
        wl = load("chain", Path(tmp))
        if seed is None:
            res = analyze(wl, NOR, "flashswap", opt)
            return res.data["years_weibull_median"] * SECONDS_PER_YEAR
        f = to_failure(wl, NOR, "flashswap", 512 << 10, 10**9, opt, until="death",
                       weibull=(2.0, 400.0), seed=seed)
        return float(f.store_death if f.store_death is not None else "nan")


def run_basic(jobs: int, update_readme: bool) -> None:
    from analyzer.readme import table, update

    t0 = time.perf_counter()
    with ProcessPoolExecutor(jobs) as ex:
        got = list(ex.map(basic, BASIC))
        deaths = list(ex.map(weibull_death, [None, *range(WEIBULL_SEEDS)]))
    rows = []
    for case, g in zip(BASIC, got, strict=True):
        trace, part, cap, store, endurance, extra, desc = case
        name = {"littlefs-chunk": "littlefs, file per chunk",
                "littlefs-tensor": "littlefs, file per tensor"}.get(store, store)
        if extra.get("block_cycles") == -1:
            name += ", block_cycles -1"
        rows.append([desc or trace, part, f"{cap >> 10} KiB", name, endurance,
                     f"{g['projected']:,.0f}", f"{g['actual']:,}", f"{g['error']:+.2%}"])
    med, draws = deaths[0], deaths[1:]
    actual = float(np.median(draws))
    rows.append(["chain, Weibull (k=2, s=400) per-block endurance, store death", NOR,
                 "512 KiB", "flashswap (4 KiB segments)", "-", f"median {med:,.0f}",
                 f"median of {WEIBULL_SEEDS} seeds {actual:,.0f} ({min(draws):,.0f}-"
                 f"{max(draws):,.0f})", f"{med / actual - 1:+.1%}"])
    md = table(["trace", "part", "capacity", "store", "endurance", "projected", "actual",
                "error"], rows)
    print(md)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    print(json.dumps({"bench": "validate_lifetime", "basic": [
        dict(zip(("trace", "part", "capacity", "store", "endurance"), c[:5], strict=True))
        | {"options": c[5]} | g for c, g in zip(BASIC, got, strict=True)],
        "weibull": {"projected_median": med, "deaths": draws}}))
    if update_readme:
        update("validation-basic", md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated groups: basic, " + ", ".join(
        dict.fromkeys(c[0] for c in CASES)))
    ap.add_argument("--cache", type=Path, help="JSON file of replays to failure")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--update-readme", action="store_true",
                    help="write the basic table into analyzer/README.md")
    args = ap.parse_args(argv)
    groups = set(args.only.split(",")) if args.only else None
    if groups is None or "basic" in groups:
        run_basic(args.jobs, args.update_readme)
        if groups is not None:
            groups.discard("basic")
            if not groups:
                return 0
    cases = [c for c in CASES if groups is None or c[0] in groups]
    cache: dict = {}
    if args.cache and args.cache.exists():
        cache = json.loads(args.cache.read_text())
    todo = [c for c in cases if key(c) not in cache]
    # one projection per geometry: a remount case's premise projection ignores the period
    geo = {c[:4]: c for c in cases}
    with ProcessPoolExecutor(args.jobs) as ex:
        truths = ex.map(actual, todo)
        projections = ex.map(projected, geo.values())
        # the replays to failure are the slow part: cached as they finish, whatever follows
        for c, got in zip(todo, truths, strict=True):
            cache[key(c)] = got
            if args.cache:
                args.cache.write_text(json.dumps(cache, indent=1, sort_keys=True))
        by_geo = dict(zip(geo, projections, strict=True))
    projs = [by_geo[c[:4]] for c in cases]
    print("| trace | part | blocks | replay to failure | endurance | projected | actual | error |"
          " replayed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c, proj in zip(cases, projs, strict=True):
        _, trace, part, blocks, remount = c
        mode = f"remount every {remount}" if remount else "deterministic"
        for e in ENDURANCES:
            a = cache[key(c)][str(e)]
            p = proj[str(e)]
            err = f"{p['inferences'] / a - 1:+.1%}" if a else "n/a"
            print(f"| {trace} | {part} | {blocks} | {mode} | {e} | {p['inferences']:,.0f} | "
                  f"{a if a is not None else '-'} | {err} | {p['replayed']} |")
    premise_summary(cases, by_geo, cache)
    sys.stdout.flush()
    return 0


def premise_summary(cases: list, by_geo: dict, cache: dict) -> None:
    """The premise projection against the median of its geometry's remount draws, and how far
    the median itself is from settled: the error against the median of each half of the draws
    (the draws in period order, alternately), a rough idea of the reference's own noise."""
    draws: dict[tuple, list[tuple]] = {}
    for c in cases:
        if c[4]:
            draws.setdefault(c[:4], []).append(c)
    if not draws:
        return
    print()
    print("| trace | part | blocks | endurance | projected | draws | median | error vs median |"
          " vs median of each half |")
    print("|---|---|---|---|---|---|---|---|---|")
    errs = []
    for g, cs in draws.items():
        _, trace, part, blocks = g
        for e in ENDURANCES:
            p = by_geo[g][str(e)]["inferences"]
            got = [cache[key(c)][str(e)] for c in cs]
            if any(a is None for a in got):
                continue
            med = float(np.median(got))
            halves = [float(np.median(got[i::2])) for i in (0, 1)]
            errs.append(p / med - 1)
            print(f"| {trace} | {part} | {blocks} | {e} | {p:,.0f} | {len(got)} "
                  f"({min(got):,}-{max(got):,}) | {med:,.0f} | {p / med - 1:+.1%} | "
                  + " / ".join(f"{p / h - 1:+.1%}" for h in halves) + " |")
    if not errs:
        return
    a = np.abs(np.asarray(errs))
    print(f"\nwithin 2%: {int((a <= 0.02).sum())} of {a.size}; within 5%: "
          f"{int((a <= 0.05).sum())}; largest {a.max():.1%}")


if __name__ == "__main__":
    raise SystemExit(main())
