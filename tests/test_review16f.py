"""Independent review of store revision 2.6 (issue 16: max_chunk bounded by the reserve, a
default reserve of at least 4 where the device leaves a segment beyond it, the C put's payload
in the context, fsw_get leaving a lost entry to fsw_read, a trim checking `mounted` first).

After this review (the lead, not the reviewer): the model's chunk read refuses a record above
max_chunk as the C library does, so the engines agree on a 2.5 chunk above the limit (that
finding's test asserts it now); SPEC's revision note says what a 2.5 image with such a record
in the replay window does (the store mounts damaged: that behaviour stands, its strict xfail
stays); SPEC §10 names the default format that keeps reserve 3 (a large ckpt_interval) and its
wedge (strict xfail, as found).

What was attacked, and how (the Python model unless named; every run under the strict oracle
of tests/storeutil.Oracle, which held in every run below: no synced chunk lost or read older,
no CorruptError without a failed block):
(a, b) The wedge and failure + power cut. `_fc_sweep` (test_recovery_chunks's
  `_fail_and_cut_sweep`, made to take encrypted stores and other churns): at 3 puts made with
  F <= reserve of a 300-op churn near full, a program failure armed at each of 6 operations
  together with a power cut at each of 30 (deep copies of the state), then a mount and, with
  one grown bad block at most, every key trimmed, a 1-byte put and 40 puts (`_drain`). Two
  churns: test_recovery_chunks._churn (200 keys, mostly small chunks, 5% max_chunk) and
  `_big_churn` (24 keys or 3/5 of the segments, 35% max_chunk, 30% half a segment to
  max_chunk). Geometries of the brief at the default format (reserve 4 on 64 KiB NOR, SPI
  NAND and MLC; 5 on 4 KiB nRF5340 and 2 KiB STM32), ckpt_interval 1 (default on 16
  segments), 2, 4 and 8, and the ckpt_intervals at which revision 2.6 keeps reserve 3.
  Runs (failure x cut trials) with the small churn: nor64k32 (2 MiB W25Q128JV, 32 x 64 KiB)
  8 churns 1,520; nor64k64 (4 MiB) 8 / 152 (this churn rarely fills 64 segments: see the big
  one); nand32 (W25N01GV 32 blocks) 8 / 1,359; mlc16 (FNNL41A-8Gb 16 blocks) 8 / 1,106;
  nrf32 8 / 4,320; stm32 8 / 4,246; encrypted (key bytes(range(16))) nor64k16 10 / 2,105,
  nand16 10 / 1,260, nrf16 10 / 5,226; nor64k16-ci8 (reserve 4) 12 / 2,558; nand16-ci9
  (reserve 3) 40 / 7,041; nor64k32-ci25 (reserve 3) 30 / 2,788; reserve 4 with one segment
  to spare: nor64k32-ci24 6 / 1,168, nand16-ci8 6 / 1,140. With the big churn:
  nor64k16 6 / 816, nand16 6 / 552, nrf16 6 / 2,196, nor64k16 with wl_threshold 1 6 / 816,
  nor64k16 encrypted 6 / 904, mlc16 6 / 726, mlc32 8 / 1,304, nor64k32 8 / 1,236,
  nor64k16-ci8 8 / 2,503, nand16 encrypted 8 / 821, nor64k64 6 / 1,489, nand64 6 / 1,094,
  nor64k32-ci24 6 / 2,668, nand16-ci8 6 / 1,985.
  The same armed at trims, syncs and idle steps made with F <= reserve (4 positions), both
  churns, 6 churns each: nor64k16 756 + 986, nand16 685 + 811, nrf16 3,276 + 3,450,
  nor64k16-ci9 999 + 710, nor64k16 encrypted 772 + 940, nand32 721 + 708.
  `_drain_cut_sweep`: after a failure and a cut that left one grown bad block, a second power
  cut at each of 40 operations of the trims that reopen the block the mount counted free
  (6 churns each, both churns): nor64k16 2,457 + 5,932, nand16 866 + 1,212, nrf16 50,400 +
  67,200, nor64k16 encrypted 3,747 + 9,219.
  One failure (test_recovery_chunks._failure_sweep: 4 positions x 24 offsets, remount,
  drain): nor64k16-ci9, nor64k16-ci8, nor64k32, nand32, mlc16, nrf32, 6 churns each (576
  runs each).
(c) Engines: 12 failure + cut scripts each (random offsets at a random put of the small churn,
  then 29 more ops and `_drain`) on nor64k16-ci9, nor64k32, nand32, mlc16, nrf32, stm32: the
  same outcomes and images; `_trial` scripts (3 each of seeds 1..4, both churns) on nor64k16,
  nand16, nrf16 encrypted, nor64k16-ci9, mlc32: 60, the same; the fast test below runs 16
  more. The first finding's script: the same image and refusal in both.
(d) max_chunk on 8 geometries (reserve 2, 3, 4, 5; encrypted) in both engines: the §11 limit
  (stat reports it less the 16-byte tag), a chunk of exactly that size taken, one byte more
  refused with ChunkTooLargeError before anything is written. A lost entry (a flipped payload
  byte, then garbage collection relocating it) read, listed, remounted, trimmed by a range and
  rewritten, plaintext and encrypted: both engines alike. The C host suite (ASan + UBSan)
  compiled with FSW_NO_AEAD (the plaintext build, where fsw_get now leaves a lost entry to
  fsw_read; test_stress reads lost keys): 35 passed. The trim's `mounted` check is not
  reachable through the Python engine (CStore checks first); read, it refuses as before.

Found (strict xfail, both engines, the same image):
- The wedge at a default format: test_found_default_format_ci9_trim_refused_after_failure_and_cut
  (a plain test since revision 2.7: the failed segment is fresh, SPEC §12 step 1).
  16 x 64 KiB W25Q128JV formatted with ckpt_interval 9 and the default reserve: revision 2.6
  raises the reserve to min(4, S - ckpt_interval - 4) = 3, i.e. keeps 3, although reserve 4
  is a valid geometry there (4 + 9 + 3 = 16); 32 x 64 KiB with ckpt_interval 25 likewise.
  Script (cut down by delta debugging from seed 11): 21 puts near full (chunks up to one
  segment, max_chunk there), then a put with a program failure on its 2nd program and a
  power cut on its 4th, a sync. The mount finds F = 1 of reserve 3 with the failed segment
  (13: its header never reached flash) counted FREE_ERASED; the first trim opens it, its
  program fails, and the recovery finds no segment for its checkpoint (§12 step 3): "no free
  segment left", after every remount too. The mechanism SPEC §10 "Why at least 4" names for
  reserve 3, reached without formatting it: 5 of 40 churns wedge (seeds 5, 11, 22, 24,
  27; 8,543 runs), none of 40 with reserve 4 given at format (9,176 runs). nand16-ci9
  (0 of 40) and nor64k32-ci25 (0 of 30) did not wedge.
- Engines disagree on a revision 2.5 image:
  test_found_engines_disagree_on_a_2_5_chunk_above_the_limit.
  16 x 64 KiB W25Q128JV, reserve 3 (2.5's default there), ckpt_interval 1, written with 2.5's
  max_chunk (the same bytes: 2.6 changes no layout): keys 1 (1000 B), 2 (98,245 B, one byte
  above 2.6's limit) and 3, a sync; mounted by 2.6. The Python model reads key 2's value, the
  C library reads it corrupt. Cause: the model's mount takes key 2's entry from the
  checkpoint (its record lies before it) and its chunk read does not check a record's size
  against max_chunk; C's fsw_rec_load refuses a DATA record above max_chunk at every read.
  SPEC's revision note ("such a record is unreadable to a 2.6 reader: its chunk reads
  corrupt") agrees with C. Also with ckpt_interval 2 and a 3-segment chunk.
- A revision 2.5 image mounts damaged: test_found_2_5_image_with_a_long_chunk_mounts_damaged
  (both engines alike). The same store with ckpt_interval 4 and a 2-segment chunk (2.5 took
  3.5 segments, 2.6 takes 1.5): the record lies in the window, the 2.6 mount finds it
  unreadable, an unreadable region (§9), and the store is damaged: key 1 (synced, intact,
  written before it) and every absent key read corrupt, not only key 2 as the revision note
  says; absent keys (key 2 trimmed too) still read corrupt after new puts and a remount
  (a damaged store stays damaged until formatted, §9).
Held: everything else above; no refusal on any default-format geometry with reserve 4 or 5.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from flashswap import FlashSim, PowerCut, Store
from flashswap.errors import ChunkTooLargeError, NoSpaceError, NotFoundError
from tests.storeutil import (
    C_ERROR,
    ENGINES,
    Oracle,
    image_copy,
    key_outcome,
    payload,
    read_all,
)
from tests.test_recovery_chunks import _churn, _limit

KEY = bytes(range(16))

# name -> (part, capacity, format options): the geometries this review attacks, all at the
# default format unless a ckpt_interval is named (then the default reserve for it).
SPECS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "nor64k16": ("W25Q128JV", 1 << 20, {}),
    "nor64k16-ci8": ("W25Q128JV", 1 << 20, {"ckpt_interval": 8}),
    "nor64k16-ci9": ("W25Q128JV", 1 << 20, {"ckpt_interval": 9}),
    "nor64k16-ci10": ("W25Q128JV", 1 << 20, {"ckpt_interval": 10}),
    "nor64k32": ("W25Q128JV", 2 << 20, {}),
    "nor64k32-ci24": ("W25Q128JV", 2 << 20, {"ckpt_interval": 24}),
    "nand16-ci8": ("W25N01GV", 16 << 17, {"ckpt_interval": 8}),
    "nor64k32-ci25": ("W25Q128JV", 2 << 20, {"ckpt_interval": 25}),
    "nor64k64": ("W25Q128JV", 4 << 20, {}),
    "nor64k16-wl1": ("W25Q128JV", 1 << 20, {"wl_threshold": 1}),
    "nand16": ("W25N01GV", 16 << 17, {}),
    "nrf16": ("nRF5340-APP", 64 << 10, {}),
    "nor64k16-ci9-r4": ("W25Q128JV", 1 << 20, {"ckpt_interval": 9, "reserve": 4}),
    "nand16-ci9": ("W25N01GV", 16 << 17, {"ckpt_interval": 9}),
    "nand32": ("W25N01GV", 32 << 17, {}),
    "nand64": ("W25N01GV", 64 << 17, {}),
    "mlc16": ("FNNL41A-8Gb", 16 << 18, {}),
    "mlc32": ("FNNL41A-8Gb", 32 << 18, {}),
    "nrf32": ("nRF5340-APP", 128 << 10, {}),
    "stm32": ("STM32L476-FLASH", 64 << 10, {}),
    "nor64k16-aead": ("W25Q128JV", 1 << 20, {"key": KEY}),
    "nand16-aead": ("W25N01GV", 16 << 17, {"key": KEY}),
    "nrf16-aead": ("nRF5340-APP", 64 << 10, {"key": KEY}),
}


def _store(geo: str, engine: str, seed: int = 0) -> tuple[Store, FlashSim, bytes | None]:
    part, cap, fmt = SPECS[geo]
    flash = FlashSim.from_part(part, capacity=cap, seed=seed)
    return Store.format(flash, engine=engine, **fmt), flash, fmt.get("key")


# ------------------------------------------------------------------ scripts under the oracle

# Ops: ("put", key, size) puts payload(key, op index, size); ("trim", key); ("sync",);
# ("remount",) and ("copy",) sync first; ("idle", n); ("fail", n) arms a program/erase failure
# after n more programs/erases; ("cut", n) a power cut (the torn flash is then mounted and the
# strict oracle checked; a failure still armed is disarmed).


def _apply(st: Store, flash: FlashSim, o: Oracle, op: tuple[Any, ...], i: int,
           engine: str, key: bytes | None) -> tuple[Store, FlashSim, Any]:
    """One op under the strict oracle (tests/storeutil.Oracle); returns its outcome."""
    out: Any = None
    if op[0] == "put":
        d = payload(op[1], i, op[2])
        prev = o.current.get(op[1])
        o.put(op[1], d)
        try:
            st.put(op[1], d)
            out = "ok"
        except NoSpaceError:
            o.put_refused(op[1], prev)
            out = "refused"
    elif op[0] == "trim":
        o.trim(op[1])
        out = st.trim(op[1])
    elif op[0] in ("sync", "remount", "copy"):
        st.sync()
        o.sync()
        if op[0] == "copy":
            flash = flash.copy()
        if op[0] != "sync":
            st = Store.mount(flash, engine=engine, key=key)
    elif op[0] == "cut":
        flash.power_cut_after(op[1])
    elif op[0] == "fail":
        flash.fail_after(op[1])
    else:
        out = st.idle(op[1])
    return st, flash, out


def _run(geo: str, engine: str, ops: list[tuple[Any, ...]], seed: int = 0
         ) -> tuple[Store, FlashSim, list[Any]]:
    """A script on a fresh store under the strict oracle; a refused trim or sync ends it."""
    st, flash, key = _store(geo, engine, seed)
    o = Oracle()
    out: list[Any] = []
    for i, op in enumerate(ops):
        try:
            st, flash, r = _apply(st, flash, o, op, i, engine, key)
            out.append(r)
        except NoSpaceError:
            out.append(f"{op[0]} refused")
            break
        except PowerCut:
            flash.power_cut_after(None)
            flash.fail_after(None)
            st = Store.mount(flash, engine=engine, key=key)
            out.append("cut")
            o.check_after_cut(read_all(st, o.keys()))
    flash.power_cut_after(None)
    flash.fail_after(None)
    return st, flash, out


def _drain(st: Store) -> None:
    """Every key trimmed one by one, then a 1-byte put and 40 puts of 100 B: none refused."""
    for k in sorted(st.keys()):
        st.trim(k)
    st.put(0, b"q")
    for j in range(40):
        st.put(j, payload(j, 1, 100))


def _big_churn(st: Store, seed: int, n: int) -> list[tuple[Any, ...]]:
    """A churn of few keys (24, or 3/5 of the segments: enough to fill 64 segments) and
    large chunks: 35% of the puts max_chunk, 30% half a segment to max_chunk, the rest
    1..300 B; trims, syncs, remounts, idle steps."""
    s0 = st.stat()
    seg, cap = s0["segment_size"], s0["max_chunk"]
    nkeys = max(24, 3 * s0["segments"] // 5)
    rng = random.Random(seed)
    ops: list[tuple[Any, ...]] = []
    for _ in range(n):
        r, k = rng.random(), rng.randrange(nkeys)
        if r < 0.7:
            q = rng.random()
            size = (cap if q < 0.35 else rng.randint(min(cap, seg // 2), cap) if q < 0.65
                    else rng.randint(1, 300))
            ops.append(("put", k, size))
        elif r < 0.8:
            ops.append(("trim", k))
        elif r < 0.9:
            ops.append(("sync",))
        elif r < 0.93:
            ops.append(("remount",))
        else:
            ops.append(("idle", rng.randint(1, 3)))
    return ops


def _copy(st: Store, flash: FlashSim, o: Oracle) -> tuple[Store, FlashSim, Oracle]:
    """A deep copy of a run's state; the cipher (AESGCM cannot be copied) is shared."""
    memo = {id(st.aead): st.aead} if st.aead is not None else {}
    return copy.deepcopy((st, flash, o), memo)


