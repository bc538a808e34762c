"""`flashswap lifetime TRACE`: years until the flash wears out, per part and storage layer.

The work is in analyzer/ (replay, steady state, projection); this module parses options,
drives one analysis per part x engine x configuration (analyzer.lifetime.plan_jobs) with a
progress bar on terminals, keeps the best configuration of each storage layer on each part
(pick_best), and prints the tables and verdicts (at the terminal's width), the JSON object,
or the plot.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue as queue_mod
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from analyzer.crypto import CIPHERS, DEFAULT_CIPHER, Encryption, get_cipher
from analyzer.engines import get_engine, select, stores, variants_of
from analyzer.lifetime import DEFAULT_BUDGET_S, Job, Options, pick_best, plan_jobs, run_job
from analyzer.rates import format_rate, parse_rate
from analyzer.report import LEGEND, clean, part_tables, table_width, verdict
from analyzer.workload import Workload
from flashswap.cli import COMMANDS
from flashswap.cli.output import print_json
from flashswap.errors import InputError
from flashswap.mcus import DEFAULT_MCU, FAMILIES, MCUS, family_of, get_mcu
from flashswap.parts import get_part
from flashswap.sizes import format_size, parse_size
from flashswap.store.engine import names as store_engines

# A NOR, an SLC NAND, an MLC NAND and a managed device from the catalogue.
DEFAULT_PARTS = ("W25Q128JV", "W25N01GV", "FNNL41A-8Gb", "S-46u-2GB")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lifetime",
        help=COMMANDS["lifetime"][1],
        description=(
            "Replays TRACE's inferences through each storage layer on each simulated part until "
            "the wear pattern is steady, then projects the years until the flash wears out at "
            "the given inference rate, and the time and energy swapping costs per inference."
        ),
    )
    p.add_argument("trace", metavar="TRACE", help="flashswap trace file")
    p.add_argument(
        "--part",
        action="append",
        metavar="NAME",
        help=f"catalogue part (repeatable, or comma-separated; default {', '.join(DEFAULT_PARTS)})",
    )
    p.add_argument(
        "--capacity",
        metavar="SIZE",
        help="replay on a partition of this size (default: the whole part; 64 MiB of a "
        "managed device)",
    )
    p.add_argument(
        "--rate", default="1/min", metavar="RATE", help="inference rate: 1/s, 10/min, 24/day..."
    )
    p.add_argument(
        "--store",
        default=",".join(stores()),
        metavar="LIST",
        help=f"comma-separated storage layers (default {','.join(stores())})",
    )
    p.add_argument(
        "--littlefs-layout",
        default=variants_of("littlefs")[0],
        metavar="LIST",
        help="littlefs file layouts to try, the best is reported: tensor (a file per "
        "tensor, written chunk by chunk), chunk (a file per chunk), prealloc (files "
        "preallocated once, overwritten in place), or all (default tensor)",
    )
    p.add_argument(
        "--block-cycles",
        type=int,
        default=100,
        metavar="N",
        help="littlefs block_cycles (default 100; -1 = littlefs default, no metadata eviction)",
    )
    p.add_argument(
        "--segment-size",
        metavar="SIZE",
        help="the flashswap store's segment, its erase and retirement unit: one of the "
        "part's erase sizes (default: the largest NOR erase up to 64 KiB, the NAND block); "
        "smaller NOR segments retire less flash per worn sector (Weibull p1) but cost more "
        "erase time",
    )
    p.add_argument(
        "--engine",
        choices=("auto", *sorted(store_engines())),
        default="auto",
        help="the flashswap store's engine: the C library (firmware/) or the Python model; "
        "auto = C when built (same flash bytes, faster replay)",
    )
    p.add_argument(
        "--mcu",
        default=DEFAULT_MCU,
        metavar="NAME",
        help="measured compute rate that times the MACs of traces without COMPUTE times "
        f"(for the slowdown): {', '.join(m.name for m in MCUS)} or none "
        f"(default {DEFAULT_MCU})",
    )
    p.add_argument(
        "--family",
        default="auto",
        metavar="NAME",
        help="MLPerf Tiny benchmark family whose measured rate times the MACs: ic (ResNet-8, "
        "standard convolutions), vww (MobileNetV1, depthwise-separable), kws (DS-CNN), ad "
        "(fully connected), or auto: the nearest to the trace's model (default auto)",
    )
    p.add_argument(
        "--macs-per-s",
        metavar="RATE",
        help="compute speed for traces without COMPUTE times (e.g. 100M), instead of --mcu",
    )
    p.add_argument(
        "--encrypt",
        nargs="?",
        const=DEFAULT_CIPHER,
        metavar="CIPHER",
        help="add the time and energy of sealing every chunk written and opening every chunk "
        f"read with an AEAD, on the --mcu's clock: {', '.join(CIPHERS)} (software on the "
        f"core, or a hardware AES engine; default {DEFAULT_CIPHER})",
    )
    p.add_argument(
        "--weibull-shape",
        type=float,
        metavar="K",
        help="shape of the per-block Weibull endurance distribution (no vendor publishes it: "
        "default the catalogue's class value, 2, an assumption)",
    )
    p.add_argument(
        "--bus-mhz",
        type=float,
        metavar="MHZ",
        help="flash bus clock on the board (default: each part's maximum; capped at it)",
    )
    p.add_argument(
        "--bus-width",
        type=int,
        metavar="BITS",
        help="flash bus data lines on the board: 1, 2, 4 or 8 (default: each part's widest "
        "mode, quad SPI on the SPI parts; capped at it)",
    )
    p.add_argument(
        "--passes",
        type=int,
        metavar="N",
        help="brute force: replay N whole passes over the device instead of the steady-state "
        "shortcut (slow on large parts)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_S,
        metavar="SECONDS",
        help=f"replay time limit per part and store (default {DEFAULT_BUDGET_S:g})",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="analyses run in parallel processes (default: one per CPU; 1 = in this process)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--wide", action="store_true",
                   help="one full table per part whatever the terminal's width")
    p.add_argument("--plot", metavar="FILE.png", help="write wear plots to a PNG file")
    p.set_defaults(func=run)


def _stores(text: str) -> list[str]:
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in stores()]
    if bad or not names:
        raise InputError(
            f"unknown store {bad[0] if bad else text!r} (choose from {', '.join(stores())})"
        )
    return list(dict.fromkeys(names))


def _layouts(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    select("littlefs", names)  # unknown names: a one-line error listing the layouts
    return names


def _parts(values: list[str] | None) -> list[str]:
    names = [n.strip() for v in (values or DEFAULT_PARTS) for n in v.split(",") if n.strip()]
    return list(dict.fromkeys(get_part(n).name for n in names))  # unknown -> closest names


def _options(args: argparse.Namespace) -> Options:
    if args.block_cycles == 0 or args.block_cycles < -1:
        raise InputError(
            f"--block-cycles must be -1 or positive, not {args.block_cycles} "
            "(littlefs aborts on 0)"
        )
    if args.passes is not None and args.passes < 1:
        raise InputError(f"--passes must be at least 1, not {args.passes}")
    if not args.budget > 0:
        raise InputError(f"--budget must be a positive number of seconds, not {args.budget}")
    if args.weibull_shape is not None and not 0 < args.weibull_shape <= 100:
        raise InputError(f"--weibull-shape must be a positive number up to 100, not "
                         f"{args.weibull_shape:g}")
    if args.bus_mhz is not None and not args.bus_mhz > 0:
        raise InputError(f"--bus-mhz must be a positive clock in MHz, not {args.bus_mhz:g}")
    if args.bus_width is not None and args.bus_width not in (1, 2, 4, 8):
        raise InputError(f"--bus-width must be 1, 2, 4 or 8 data lines, not {args.bus_width}")
    return Options(
        rate_per_s=parse_rate(args.rate),
        capacity=parse_size(args.capacity, "capacity") if args.capacity else None,
        block_cycles=args.block_cycles,
        passes=args.passes,
        budget_s=args.budget,
        implementation=args.engine,
        store_config={"segment_size": parse_size(args.segment_size, "segment size")}
        if args.segment_size else {},
        variants={"littlefs": _layouts(args.littlefs_layout)},
        weibull_shape=args.weibull_shape,
        bus_mhz=args.bus_mhz,
        bus_width=args.bus_width,
        encrypt=_encryption(args),
    )


def _encryption(args: argparse.Namespace) -> Encryption | None:
    """The cipher of --encrypt on the --mcu's clock, or None."""
    if args.encrypt is None:
        return None
    cipher = get_cipher(args.encrypt)
    if args.mcu.lower() == "none":
        raise InputError("--encrypt needs the MCU's clock: give --mcu (not none)")
    mcu = get_mcu(args.mcu)
    return Encryption(cipher, float(mcu.mhz), mcu.name)


