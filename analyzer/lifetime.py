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
from analyzer.device import ReplayFlash
from analyzer.engine_base import STORES, Engine
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
from flashswap.parts import Part, get_part
from flashswap.store.core import MAX_KEYS_CAP, index_limit

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


@dataclass
class Result:
    data: dict[str, Any]
    curves: dict[str, Any] = field(default_factory=dict)
    steady: Steady | None = None
    engine: Engine | None = None


Progress = Callable[[int, int | None], None]


def make_engine(store: str, flash: ReplayFlash, wl: Workload, opt: Options) -> Engine:
    """The engine for `store` on `flash` (imports are local: each pulls in its library)."""
    if store == "naive":
        from analyzer.engine_naive import NaiveEngine

        return NaiveEngine(flash, wl.max_chunk, wl.distinct_keys)
    if store == "littlefs":
        from analyzer.engine_littlefs import LittlefsEngine

        return LittlefsEngine(flash, block_cycles=opt.block_cycles)
    if store == "flashswap":
        from analyzer.engine_flashswap import FlashswapEngine

        config = dict(opt.store_config)
        need = wl.peak_live_chunks + 1  # + 1: the burn-in filler
        seg = config.get("segment_size")
        if seg and need > index_limit(seg):
            raise InputError(
                f"the working set's {wl.peak_live_chunks} chunks do not fit the index of "
                f"{seg:,}-byte segments (at most {index_limit(seg)} chunks: a checkpoint "
                "fills at most half a segment); choose a larger segment size"
            )
        if need > MAX_KEYS_CAP:
            # The store's default index holds 1024 chunks (12 KiB of MCU RAM); a working set
            # of more chunks needs a larger index, which the store allows up to half a segment.
            config.setdefault("max_keys", need)
        return FlashswapEngine(flash, wl.peak_live_bytes, wl.peak_live_chunks,
                               implementation=opt.implementation, **config)
    raise InputError(f"unknown store {store!r} (choose from {', '.join(STORES)})")


def _stint(engine: Engine) -> int | None:
    rule = getattr(engine, "stint_erases", None)
    return rule() if callable(rule) else rule


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
        stint_erases=_stint(engine),
    )
    if engine.model == "periodic":
        circ.hot_spots_move = False
        return PeriodicEstimator(f, cycle, fallback=circ)
    return circ


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
) -> Result:
    """Replays `wl` on `part_name` under `store` and projects its lifetime (module doc)."""
    opt = opt or Options()
    part = get_part(part_name)
    cap = replay_capacity(part, opt.capacity)
    if wl.peak_live_bytes > cap:
        raise InputError(
            f"{wl.name}: the working set ({wl.peak_live_bytes} bytes live at once) exceeds "
            f"the {cap}-byte capacity of {part.name}"
        )
    flash = ReplayFlash(part, cap, wear=opt.wear, endurance=opt.endurance)
    endurance = flash.endurance
    t_start = time.perf_counter()
    try:
        engine = make_engine(store, flash, wl, opt)
        engine.burn_in(free_key(wl))
        est = make_estimator(engine, wl, opt)
        rep = Replayer(engine, wl, payload=opt.payload)
        stats: list[InferenceStats] = []
        while len(stats) < opt.max_inferences:
            stats.append(rep.step())
            if est.observe(stats[-1]):
                break
            if progress is not None:
                progress(len(stats), None)
            if time.perf_counter() - t_start > opt.budget_s:
                break
    except (NoSpaceError, ChunkTooLargeError) as e:
        raise InputError(
            f"{wl.name} does not fit {part.name} ({cap} bytes) under {store}: {e}"
        ) from None
    steady = est.result()
    wall = time.perf_counter() - t_start
    if progress is not None:
        progress(len(stats), len(stats))
    data, curves = _figures(wl, part, flash, engine, steady, stats, opt, endurance, cap)
    data["replay"]["wall_s"] = round(wall, 3)
    return Result(data=data, curves=curves, steady=steady, engine=engine)


def run_job(
    wl: Workload, part: str, store: str, opt: Options, queue: Any = None, key: Any = None
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

    res = analyze(wl, part, store, opt, progress=cb)
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
    )
    rate = opt.rate_per_s
    out: dict[str, Any] = {
        "part": part.name,
        "kind": part.kind,
        "cell": part.cell,
        "ecc": part.ecc_summary,  # what the simulated reads are corrected with
        "store": engine.name,
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
    out["io_seconds_per_inference"] = perf.io_s + perf.idle_s
    out["io_energy_mj_per_inference"] = perf.energy_j * 1e3
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
    shape = part.weibull_shape
    scale = opt.weibull_scale or pj.weibull_scale(endurance, shape, opt.rated_quantile)
    levels = engine.model != "periodic"
    wb = pj.weibull_life(
        counts, rates, now, shape, scale,
        group=engine.group,
        spare=engine.spare_groups() if levels else 0,
        redistribute=levels,
    )
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
        "ideal_years": pj.years(ideal, rate),
        "efficiency": life / ideal if 0 < ideal < float("inf") else None,
        "erase_amplification": erased_bytes / payload if payload else None,
        "wear_max_over_mean": _max_over_mean(counts, rates, life - now, spread),
        "weibull": {
            "shape": shape,
            "scale_cycles": scale,
            "rated_quantile": opt.rated_quantile,
            "spare_groups": engine.spare_groups() if levels else 0,
            "group_units": engine.group,
            "draws": wb.draws,
        },
    }