def _fail_and_cut(st: Store, flash: FlashSim, o: Oracle, op: tuple[Any, ...], i: int,
                  key: bytes | None, f: int, c: int) -> tuple[Store, FlashSim, Oracle, bool]:
    """On a copy of the state: a program failure armed at operation f and a power cut at c,
    then `op` and a sync (a refusal is a recovery that found no segment, §12 step 3); both
    disarmed after. Returns the copy and whether the cut fell."""
    st2, fl2, o2 = _copy(st, flash, o)
    fl2.fail_after(f)
    fl2.power_cut_after(c)
    try:
        try:
            st2, fl2, _ = _apply(st2, fl2, o2, op, i, "python", key)
        except NoSpaceError:
            pass
        st2.sync()
        o2.sync()
        cut = False
    except PowerCut:
        cut = True
    fl2.power_cut_after(None)
    fl2.fail_after(None)
    return st2, fl2, o2, cut


def _fc_sweep(geo: str, seed: int, positions: int, fails: int, cuts: int,
              churn: Any = _churn, kinds: tuple[str, ...] = ("put",)
              ) -> tuple[int, list[Any]]:
    """test_recovery_chunks._fail_and_cut_sweep on SPECS (encrypted stores too), the Python
    model: at the first `positions` puts of a churn near full made with F <= reserve, a
    program failure armed at each of `fails` operations with a power cut at each of `cuts`
    (a deep copy of the state each), the put and a sync; the torn flash mounted under the
    strict oracle; with at most one grown bad block, `_drain`. Returns (runs, refusals)."""
    st, flash, key = _store(geo, "python", seed)
    ops = churn(st, seed, 300)
    o = Oracle()
    done = runs = 0
    refused: list[Any] = []
    for i, op in enumerate(ops):
        if op[0] in kinds and i > 20 and done < positions and \
                st._free_count() <= st.reserve:
            done += 1
            for f in range(fails):
                for c in range(cuts):
                    st2, fl2, o2, cut = _fail_and_cut(st, flash, o, op, i, key, f, c)
                    runs += 1
                    try:
                        if cut:
                            st2 = Store.mount(fl2, engine="python", key=key)
                            o2.check_after_cut(read_all(st2, o2.keys()))
                        if int(fl2._grown.sum()) <= 1:
                            _drain(st2)
                    except NoSpaceError as e:
                        refused.append((i, f, c, str(e)))
                    if not cut:
                        break
        try:
            st, flash, _ = _apply(st, flash, o, op, i, "python", key)
        except NoSpaceError:
            break
    return runs, refused


