"""One lifetime analysis: a workload on a part under a store, replayed to steady state.

`analyze()` builds the simulated part, the engine and the estimator that fits it, replays
inferences until the estimator is satisfied (or the budget runs out), and turns what it saw
into the figures `flashswap lifetime` reports. Everything it returns is JSON-ready except
`Result.curves`, the arrays behind the plot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analyzer import projection as pj
from analyzer.crypto import Encryption
from analyzer.device import ReplayFlash
from analyzer.engine_base import Engine
from analyzer.engines import get_engine, select
from analyzer.replay import InferenceStats, Replayer
from analyzer.steady import (
    CirculatingEstimator,
    Estimator,
    HostEstimator,
    LeveledEstimator,
    PassesEstimator,
    PeriodicEstimator,
    QuietEstimator,
    Steady,
)
from analyzer.workload import Workload
from flashswap.errors import (
    ChunkTooLargeError,
    InputError,
    NoSpaceError,
)
from flashswap.parts import Bus, Part, get_part

MANAGED_PARTITION = 64 << 20  # replayed partition of a managed device (see README)
DEFAULT_BUDGET_S = 60.0  # a safety net: estimators stop on fixed counts well before
MAX_INFERENCES = 1_000_000
NO_KEY = 0xFFFFFFFF


@dataclass
class Options:
    """Knobs of one analysis (defaults are what `flashswap lifetime` uses)."""

    rate_per_s: float = 1 / 60
    capacity: int | None = None
    block_cycles: int = 100
    passes: int | None = None  # brute-force replay of N whole passes instead of a shortcut
    budget_s: float = DEFAULT_BUDGET_S
    max_inferences: int = MAX_INFERENCES
    payload: str = "zeros"
    endurance: int | None = None  # override the part's rated endurance (validation)
    wear: str | None = None  # simulator wear-out mode (validation)
    rated_quantile: float = pj.RATED_QUANTILE
    weibull_scale: float | None = None  # cycles; default from rated_quantile
    store_config: dict[str, Any] = field(default_factory=dict)
    implementation: str = "auto"  # the flashswap store's engine: auto, c or python
    # per storage layer, the variants to try (analyzer/engines.py: none = its default,
    # ("all",) = every one), e.g. {"littlefs": ("tensor", "prealloc")}
    variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    weibull_shape: float | None = None  # None: the part's catalogue value (an assumption)
    bus_mhz: float | None = None  # the board's flash bus clock; None: the part's maximum
    bus_width: int | None = None  # its data lines; None: the part's widest mode
    encrypt: Encryption | None = None  # the cost of sealing/opening chunks (analyzer/crypto)


@dataclass
class Result:
    data: dict[str, Any]
    curves: dict[str, Any] = field(default_factory=dict)
    steady: Steady | None = None
    engine: Engine | None = None


Progress = Callable[[int, int | None], None]


def make_engine(
    store: str, flash: ReplayFlash, wl: Workload, opt: Options,
    config: dict[str, Any] | None = None,
) -> Engine:
    """The engine registered as `store` (analyzer/engines.py; a storage layer's name gives
    its default variant) on `flash`, with one of its `configs()` (default: the first)."""
    cls = get_engine(store)
    if config is None:
        config = cls.configs(flash.part, flash.size, opt)[0]
    return cls.build(flash, wl, opt, config)


def make_estimator(engine: Engine, wl: Workload, opt: Options) -> Estimator:
    f = engine.flash
    cycle = len(wl.inferences)
    bad = np.zeros(f.num_blocks, dtype=bool)
    bad[f.factory_bad_blocks] = True
    if wl.bytes_written_per_inference == 0:
        return QuietEstimator(f, cycle)
    if f.kind == "managed":
        return HostEstimator(f, cycle)
    if opt.passes:
        return PassesEstimator(f, cycle, passes=opt.passes, bad_units=int(bad.sum()))
    if engine.model == "leveled":
        return LeveledEstimator(f, cycle, bad_units=bad, position=engine.log_units)
    circ = CirculatingEstimator(
        f,
        cycle,
        min_erases=8 * opt.block_cycles if opt.block_cycles > 0 else 256,
        hot_spots_move=engine.hot_spots_move,
        static_units=engine.static_units,
        # littlefs's own relocation rule gives the stint size: the window can end before a
        # whole stint has been seen (analyzer/README.md, littlefs stints)
        stint_erases=engine.stint_erases(),
    )
    if engine.model == "periodic":
        circ.hot_spots_move = False
        return PeriodicEstimator(f, cycle, fallback=circ)
    return circ


WEIBULL_SHAPE_ASSUMED = (
    "assumption: no vendor publishes the shape of the per-block endurance distribution "
    "(the catalogue's class value; --weibull-shape sets it)"
)


def weibull_shape(part: Part, opt: Options) -> float:
    """The Weibull shape the projection uses: `--weibull-shape`, else the part's catalogue
    value (a class value everywhere: an assumption)."""
    return opt.weibull_shape if opt.weibull_shape is not None else part.weibull_shape


def weibull_shape_source(opt: Options) -> str:
    return "--weibull-shape" if opt.weibull_shape is not None else WEIBULL_SHAPE_ASSUMED


def board_bus(part: Part, opt: Options) -> Bus | None:
    """The bus the board runs `part` at: `opt`'s clock and width, each capped at the part's
    maximum; the part's own fastest mode by default (None for parts without a bus)."""
    top = part.bus
    if top is None or (opt.bus_mhz is None and opt.bus_width is None):
        return None
    mhz = min(opt.bus_mhz or top.mhz, top.mhz)
    width = min(opt.bus_width or top.width, top.width)
    return Bus(mhz, width, top.ddr and width == top.width)


