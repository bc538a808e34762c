"""From steady-state wear to years, and from replayed inferences to time, energy and rates.

Lifetime (raw flash). Unit b wears as c_b + r_b * t (t in inferences, see steady.py).
- Rated: the first unit to reach the rated endurance E ends the device: t = min (E - c_b)/r_b.
- Weibull: per-unit endurance L ~ Weibull(shape k, scale s), with s chosen so that the rated
  endurance is the `rated_quantile` point of the distribution (an assumption: datasheets give
  one number; 1% by default). Units that fail together (a store segment) form a group whose
  endurance is the minimum of its units'. The store keeps working until more groups have
  failed than it can spare; when it levels wear, the work of a dead group moves to the living
  ones in proportion to their shares (so survivors wear faster). Monte Carlo with a fixed
  seed gives the 1% and 50% points of the store's life.
- Ideal: E x capacity / payload written, i.e. every byte of every unit erased once per byte
  of payload; efficiency = rated years / ideal years.
Managed devices (SD/eMMC): years = card endurance in bytes (tbw_bytes, which the catalogue
derives with an assumed internal write amplification) / host bytes written per year.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, ndtri
from scipy.stats import poisson

from analyzer.rates import SECONDS_PER_YEAR

RATED_QUANTILE = 0.01
MC_ELEMENTS = 1_500_000  # draws x groups per Monte Carlo run: bounds time and memory
MC_SEED = 20240601


def years(inferences: float, rate_per_s: float) -> float:
    return float(inferences) / rate_per_s / SECONDS_PER_YEAR


def rated_life(
    counts: np.ndarray, rates: np.ndarray, endurance: float, now: int, spread: float = 0.0
) -> float:
    """Inferences from a fresh device until the first unit reaches `endurance` erases.

    `now` is the inference at which `counts` were taken; units already past the endurance
    (validation runs) give `now`. With `spread` > 0 (variance per inference of a unit's count,
    from moving hot spots) each unit's count after t more inferences is modelled as normal
    with mean c_b + r_b t and variance spread * t, and the result is the median time at which
    the largest count reaches the endurance."""
    live = rates > 0
    if not live.any():
        return float("inf")
    c, r = counts[live], rates[live]
    left = (endurance - c) / r
    t_det = max(0.0, float(left.min()))
    if spread <= 0 or t_det == 0:
        return float(now + t_det)

    def log_p_all_below(t: float) -> float:
        if t <= 0:
            return 0.0
        z = (endurance - c - r * t) / np.sqrt(spread * t)
        return float(log_ndtr(z).sum())

    return float(now + _median_time(log_p_all_below, t_det, 1e-9))


def _median_time(log_p_alive: Callable[[float], float], hi: float, rel_tol: float) -> float:
    """The t in (0, hi] where log P(device alive at t) crosses log 1/2, by bisection: the
    probability falls from 1 towards 0 as t grows."""
    lo, target = 0.0, np.log(0.5)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if log_p_alive(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= rel_tol * hi:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Stints:
    """Moving hot spots as a random process (steady.py measures it from the replay).

    A hot spot (a littlefs metadata block between relocations) sits on one block for
    `duration` inferences and gives it `excess` erases more than the data share it would have
    had meanwhile; stints start at `rate` per inference on the whole device, each on a block
    drawn uniformly from `units`; between stints a block wears at `data_rate`. A block's
    count t inferences ahead is c_b + data_rate t + excess (completed stints + the fraction
    done of one in progress): discrete steps, not a normal spread."""

    units: int
    data_rate: float  # erases per inference of a block holding no hot spot
    rate: float  # stints started per inference, whole device
    excess: float  # erases per stint above the data share
    duration: float  # inferences a stint lasts


def _stints_below(k: np.ndarray, completed: float, in_progress: float) -> np.ndarray:
    """P(N + progress < k): N ~ Poisson(completed) whole stints, and with probability
    1 - exp(-in_progress) one more stint in progress, its done fraction uniform on [0, 1)."""
    k = np.maximum(k, 0.0)
    whole = np.where(k > 0, poisson.cdf(np.ceil(k) - 1, completed), 0.0)
    f = np.floor(k)  # P(N + U < k): the CDF above interpolated between integers
    ramp = poisson.cdf(f - 1, completed) + poisson.pmf(f, completed) * (k - f)
    p_idle = np.exp(-in_progress)
    return p_idle * whole + (1.0 - p_idle) * ramp


def stint_life(counts: np.ndarray, endurance: float, now: int, st: Stints) -> float:
    """Median inferences from a fresh device until the first of `counts` (the circulating
    blocks' counts at inference `now`) reaches `endurance` under the stint process `st`.

    Each block's stints are Poisson with mean rate/units x t (those started more than a
    duration ago complete, the others in progress); blocks are independent. The device lives
    while every block is below the endurance, so the median solves
    sum_b log P(c_b + d t + excess x stints_b < E) = log 1/2."""
    c = np.asarray(counts, dtype=np.float64)
    d = st.data_rate
    if c.size == 0 or d <= 0:
        return float("inf")
    hi = (endurance - float(c.max())) / d  # the top block, with data erases only
    if hi <= 0:
        return float(now)
    lam = st.rate / max(1, st.units)
    if lam <= 0 or st.excess <= 0:
        return float(now + hi)

    def log_p_alive(t: float) -> float:
        k = (endurance - c - d * t) / st.excess
        p = _stints_below(k, lam * max(0.0, t - st.duration), lam * min(t, st.duration))
        return float(np.log(np.maximum(p, 1e-300)).sum())

    return float(now + _median_time(log_p_alive, hi, 1e-7))


def equivalent_spread(
    counts: np.ndarray, rates: np.ndarray, endurance: float, now: int, life: float
) -> float:
    """The normal model's variance per inference (rated_life's `spread`) under which its
    median first failure is `life`: how a stint projection reaches callers that take a
    spread. 0 if `life` is not before the deterministic first failure."""
    det = rated_life(counts, rates, endurance, now)
    if not np.isfinite(life) or life >= det or det <= now:
        return 0.0
    lo, hi = 0.0, 1.0
    while rated_life(counts, rates, endurance, now, hi) > life:
        lo, hi = hi, hi * 4.0
        if hi > 1e30:
            return hi
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if rated_life(counts, rates, endurance, now, mid) > life:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-6 * hi:
            break
    return 0.5 * (lo + hi)


def extreme_z(n: int) -> float:
    """Median of the largest of n standard normals: the z with Phi(z)^n = 1/2."""
    return float(ndtri(0.5 ** (1.0 / max(1, n))))


def weibull_scale(endurance: float, shape: float, quantile: float = RATED_QUANTILE) -> float:
    """Scale s such that P(L <= endurance) = quantile for L ~ Weibull(shape, s)."""
    return float(endurance / (-np.log1p(-quantile)) ** (1.0 / shape))


@dataclass(frozen=True)
class WeibullLife:
    p1: float  # inferences from a fresh device
    median: float
    draws: int


def weibull_life(
    counts: np.ndarray,
    rates: np.ndarray,
    now: int,
    shape: float,
    scale: float,
    group: int = 1,
    spare: int = 0,
    redistribute: bool = True,
    draws: int | None = None,
    seed: int = MC_SEED,
    cells: int = 1,
) -> WeibullLife:
    """Store life under per-unit Weibull endurance (see module doc), in inferences. `cells`:
    endurance draws per unit (a unit erased only as a whole, e.g. a 64 KiB NOR block of 16
    sectors, wears out with its weakest sector); `spare` = 0 gives the first worn group."""
    n = counts.size // group * group
    c = counts[:n].reshape(-1, group).max(axis=1)
    r = rates[:n].reshape(-1, group).max(axis=1)
    active = r > 0
    c, r = c[active], r[active]
    g = r.size
    if g == 0:
        return WeibullLife(float("inf"), float("inf"), 0)
    if draws is None:
        draws = int(np.clip(MC_ELEMENTS // g, 200, 2000))
    rng = np.random.default_rng(seed)
    # The minimum of n iid Weibull(k, s) is Weibull(k, s * n**(-1/k)).
    gscale = scale * (group * cells) ** (-1.0 / shape)
    life = gscale * rng.weibull(shape, size=(draws, g))
    # tau: the "work clock" at which each group dies, if work kept its shares.
    tau = (life - c) / r
    kill = min(spare + 1, g)  # the death that ends the store
    order = np.argsort(tau, axis=1)
    tau_sorted = np.take_along_axis(tau, order, axis=1)[:, :kill]
    tau_sorted = np.maximum(tau_sorted, 0.0)
    if redistribute and kill > 1:
        share = (r / r.sum())[order[:, : kill - 1]]
        alive = np.concatenate(
            [np.ones((draws, 1)), 1.0 - np.cumsum(share, axis=1)], axis=1
        )
        steps = np.diff(np.concatenate([np.zeros((draws, 1)), tau_sorted], axis=1), axis=1)
        t = (steps * np.maximum(alive, 1e-12)).sum(axis=1)
    else:
        t = tau_sorted[:, -1]
    p1, med = np.quantile(t, [0.01, 0.5])
    return WeibullLife(float(now + p1), float(now + med), draws)


def ideal_life(endurance: float, capacity: int, payload_per_inference: float) -> float:
    """Inferences until every byte of the device was erased `endurance` times by payload."""
    if payload_per_inference <= 0:
        return float("inf")
    return endurance * capacity / payload_per_inference


@dataclass(frozen=True)
class Perf:
    """Per-inference cost and what it allows (seconds, joules, inferences per second)."""

    io_s: float  # flash busy time during the inference (swap I/O and weight reads)
    idle_s: float  # flash busy time in the idle step after it (pre-erase, leveling)
    io_max_s: float
    energy_j: float  # flash energy, inference + idle
    energy_max_j: float
    compute_s: float
    weight_s: float
    latency_overlap_s: float
    serial_slowdown: float | None
    prefetch_slowdown: float | None
    max_rate_per_s: float


def perf(
    io_s: float,
    idle_s: float,
    io_max_s: float,
    energy_j: float,
    energy_max_j: float,
    compute_s: float,
    weight_s: float,
    latency_overlap_s: float,
    baseline_overlap_s: float,
    cpu_s: float = 0.0,
) -> Perf:
    """Slowdowns against the same run with activations in SRAM (weights still streamed), and
    the highest sustainable rate: one inference per max(overlapped latency, flash busy).
    `cpu_s`: work the CPU adds per inference beside compute (encryption), which overlaps
    neither compute nor, on one core, the prefetch it would hide behind."""
    base_serial = compute_s + weight_s
    serial = (compute_s + io_s + cpu_s) / base_serial if compute_s > 0 else None
    prefetch = (
        max(1.0, (latency_overlap_s + cpu_s) / baseline_overlap_s)
        if compute_s > 0 and baseline_overlap_s > 0
        else None
    )
    cycle = max(latency_overlap_s + cpu_s, io_s + idle_s, compute_s + cpu_s)
    return Perf(
        io_s=io_s,
        idle_s=idle_s,
        io_max_s=io_max_s,
        energy_j=energy_j,
        energy_max_j=energy_max_j,
        compute_s=compute_s,
        weight_s=weight_s,
        latency_overlap_s=latency_overlap_s,
        serial_slowdown=serial,
        prefetch_slowdown=prefetch,
        max_rate_per_s=1.0 / cycle if cycle > 0 else float("inf"),
    )