# ------------------------------------------------------------------ finding: reserve 3 by default

# Cut down (delta debugging) from test_recovery_chunks._churn seed 11 on 16 x 64 KiB W25Q128JV
# formatted with ckpt_interval 9 and the default reserve, which revision 2.6 leaves at 3
# (min(4, S - ckpt_interval - 4) = 3): 21 puts near full, then one put with a program failure
# armed on its second program and a power cut on its fourth, and a sync.
_CI9_WEDGE: list[tuple[Any, ...]] = [
    ("put", 36, 61829), ("put", 157, 80), ("put", 135, 18720), ("put", 180, 20309),
    ("put", 124, 53037), ("put", 147, 25975), ("put", 66, 65496), ("put", 12, 18920),
    ("put", 133, 63593), ("put", 4, 43347), ("put", 15, 65496), ("put", 162, 20792),
    ("put", 18, 52172), ("put", 155, 22324), ("put", 138, 50104), ("put", 153, 17844),
    ("put", 178, 56656), ("put", 36, 26), ("put", 144, 65496), ("put", 176, 30894),
    ("put", 96, 65496), ("fail", 1), ("cut", 3), ("put", 126, 44805), ("sync",)]


def test_default_reserve_is_three_with_a_large_ckpt_interval() -> None:
    """The reach of the finding below: revision 2.6's rule gives reserve 4 only where
    S - ckpt_interval - 4 >= 4, so a 16 x 64 KiB store formatted with ckpt_interval 9 (or 32
    segments with 25) keeps the reserve of 3 that SPEC §10 "Why at least 4" measured wedging,
    although reserve 4 is a valid geometry there (4 + 9 + 3 = 16)."""
    for geo, want in (("nor64k16-ci8", 4), ("nor64k16-ci9", 3), ("nor64k32-ci25", 3),
                      ("nand16-ci9", 3)):
        st, _, _ = _store(geo, "python")
        assert st.reserve == want, geo
    part, cap, _ = SPECS["nor64k16-ci9"]
    Store.format(FlashSim.from_part(part, capacity=cap), ckpt_interval=9, reserve=4)