def replay_capacity(part: Part, capacity: int | None) -> int:
    if capacity is not None:
        if capacity > part.capacity:
            raise InputError(
                f"--capacity {capacity} exceeds {part.name}'s {part.capacity} bytes"
            )
        return capacity
    if part.kind == "managed":
        return min(part.capacity, MANAGED_PARTITION)
    return part.capacity


def free_key(wl: Workload) -> int:
    k = NO_KEY - 1
    while k in wl.key_sizes:
        k -= 1
    return k


def analyze(
    wl: Workload,
    part_name: str,
    store: str,
    opt: Options | None = None,
    progress: Progress | None = None,
    config: dict[str, Any] | None = None,
) -> Result:
    """Replays `wl` on `part_name` under `store` (an engine or a storage layer's default
    variant, analyzer/engines.py) with one of its `configs()` (default: the first) and
    projects its lifetime (module doc)."""
    opt = opt or Options()
    part = get_part(part_name)
    cap = replay_capacity(part, opt.capacity)
    if wl.peak_live_bytes > cap:
        raise InputError(
            f"{wl.name}: the working set ({wl.peak_live_bytes} bytes live at once) exceeds "
            f"the {cap}-byte capacity of {part.name}"
        )
    cls = get_engine(store)
    if config is None:
        config = cls.configs(part, cap, opt)[0]
    flash = ReplayFlash(cls.flash_part(part, config), cap, wear=opt.wear,
                        endurance=opt.endurance, bus=board_bus(part, opt))
    flash.sectors_per_unit = flash.erase_size // part.erase_size
    endurance = flash.endurance
    t_start = time.perf_counter()
    try:
        engine = cls.build(flash, wl, opt, config)
        engine.burn_in(free_key(wl))
        est = make_estimator(engine, wl, opt)
        rep = Replayer(engine, wl, payload=opt.payload)
        stats: list[InferenceStats] = []
        # The budget counts replay only (burn-in is a fixed cost that grows with the part),
        # and never ends a replay before the estimator has measured one whole cycle past its
        # warm-up: an empty window would read as no wear at all.
        t_replay = time.perf_counter()
        least = getattr(est, "warmup", 0) + est.cycle
        while len(stats) < opt.max_inferences:
            stats.append(rep.step())
            if est.observe(stats[-1]):
                break
            if progress is not None:
                progress(len(stats), None)
            if time.perf_counter() - t_replay > opt.budget_s and len(stats) > least:
                break
    except (NoSpaceError, ChunkTooLargeError) as e:
        raise InputError(
            f"{wl.name} does not fit {part.name} ({cap} bytes) under {_label(cls, config)}: "
            f"{e}"
        ) from None
    steady = est.result()
    wall = time.perf_counter() - t_start
    if progress is not None:
        progress(len(stats), len(stats))
    data, curves = _figures(wl, part, flash, engine, steady, stats, opt, endurance, cap)
    data["replay"]["wall_s"] = round(wall, 3)
    return Result(data=data, curves=curves, steady=steady, engine=engine)