Outcome = tuple[dict[str, Any], dict[str, Any]] | InputError


def _run_jobs(
    wl: Workload, jobs: list[Job], opt: Options, workers: int, console: Console, show: bool
) -> dict[Job, Outcome]:
    """Every analysis, in worker processes when workers > 1, with a rich progress bar (one
    line per part x store, counting replayed inferences) when `show`."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("inferences"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not show,
    )
    out: dict[Job, Outcome] = {}
    with bar:
        tasks = {job: bar.add_task(_task_name(job), total=None) for job in jobs}
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                task = tasks[job]

                def update(done: int, total: int | None, task: Any = task) -> None:
                    bar.update(task, completed=done, total=total)

                out[job] = _outcome(lambda job=job, update=update: run_job(
                    wl, job[0], job[1], opt, _Direct(update) if show else None, job,
                    dict(job[2])))
            return out
        ctx = multiprocessing.get_context("fork")
        with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            q = manager.Queue() if show else None
            # Longest first (the costliest engines, then the largest parts) so the workers
            # finish together.
            order = sorted(jobs, key=lambda j: (-get_engine(j[1]).replay_cost,
                                                -get_part(j[0]).capacity))
            futures: dict[Future, Job] = {
                pool.submit(run_job, wl, job[0], job[1], opt, q, job, dict(job[2])): job
                for job in order
            }
            pending = set(futures)
            while pending:
                done = {f for f in pending if f.done()}
                for f in done:
                    out[futures[f]] = _outcome(f.result)
                    pending.discard(f)
                if q is None:
                    if pending:
                        next(iter(pending)).exception()  # wait for one to finish
                    continue
                try:
                    job, n, total = q.get(timeout=0.1)
                    bar.update(tasks[job], completed=n, total=total)
                except queue_mod.Empty:
                    pass
    return out


def _task_name(job: Job) -> str:
    """"W25Q128JV × littlefs-tensor 64 KiB": the part, the engine and its settings."""
    part, engine, config = job
    sizes = " ".join(format_size(v) for _k, v in config)
    return f"{part} × {engine}" + (f" {sizes}" if sizes else "")


class _Direct:
    """The queue interface run_job expects, calling the progress bar directly."""

    def __init__(self, update: Any) -> None:
        self.update = update

    def put(self, item: tuple[Job, int, int | None]) -> None:
        self.update(item[1], item[2])


def _outcome(call: Any) -> Outcome:
    try:
        return call()
    except InputError as e:
        return e


def _compute(args: argparse.Namespace, wl: Workload) -> tuple[Workload, dict[str, Any]]:
    """The workload with its compute timed, and where the time comes from (for the JSON)."""
    mcu = None if args.mcu.lower() == "none" else get_mcu(args.mcu)  # checked even if unused
    family, why = family_of(wl.metadata, args.family.lower())
    rate = parse_size(args.macs_per_s, "MAC rate") if args.macs_per_s else None
    info: dict[str, Any] = {"from": "trace", "mcu": None, "macs_per_s": None, "source": None}
    if wl.untimed_compute and rate:
        info.update({"from": "--macs-per-s", "macs_per_s": rate})
    elif wl.untimed_compute and mcu:
        f = FAMILIES[family]
        info.update({"from": "mcu", "mcu": mcu.name, "macs_per_s": mcu.rate(family),
                     "source": mcu.source_of(family), "describe": mcu.describe(family),
                     "family": family, "family_model": f"{f.model} ({f.benchmark})",
                     "family_macs": f.macs, "family_reason": why})
    elif wl.untimed_compute:
        info["from"] = None
    if info["macs_per_s"]:
        wl = wl.with_compute_rate(info["macs_per_s"])
    info["macs_per_inference"] = wl.macs_per_inference
    info["seconds_per_inference"] = wl.compute_s_per_inference
    return wl, info


def _compute_line(c: dict[str, Any]) -> str:
    """One line saying how long an inference computes, and on what that rests."""
    macs = f"{c['macs_per_inference'] / 1e6:,.1f} M MACs"
    if c["from"] is None:
        return f"compute: {macs} per inference, untimed (no --mcu): slowdown n/a"
    t = f"{c['seconds_per_inference'] * 1e3:,.1f} ms"
    if c["from"] == "trace":
        return f"compute: {t} per inference, from the trace's COMPUTE times"
    how = c.get("describe") or f"{c['macs_per_s'] / 1e6:,.1f} M MAC/s (--macs-per-s)"
    line = f"compute: {macs} per inference at {how} = {t}"
    if c.get("family_reason"):
        line += f"; family: {c['family_reason']}"
    return line


def _crypto_of(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The crypto cost (the same for every store: it follows the trace), without the
    per-store flash figures, or None without --encrypt."""
    for r in results:
        if "crypto" in r:
            return {k: v for k, v in r["crypto"].items() if not k.startswith("flash_")}
    return None