@pytest.mark.parametrize("engine", ENGINES)
def test_found_default_format_ci9_trim_refused_after_failure_and_cut(engine: str) -> None:
    """Found by this review (strict xfail until revision 2.7): 16 x 64 KiB NOR at the default
    format with ckpt_interval 9 keeps reserve 3; a program failure and a power cut in one put
    left F = 1 with the failed block (header never on flash) counted free, and the first trim
    opened it, failed, and the recovery found no segment for its checkpoint, after every
    remount too. Since 2.7 the failed segment is fresh (SPEC §12): it is retired and the trim
    runs again, with no checkpoint; every key can be trimmed."""
    st, flash, out = _run("nor64k16-ci9", engine, _CI9_WEDGE, seed=11)
    assert out[-2:] == ["cut", None] and int(flash._grown.sum()) == 1
    assert st.stat()["reserve"] == 3
    _drain(st)


# ------------------------------------------------------------------ held: max_chunk (class d)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", ["nor64k16-ci9", "nor64k16-ci10", "nor64k32", "mlc16",
                                 "nrf32", "stm32", "nor64k16-aead", "nrf16-aead"])
def test_max_chunk_refused_before_anything_is_written(engine: str, geo: str) -> None:
    """Both engines report SPEC §11's limit less the tag (reserve 3: one and a half
    segments, capped by the window: half a segment with ckpt_interval 10; nor64k16-ci11, the
    review's reserve-2 case, is refused at format since revision 2.7), take a chunk of
    exactly that size on a fresh store, and refuse one byte more with ChunkTooLargeError
    before writing anything."""
    st, flash, key = _store(geo, engine)
    py = Store.mount(flash.copy(), engine="python", key=key)
    tag = 16 if key else 0
    want = _limit(py.geo.data_cap, py.geo.nseg, py.reserve, py.ckpt_interval) - tag
    assert st.stat()["max_chunk"] == want and st.max_chunk == want + tag
    st.put(1, payload(1, 0, want))
    st.sync()
    before = flash.image()
    with pytest.raises(ChunkTooLargeError):
        st.put(2, payload(2, 0, want + 1))
    with pytest.raises(ChunkTooLargeError):
        st.put(1, payload(1, 1, want + 1))
    st.sync()
    assert flash.image() == before and st.get(1) == payload(1, 0, want)
    with pytest.raises(NotFoundError):
        st.get(2)


