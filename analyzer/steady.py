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
- circulating (littlefs): blocks are allocated by a cyclic scan, so data blocks take equal
  shares in the long run; metadata pairs are hot spots that move every `block_cycles` erases,
  which spreads the counts at random (measured as a variance growing with time, `spread`) or,
  with block_cycles = -1, never move: such persistent hot units keep their measured rate, the
  others share the rest of R.
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
from analyzer.projection import extreme_z
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


class CirculatingEstimator(Estimator):
    """Equal shares over circulating units, a random spread for moving hot spots, and
    measured rates for persistent hot units (see module doc).

    Moving hot spots (littlefs metadata pairs relocated every block_cycles erases) make a
    unit's count a random sum: the dispersion of counts over units grows in proportion to
    time. Its growth rate (`spread`, variance per inference, see _spread) lets projection model
    a unit's count as normal with mean c_b + r_b t and variance spread * t. The window lasts at
    least `segments` half-passes and until the spread is negligible or stable."""

    method = "circulating"

    def __init__(
        self, flash: ReplayFlash, cycle: int = 1, warmup: int = 1, segments: int = 3,
        min_erases: int = 0, hot_spots_move: bool = True,
        static_units: int | Callable[[], int] = 0, tolerance: float = 0.005,
        max_window: int = 16, max_passes: int = 16,
    ) -> None:
        super().__init__(flash, cycle)
        self.warmup = warmup
        self.segments = segments
        self.min_erases = min_erases
        self.hot_spots_move = hot_spots_move
        self.static_units = static_units
        self.tolerance = tolerance
        self.max_window = max(max_window, 2 * self.cycle)
        self.max_passes = max_passes
        self.snaps: list[np.ndarray] = []
        self._next_check = 0
        self._last_var: float | None = None

    def _restart(self) -> None:
        super()._restart()
        self.snaps = [self.flash.erase_counts.copy()]

    def _segment(self) -> int:
        """Shortest admissible segment length (inferences) given the rate seen so far."""
        erased = int((self.flash.erase_counts - self._e0).sum())
        if erased == 0 or self.window == 0:
            return self.cycle
        pass_len = self.flash.num_blocks * self.window / erased
        half = max(1, int(np.ceil(pass_len / 2)))
        return -(-half // self.cycle) * self.cycle

    def _update(self, stats: InferenceStats) -> bool:
        if self.n == self.warmup:
            self._restart()
            return False
        if self.n < self.warmup:
            return False
        self.snaps.append(self.flash.erase_counts.copy())
        if not self._whole(max(2 * self.cycle, self.segments * self._segment())):
            return False
        if int((self.flash.erase_counts - self._e0).sum()) < self.min_erases:
            return False
        if not self.hot_spots_move:
            return True
        # The spread is a slope; stop once it is negligible or stable between two checks, or
        # after max_passes passes (at least max_window inferences): fixed counts, so results do
        # not depend on the machine's speed.
        erased = int((self.flash.erase_counts - self._e0).sum())
        if self.window >= max(self.max_window, self.max_passes * self.flash.num_blocks
                              * self.window / max(1, erased)):
            return True
        if self.window < self._next_check:
            return False
        self._next_check = int(self.window * 1.25) + 1
        var = self._spread()
        prev, self._last_var = self._last_var, var
        if self._negligible(4 * var):
            return True
        return prev is not None and abs(var - prev) <= 0.25 * max(var, prev)

    def _negligible(self, var: float) -> bool:
        """True if a spread of `var` per inference would move the projected wear-out by less
        than `tolerance` (so measuring it better cannot matter)."""
        r = float((self.flash.erase_counts - self._e0).sum()) / max(1, self.window)
        if r <= 0:
            return False
        life = self.flash.endurance * self.flash.num_blocks / r  # inferences, uniform wear
        excess = extreme_z(self.flash.num_blocks) * np.sqrt(var * life)
        return excess <= self.tolerance * self.flash.endurance

    def _dispersion(self, length: int) -> float:
        """Variance over units of their erases in `length` inferences, averaged over the
        window's non-overlapping stretches of that length."""
        snaps = self.snaps
        vs = [
            float(np.var(snaps[i + length] - snaps[i]))
            for i in range(0, len(snaps) - length, length)
        ]
        return float(np.mean(vs)) if vs else 0.0

    def _spread(self) -> float:
        """Growth rate of the dispersion: (D(W/2) - D(W/4)) / (W/4), W the window. Pass-phase
        noise (a unit erased 0 or 2 times in a stretch) does not grow with the length and
        cancels; hot spots landing at random add variance in proportion to time."""
        w = self.window
        a, b = max(1, w // 4), max(2, w // 2)
        if b <= a:
            return 0.0
        return max(0.0, (self._dispersion(b) - self._dispersion(a)) / (b - a))

    def result(self) -> Steady:
        n = max(1, self.window)
        delta = (self.flash.erase_counts - self._e0).astype(np.float64)
        r = float(delta.sum()) / n
        units = self.flash.num_blocks
        static = self.static_units() if callable(self.static_units) else self.static_units
        circ = max(1, units - static)
        rates = np.full(units, r / circ)
        hot = np.zeros(units, dtype=bool)
        notes: dict[str, Any] = {"circulating_units": circ}
        if not self.hot_spots_move:
            expect = r / circ * n
            hot = (delta >= 3) & (delta >= 4 * (expect + 1))
            if hot.any():
                hot_rate = delta[hot] / n
                rest = max(0.0, r - float(hot_rate.sum()))
                rates[:] = rest / max(1, circ - int(hot.sum()))
                rates[hot] = hot_rate
            notes["hot_units"] = int(hot.sum())
        elif len(self.snaps) > 4:
            notes["spread"] = self._spread()
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
    """Traces that swap nothing out: no wear at all; one inference measures the reads."""

    method = "no writes"

    def _update(self, stats: InferenceStats) -> bool:
        return True

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
