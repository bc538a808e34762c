"""Ground truth for the projections: replay a small device until it actually wears out.

`to_failure` replays with the simulator's wear-out on (wear="error") and reports the inference
during which the first block refused an operation, and the inference during which the store
itself gave up (it could not place the working set any more, or hit a device error it could
not work around). `check` runs the projection on the same geometry and compares.
`first_failures` gets the first wear-out for several endurances from one replay: until a
block wears out, a replay with wear-out on is the same as one without it, and the first
failure at endurance E is the inference whose erases take some block past E.

`remount_every` (littlefs) unmounts and mounts the file system every so many inferences, as a
device does at boot: littlefs then starts its allocator at a pseudo-random block. Without it,
the replay is deterministic and littlefs's metadata relocations follow the allocator's cyclic
path, which can settle on a subset of blocks (analyzer/README.md, validation);
`premise_life` projects the littlefs stint model on its own premise, for such replays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from analyzer.device import ReplayFlash
from analyzer.lifetime import Options, analyze, free_key, make_engine, make_estimator
from analyzer.projection import stint_life
from analyzer.rates import SECONDS_PER_YEAR
from analyzer.replay import Replayer
from analyzer.steady import CirculatingEstimator, measure_hot_spots
from analyzer.workload import Workload
from flashswap.errors import FlashswapError
from flashswap.parts import get_part

# Remount periods for draws of random placement: each restarts the allocator at other blocks.
# Nine, because one draw spreads by 10-50% at 300 cycles: with three, the median could not
# tell a 2% error from a 7% one (analyzer/README.md, validation).
REMOUNT_PERIODS = (13, 17, 20, 23, 27, 31, 37, 41, 47)


@dataclass(frozen=True)
class Failure:
    first_failure: int | None  # inference during which a block first wore out
    store_death: int | None  # inference during which the store stopped working
    reason: str
    inferences: int


def to_failure(
    wl: Workload,
    part: str,
    store: str,
    capacity: int,
    endurance: int,
    opt: Options | None = None,
    until: str = "first",
    max_inferences: int = 1_000_000,
    weibull: tuple[float, float] | None = None,
    seed: int = 0,
    remount_every: int | None = None,
) -> Failure:
    """Replay until the first worn block (until="first") or the store's death ("death")."""
    opt = opt or Options()
    f = ReplayFlash(
        get_part(part), capacity, wear="error", endurance=endurance, weibull=weibull, seed=seed
    )
    engine = make_engine(store, f, wl, opt)
    engine.burn_in(free_key(wl))
    rep = Replayer(engine, wl)
    reason = "limit"
    death = None
    n = 0
    while n < max_inferences:
        try:
            rep.step()
            n += 1
            _maybe_remount(engine, n, remount_every)
        except FlashswapError as e:  # the engine could not carry on
            death, reason = n, str(e)
            break
        if until == "first" and f.first_failure is not None:
            reason = f.first_failure
            break
    return Failure(f.first_failure_at, death, reason, n)


def _maybe_remount(engine: object, n: int, every: int | None) -> None:
    if every and n % every == 0:
        remount = getattr(engine, "remount", None)
        if remount is None:
            raise ValueError(f"{type(engine).__name__} cannot remount")
        remount()


def first_failures(
    wl: Workload,
    part: str,
    store: str,
    capacity: int,
    endurances: Sequence[int],
    opt: Options | None = None,
    max_inferences: int = 1_000_000,
    remount_every: int | None = None,
) -> dict[int, int | None]:
    """The inference of the first wear-out for each endurance (None: not within
    max_inferences), from one replay without wear-out (module doc)."""
    opt = opt or Options()
    f = ReplayFlash(get_part(part), capacity)
    engine = make_engine(store, f, wl, opt)
    engine.burn_in(free_key(wl))
    rep = Replayer(engine, wl)
    todo = sorted(set(endurances))
    out: dict[int, int | None] = dict.fromkeys(todo)
    n = 0
    while todo and n < max_inferences:
        rep.step()
        top = int(np.max(f.erase_counts))
        while todo and top > todo[0]:
            out[todo.pop(0)] = n
        n += 1
        _maybe_remount(engine, n, remount_every)
    return out


@dataclass(frozen=True)
class Check:
    projected: float  # inferences
    actual: int
    error: float  # projected / actual - 1


def check(
    wl: Workload, part: str, store: str, capacity: int, endurance: int, opt: Options | None = None,
    remount_every: int | None = None,
) -> Check:
    """Projected inferences to the first worn block vs a replay to that failure."""
    opt = opt or Options()
    proj = analyze(
        wl, part, store,
        Options(**{**opt.__dict__, "capacity": capacity, "endurance": endurance,
                   "rate_per_s": 1.0}),
    )
    projected = proj.data["years"] * SECONDS_PER_YEAR
    got = to_failure(wl, part, store, capacity, endurance, opt, remount_every=remount_every)
    actual = got.first_failure if got.first_failure is not None else got.inferences
    return Check(projected, actual, projected / actual - 1)


def premise_life(
    wl: Workload, part: str, capacity: int, endurance: int, opt: Options | None = None
) -> tuple[float, int]:
    """The littlefs stint model on its own premise, random placement, for comparison with
    replays that remount (returns the projected first wear-out and the inferences replayed).

    The stints are measured as `analyze` measures them (their length, rate and excess do
    not depend on where the allocator is), but blocks between stints wear at the data share
    averaged over the circulating blocks, as remounts make it: without them littlefs's
    lookahead skips some blocks structurally and the typical block wears faster, which the
    estimator measures and remounts undo. The replay measured does not remount: a remount
    every few inferences breaks the regular data passes that tell hot runs from data."""
    opt = Options(**{**(opt or Options()).__dict__, "capacity": capacity,
                     "endurance": endurance})
    f = ReplayFlash(get_part(part), capacity, endurance=endurance)
    engine = make_engine("littlefs-chunk", f, wl, opt)
    engine.burn_in(free_key(wl))
    est = make_estimator(engine, wl, opt)
    if not isinstance(est, CirculatingEstimator):
        raise ValueError("premise_life is for littlefs's circulating estimator")
    rep = Replayer(engine, wl)
    while not est.observe(rep.step()):
        pass
    snaps = np.asarray(est.snaps)
    circ = f.num_blocks - engine.static_units()
    hs = measure_hot_spots(snaps, circ, est.stint_erases, est.min_runs)
    if hs is None:
        raise ValueError("no window measured")
    st = hs.stints
    w = snaps.shape[0] - 1
    mean = (float((snaps[-1] - snaps[0]).sum()) / w - hs.erases_per_inference) / max(
        1.0, circ - st.rate * st.duration
    )
    st = replace(st, data_rate=mean, excess=st.excess + (st.data_rate - mean) * st.duration)
    top = np.sort(f.wear_counts + hs.committed)[-circ:]
    return stint_life(top, endurance, est.n, st), est.n
