"""Adversarial review of issue 16 on store revision 2.2 (SYNC records, recovery holds).

The five classes of issue 16, each on both engines and on NOR (W25Q128JV, 64 KiB segments),
SPI NAND (W25N01GV), raw MLC NAND (FNNL41A-8Gb) and MCU internal flash (STM32L476, nRF5340):
the wedge with program failures and remounts, the revival on every part, a program failure
then a power cut at every operation after it, one flipped byte at every position of the log
ends, headers and checkpoints (then later writes and a remount), and the two engines compared
byte for byte on flash. The strict oracle is tests/storeutil.Oracle's.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from flashswap import FlashSim, PowerCut, Store
from flashswap.errors import CorruptError, NoSpaceError
from flashswap.store.layout import NO_KEY
from tests.geometries import pick
from tests.storeutil import (
    ENGINES,
    Oracle,
    check_only_new_store,
    image_copy,
    key_outcome,
    needs_c,
    oracle_workload,
    read_all,
)

# name -> (part, capacity, format options, largest chunk of the churn); the geometries are
# tests/geometries.py's, under this module's short names
_CHURN = {"nor64k": ("nor64k-w25q", 40_000), "nand": ("nand", 20_000), "mlc": ("mlc", 40_000),
          "stm": ("stm", 900), "nrf": ("nrf", 1500)}
GEOS: dict[str, tuple[str, int, dict[str, int], int]] = {
    name: (*pick(geo)[geo], maxsz) for name, (geo, maxsz) in _CHURN.items()}


def _flash(geo: str, **kw: Any) -> FlashSim:
    part, cap, _, _ = GEOS[geo]
    return FlashSim.from_part(part, capacity=cap, **kw)


def _format(flash: FlashSim, geo: str, engine: str, **over: int) -> Store:
    return Store.format(flash, engine=engine, **{**GEOS[geo][2], **over})


# ------------------------------------------------------------------ (1) the wedge


def _wedge(geo: str, engine: str, seed: int, steps: int, fail_p: float = 0.0,
           remount_p: float = 0.0, cut_p: float = 0.0, max_fails: int = 2, **over: int
           ) -> tuple[bytes, list[Any]]:
    """Churn of chunks of 1 B .. 2 segments over 40 keys near full; a refused put trims a
    live key, which must never be refused. At most max_fails program failures armed at
    random, unmounts and cuts after a sync. At the end trim_range(everything) works and a
    1-byte put fits.
    Returns the final image and the sequence of outcomes (to compare the engines)."""
    flash = _flash(geo, seed=seed)
    st = _format(flash, geo, engine, **over)
    top = min(2 * st.stat()["segment_size"], st.stat()["max_chunk"])
    rng = random.Random(seed)
    live: dict[int, bytes] = {}
    log: list[Any] = []
    fails = 0
    for i in range(steps):
        r = rng.random()
        if r < fail_p and flash._fail is None and fails < max_fails:
            fails += 1  # a few grown bad blocks: the device is far from worn out
            flash.fail_after(rng.randrange(1, 40))
        r = rng.random()
        if r < remount_p:
            st.unmount()
            st = Store.mount(flash, engine=engine)
        elif r < remount_p + cut_p:
            st.sync()
            flash = flash.copy()
            st = Store.mount(flash, engine=engine)
        k = rng.randrange(40)
        n = rng.choice([rng.randint(1, 64), rng.randint(1, top)])
        data = bytes([i & 255, k]) * (n // 2 + 1)
        try:
            st.put(k, data[:n])
            live[k] = data[:n]
            log.append(("put", k))
        except NoSpaceError:
            log.append(("refused", k))
            assert read_all(st, {k}) == {k: live.get(k)}, f"step {i}: refused put changed"
            assert live, f"step {i}: a {n}-byte put refused on an empty store (the wedge)"
            victim = rng.choice(sorted(live))
            assert st.trim(victim) is True, f"step {i}"
            del live[victim]
    flash.fail_after(None)
    assert read_all(st, set(live)) == live
    assert st.trim_range(0, NO_KEY - 1) == len(live)
    st.put(5, b"y")
    st.unmount()
    st = Store.mount(flash, engine=engine)
    assert st.keys() == [5] and st.get(5) == b"y"
    return flash.image(), log


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, seed", [("nor64k", 1), ("nand", 2), ("stm", 3)])
def test_wedge_with_failures_and_remounts(engine: str, geo: str, seed: int) -> None:
    _wedge(geo, engine, seed, 120, fail_p=0.04, remount_p=0.03, cut_p=0.03)


@needs_c
@pytest.mark.parametrize("geo", ["nor64k", "nrf"])
def test_wedge_same_image_in_both_engines(geo: str) -> None:
    a = _wedge(geo, "python", 11, 100, fail_p=0.05, remount_p=0.05)
    b = _wedge(geo, "c", 11, 100, fail_p=0.05, remount_p=0.05)
    assert a[1] == b[1] and a[0] == b[0]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", sorted(GEOS))
def test_wedge_many_seeds(engine: str, geo: str) -> None:
    for seed in range(6):
        _wedge(geo, engine, 100 + seed, 300)
        _wedge(geo, engine, 200 + seed, 300, fail_p=0.05, remount_p=0.03, cut_p=0.03)


# ------------------------------------------------------------------ (2) the revival


def _revival(geo: str, engine: str, bad: list[int], seed: int, unmount: bool) -> None:
    """An old store formatted twice with data, then the blocks `bad` can be neither erased nor
    programmed; a format: no old key is ever visible, the new store works."""
    flash = _flash(geo, wear="error", weibull=(2.0, 1e9), seed=seed)
    rng = random.Random(seed)
    for f in range(2):
        old = _format(flash, geo, engine)
        for i in range(20):
            old.put(rng.randrange(30), bytes([f, i]) * rng.randint(1, 300))
        old.unmount()
    for b in bad:
        flash.block_endurance[b] = flash.wear_counts[b]
    new = _format(flash, geo, engine)
    want = {30 + i: bytes([99, i]) * (1 + 37 * i) for i in range(5)}
    check_only_new_store(new, flash, engine, want, rng, unmount, rounds=30, top=200)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, bad", [("mlc", [0, 3]), ("stm", [0, 1]), ("nrf", [0, 5]),
                                      ("nor64k", [0, 16])])
def test_revival_on_every_part(engine: str, geo: str, bad: list[int]) -> None:
    _revival(geo, engine, bad, 0, unmount=False)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", sorted(GEOS))
def test_revival_matrix(engine: str, geo: str) -> None:
    nb = GEOS[geo][1] // _flash(geo).erase_size
    for seed in range(4):
        rng = random.Random(seed)
        for bad in ([0], [0, 1], rng.sample(range(nb), 2), [nb - 1], list(range(3))):
            for unmount in (True, False):
                _revival(geo, engine, bad, seed, unmount)


# ------------------------------------------------------------------ (3) failure, then a cut


def _fail_cut(geo: str, engine: str, seed: int, fail_at: int, cut: int | None,
              nops: int = 30) -> tuple[int, bytes]:
    """A synced store, then `nops` operations with a program failure armed at fail_at and a
    power cut at `cut`: the mount after the cut satisfies the strict oracle and takes a write.
    Returns the operations the run took (no cut) and the final image."""
    maxsz = GEOS[geo][3]
    flash = _flash(geo, seed=seed)
    st = _format(flash, geo, engine)
    o = Oracle()
    oracle_workload(st, o, random.Random(seed), 30, maxsz)
    st.sync()
    o.sync()
    st = Store.mount(flash, engine=engine)
    start = flash.ops_count
    flash.fail_after(fail_at)
    flash.power_cut_after(cut)
    try:
        oracle_workload(st, o, random.Random(seed * 31 + 7), nops, maxsz)
        st.sync()
        o.sync()
    except PowerCut:
        pass
    took = flash.ops_count - start
    flash.power_cut_after(None)
    flash.fail_after(None)
    st = Store.mount(flash, engine=engine)
    o.check_after_cut(read_all(st, o.keys() | set(range(10))))
    st.put(3, b"after")
    st.sync()
    assert Store.mount(flash.copy(), engine=engine).get(3) == b"after"
    return took, flash.image()


def _fail_cut_sweep(geo: str, engine: str, seed: int, fail_at: int, spread: int | None) -> int:
    """Cuts at every operation from the failure on (spread None), or at the 8 operations of
    the recovery that follows it and `spread` more spread over the rest of the run."""
    total, _ = _fail_cut(geo, engine, seed, fail_at, None)
    cuts = list(range(fail_at, total + 1))
    if spread is not None:
        cuts = cuts[:8] + cuts[8::max(1, len(cuts) // spread)]
    n = 0
    for cut in cuts:
        _fail_cut(geo, engine, seed, fail_at, cut)
        n += 1
    return n


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, fail_at", [("nor64k", 3), ("nand", 2), ("mlc", 4), ("stm", 9)])
def test_failure_then_cut_at_strided_points(engine: str, geo: str, fail_at: int) -> None:
    assert _fail_cut_sweep(geo, engine, 7, fail_at, 6) > 10


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", sorted(GEOS))
def test_failure_then_cut_at_every_point(engine: str, geo: str) -> None:
    for seed in (1, 2):
        for fail_at in (0, 3, 11):
            _fail_cut_sweep(geo, engine, seed, fail_at, None)


@needs_c
@pytest.mark.parametrize("geo", ["nand", "nrf"])
def test_failure_then_cut_same_image_in_both_engines(geo: str) -> None:
    for cut in (None, 6, 14):
        assert _fail_cut(geo, "python", 5, 4, cut) == _fail_cut(geo, "c", 5, 4, cut)


# ------------------------------------------------------------------ (4) one flipped byte

_KEYS = 12


def _synced_image(geo: str, seed: int, nops: int) -> tuple[FlashSim, dict[int, bytes]]:
    flash = _flash(geo, seed=seed)
    st = _format(flash, geo, "python")
    o = Oracle()
    oracle_workload(st, o, random.Random(seed), nops, GEOS[geo][3] // 4, keys=_KEYS)
    st.sync()
    o.sync()
    return flash, dict(o.synced)


def _targets(img: bytes, seg: int, rng: random.Random, tail: int) -> list[int]:
    """Positions to damage: each used segment's header, its first record (a checkpoint in a
    checkpoint segment) and the last `tail` programmed bytes (the last records, the SYNC)."""
    out: set[int] = set()
    for s in range(len(img) // seg):
        body = img[s * seg:(s + 1) * seg]
        if body[:40] == b"\xff" * 40:
            continue
        out.update(s * seg + p for p in rng.sample(range(40), 6))
        out.update(s * seg + 40 + p for p in range(0, 64, 3))
        last = len(body.rstrip(b"\xff"))
        out.update(s * seg + p for p in range(max(40, last - tail), last))
    return sorted(out)


def _judge(where: str, res: Any, want: dict[int, bytes]) -> None:
    if res == "corrupt":
        return
    for k, (kind, got) in enumerate(res):
        if kind == "corrupt" or got == want.get(k):
            continue
        raise AssertionError(f"{where}: key {k} read {kind} {None if got is None else len(got)}"
                             f" instead of {None if want.get(k) is None else len(want[k])}")


def _after_damage(flash: FlashSim, img: bytes, engine: str, want: dict[int, bytes]) -> Any:
    """Mount the damaged image, read every key, then write other keys, trim one, sync,
    remount and read again: (outcomes, outcomes after, final image)."""
    try:
        st = Store.mount(image_copy(flash, img), engine=engine)
    except CorruptError:
        return "corrupt", "corrupt", b""
    first = [key_outcome(st, k) for k in range(_KEYS)]
    f = st.flash
    for i in range(4):
        st.put(_KEYS + 1 + i % 2, bytes([i]) * (50 + 300 * i))
    st.trim(_KEYS + 1)
    st.sync()
    st = Store.mount(f.copy(), engine=engine)
    then = [key_outcome(st, k) for k in range(_KEYS)]
    # A damaged store reads a key absent from its index as corrupt (SPEC.md §9), trimmed too.
    assert key_outcome(st, _KEYS + 1) in (("absent", None), ("corrupt", None))
    assert key_outcome(st, _KEYS + 2) in (("value", bytes([3]) * 950), ("corrupt", None))
    return first, then, f.image()


def _flip_sweep(geo: str, seed: int, engines: list[str], tail: int, limit: int | None) -> int:
    flash, want = _synced_image(geo, seed, 40)
    base = flash.image()
    seg = Store.mount(flash.copy()).stat()["segment_size"]
    rng = random.Random(seed)
    pos = _targets(base, seg, rng, tail)
    if limit is not None:
        pos = sorted(rng.sample(pos, min(limit, len(pos))))
    for p in pos:
        img = bytearray(base)
        img[p] ^= rng.randrange(1, 256)
        res = [_after_damage(flash, bytes(img), e, want) for e in engines]
        where = f"{geo} seed {seed} byte {p:#x} (segment {p // seg} +{p % seg})"
        assert all(r == res[0] for r in res), f"{where}: engines differ"
        _judge(where, res[0][0], want)
        _judge(where + " after writes", res[0][1], want)
    return len(pos)


_ENGINE_SETS = ["python", pytest.param("python,c", marks=needs_c)]


@pytest.mark.parametrize("engines", _ENGINE_SETS)
@pytest.mark.parametrize("geo", sorted(GEOS))
def test_one_flipped_byte_reads_corrupt_never_stale(engines: str, geo: str) -> None:
    assert _flip_sweep(geo, 3, engines.split(","), 70, 12) > 10


@pytest.mark.slow
@needs_c
@pytest.mark.parametrize("geo", sorted(GEOS))
def test_one_flipped_byte_at_every_targeted_position(geo: str) -> None:
    for seed in range(4):
        _flip_sweep(geo, 20 + seed, ["python", "c"], 140, None)


# ------------------------------------------------------------------ the re-check's wedge (issue 16)

def _nand_churn_after_one_failure(engine: str, seed: int = 210) -> str | None:
    """The review's wedge reproduction: W25N01GV cut to 8 x 128 KiB blocks, ckpt_interval 2,
    churn over 40 keys of 1 B .. 2 segments, a refused put trims a live key; one program
    failure, unmounts and cuts after a sync at 3% each. Returns the refused trim (or None)."""
    flash = _flash("nand", seed=seed)
    st = _format(flash, "nand", engine)
    top = min(2 * st.stat()["segment_size"], st.stat()["max_chunk"])
    rng = random.Random(seed)
    live: dict[int, bytes] = {}
    fails = 0
    for i in range(300):
        if rng.random() < 0.05 and flash._fail is None and fails < 1:
            fails += 1
            flash.fail_after(rng.randrange(1, 40))
        r = rng.random()
        if r < 0.03:
            st.unmount()
            st = Store.mount(flash, engine=engine)
        elif r < 0.06:
            st.sync()
            flash = flash.copy()
            st = Store.mount(flash, engine=engine)
        k = rng.randrange(40)
        n = rng.choice([rng.randint(1, 64), rng.randint(1, top)])
        data = (bytes([i & 255, k]) * (n // 2 + 1))[:n]
        try:
            st.put(k, data)
            live[k] = data
        except NoSpaceError:
            victim = rng.choice(sorted(live))
            try:
                st.trim(victim)
            except NoSpaceError as e:
                return f"step {i}: trim({victim}) refused: {e}"
            del live[victim]
    return None


@pytest.mark.parametrize("engine", ENGINES)
def test_no_trim_refused_after_one_program_failure_on_nand(engine: str) -> None:
    """The review's seed, and seed 28, which wedged with the first half of the fix alone (an
    open that finds no segment keeps the heads): puts went on filling the hot head's room
    while fewer than `reserve` segments were free (SPEC §10 "Lean")."""
    assert _nand_churn_after_one_failure(engine) is None
    assert _nand_churn_after_one_failure(engine, seed=28) is None


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_no_trim_refused_after_one_program_failure_on_nand_many_seeds(engine: str) -> None:
    for seed in range(60):
        assert _nand_churn_after_one_failure(engine, seed=seed) is None, seed


@pytest.mark.parametrize("engine", ENGINES)
def test_open_gc_move_then_failed_recovery_keeps_the_old_copy(engine: str) -> None:
    """W25N01GV 8 blocks, three program failures with cuts: a GC move of chunk 0 opens a
    segment after a forgotten grown bad block fails its erase, the next program there fails,
    and the recovery finds no segment (another forgotten bad block). The store then becomes
    what a mount finds (§12 step 3): chunk 0 reads from its old copy, intact on flash, not from
    the new one whose bytes never reached flash (a CorruptError before)."""
    _wedge("nand", engine, 1003, 30, fail_p=0.08, remount_p=0.05, cut_p=0.05, max_fails=3,
           reserve=3)