# ------------------------------------------------------------------ held: engines agree (c)


def _trial(geo: str, seed: int, n: int) -> list[list[tuple[Any, ...]]]:
    """`n` scripts: a churn (small chunks for even seeds, large for odd) up to a random put
    after op 60, a program failure and a power cut armed at random offsets, the put, a sync
    and the next 30 ops of the churn."""
    st, _, _ = _store(geo, "python", seed)
    ops = (_big_churn if seed % 2 else _churn)(st, seed, 200)
    rng = random.Random(seed)
    puts = [i for i, op in enumerate(ops) if op[0] == "put" and i > 60]
    out = []
    for _ in range(n):
        i = rng.choice(puts)
        out.append(ops[:i] + [("fail", rng.randrange(12)), ("cut", rng.randrange(40)), ops[i],
                              ("sync",)] + ops[i + 1:i + 30])
    return out


def _outcome(geo: str, engine: str, ops: list[tuple[Any, ...]], seed: int
             ) -> tuple[list[Any], str, bytes, bytes]:
    """Outcomes of a script under the strict oracle, then of `_drain` (with at most one grown
    bad block), and the flash image after each."""
    st, flash, out = _run(geo, engine, ops, seed)
    img = flash.image()
    drained = "not tried"
    if int(flash._grown.sum()) <= 1:
        try:
            _drain(st)
            drained = "drained"
        except NoSpaceError:
            drained = "refused"
    return out, drained, img, flash.image()


