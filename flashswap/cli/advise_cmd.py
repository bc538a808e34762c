"""`flashswap advise MODEL...`: which flash part and how much SRAM make a model last N years.

The sweep is analyzer/advise.py (plans with the planner, replays with the lifetime analysis),
run by analyzer/sweep.py on this process, a local process pool or a Dask cluster, and judged by
analyzer/advise_report.py; this module parses options, shows one progress bar, and prints the
answer, the JSON, the CSV or the plot.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from analyzer.advise import Model, Sweep, parse_budgets, run_sweep, sweep_parts
from analyzer.advise_report import (
    Target,
    by_kind,
    evaluate,
    num,
    ranked,
    recommendation,
    smallest_per_part,
    write_csv,
)
from analyzer.engines import stores
from analyzer.lifetime import DEFAULT_BUDGET_S, Options
from analyzer.rates import format_rate, parse_rate
from analyzer.report import clean
from analyzer.sweep import Backend, DaskCluster, LocalPool, Serial
from analyzer.sweep_cache import ResultCache, code_fingerprint, user_cache_dir
from flashswap.cli import COMMANDS
from flashswap.cli.output import print_json, table
from flashswap.errors import InputError
from flashswap.mcus import DEFAULT_MCU, MCUS, get_mcu
from flashswap.model import ACTIVATION_DTYPES, parse_input_shapes
from flashswap.parts import KINDS
from flashswap.sizes import format_size, parse_size

DEFAULT_SRAM = "32KiB..1MiB"
DEFAULT_KINDS = "nor,nand"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "advise",
        help=COMMANDS["advise"][1],
        description=(
            "Plans each MODEL at each SRAM budget (the planner's default schedule), replays "
            "each plan on each flash part under each storage layer until wear is steady (as "
            "`flashswap lifetime` does), and answers: the configurations that last --years at "
            "--rate (within --max-slowdown), smallest SRAM first, then most years; per part the "
            "smallest SRAM that does; and a recommendation. Results are cached, so an "
            "interrupted sweep resumes."
        ),
    )
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help=".onnx / .tflite path or builtin:NAME (`flashswap trace models`)")
    p.add_argument("--years", required=True, type=float, metavar="N",
                   help="target lifetime in years (until the first block reaches its rated "
                   "endurance)")
    p.add_argument("--rate", required=True, metavar="RATE",
                   help="inference rate: 1/s, 10/min, 24/day...")
    p.add_argument("--max-slowdown", metavar="S",
                   help="at most S times the inference time with activations in SRAM "
                   "(e.g. 1.5 or 1.5x; without prefetch; default: no limit)")
    p.add_argument("--sram", default=DEFAULT_SRAM, metavar="BUDGETS",
                   help="SRAM budgets for activations: A..B doubles from A up to B and adds B "
                   "if the doubling misses it (32KiB..1MiB = 32, 64, 128, 256, 512 KiB, 1 MiB); "
                   "A..B:STEP steps by STEP (64KiB..512KiB:64KiB = 8 budgets); or a "
                   f"comma-separated list (64KiB,96KiB,128KiB) (default {DEFAULT_SRAM})")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--part", action="append", metavar="NAME",
                       help="catalogue part (repeatable, or comma-separated; `flashswap parts`)")
    which.add_argument("--kind", metavar="LIST",
                       help=f"every catalogue part of these kinds ({', '.join(KINDS)}); "
                       f"default {DEFAULT_KINDS}")
    p.add_argument("--store", default="flashswap", metavar="LIST",
                   help=f"comma-separated storage layers ({', '.join(stores())}; "
                   "default flashswap)")
    p.add_argument("--chunk", default="4KiB", metavar="SIZE",
                   help="largest swap chunk the planner uses (default 4KiB)")
    p.add_argument("--dtype", choices=ACTIVATION_DTYPES, default=None,
                   help="what-if activation type: built-in models (default int8), or a float "
                   "model planned as an int8 deployment; by default a model file's own types")
    p.add_argument("--input-shape", action="append", metavar="NAME=DIMS",
                   help="pin a dynamic input dimension, e.g. input=1x96x96x3 (repeatable)")
    p.add_argument("--capacity", metavar="SIZE",
                   help="use a partition of this size of each part (default: the whole part; "
                   "64 MiB of a managed device)")
    p.add_argument("--mcu", default=DEFAULT_MCU, metavar="NAME",
                   help="MCU whose measured rate for each model's family (as in `flashswap "
                   "lifetime`) times the plans' MACs, for the slowdown: "
                   f"{', '.join(m.name for m in MCUS)} or none (default {DEFAULT_MCU})")
    p.add_argument("--macs-per-s", metavar="RATE",
                   help="compute speed (e.g. 100M MAC/s) instead of --mcu")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: one per CPU; 1 = in this process); with "
                   "--cluster local, the LocalCluster's workers")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="run on a Dask cluster: a scheduler address (tcp://host:8786; its "
                   "workers need this flashswap installed) or 'local' to start a LocalCluster "
                   "of --workers processes here (needs the cluster extra: "
                   "pip install 'flashswap[cluster]')")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where results are cached (default $XDG_CACHE_HOME/flashswap/advise or "
                   "~/.cache/flashswap/advise)")
    p.add_argument("--no-cache", action="store_true",
                   help="neither read nor write cached results")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--csv", metavar="FILE", help="also write every configuration as CSV")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw years against SRAM, one line per part, target marked")
    p.set_defaults(func=run)


def _names(values: list[str] | None) -> list[str]:
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


def _stores(text: str) -> list[str]:
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in stores()]
    if bad or not names:
        raise InputError(
            f"unknown store {bad[0] if bad else text!r} (choose from {', '.join(stores())})")
    return list(dict.fromkeys(names))


def _positive(value: float, option: str, what: str) -> float:
    if not value > 0 or value == float("inf"):
        raise InputError(f"{option} must be a positive number of {what}, not {value:g}")
    return value


def _max_slowdown(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        v = float(text.strip().removesuffix("x").removesuffix("X"))
    except ValueError:
        raise InputError(f"--max-slowdown must be a number such as 1.5, not {text!r}") from None
    if not 1 <= v < float("inf"):
        raise InputError(f"--max-slowdown must be at least 1 (no slowdown), not {text}")
    return v


def _compute_rate(args: argparse.Namespace) -> tuple[float | None, str | None]:
    """(--macs-per-s, None), or (None, the --mcu: its rate for each model's family, as
    `flashswap lifetime` takes it), or (None, None) with --mcu none."""
    mcu = None if args.mcu.lower() == "none" else get_mcu(args.mcu)
    if args.macs_per_s:
        rate = parse_size(args.macs_per_s, "MAC rate")
        if rate == 0:
            raise InputError("--macs-per-s must be more than 0")
        return float(rate), None
    return None, mcu.name if mcu else None


def _settings(args: argparse.Namespace) -> tuple[Sweep, Target]:
    """Everything checked before any work starts (bad input is one line, exit 2)."""
    years = _positive(args.years, "--years", "years")
    rate = parse_rate(args.rate)
    target = Target(years, rate, _max_slowdown(args.max_slowdown))
    budgets = parse_budgets(args.sram)
    parts = sweep_parts(_names(args.part),
                        _names([args.kind or DEFAULT_KINDS]) if not args.part else None)
    if not parts:
        raise InputError(f"no catalogue part is of kind {args.kind}")
    stores = _stores(args.store)
    chunk = parse_size(args.chunk, "chunk size")
    if chunk == 0:
        raise InputError("invalid chunk size 0: must be at least 1 byte")
    macs, mcu = _compute_rate(args)
    if target.max_slowdown is not None and macs is None and mcu is None:
        raise InputError("--max-slowdown needs a compute time: give --mcu or --macs-per-s")
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, not {args.workers}")
    opt = Options(rate_per_s=rate,
                  capacity=parse_size(args.capacity, "capacity") if args.capacity else None,
                  budget_s=DEFAULT_BUDGET_S)
    shapes = parse_input_shapes(args.input_shape)
    models = tuple(Model.load(m, args.dtype, shapes) for m in dict.fromkeys(args.models))
    sweep = Sweep(models, tuple(budgets), tuple(parts), tuple(stores), opt, chunk, macs, mcu)
    return sweep, target


def _backend(args: argparse.Namespace, code: str) -> Any:
    if args.cluster:
        cluster = DaskCluster(args.cluster, args.workers)
        try:
            theirs = {w: c for w, c in cluster.run_everywhere(code_fingerprint).items()
                      if c != code}
        except BaseException:
            cluster.close()
            raise
        if theirs:
            cluster.close()
            w, c = next(iter(theirs.items()))
            raise InputError(f"cluster worker {w} runs flashswap {c}, this machine {code}: "
                             "install the same version on the workers")
        return cluster
    return Serial() if args.workers == 1 else LocalPool(args.workers)


def run(args: argparse.Namespace, console: Console) -> int:
    sweep, target = _settings(args)
    for path in (args.csv, args.plot):
        if path and not Path(path).resolve().parent.is_dir():
            raise InputError(f"cannot write {path}: no such directory")
    code = code_fingerprint()
    root = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else user_cache_dir()
    cache = ResultCache(root, code)
    show = console.is_terminal and not args.json
    backend: Backend = _backend(args, code)
    try:
        outcome = _sweep(sweep, backend, cache, console, show)
    finally:
        if isinstance(backend, DaskCluster):
            backend.close()
    rows = [evaluate(c, r, target) for c, r in outcome.results.items()]
    if args.csv:
        write_csv(args.csv, rows)
    if args.plot:
        from analyzer.advise_plot import write_plot

        write_plot(args.plot, rows, target)
    several = len(sweep.stores) > 1
    recs = {m.spec: recommendation(m.spec, [r for r in rows if r["model"] == m.spec], target,
                                   several) for m in sweep.models}
    if args.json:
        print_json(console, clean(_json(sweep, target, rows, recs, outcome.stats, cache)))
        return 0
    _print(console, sweep, target, rows, recs, outcome.stats)
    return 0


def _sweep(sweep: Sweep, backend: Backend, cache: ResultCache, console: Console,
           show: bool) -> Any:
    # Refreshed from the sweep's loop, not a thread: the local pool forks its workers.
    bar = Progress(TextColumn("advise"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("configurations"), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=console, transient=True, disable=not show, auto_refresh=False)
    with bar:
        task = bar.add_task("advise", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            bar.refresh()

        return run_sweep(sweep, backend, cache, progress, bar.refresh)


def _json(sweep: Sweep, target: Target, rows: list[dict[str, Any]], recs: dict[str, str],
          stats: dict[str, Any], cache: ResultCache) -> dict[str, Any]:
    return {
        "target": {"years": target.years, "rate_per_s": target.rate_per_s,
                   "rate": format_rate(target.rate_per_s), "max_slowdown": target.max_slowdown},
        "models": [{"model": m.spec, "name": m.graph.name, "sha256": m.digest}
                   for m in sweep.models],
        "sram": list(sweep.budgets),
        "parts": list(sweep.parts),
        "stores": list(sweep.stores),
        "chunk": sweep.chunk,
        "macs_per_s": sweep.macs_per_s,
        "mcu": sweep.mcu,
        "configurations": rows,
        "ranked": [[r["model"], r["sram"], r["part"], r["store"]] for r in ranked(rows)],
        "smallest_sram": smallest_per_part(rows, target),
        "by_kind": {m: by_kind([r for r in rows if r["model"] == m], target) for m in recs},
        "recommendation": recs,
        "cache": {"dir": str(cache.root) if cache.root else None, "code": cache.code},
        "sweep": stats,
    }


def _print(console: Console, sweep: Sweep, target: Target, rows: list[dict[str, Any]],
           recs: dict[str, str], stats: dict[str, Any]) -> None:
    several = len(sweep.stores) > 1
    budgets = ", ".join(format_size(b) for b in sweep.budgets)
    failed = sum(r["failed"] for r in rows)
    workers = f"{stats['workers']} worker{'s' if stats['workers'] != 1 else ''}"
    console.print(
        f"target: {target.describe()}; {len(sweep.budgets)} SRAM budgets ({budgets}) × "
        f"{len(sweep.parts)} part{'s' if len(sweep.parts) != 1 else ''} × "
        f"{', '.join(sweep.stores)}: {stats['configurations']} "
        f"configurations, {stats['from_cache']} from the cache, {stats['computed']} computed "
        f"({stats['backend']}, {workers}, {stats['wall_s']:.1f} s), {failed} failed",
        soft_wrap=True)
    for m in sweep.models:
        mine = [r for r in rows if r["model"] == m.spec]
        console.print(f"\n{m.spec} ({m.graph.name})", style="bold", soft_wrap=True)
        best = ranked(mine)
        if best:
            cols = ["SRAM", "part", "kind"] + (["store"] if several else []) + [
                "years", "years margin", "slowdown"] + (
                ["slowdown margin"] if target.max_slowdown else []) + ["I/O mJ/inf"]
            console.print(table(
                "meeting the target (smallest SRAM first, then most years)", cols,
                [[format_size(r["sram"]), r["part"], r["kind"]]
                 + ([r["store"]] if several else [])
                 + [num(r["years"]), _margin_years(r, target), f"{num(r['slowdown'])}x"]
                 + ([f"{num(r['margin_slowdown'])}x under"] if target.max_slowdown else [])
                 + [num(r["io_energy_mj_per_inference"])] for r in best]))
        else:
            console.print("no configuration meets the target")
        small = smallest_per_part(mine, target)
        found = [x for x in small if x["sram"] is not None]
        if found:
            console.print(table(
                "smallest SRAM per part", ["part", "kind"] + (["store"] if several else [])
                + ["smallest SRAM", "years", "slowdown", "I/O mJ/inf"],
                [[x["part"], x["kind"]] + ([x["store"]] if several else [])
                 + [format_size(x["sram"]), num(x["years"]), f"{num(x['slowdown'])}x",
                    num(x["io_energy_mj_per_inference"])] for x in found]))
        for x in small:
            if x["sram"] is None and x["kind"]:  # parts where nothing ran: see "failed"
                store = f" under {x['store']}" if several else ""
                console.print(f"{x['part']} ({x['kind']}){store}: none up to "
                              f"{format_size(sweep.budgets[-1])}: {x['reason']}", soft_wrap=True)
        for line in by_kind(mine, target):
            console.print(line, soft_wrap=True)
        for reason, where in _failures(mine):
            console.print(f"failed: {where}: {reason}", soft_wrap=True)
        console.print(f"recommendation: {recs[m.spec]}", soft_wrap=True)


def _margin_years(r: dict[str, Any], target: Target) -> str:
    if r["years"] is None or r["years"] == float("inf"):
        return "∞ (nothing swapped)"
    return f"+{num(r['margin_years'])} ({num(r['years'] / target.years)}x)"


def _failures(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Failed configurations grouped by reason: (reason, where), e.g. "32 KiB, every part"."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["failed"]:
            by.setdefault(r["reason"], []).append(r)
    parts = list(dict.fromkeys(r["part"] for r in rows))
    out = []
    for reason, rs in by.items():
        srams = list(dict.fromkeys(format_size(r["sram"]) for r in rs))
        names = list(dict.fromkeys(r["part"] for r in rs))
        where = (f"{', '.join(srams)}, every part" if names == parts
                 else f"{', '.join(names)} at {', '.join(srams)}")
        out.append((reason, where))
    return out