Job = tuple[str, str, tuple[tuple[str, Any], ...]]  # (part, engine name, config items)


def plan_jobs(parts: list[str], stores: list[str], opt: Options) -> list[Job]:
    """One analysis per part x storage layer x selected variant x config worth trying
    (`Engine.configs`); `pick_best` folds them back to one result per part and layer."""
    jobs: list[Job] = []
    for part_name in parts:
        part = get_part(part_name)
        cap = replay_capacity(part, opt.capacity)
        for store in stores:
            for cls in select(store, opt.variants.get(store, ())):
                for config in cls.configs(part, cap, opt):
                    jobs.append((part.name, cls.name, tuple(sorted(config.items()))))
    return jobs


def pick_best(
    outcomes: list[tuple[dict[str, Any], dict[str, Any]] | InputError],
    labels: list[str] | None = None,
) -> tuple[tuple[dict[str, Any], dict[str, Any]] | InputError, list[dict[str, Any]]]:
    """The strongest of one layer's configurations on one part: the longest rated life
    (ties: the least flash time per inference), with every candidate's headline figures
    (or its error, named by `labels`) for the JSON. All failed: the first error."""
    ok = [o for o in outcomes if not isinstance(o, InputError)]
    names = labels or [""] * len(outcomes)
    cands = [
        {"config": o[0]["config"], "years": o[0]["years"], "efficiency": o[0]["efficiency"],
         "io_seconds_per_inference": o[0]["io_seconds_per_inference"]}
        if not isinstance(o, InputError) else {"config": name, "error": str(o)}
        for o, name in zip(outcomes, names, strict=True)
    ]
    if not ok:
        return outcomes[0], cands
    best = max(ok, key=lambda o: (_or(o[0]["years"], -1.0), -o[0]["io_seconds_per_inference"]))
    return best, cands


def _or(v: float | None, default: float) -> float:
    return default if v is None else float(v)


def _label(cls: type[Engine], config: dict[str, Any]) -> str:
    """"littlefs (tensor, 65536-byte blocks)": the engine and the settings that failed."""
    what = [cls.variant] if cls.variant else []
    what += [f"{v}-byte {k.removesuffix('_size')}s" for k, v in config.items()]
    return f"{cls.store} ({', '.join(what)})" if what else cls.store