@pytest.mark.skipif(bool(C_ERROR), reason=f"C library unavailable: {C_ERROR}")
@pytest.mark.parametrize("geo, seed", [("nor64k16-ci9", 0), ("nor64k32", 1), ("nand32", 0),
                                       ("mlc16", 1), ("nrf32", 0), ("stm32", 1),
                                       ("nor64k16-aead", 1), ("nrf16-aead", 0)])
def test_failure_and_cut_scripts_same_in_both_engines(geo: str, seed: int) -> None:
    """Class (c): a program failure and a power cut at random offsets in one put of a churn,
    then 30 more ops and `_drain`: the same outcomes and images in both engines."""
    for ops in _trial(geo, seed, 2):
        py = _outcome(geo, "python", ops, seed)
        c = _outcome(geo, "c", ops, seed)
        assert py[:2] == c[:2] and py[2] == c[2] and py[3] == c[3]


def _drain_cut_sweep(geo: str, seed: int, positions: int, fails: int, cuts: int,
                     cuts2: int, churn: Any = _churn) -> tuple[int, list[Any]]:
    """As `_fc_sweep`, and where the failure and the cut left a store with one grown bad
    block: a second power cut at each of `cuts2` operations of the trims that follow (the
    block, counted free by the mount, fails again when a trim opens it: no new grown block),
    the torn flash mounted under the strict oracle, then `_drain`."""
    st, flash, key = _store(geo, "python", seed)
    ops = churn(st, seed, 300)
    o = Oracle()
    done = runs = 0
    refused: list[Any] = []
    for i, op in enumerate(ops):
        if op[0] == "put" and i > 20 and done < positions and st._free_count() <= st.reserve:
            done += 1
            for f in range(fails):
                for c in range(cuts):
                    st2, fl2, o2, cut = _fail_and_cut(st, flash, o, op, i, key, f, c)
                    if not cut:
                        break
                    if int(fl2._grown.sum()) != 1:
                        continue
                    st2 = Store.mount(fl2, engine="python", key=key)
                    o2.check_after_cut(read_all(st2, o2.keys()))
                    for c2 in range(cuts2):
                        st3, fl3, o3 = _copy(st2, fl2, o2)
                        fl3.power_cut_after(c2)
                        runs += 1
                        try:
                            for k in sorted(st3.keys()):
                                o3.trim(k)
                                st3.trim(k)
                            st3.sync()
                            o3.sync()
                            landed = True
                        except PowerCut:
                            landed = False
                        except NoSpaceError as e:
                            refused.append((i, f, c, c2, "before the second cut", str(e)))
                            break
                        fl3.power_cut_after(None)
                        try:
                            if not landed:
                                st3 = Store.mount(fl3, engine="python", key=key)
                                o3.check_after_cut(read_all(st3, o3.keys()))
                            _drain(st3)
                        except NoSpaceError as e:
                            refused.append((i, f, c, c2, str(e)))
                        if landed:
                            break
        try:
            st, flash, _ = _apply(st, flash, o, op, i, "python", key)
        except NoSpaceError:
            break
    return runs, refused


# ------------------------------------------------------------------ held: lost entries (d)