def _crypto_line(c: dict[str, Any]) -> str:
    """One line: what encryption adds per inference, and on what it rests."""
    return (
        f"encryption: {c['describe']} at {c['mhz']:g} MHz ({c['mcu']}): "
        f"{c['cycles_per_byte']:.4g} cycles per byte and {c['cycles_per_record']:,.5g} per "
        f"chunk sealed or opened, {c['seals_per_inference']:,.0f} seals and "
        f"{c['opens_per_inference']:,.0f} opens = {c['seconds_per_inference'] * 1e3:,.1f} ms "
        f"and {c['energy_mj_per_inference']:,.2f} mJ per inference, included in the I/O "
        f"figures (sources: {c['source']}; power {c['power_source']})"
    )


def run(args: argparse.Namespace, console: Console) -> int:
    opt = _options(args)
    stores = _stores(args.store)
    parts = _parts(args.part)
    wl, compute = _compute(args, Workload.load(args.trace))
    if args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, not {args.jobs}")
    show = console.is_terminal and not args.json
    jobs = plan_jobs(parts, stores, opt)
    outcomes = _run_jobs(wl, jobs, opt, args.jobs, console, show)
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    curves: list[tuple[str, str, dict[str, Any]]] = []
    headers: dict[str, dict[str, Any]] = {}
    for part in parts:
        for store in stores:
            mine = [j for j in jobs if j[0] == part and get_engine(j[1]).store == store]
            got, candidates = pick_best([outcomes[j] for j in mine],
                                        [get_engine(j[1]).label(dict(j[2])) for j in mine])
            if isinstance(got, InputError):
                errors.append({"part": part, "store": store, "error": str(got)})
                continue
            data, curve = got
            if len(candidates) > 1:
                data["candidates"] = candidates
            results.append(data)
            headers.setdefault(part, data)
            if curve:
                curves.append((part, store, curve))
    if not results:
        raise InputError(errors[0]["error"] if errors else "nothing to analyze")
    if args.plot:
        from analyzer.plot import write_plot

        write_plot(args.plot, curves, f"{wl.name} at {format_rate(opt.rate_per_s)}")
    if args.json:
        print_json(
            console,
            clean(
                {
                    "trace": wl.name,
                    "model": wl.metadata.get("model"),
                    "rate_per_s": opt.rate_per_s,
                    "payload_bytes_per_inference": wl.bytes_written_per_inference,
                    "compute": compute,
                    "encrypt": _crypto_of(results),
                    "results": results,
                    "errors": errors,
                }
            ),
        )
        return 0
    console.print(
        f"{wl.name}: {wl.metadata.get('model') or 'trace'}, "
        f"{wl.bytes_written_per_inference / 1024:,.0f} KiB swapped out per inference, "
        f"at {format_rate(opt.rate_per_s)}"
    )
    console.print(_compute_line(compute))
    crypto = _crypto_of(results)
    if crypto:
        console.print(_crypto_line(crypto))
    note = " (assumption)" if args.weibull_shape is None else " (--weibull-shape)"
    for part in parts:
        rows = [r for r in results if r["part"] == part]
        errs = [e for e in errors if e["part"] == part]
        if not rows:
            continue
        for item in part_tables(headers[part], rows, errs, console.width, args.wide, note):
            if args.wide and isinstance(item, Table) and table_width([item]) > console.width:
                # unshrunk (rich would cut cells to fit the console): the terminal folds
                wide = Console(file=console.file, width=table_width([item]), soft_wrap=False,
                               color_system=console.color_system,  # type: ignore[arg-type]
                               force_terminal=console.is_terminal)
                wide.print(item)
            else:
                console.print(item)
    for part in parts:
        rows = [r for r in results if r["part"] == part]
        errs = [e for e in errors if e["part"] == part]
        console.print(verdict(part, rows, errs, opt.rate_per_s))
    console.print(LEGEND)
    return 0