def run_job(
    wl: Workload, part: str, store: str, opt: Options, queue: Any = None, key: Any = None,
    config: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """analyze() for worker processes: returns only picklable parts (data, curves) and
    reports progress as (key, done, total) tuples on `queue` if given."""
    cb = None
    if queue is not None:
        last = [0.0]

        def cb(done: int, total: int | None) -> None:
            now = time.perf_counter()
            if total is not None or now - last[0] > 0.2:  # IPC per inference is too costly
                last[0] = now
                queue.put((key, done, total))

    res = analyze(wl, part, store, opt, progress=cb, config=config)
    return res.data, res.curves


def _mean(stats: list[InferenceStats], window: tuple[int, int], attr: str) -> float:
    a, b = window
    sel = stats[a:b] or stats[-1:]
    return float(np.mean([getattr(s, attr) for s in sel]))


def _figures(
    wl: Workload,
    part: Part,
    flash: ReplayFlash,
    engine: Engine,
    steady: Steady,
    stats: list[InferenceStats],
    opt: Options,
    endurance: int,
    cap: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    w = steady.window
    payload = wl.bytes_written_per_inference
    programmed = _mean(stats, w, "programmed")
    crypto = opt.encrypt.cost(wl) if opt.encrypt else None
    crypto_s = crypto["seconds_per_inference"] if crypto else 0.0
    crypto_j = crypto["energy_mj_per_inference"] * 1e-3 if crypto else 0.0
    perf = pj.perf(
        io_s=_mean(stats, w, "io_s"),
        idle_s=_mean(stats, w, "idle_s"),
        io_max_s=_mean(stats, w, "io_max_s") + _mean(stats, w, "idle_max_s"),
        energy_j=_mean(stats, w, "energy_j"),
        energy_max_j=_mean(stats, w, "energy_max_j"),
        compute_s=_mean(stats, w, "compute_s"),
        weight_s=_mean(stats, w, "weight_s"),
        latency_overlap_s=_mean(stats, w, "latency_overlap_s"),
        baseline_overlap_s=_mean(stats, w, "baseline_overlap_s"),
        cpu_s=crypto_s,
    )
    rate = opt.rate_per_s
    out: dict[str, Any] = {
        "part": part.name,
        "kind": part.kind,
        "cell": part.cell,
        "ecc": part.ecc_summary,  # what the simulated reads are corrected with
        "store": engine.store,
        "config": engine.describe(),
        "capacity": cap,
        "endurance": endurance,
        "rate_per_s": rate,
    }
    curves: dict[str, Any] = {}
    if part.kind == "managed":
        out |= _managed(part, programmed, payload, rate, cap)
    else:
        out |= _raw(wl, part, flash, engine, steady, opt, endurance, cap, curves)
    out["waf"] = programmed / payload if payload else None
    # with --encrypt, the I/O figures include the crypto work (also given apart)
    out["io_seconds_per_inference"] = perf.io_s + perf.idle_s + crypto_s
    out["io_energy_mj_per_inference"] = (perf.energy_j + crypto_j) * 1e3
    if crypto:
        out["crypto"] = crypto | {
            "flash_seconds_per_inference": perf.io_s + perf.idle_s,
            "flash_energy_mj_per_inference": perf.energy_j * 1e3,
        }
    out["slowdown"] = perf.serial_slowdown
    out["slowdown_prefetch"] = perf.prefetch_slowdown
    out["max_rate_per_s"] = perf.max_rate_per_s
    out["sustainable"] = rate <= perf.max_rate_per_s
    out["timing"] = {
        "inline_io_s": perf.io_s,
        "idle_io_s": perf.idle_s,
        "io_max_s": perf.io_max_s,
        "energy_max_mj": perf.energy_max_j * 1e3,
        "compute_s": perf.compute_s,
        "weight_read_s": perf.weight_s,
        "latency_prefetch_s": perf.latency_overlap_s,
        "bus": None if flash.bus is None else {
            "mhz": flash.bus.mhz, "width_bits": flash.bus.width, "ddr": flash.bus.ddr,
            "mb_per_s": flash.bus.bytes_per_s / 1e6,
            "from": "board (--bus-mhz / --bus-width)" if flash.bus != part.bus
            else "the part's maximum clock and widest mode (default)",
        },
        "t_read_us": part.t_read_us,
        "t_read_basis": part.t_read_basis,
    }
    out["traffic"] = {
        "payload_bytes_per_inference": payload,
        "programmed_bytes_per_inference": programmed,
        "read_bytes_per_inference": _mean(stats, w, "read"),
        "erases_per_inference": _mean(stats, w, "erases"),
    }
    out["replay"] = {
        "method": steady.method,
        "inferences": steady.inferences,
        "window": list(steady.window),
        "converged": steady.converged,
        "units_per_inference": steady.units_per_inference,
        **{k: v for k, v in steady.notes.items() if isinstance(v, int | float | str)},
    }
    out["engine"] = engine.config()
    return out, curves


def _max_over_mean(
    counts: np.ndarray, rates: np.ndarray, ahead: float, spread: float
) -> float | None:
    """Max / mean wear of the device when it wears out (the projected counts at end of life),
    with the expected maximum of the random spread for moving hot spots."""
    if not np.isfinite(ahead) or not rates.any():
        return None
    wear = counts + rates * ahead
    top = float(wear.max())
    if spread > 0:
        top = float((wear + pj.extreme_z(wear.size) * np.sqrt(spread * ahead)).max())
    mean = float(wear.mean())
    return top / mean if mean > 0 else None


def _managed(part: Part, programmed: float, payload: float, rate: float, cap: int) -> dict:
    """Card-level endurance: the card's FTL levels wear over its whole capacity, so only the
    host's bytes written count; tbw_bytes already includes an assumed internal WAF."""
    per_year = programmed * rate * pj.SECONDS_PER_YEAR
    waf_int = part.internal_waf or 1.0
    tbw = part.tbw_bytes or part.endurance * part.capacity / waf_int
    years = tbw / per_year if per_year > 0 else float("inf")
    ideal = pj.years(pj.ideal_life(part.endurance, part.capacity, payload), rate)
    return {
        "years": years,
        "years_weibull_p1": None,
        "years_weibull_median": None,
        "years_first_worn_block_weibull_p1": None,
        "years_first_worn_block_weibull_median": None,
        "ideal_years": ideal,
        "efficiency": years / ideal if 0 < ideal < float("inf") else None,
        "erase_amplification": None,
        "wear_max_over_mean": None,
        "managed": {
            "tbw_bytes": tbw,
            "internal_waf_assumed": waf_int,
            "host_bytes_per_inference": programmed,
            "replayed_partition": cap,
            "note": "card-level endurance; the internal WAF is the catalogue's assumption",
        },
    }


def _raw(
    wl: Workload,
    part: Part,
    flash: ReplayFlash,
    engine: Engine,
    steady: Steady,
    opt: Options,
    endurance: int,
    cap: int,
    curves: dict[str, Any],
) -> dict:
    rate = opt.rate_per_s
    rates = steady.rates if steady.rates is not None else np.zeros(flash.num_blocks)
    counts = steady.counts
    now = steady.inferences
    spread = float(steady.notes.get("spread", 0.0))
    life = pj.rated_life(counts, rates, endurance, now, spread)
    shape = weibull_shape(part, opt)
    scale = opt.weibull_scale or pj.weibull_scale(endurance, shape, opt.rated_quantile)
    spare = engine.spare()
    cells = flash.sectors_per_unit
    wb = pj.weibull_life(
        counts, rates, now, shape, scale,
        group=engine.group, spare=spare.groups, redistribute=spare.remaps, cells=cells,
    )
    first = wb if spare.groups == 0 else pj.weibull_life(
        counts, rates, now, shape, scale, group=engine.group, spare=0, cells=cells)
    payload = wl.bytes_written_per_inference
    ideal = pj.ideal_life(endurance, cap, payload)
    r_total = float(rates.sum())
    erased_bytes = r_total * flash.erase_size
    curves.update(
        rates=rates, counts=counts, now=now, life=life, endurance=endurance, rate_per_s=rate,
        spread=spread,
    )
    return {
        "years": pj.years(life, rate),
        "years_weibull_p1": pj.years(wb.p1, rate),
        "years_weibull_median": pj.years(wb.median, rate),
        "years_first_worn_block_weibull_p1": pj.years(first.p1, rate),
        "years_first_worn_block_weibull_median": pj.years(first.median, rate),
        "ideal_years": pj.years(ideal, rate),
        "efficiency": life / ideal if 0 < ideal < float("inf") else None,
        "erase_amplification": erased_bytes / payload if payload else None,
        "wear_max_over_mean": _max_over_mean(counts, rates, life - now, spread),
        "weibull": {
            "shape": shape,
            "shape_source": weibull_shape_source(opt),
            "scale_cycles": scale,
            "rated_quantile": opt.rated_quantile,
            "spare_groups": spare.groups,
            "spare": {"good_groups": spare.total, "working_set_groups": spare.working_set,
                      "reserved_groups": spare.reserved, "on_wear": spare.on_wear},
            "group_units": engine.group,
            "sectors_per_unit": cells,
            "draws": wb.draws,
        },
    }