def _lost_chunk(engine: str, key: bytes | None) -> tuple[Store, FlashSim, list[Any]]:
    """nRF5340, 16 x 4 KiB: key 1 (300 B) damaged on flash by one flipped payload byte, then
    enough churn that garbage collection relocates its segment: the chunk fails verification
    and is lost (§10 "Relocating"), its entry kept (LOST) and written into checkpoints."""
    flash = FlashSim.from_part("nRF5340-APP", capacity=64 << 10)
    st = Store.format(flash, engine=engine, key=key)
    st.put(1, payload(1, 0, 300))
    st.put(2, payload(2, 0, 3000))
    st.sync()
    img = bytearray(flash.image())
    img[40 + 32 + 100] ^= 0x01  # a byte of key 1's payload (first record of segment 0)
    flash = image_copy(flash, bytes(img))
    st = Store.mount(flash, engine=engine, key=key)
    res: list[Any] = [key_outcome(st, 1)[0]]
    st.trim(2)
    for i in range(60):
        st.put(10 + i % 20, payload(i, 1, 1500))
    st.sync()
    res += [st.stat()["lost_chunks"], key_outcome(st, 1)[0], 1 in st, 1 in st.keys()]
    st.unmount()
    st = Store.mount(flash, engine=engine, key=key)  # from the checkpoint's LOST entry
    res += [st.stat()["lost_chunks"], key_outcome(st, 1)[0], st.trim_range(0, 1)]
    res += [key_outcome(st, 1)[0], st.trim(1), st.stat()["lost_chunks"]]
    st.put(1, b"x")
    res.append(key_outcome(st, 1))
    st.unmount()
    return st, flash, res


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aead"])
def test_lost_entry_reads_trims_and_rewrites_alike(key: bytes | None) -> None:
    """Revision 2.6's fsw_get leaves a lost entry to fsw_read (plaintext stores) and answers
    it first in encrypted ones: both engines read a lost chunk as corrupt (not absent), keep
    it out of keys() and `in`, keep it across a remount, drop it with trim_range and take a
    new put; same outcomes and image."""
    _, fpy, rpy = _lost_chunk("python", key)
    assert rpy == ["corrupt", 1, "corrupt", False, False, 1, "corrupt", 1, "absent", False, 0,
                   ("value", b"x")]
    if not C_ERROR:
        _, fc, rc = _lost_chunk("c", key)
        assert rc == rpy and fc.image() == fpy.image()


# ------------------------------------------------------------------ held: the sweeps (a, b)


def test_reserve_four_at_ckpt_interval_nine_holds_where_the_default_wedges() -> None:
    """The churn of the finding above (seed 11, which wedges at the default reserve 3) with
    reserve 4 given at format (valid there: 4 + 9 + 3 = 16): no trim refused."""
    runs, refused = _fc_sweep("nor64k16-ci9-r4", 11, 3, 6, 30)
    assert runs > 100 and not refused


@pytest.mark.parametrize("geo, seed", [("nor64k32", 0), ("nand16-aead", 1)])
def test_failure_and_cut_in_a_churn_of_large_chunks(geo: str, seed: int) -> None:
    """A program failure and a power cut in one put (6 x 30 offsets at 3 puts made with
    F <= reserve) of a churn of max_chunk-sized chunks: strict oracle, every trim taken."""
    runs, refused = _fc_sweep(geo, seed, 3, 6, 30, _big_churn)
    assert runs > 50 and not refused


_SWEPT = [("small", g) for g in ["nor64k32", "nor64k64", "nand32", "mlc16", "nrf32", "stm32",
                                  "nor64k16-aead", "nand16-aead", "nrf16-aead",
                                  "nor64k16-ci8", "nand16-ci9", "nor64k32-ci25",
                                  "nor64k32-ci24", "nand16-ci8"]] + [
    ("big", g) for g in ["nor64k16", "nand16", "nrf16", "nor64k16-wl1", "nor64k16-aead",
                         "mlc16", "nor64k64", "nand64", "mlc32", "nor64k32", "nor64k16-ci8",
                         "nand16-aead", "nor64k32-ci24", "nand16-ci8"]]


@pytest.mark.slow
@pytest.mark.parametrize("churn, geo", _SWEPT)
def test_failure_and_cut_sweep(geo: str, churn: str) -> None:
    """Class (a, b) on the default-format geometries of the brief: 6 to 12 churns each
    (module doc: counts)."""
    for seed in range(6):
        _, refused = _fc_sweep(geo, seed, 3, 6, 30, _big_churn if churn == "big" else _churn)
        assert not refused, (seed, refused[:3])


@pytest.mark.slow
@pytest.mark.parametrize("geo", ["nor64k16", "nand16", "nor64k16-ci9-r4", "nor64k16-aead",
                                 "nand32"])
@pytest.mark.parametrize("churn", ["small", "big"])
def test_failure_and_cut_at_trims_syncs_and_idle_steps(geo: str, churn: str) -> None:
    """The failure and the cut armed at trims, syncs and idle steps made with F <= reserve."""
    for seed in range(6):
        _, refused = _fc_sweep(geo, seed, 4, 6, 30, _big_churn if churn == "big" else _churn,
                               ("trim", "sync", "idle"))
        assert not refused, (seed, refused[:3])


@pytest.mark.slow
@pytest.mark.parametrize("geo", ["nor64k16", "nand16", "nor64k16-aead"])
@pytest.mark.parametrize("churn", ["small", "big"])
def test_second_cut_while_trims_meet_the_forgotten_bad_block(geo: str, churn: str) -> None:
    """`_drain_cut_sweep`: after a failure and a cut, a second cut at each of 40 operations
    of the trims (which reopen the block the mount counted free, and fail there again)."""
    for seed in range(6):
        _, refused = _drain_cut_sweep(geo, seed, 3, 6, 20, 40,
                                      _big_churn if churn == "big" else _churn)
        assert not refused, (seed, refused[:3])


