"""Steady-state erase rates per erase unit, found without replaying a device's whole life.

Projection models each unit's wear as c_b + r_b * t: c_b is its count when replay stops and
r_b its long-run erase rate (erases per inference). Every estimator here observes the replay
one inference at a time, says when it has seen enough, and produces r_b. Which estimator fits
is a property of the engine's allocation policy (analyzer/README.md justifies each; tests
replay small devices to failure to check the shortcut):

- periodic (naive layout): the per-unit erase and program deltas of an inference repeat
  exactly with a period that is a multiple of the trace's inference cycle. After three equal
  periods, r_b is the period's erases divided by its length: exact.
- leveled (flashswap store): the store opens the least-worn free segment and moves cold data
  once the erase spread exceeds its threshold, so every good unit takes the same share in the
  long run. Only the total rate R is measured, as units *consumed* (erased -> programmed)
  per inference; on raw flash each consumption costs one erase in steady state, and unlike
  erases it is visible in the first pass. r_b = R / good units.
- circulating (littlefs): blocks are allocated by a cyclic scan, so data blocks take even
  shares; metadata blocks are hot spots that take a stint of (block_cycles + 1) | 1 erases
  on one block and then move to wherever the allocator is. The stints are measured in the
  window (measure_hot_spots) and projected as a random process (projection.stint_life); the
  result reaches the projection as the normal-equivalent `spread`. With block_cycles = -1
  the pairs never move: such persistent hot units keep their measured rate, the others
  share the rest of R. When a pass is long (a layout that erases little per inference on a
  big part) and a stint is a small part of the endurance, a short window does: the uniform
  data share, and stints sized by the store's rule (CirculatingEstimator._update).
- passes (any engine, `--passes N`): brute force, the measured per-unit rate over the last N
  full passes of the device; used to cross-check the shortcuts.
- host (managed devices): no per-unit model (the card's FTL levels); only host bytes written
  per inference are measured.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analyzer.device import ReplayFlash
from analyzer.projection import Stints, equivalent_spread, rated_life, stint_life
from analyzer.replay import InferenceStats


@dataclass
class Steady:
    """The outcome of an estimator (see module doc)."""

    method: str
    rates: np.ndarray | None  # long-run erases per inference, per erase unit
    counts: np.ndarray  # wear per unit when replay stopped
    inferences: int  # inferences replayed in total
    window: tuple[int, int]  # [first, last) inferences the rates were measured over
    units_per_inference: float  # R: erase units worn per inference in steady state
    converged: bool = True
    notes: dict[str, Any] = field(default_factory=dict)


class Estimator:
    """Base: observe() after every inference; result() once done() or when out of budget."""

    method = ""
    warmup = 0  # inferences before the window may start

    def __init__(self, flash: ReplayFlash, cycle: int = 1) -> None:
        self.flash = flash
        self.cycle = max(1, cycle)  # inferences in one cycle of the trace
        self.n = 0
        self.done = False
        self.start = 0  # first inference of the window
        self._e0 = flash.erase_counts.copy()
        self._c0 = flash.consumed.copy()

    def observe(self, stats: InferenceStats) -> bool:
        self.n += 1
        self.done = self._update(stats)
        return self.done

    def _update(self, stats: InferenceStats) -> bool:
        raise NotImplementedError

    def _restart(self) -> None:
        """Start the measurement window at the current inference."""
        self.start = self.n
        self._e0 = self.flash.erase_counts.copy()
        self._c0 = self.flash.consumed.copy()

    @property
    def window(self) -> int:
        return self.n - self.start

    def _whole(self, at_least: int) -> bool:
        return self.window >= at_least and self.window % self.cycle == 0

    def result(self) -> Steady:
        raise NotImplementedError

    def _steady(self, rates: np.ndarray | None, r: float, **notes: Any) -> Steady:
        return Steady(
            method=self.method,
            rates=rates,
            counts=self.flash.wear_counts.astype(np.float64),
            inferences=self.n,
            window=(self.start, self.n),
            units_per_inference=r,
            converged=self.done,
            notes=notes,
        )


class PeriodicEstimator(Estimator):
    """Exact period of per-unit deltas; falls back to `fallback` if none shows up."""

    method = "periodic"

    def __init__(
        self, flash: ReplayFlash, cycle: int = 1, fallback: Estimator | None = None,
        max_multiple: int = 4,
    ) -> None:
        super().__init__(flash, cycle)
        self.periods = [self.cycle * m for m in range(1, max_multiple + 1)]
        keep = 3 * self.periods[-1] + 1
        self.snaps: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=keep)
        self.snaps.append((flash.erase_counts.copy(), flash.program_bytes.copy()))
        self.fallback = fallback
        self.give_up = keep + 1
        self.period: int | None = None
        self._fell_back = False

    def observe(self, stats: InferenceStats) -> bool:
        if self._fell_back:
            assert self.fallback is not None
            self.n += 1
            self.done = self.fallback.observe(stats)
            return self.done
        return super().observe(stats)

    def _update(self, stats: InferenceStats) -> bool:
        f = self.flash
        self.snaps.append((f.erase_counts.copy(), f.program_bytes.copy()))
        for p in self.periods:
            if len(self.snaps) >= 3 * p + 1 and self._repeats(p):
                self.period = p
                self.start = self.n - p
                return True
        if self.n >= self.give_up and self.fallback is not None:
            self._fell_back = True
            fb = self.fallback  # continue on the same inference count, window from here
            fb.n = fb.warmup = self.n
            fb._restart()
        return False

    def _repeats(self, p: int) -> bool:
        s = list(self.snaps)[-(3 * p + 1) :]
        d = [(s[i + 1][0] - s[i][0], s[i + 1][1] - s[i][1]) for i in range(3 * p)]
        if not d[-p:] or sum(int(x[0].sum()) for x in d[-p:]) == 0:
            return False  # nothing erased: not a steady state of raw flash
        return all(
            np.array_equal(d[i][0], d[i + p][0]) and np.array_equal(d[i][1], d[i + p][1])
            for i in range(2 * p)
        )

    def result(self) -> Steady:
        if self._fell_back and self.fallback is not None:
            out = self.fallback.result()
            out.inferences = self.n
            out.notes["periodic"] = "no exact period found"
            return out
        if self.period is None:
            rates = (self.flash.erase_counts - self.snaps[0][0]) / max(1, len(self.snaps) - 1)
            return self._steady(rates.astype(np.float64), float(rates.sum()))
        p = self.period
        rates = (self.snaps[-1][0] - self.snaps[-1 - p][0]).astype(np.float64) / p
        return self._steady(rates, float(rates.sum()), period=p)


class LeveledEstimator(Estimator):
    """Uniform share of the log's consumption rate over the good units (see module doc).

    With `position` (the engine's log position in units, exact at inference boundaries) the
    rate is measured over whole trace cycles and accepted once the two halves of the window
    agree within `tolerance`; without it, whole units consumed are counted until there are
    `min_units` of them."""

    method = "leveled"

    def __init__(
        self, flash: ReplayFlash, cycle: int = 1, warmup: int = 2, min_window: int = 8,
        min_units: int = 512, bad_units: np.ndarray | None = None,
        position: Callable[[], float | None] | None = None, tolerance: float = 0.002,
        max_window: int = 256,
    ) -> None:
        super().__init__(flash, cycle)
        self.warmup = max(warmup, 0)
        self.min_window = min_window
        self.min_units = min_units
        self.bad = bad_units
        self.position = position if position is not None and position() is not None else None
        self.tolerance = tolerance
        self.max_window = max_window
        self.trail: list[float] = []  # log position at each inference boundary of the window

    def _restart(self) -> None:
        super()._restart()
        self.trail = [self.position()] if self.position is not None else []  # type: ignore[list-item]

    def _update(self, stats: InferenceStats) -> bool:
        if self.n == self.warmup:
            self._restart()
            return False
        if self.n < self.warmup:
            return False
        if self.position is not None:
            self.trail.append(self.position())  # type: ignore[arg-type]
        if not self._whole(self.min_window):
            return False
        if self.position is None:
            used = int((self.flash.consumed - self._c0).sum())
            return used >= min(self.min_units, self.flash.num_blocks)
        if self.window >= self.max_window:
            return True
        half = self.window // 2
        if half % self.cycle:
            return False
        t = self.trail
        a, b = t[half] - t[0], t[-1] - t[half]
        return a > 0 and abs(a - b) <= self.tolerance * max(a, b)

    def rate(self) -> float:
        n = max(1, self.window)
        if self.position is not None and len(self.trail) > 1:
            return (self.trail[-1] - self.trail[0]) / n
        return float((self.flash.consumed - self._c0).sum()) / n

    def result(self) -> Steady:
        r = self.rate()
        good = np.ones(self.flash.num_blocks, dtype=bool)
        if self.bad is not None:
            good &= ~self.bad
        rates = np.where(good, r / max(1, int(good.sum())), 0.0)
        return self._steady(
            rates, r, good_units=int(good.sum()),
            measure="log position" if self.position is not None else "units consumed",
        )


@dataclass(frozen=True)
class HotSpots:
    """Moving hot spots measured in a replay window (see measure_hot_spots)."""

    stints: Stints  # the random process projection draws from
    erases_per_inference: float  # erases in hot runs, whole device
    stint_erases: float  # erases a unit takes in one stint
    runs: int  # long hot runs (half the longest or more) seen whole inside the window
    committed: np.ndarray  # per unit: excess still due from a stint in progress at the end


def hot_runs(
    snaps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Hot runs in a window of erase-count snapshots (one row per inference boundary, one
    column per unit): stretches in which a unit is erased faster than data allocation erases
    it. Returns (unit, first, last, erases) per run (first/last: inference within the window)
    and the allocator's pass length in inferences.

    Data reaches a unit once per pass of the cyclic allocator, `pass_len` inferences apart
    (the median unit's spacing) and very regularly; a metadata block between relocations is
    erased at its pair's commit pace. An erase less than `thr` after or before the unit's
    previous or next one is hot, thr = min(0.8 pass, pass - 1.5) (the margin keeps a data
    erase that lands one inference early out). Consecutive hot erases less than a pass apart
    form a run (a slow pair's stint has some longer gaps); runs of fewer than 3 erases are
    dropped. When a pass is under 2 inferences, erase times within an inference are not
    resolved: an inference in which a unit took more than twice its share of erases is hot
    instead."""
    d = np.diff(snaps, axis=0)
    w = d.shape[0]
    count = d.sum(axis=0)
    busy = count[count > 0]
    empty = np.zeros(0, dtype=np.int64)
    if w < 2 or busy.size == 0:
        return empty, empty, empty, empty, float("inf")
    pass_len = w / float(np.median(busy))
    if pass_len >= 2:
        uu, ii = np.nonzero(d.T)  # sorted by unit, then inference
        reps = d[ii, uu]
        unit, at = np.repeat(uu, reps), np.repeat(ii, reps)  # one entry per erase
        same = unit[1:] == unit[:-1]
        gap = np.where(same, np.diff(at), np.iinfo(np.int64).max)
        close = gap < min(0.8 * pass_len, pass_len - 1.5)  # between erase k and k + 1
        hot = np.r_[close, False] | np.r_[False, close]
        join = (gap < pass_len) & hot[:-1] & hot[1:]  # a slow stint's longer gaps
        starts = np.flatnonzero(hot & ~np.r_[False, join])
        ends = np.flatnonzero(hot & ~np.r_[join, False])
        unit_r, first, last = unit[starts], at[starts], at[ends]
        erases = (ends - starts + 1).astype(np.int64)
    else:
        kmin = 1 + int(2.0 / pass_len)
        uu, ii = np.nonzero((d >= kmin).T)
        if uu.size == 0:
            return empty, empty, empty, empty, pass_len
        new = np.r_[True, (uu[1:] != uu[:-1]) | (np.diff(ii) > 1)]
        at = np.flatnonzero(new)
        unit_r, first, last = uu[at], ii[at], np.maximum.reduceat(ii, at)
        erases = (snaps[last + 1, unit_r] - snaps[first, unit_r]).astype(np.int64)
    keep = erases >= 3
    return unit_r[keep], first[keep], last[keep], erases[keep], pass_len


def measure_hot_spots(
    snaps: np.ndarray, circ: int, stint_erases: int | None = None, min_runs: int = 1,
    uniform_data: bool = False,
) -> HotSpots | None:
    """The moving hot-spot process in a window of erase-count snapshots (see hot_runs), or
    None while nothing identifies it.

    Runs that start and end inside the window (three of their own erase gaps, at most a pass,
    from either edge) are whole stints: their erases, length and excess over the data share
    (`data_rate`: the typical rate of the units without a run) give the stint process. Short
    and long runs are both kept; the excess per stint is averaged as the variance sees it
    (sum x^2 / sum x), each run weighted by 1 / the number of places a run that long fits in
    the window, so that long runs are not undercounted. The rate of stints follows from the
    erases of all runs (partial ones included). Until `min_runs` of the long runs (at least
    half the longest run, whole or not) have been seen whole, the process is not known: then
    `stint_erases` (the store's own rule, if given) and the pace of the runs give it, or
    None. `uniform_data` (a window shorter than a pass, where a block's data erases cannot
    be told from its count): the data share is the erases outside hot runs spread evenly
    over the `circ` circulating units, and the store's rule sizes the stints."""
    w = snaps.shape[0] - 1
    count = (snaps[-1] - snaps[0]).astype(np.float64)
    if uniform_data:
        # data reaches a unit at most once in the window: a unit erased twice is hot for
        # the whole window (its stint is longer than the window)
        blk = np.flatnonzero(count >= 2)
        erases = count[blk].astype(np.int64)
        first, last = np.zeros_like(blk), np.full_like(blk, w - 1)
        pass_len = float("inf")
    else:
        blk, first, last, erases, pass_len = hot_runs(snaps)
    units = count.size
    cold = count > 0  # units of long-lived files and the superblock take no data
    cold[blk] = False
    pool = count[cold] if cold.any() else count[count > 0]
    if w < 3 or pool.size == 0:
        return None
    hot_rate = float(erases.sum()) / w
    if uniform_data:
        data_rate = max(0.0, float(count.sum()) / w - hot_rate) / max(1, circ)
    else:
        med = float(np.median(pool))
        typical = pool[np.abs(pool - med) <= max(1.0, 0.25 * med)]
        data_rate = float((typical if typical.size else pool).mean()) / w
    committed = np.zeros(units)
    none = HotSpots(Stints(circ, data_rate, 0.0, 0.0, 0.0), hot_rate, 0.0, 0, committed)
    if hot_rate <= 0:
        return none
    erases = erases.astype(np.float64)
    length = (last - first + 1).astype(np.float64)
    # A run has ended if its unit was not erased for three of its own gaps (at most a pass).
    edge = np.minimum(min(pass_len, w / 4), np.maximum(1.0, np.ceil(3 * length / erases)))
    whole = (first >= edge) & (last <= w - 1 - edge)
    # the stints that matter are the longest runs: count those seen whole
    big = int((whole & (erases >= 0.5 * erases.max())).sum())
    if uniform_data and stint_erases:
        big = 0  # fragments of stints longer than the window: the rule sizes them
    if big >= min_runs or (big and not stint_erases):
        s, t = erases[whole], length[whole]
        wt = 1.0 / np.maximum(1.0, (w - 2 * edge[whole]) - t + 1)
        per_weight = hot_rate / float((wt * s).sum())  # stints per inference per unit weight
        x = np.maximum(s - data_rate * t, 0.0)
        if float((wt * x).sum()) <= 0:
            return none
        excess = float((wt * x * x).sum() / (wt * x).sum())
        rate = per_weight * float((wt * x).sum()) / excess
        duration = float((wt * x * t).sum() / (wt * x).sum())
        long_ = s[s >= 0.75 * s.max()]  # the median long run: a data erase may join one
        size = float(stint_erases) if stint_erases else float(np.median(long_))
        runs = big
    elif stint_erases:
        pace = float(erases.sum() / length.sum())  # erases per inference of a hot unit
        size = float(stint_erases)
        excess = size * max(0.0, 1.0 - data_rate / pace)
        rate, duration, runs = hot_rate / size, size / pace, 0
    else:
        return None
    # units in a stint at the end of the window still have the rest of it to come
    open_ = ~whole & (last > w - 1 - edge)
    for b, e, t in zip(blk[open_], erases[open_], length[open_], strict=True):
        committed[b] = max(0.0, size - e) * max(0.0, 1.0 - data_rate * t / e)
    st = Stints(circ, data_rate, rate, excess, duration)
    return HotSpots(st, hot_rate, size, runs, committed)


MAX_PASS = 24  # passes longer than this many inferences: a short window may do
SHORT_HOT = 3  # repeat erases a short window waits for (the hot spots' rate)
STINT_SHARE = 40  # short windows only where a stint is at most 1/40 of the endurance
SHORT_CAP = 4  # ... but no longer than this many minimum short windows


class CirculatingEstimator(Estimator):
    """Equal shares over circulating units, a random stint process for moving hot spots, and
    measured rates for persistent hot units (see module doc).

    Moving hot spots (littlefs metadata blocks relocated every (block_cycles + 1) | 1 erases)
    sit on one unit for a stint and then land wherever the allocator is: a unit's count is
    its data share plus a random number of whole stints. measure_hot_spots finds the stints in
    the window; projection.stint_life turns them into the median first wear-out. With moving
    hot spots the window starts once the device has seen `min_erases` erases (in a fresh
    littlefs the root directory starts in the superblock pair, which it leaves after
    block_cycles commits, and its first stint elsewhere is partial), lasts at least `segments`
    half-passes and `min_erases` erases, and ends when the stints change the projected life by
    less than `tolerance`, or when the projected life is stable between two checks 25% apart
    (once `min_runs` long runs were seen whole, or with `stint_erases`, the store's rule, given),
    or after `max_passes` passes (at least `max_window` inferences)."""

    method = "circulating"

    def __init__(
        self, flash: ReplayFlash, cycle: int = 1, warmup: int = 1, segments: int = 3,
        min_erases: int = 0, hot_spots_move: bool = True,
        static_units: int | Callable[[], int] = 0, tolerance: float = 0.005,
        max_window: int = 16, max_passes: int = 128, min_runs: int = 2,
        stint_erases: int | None = None, max_pass: int | None = None, short_window: int = 16,
    ) -> None:
        super().__init__(flash, cycle)
        self.max_pass = MAX_PASS if max_pass is None else max_pass
        self.short_window = short_window
        self.short = False  # short-window mode (see _update)
        self.warmup = warmup
        self.segments = segments
        self.min_erases = min_erases
        self.hot_spots_move = hot_spots_move
        self.static_units = static_units
        self.tolerance = tolerance
        self.max_window = max(max_window, 2 * self.cycle)
        self.max_passes = max_passes
        self.min_runs = min_runs
        self.stint_erases = stint_erases
        self.snaps: list[np.ndarray] = []
        self._next_check = 0
        self._last_life: float | None = None
        self._settled = False  # warm-up over, window started

    def _restart(self) -> None:
        super()._restart()
        self.snaps = [self.flash.erase_counts.copy()]
        self._next_check = 0
        self._last_life = None

    def _circ(self) -> int:
        static = self.static_units() if callable(self.static_units) else self.static_units
        return max(1, self.flash.num_blocks - static)

    def _segment(self) -> int:
        """Shortest admissible segment length (inferences) given the rate seen so far."""
        erased = int((self.flash.erase_counts - self._e0).sum())
        if erased == 0 or self.window == 0:
            return self.cycle
        pass_len = self.flash.num_blocks * self.window / erased
        half = max(1, int(np.ceil(pass_len / 2)))
        return -(-half // self.cycle) * self.cycle

    def _update(self, stats: InferenceStats) -> bool:
        if not self._settled:
            erased = int(self.flash.erase_counts.sum())
            if self.n < self.warmup:
                return False
            # Short-window mode: when a pass of the allocator takes more than `max_pass`
            # inferences (a layer that erases little per inference on a big part), waiting for
            # three half-passes would take hundreds of inferences. The data share is then the
            # uniform one and the stints take the store's own rule (both needed: without the
            # rule, moving hot spots must be seen whole); the window only has to fix the rates.
            # Only where a stint is a small part of a block's life (at most 1/STINT_SHARE of
            # the endurance): there the stint process moves the projection by a few percent at
            # most, while on small, low-endurance devices (validation) it decides it.
            got = int((self.flash.erase_counts - self._e0).sum())
            pass_len = self._circ() * self.n / got if got else float("inf")
            stint = self.stint_erases or 0
            minor = 0 < stint * STINT_SHARE <= self.flash.endurance
            self.short = pass_len > self.max_pass and (minor or not self.hot_spots_move)
            if not self.short and self.hot_spots_move and erased < self.min_erases:
                return False
            self._settled = True
            self._restart()
            return False
        self.snaps.append(self.flash.erase_counts.copy())
        if self.short:
            return self._short_done()
        if not self._whole(max(2 * self.cycle, self.segments * self._segment())):
            return False
        erased = int((self.flash.erase_counts - self._e0).sum())
        if erased < self.min_erases:
            return False
        if not self.hot_spots_move:
            return True
        # Fixed counts (inferences, passes), so results do not depend on the machine's speed.
        if self.window >= max(self.max_window, self.max_passes * self.flash.num_blocks
                              * self.window / max(1, erased)):
            return True
        if self.window < self._next_check:
            return False
        self._next_check = int(self.window * 1.25) + 1
        hs = self._hot_spots()
        if hs is None:
            return False
        known = hs.runs >= self.min_runs or bool(self.stint_erases)
        if not known and hs.erases_per_inference > 0:
            return False  # hot runs, but too few whole stints to size them yet
        det, life = self._lives(hs)
        if det - life <= self.tolerance * det:
            return True  # the stints cannot matter
        prev, self._last_life = self._last_life, life
        return prev is not None and abs(life - prev) <= max(
            0.25 * (det - life), self.tolerance * life
        )

    def _short_done(self) -> bool:
        """Short-window mode: at least `short_window` inferences (whole trace cycles), the
        erase rates of the window's two halves within 2% of each other, and at least
        `SHORT_HOT` repeat erases of a unit (data reaches a unit at most once in a window
        shorter than a pass, so a repeat is a hot spot: its rate is what the stints need);
        or `SHORT_CAP` times `short_window` inferences."""
        if not self._whole(max(2 * self.cycle, self.short_window)):
            return False
        if self.window >= SHORT_CAP * self.short_window:
            return True
        half = self.window // 2
        if half % self.cycle:
            return False
        snaps = self.snaps
        a = float((snaps[half] - snaps[0]).sum())
        b = float((snaps[-1] - snaps[half]).sum())
        repeats = int(np.maximum(snaps[-1] - snaps[0] - 1, 0).sum())
        return a > 0 and abs(a - b) <= 0.02 * max(a, b) and repeats >= SHORT_HOT

    def _hot_spots(self) -> HotSpots | None:
        if len(self.snaps) < 4:
            return None
        return measure_hot_spots(
            np.asarray(self.snaps), self._circ(), self.stint_erases, self.min_runs,
            uniform_data=self.short,
        )

    def _uniform(self) -> tuple[np.ndarray, float]:
        n = max(1, self.window)
        r = float((self.flash.erase_counts - self._e0).sum()) / n
        return np.full(self.flash.num_blocks, r / self._circ()), r

    def _lives(self, hs: HotSpots) -> tuple[float, float]:
        """Projected first wear-out without and with the stints (inferences from format)."""
        counts = self.flash.wear_counts.astype(np.float64)
        rates, _ = self._uniform()
        e = self.flash.endurance
        det = rated_life(counts, rates, e, self.n)
        top = np.sort(counts + hs.committed)[-hs.stints.units:]
        return det, min(det, stint_life(top, e, self.n, hs.stints))

    def result(self) -> Steady:
        n = max(1, self.window)
        delta = (self.flash.erase_counts - self._e0).astype(np.float64)
        rates, r = self._uniform()
        circ = self._circ()
        units = self.flash.num_blocks
        hot = np.zeros(units, dtype=bool)
        notes: dict[str, Any] = {"circulating_units": circ}
        if self.short:
            notes["window_mode"] = "short (a pass is longer than the window: uniform data share)"
        if not self.hot_spots_move:
            expect = r / circ * n
            hot = (delta >= 3) & (delta >= 4 * (expect + 1))
            if hot.any():
                hot_rate = delta[hot] / n
                rest = max(0.0, r - float(hot_rate.sum()))
                rates[:] = rest / max(1, circ - int(hot.sum()))
                rates[hot] = hot_rate
            notes["hot_units"] = int(hot.sum())
        else:
            hs = self._hot_spots()
            if hs is None:
                notes["stints"] = "none seen whole: no spread"
            else:
                _, life = self._lives(hs)
                counts = self.flash.wear_counts.astype(np.float64)
                notes["spread"] = equivalent_spread(
                    counts, rates, self.flash.endurance, self.n, life
                )
                st = hs.stints
                notes |= {
                    "hot_erases_per_inference": hs.erases_per_inference,
                    "stint_erases": hs.stint_erases,
                    "stint_excess": st.excess,
                    "stint_inferences": st.duration,
                    "stints_per_inference": st.rate,
                    "stints_seen": hs.runs,
                    "data_rate": st.data_rate,
                }
        return self._steady(rates, r, **notes)


class PassesEstimator(Estimator):
    """Brute force: measured per-unit rates over `passes` whole passes after one warm-up pass.

    A pass is complete when the window has consumed (erased and reprogrammed) as many units as
    the device has good units, i.e. on average every unit was reused once."""

    method = "passes"

    def __init__(
        self, flash: ReplayFlash, cycle: int = 1, passes: int = 2, bad_units: int = 0
    ) -> None:
        super().__init__(flash, cycle)
        self.passes = passes
        self.units = flash.num_blocks - bad_units
        self.warm = False

    def _update(self, stats: InferenceStats) -> bool:
        used = int((self.flash.consumed - self._c0).sum())
        if not self.warm:
            if used >= self.units and self.n % self.cycle == 0:
                self.warm = True
                self._restart()
            return False
        return used >= self.passes * self.units and self.n % self.cycle == 0

    def result(self) -> Steady:
        n = max(1, self.window)
        rates = (self.flash.erase_counts - self._e0).astype(np.float64) / n
        return self._steady(rates, float(rates.sum()), passes=self.passes)


class QuietEstimator(Estimator):
    """Traces that swap nothing out: no wear at all; one trace cycle after a warm-up cycle
    measures the reads. The warm-up takes what happens once after format (a store's first
    idle pre-erases every segment: 256 erases, 2.4 s, on a 16 MiB NOR part), which is no
    cost of an inference."""

    method = "no writes"

    def _update(self, stats: InferenceStats) -> bool:
        if self.n == self.cycle:
            self._restart()
            return False
        return self.n > self.cycle and self._whole(self.cycle)

    def result(self) -> Steady:
        return self._steady(np.zeros(self.flash.num_blocks), 0.0)


class HostEstimator(Estimator):
    """Managed devices: only the host's bytes written per inference matter (the card's FTL
    spreads them); measured over whole trace cycles after a warm-up."""

    method = "host"

    def __init__(self, flash: ReplayFlash, cycle: int = 1, warmup: int = 1, min_window: int = 2):
        super().__init__(flash, cycle)
        self.warmup = warmup
        self.min_window = min_window

    def _update(self, stats: InferenceStats) -> bool:
        if self.n == self.warmup:
            self._restart()
            return False
        return self.n > self.warmup and self._whole(self.min_window)

    def result(self) -> Steady:
        return self._steady(None, 0.0)