@pytest.mark.slow
def test_wedge_count_at_ckpt_interval_nine() -> None:
    """The finding's measurement: 40 churns of test_recovery_chunks, failure and cut at 3
    puts x 6 x 30 offsets: 5 of 40 wedged with the default reserve 3 (seeds 5, 11, 22, 24,
    27) until revision 2.7's fresh-segment rule (SPEC §12 step 1); none now, none with
    reserve 4."""
    wedged = [s for s in range(40) if _fc_sweep("nor64k16-ci9", s, 3, 6, 30)[1]]
    assert wedged == []
    assert not [s for s in range(40) if _fc_sweep("nor64k16-ci9-r4", s, 3, 6, 30)[1]]


@pytest.mark.slow
@pytest.mark.skipif(bool(C_ERROR), reason=f"C library unavailable: {C_ERROR}")
def test_plaintext_build_host_suite(tmp_path: Any) -> None:
    """Class (d): the C host suite (firmware/tests, ASan + UBSan) compiled with FSW_NO_AEAD,
    where fsw_get leaves a lost entry to fsw_read (test_stress reads lost keys): passes."""
    import shutil
    import subprocess
    from pathlib import Path

    fw = Path(__file__).resolve().parents[1] / "firmware"
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("no gcc")
    exe = tmp_path / "test_host"
    cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-DFSW_NO_AEAD",
           f"-I{fw / 'include'}", f"-I{fw / 'src'}", f"-I{fw / 'port'}",
           *map(str, sorted((fw / "src").glob("*.c"))), str(fw / "port" / "ramflash.c"),
           *map(str, sorted((fw / "tests").glob("*.c"))), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0 and " 0 failed" in r.stdout, r.stdout[-2000:]


# ------------------------------------------------------------------ findings: 2.5 images


def _image_of_2_5(ckpt_interval: int, size: int) -> FlashSim:
    """16 x 64 KiB W25Q128JV with reserve 3 (revision 2.5's default there) written as revision
    2.5 wrote it: the same bytes (2.6 changes no layout), with 2.5's max_chunk (no reserve
    bound): key 1 (1000 B), key 2 (`size`, above 2.6's limit of 1.5 segments), key 3
    (2000 B), a sync."""
    flash = FlashSim.from_part("W25Q128JV", capacity=1 << 20)
    st = Store.format(flash, engine="python", reserve=3, ckpt_interval=ckpt_interval)
    assert isinstance(st, Store) and size > st.max_chunk
    st.max_chunk = st.geo.data_cap * (16 - 3 - ckpt_interval - 2) // 2  # revision 2.5's
    for k, n in ((1, 1000), (2, size), (3, 2000)):
        st.put(k, payload(k, 0, n))
    st.sync()
    return flash


def _reads(flash: FlashSim, engine: str) -> dict[int, str]:
    st = Store.mount(flash.copy(), engine=engine)
    return {k: key_outcome(st, k)[0] for k in range(1, 6)}


@pytest.mark.skipif(bool(C_ERROR), reason=f"C library unavailable: {C_ERROR}")
def test_found_engines_disagree_on_a_2_5_chunk_above_the_limit() -> None:
    """Was a strict xfail: a 2.5 image (reserve 3, ckpt_interval 1) holding a chunk one byte
    above 2.6's max_chunk; the Python model served it (its mount took the checkpoint's entry
    and its chunk read did not check the record's size against max_chunk), the C library read
    it corrupt (fsw_rec_load refuses a DATA record above max_chunk at every read). Fixed in
    the model's chunk read: both engines read it corrupt, the keys around it intact."""
    flash = _image_of_2_5(1, 98245)  # 2.6's limit there: 98244
    py, c = _reads(flash, "python"), _reads(flash, "c")
    assert (py[1], py[3], c[1], c[3]) == ("value",) * 4
    assert py[2] == c[2] == "corrupt"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "a 2.5 image (reserve 3, ckpt_interval 4) holding a 2-segment chunk (2.5 took 3.5, 2.6 "
    "takes 1.5) in the window: the 2.6 mount finds its record unreadable, an unreadable "
    "region (§9): the store is damaged, so key 1 (synced, intact, written before it) and "
    "every absent key read corrupt, until a format; SPEC's revision note says only that "
    "chunk reads corrupt"))
def test_found_2_5_image_with_a_long_chunk_mounts_damaged(engine: str) -> None:
    got = _reads(_image_of_2_5(4, 2 * 65496), engine)
    assert got[3] == "value"  # after the region: held
    assert got == {1: "value", 2: "corrupt", 3: "value", 4: "absent", 5: "absent"}
