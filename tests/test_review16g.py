"""Independent review of store revision 2.7 (a fresh failed segment retired with nothing to
move and no checkpoint, SPEC §12 step 1; the C trace hook opt-in with FSW_TRACE).

What was run (the Python model unless named; the strict oracle of tests/storeutil.Oracle):
- Cuts over the re-run (`_fresh_cut_sweep`): at every op of a large-chunk churn
  (test_review16f._big_churn, 150 ops), a program failure armed at each of the first
  programs that start in a segment's header; where the model made a fresh retirement (its
  §12 step 1 test, counted by a wrapper), a power cut at every operation from 2 before the
  failure to the end of the op and a sync (NOR: to 120 after it), then a mount under the
  strict oracle (also with no cut: the sync returned), no two headers on flash with one
  seq, and `_drain` with one grown block at most. Fresh trials / runs: nand16 (W25N01GV,
  16 blocks) 111 / 14,863; nand16 encrypted 121 / 12,813; nrf16 (nRF5340, 16 x 4 KiB) 63 /
  54,573; stm32 90 / 9,115; nor64k16 (W25Q128JV 16 x 64 KiB) 55 / 5,068; nor64k16
  encrypted 27 / 2,488; the slow test's churn (seed 2, 100 ops, 2 failures per op, cuts to
  60 after): nor64k16 23 / 698, nand16 24 / 951, nrf16 11 / 497, stm32 53 / 3,031,
  nor64k16 encrypted 23 / 708, nand16 encrypted 26 / 1,077, nor64k16-ci8 29 / 1,392,
  nand16-ci8 32 / 1,363. No violation. What the failed units held (sampled, 4 geometries):
  a spilled put's continuation (hot 228, cold 4), a checkpoint (133), a RESERVE (51); never
  a SYNC or a trim record (finding 2 is the SYNC case, built by hand).
- Mainline failures: 200-op churns (small and large chunks, 60 seeds each) with a program
  failure armed before 25% of the ops at 0..29 operations (up to 4 grown blocks, remounts
  counting them free), a mounted copy checked against the synced state after every sync:
  nor64k16, nand16, nrf16, stm32, nand16 and nor64k16 encrypted, nor64k16-ci8, nand16-ci8
  (960 churns): one violation, the pre-existing last finding below. Refusals (1 to 6 per
  60 churns, with 3 or 4 grown blocks) are the same as revision 2.6's on nand16.
- Engines: the mainline-failure churns in both engines, 25 seeds x 2 churns on each of
  nand16, nor64k16, nrf16, stm32, nand16 and nor64k16 encrypted, nor64k16-ci8 (350
  scripts): the same outcomes and images, and the C engine under the same checks meets the
  same single violation; 11 targeted fresh-failure scripts (with cuts over the re-run) on
  nand16, nor64k16, nrf16 encrypted, and the 8 of the test below: the same.
- Trace hook: the firmware host suite (35 tests) and `make size` build without FSW_TRACE;
  tests/test_store_trace_hook.py passes; a put whose spill fails fresh is traced once, the
  same records in both engines (test below).

Found. Findings 1 and 2 were revision 2.7's draft (56e5bf5): this file run on revision 2.6's
sources (a04df5f, both engines) passed their tests. Both are fixed in 2.7 as landed (SPEC
§12 step 1: a failure during a recovery is never fresh; a fresh retirement leaves the head
unmarked), and their tests are plain tests. Finding 3, pre-existing, is fixed too (an empty
segment failing during a recovery keeps that recovery's rescue copy): a plain test.
1. A trim lost after sync() returned (both engines, the same image; 16-block SPI NAND and
   16 x 64 KiB NOR): test_found_trim_lost_when_the_recovery_checkpoint_segment_fails and
   test_found_trim_lost_across_a_clean_unmount. `_write_checkpoint` (C fsw_ckpt_write)
   clears `recovering` (torn bit 4) before the checkpoint's sync; when that sync is the
   checkpoint segment's first program and it fails (a grown bad block a mount counted
   free), the segment passes the fresh test, the recovery of the first failure ends with no
   checkpoint, and the trims among the bytes that never reached flash live only in RAM.
   The next mount (after a cut, or after unmount()) finds the trimmed keys with their old
   values. Revision 2.6 retired that segment and wrote the checkpoint in the next. An
   encrypted store escapes it (test_encrypted_store_keeps_the_trim): its checkpoint
   segment's first program is the RESERVE's sync, made before `recovering` is cleared.
2. A sync left unmarked (both engines; 16 x 64 KiB NOR):
   test_found_sync_unmarked_after_fresh_failure. When the SYNC record of the API's sync
   needs a new segment and that segment fails fresh, `_mark` (C mark()) has cleared the
   unmarked bit, so the sync run again writes no SYNC record: the synced put stays the last
   record of its log, and a bit of damage to it is taken for a tear (§9): the key reads its
   previous value, silently, where SPEC §6 "Marking a sync" promises it reads as damage
   (2.6: its recovery checkpoint followed the record; the control test shows "corrupt").
3. Pre-existing, not 2.7 (2.6 gives the same, both engines):
   test_found_unsynced_chunk_lost_after_a_third_failure: an unsynced 24 B chunk held whole
   in the program buffer reads corrupt ("lost") after the third grown bad block.

Noticed, not tested: a fresh segment that was a due checkpoint segment leaves
`segs_since_ckpt` at 1 (set when it opened), so that checkpoint is skipped, not moved to the
next segment (ckpt_interval >= 2); the largest window measured after such a retirement
(11-12 segments at ckpt_interval 8) was no larger than the churn reaches without one.
Several consecutive grown bad blocks counted free (7 set by hand on nand16) make a
recovery lose synced chunks: each new failure replaces the rescue copy (2.6 too).
"""

from __future__ import annotations

from typing import Any

import pytest

from flashswap import FlashSim, Store
from flashswap.errors import CorruptError, DeviceError, NoSpaceError
from flashswap.store.layout import HEADER_SIZE, SegHeader
from tests.storeutil import ENGINES, Oracle, image_copy, needs_c, payload, read_all
from tests.test_recovery_chunks import _churn
from tests.test_review16f import (
    _apply,
    _big_churn,
    _copy,
    _drain,
    _fail_and_cut,
    _outcome,
    _run,
    _store,
)

NAND16 = ("W25N01GV", 16 << 17)
NOR64K16 = ("W25Q128JV", 1 << 20)


def _flash(geo: tuple[str, int], seed: int = 1) -> FlashSim:
    return FlashSim.from_part(geo[0], capacity=geo[1], seed=seed)


# ------------------------------------------------------------------ finding 1: a lost trim

# geometry -> (part and capacity, sizes of keys 0, 2 and 1, the fail_after of key 1's put,
# the grown block it leaves, the blocks grown after the sync of the finding)
_LOST_TRIM: dict[str, tuple[tuple[str, int], tuple[int, int, int], int, int, list[int]]] = {
    "nand16": (NAND16, (100, 100_000, 60_000), 14, 1, [1, 2]),
    "nor64k16": (NOR64K16, (100, 50_000, 30_000), 60, 16, [16, 39]),
}


def _bad_block_counted_free(geo: str, engine: str) -> tuple[Any, FlashSim]:
    """Keys 0 and 2 synced; the put of key 1 spills into the next segment, whose first
    program fails: that segment is fresh, retired with nothing to move, and the put runs
    again in the one after. A sync and a remount, which counts the grown bad block (its
    header never reached flash) free. 16-block SPI NAND and 16 x 64 KiB NOR (4 KiB blocks:
    block 16 is segment 1's first)."""
    part, sizes, fail, grown, _ = _LOST_TRIM[geo]
    flash = _flash(part)
    st = Store.format(flash, engine=engine)
    st.put(0, payload(0, 0, sizes[0]))
    st.put(2, payload(2, 0, sizes[1]))
    st.sync()
    flash.fail_after(fail)
    st.put(1, payload(1, 0, sizes[2]))
    flash.fail_after(None)
    assert list(flash._grown.nonzero()[0]) == [grown]
    st.sync()
    st = Store.mount(flash, engine=engine)
    assert st.stat()["bad_blocks"] == 0  # the mount took the grown bad block for free
    return st, flash


def _trim_and_sync_two_failures(geo: str, engine: str) -> FlashSim:
    st, flash = _bad_block_counted_free(geo, engine)
    st.trim(1)
    st.trim(0)
    flash.fail_after(0)
    st.sync()
    flash.fail_after(None)
    assert list(flash._grown.nonzero()[0]) == _LOST_TRIM[geo][4]
    assert st.keys() == [2]
    return flash


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", list(_LOST_TRIM))
def test_found_trim_lost_when_the_recovery_checkpoint_segment_fails(geo: str,
                                                                     engine: str) -> None:
    """Two failures in one sync: the head (its header on flash) holding the two trim
    records in its program buffer fails its program (fail_after(0)); the recovery has no
    chunk to move and opens its checkpoint segment in the grown bad block the mount counted
    free. Its program fails too. Revision 2.6 retired it and wrote the checkpoint in the
    next segment; 2.7 takes it for fresh (the checkpoint cleared `recovering` before its
    sync), skips the checkpoint, and the sync run again finds nothing unmarked. sync()
    returns; a mount (a power cut now) finds key 0 again with its old value (on NAND key 1
    too). SPEC §6/§12: a trim followed by a sync that returned is durable. Fixed in 2.7 as
    landed: a failure during a recovery (its moves, its checkpoint) is never fresh."""
    flash = _trim_and_sync_two_failures(geo, engine)
    sizes = _LOST_TRIM[geo][1]
    m = Store.mount(flash.copy(), engine=engine)
    assert read_all(m, {0, 1, 2}) == {0: None, 1: None, 2: payload(2, 0, sizes[1])}


@pytest.mark.parametrize("engine", ENGINES)
def test_found_trim_lost_across_a_clean_unmount(engine: str) -> None:
    """The same two failures in one sync (16-block SPI NAND), then unmount() and mount():
    keys 0 and 1, trimmed, come back. (Any later segment opened, a checkpoint segment with
    ckpt_interval 1, would have covered the trims: a put after the sync hides it.)"""
    st, flash = _bad_block_counted_free("nand16", engine)
    st.trim(1)
    st.trim(0)
    flash.fail_after(0)
    st.sync()
    flash.fail_after(None)
    st.unmount()
    assert Store.mount(flash, engine=engine).keys() == [2]


@pytest.mark.parametrize("engine", ENGINES)
def test_encrypted_store_keeps_the_trim(engine: str) -> None:
    """Held: finding 1's script on an encrypted store (fail_after(13) there) keeps the
    trims. Its checkpoint follows a RESERVE record synced first (§4a): the checkpoint
    segment's first program is that sync, made while `recovering` is still set, so the
    segment is not taken for fresh and the recovery writes its checkpoint in the next."""
    flash = _flash(NAND16)
    st = Store.format(flash, engine=engine, key=bytes(16))
    st.put(0, payload(0, 0, 100))
    st.put(2, payload(2, 0, 100_000))
    st.sync()
    flash.fail_after(13)
    st.put(1, payload(1, 0, 60_000))
    flash.fail_after(None)
    assert list(flash._grown.nonzero()[0]) == [1]
    st.sync()
    st = Store.mount(flash, engine=engine, key=bytes(16))
    st.trim(1)
    st.trim(0)
    flash.fail_after(0)
    st.sync()
    flash.fail_after(None)
    assert list(flash._grown.nonzero()[0]) == [1, 2]
    assert Store.mount(flash.copy(), engine=engine, key=bytes(16)).keys() == [2]


@needs_c
@pytest.mark.parametrize("geo", list(_LOST_TRIM))
def test_trim_lost_same_image_in_both_engines(geo: str) -> None:
    """The finding's script leaves the same flash image in both engines (they agree: the
    defect is in SPEC §12's rule as both implement it)."""
    images = [_trim_and_sync_two_failures(geo, e).image() for e in ("python", "c")]
    assert images[0] == images[1]


# ------------------------------------------------------------------ finding 2: an unmarked sync

def _sync_opens_fresh_segment(engine: str, fail: int | None) -> tuple[FlashSim, int]:
    """16 x 64 KiB NOR (W25Q128JV), default format: key 1 (1,000 B) synced; key 2 then key 1
    again (500 B) fill the head's segment to 10 bytes before its end, so the sync's SYNC
    record needs a new segment (a checkpoint segment: ckpt_interval 1). `fail`: the program
    that fails (1: the new segment's first, which makes it fresh). Returns the flash and
    the address of key 1's new record, the last of its segment."""
    flash = _flash(NOR64K16)
    st = Store.format(flash, engine=engine)
    st.put(1, payload(1, 0, 1000))
    st.sync()
    py = Store.mount(flash.copy(), engine="python")
    assert py.open_seg is not None
    end = (py.open_seg + 1) * py.geo.seg_size
    st.put(2, payload(2, 0, end - py.wp - 10 - 32 - 532))
    st.put(1, payload(1, 1, 500))
    flash.fail_after(fail)
    st.sync()
    flash.fail_after(None)
    return flash, end - 10 - 532


def _damaged_read(flash: FlashSim, addr: int, engine: str) -> str:
    """Key 1 read after a mount of the image with one bit of the record at `addr` cleared
    (its payload: a retention error), as "v1", "v2" or "corrupt"."""
    img = bytearray(flash.image())
    img[addr + 32 + 100] &= 0xFE
    m = Store.mount(image_copy(flash, bytes(img)), engine=engine)
    try:
        v = m.get(1)
    except CorruptError:
        return "corrupt"
    return {payload(1, 0, 1000): "v1", payload(1, 1, 500): "v2"}.get(v, "other")


@pytest.mark.parametrize("engine", ENGINES)
def test_damaged_synced_record_reads_as_damage_without_failure(engine: str) -> None:
    """The control of finding 2: with no failure, the SYNC record follows key 1's record,
    and damage to it reads as damage (SPEC §6 "Marking a sync")."""
    flash, addr = _sync_opens_fresh_segment(engine, None)
    assert _damaged_read(flash, addr, engine) == "corrupt"


@pytest.mark.parametrize("engine", ENGINES)
def test_found_sync_unmarked_after_fresh_failure(engine: str) -> None:
    """The sync's new segment (a checkpoint segment) fails its first program: fresh, retired;
    sync() returns. A cut now, and one bit of key 1's last record (the synced 500 B) cleared:
    the mount takes it for a tear and key 1 reads its previous value, 1,000 B, without an
    error. SPEC §6: a synced record is never the last of its log, so that damage to it
    reads as damage (revision 2.6 wrote the recovery's checkpoint after it: corrupt). Fixed
    in 2.7 as landed: a fresh retirement leaves the head unmarked, and the sync run again
    writes the SYNC record."""
    flash, addr = _sync_opens_fresh_segment(engine, 1)
    assert list(flash._grown.nonzero()[0]) == [16]  # 4 KiB blocks: segment 1's first
    assert _damaged_read(flash, addr, engine) == "corrupt"


# ------------------------------------------------------------------ held: cuts over the re-run

def _fresh(st: Store, start: int) -> bool:
    """The model's §12 step 1 test, written out again: the open segment is fresh."""
    s = st.open_seg
    if s is None:
        return False
    g = st.geo
    unit = st.wp - st.wp % g.prog_size
    return bool(unit + st.buf_prog < s * g.seg_size + HEADER_SIZE
                and int(st.seq[s]) >= start and not st.live[s] and not st.recovering)


class _FreshCounter:
    """Counts the model's fresh retirements while installed (a wrapper of
    Store._recover_failed_program)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        orig = Store._recover_failed_program

        def wrapped(st: Store, start: int) -> None:
            self.count += _fresh(st, start)
            orig(st, start)

        monkeypatch.setattr(Store, "_recover_failed_program", wrapped)


def _header_seqs_unique(flash: FlashSim, seg: int) -> bool:
    seqs = [h.seq for a in range(0, flash.size, seg)
            if (h := SegHeader.unpack(flash.read(a, HEADER_SIZE))) is not None]
    return len(seqs) == len(set(seqs))


def _segment_firsts(st: Store, flash: FlashSim, o: Oracle, op: tuple[Any, ...], i: int,
                    key: bytes | None) -> list[int]:
    """fail_after values that hit a program starting in a segment's header, found by running
    `op` on a copy."""
    st2, fl2, o2 = _copy(st, flash, o)
    seg, base, out = st.geo.seg_size, fl2.ops_count, []
    program = fl2.program

    def prog(addr: int, data: Any, *a: Any, **k: Any) -> None:
        if addr % seg < HEADER_SIZE:
            out.append(fl2.ops_count - base)
        program(addr, data, *a, **k)

    fl2.program = prog  # type: ignore[method-assign]
    try:
        _apply(st2, fl2, o2, op, i, "python", key)
    except (NoSpaceError, DeviceError):
        pass
    return sorted(set(out))


def _fresh_failures(st: Store, flash: FlashSim, o: Oracle, op: tuple[Any, ...], i: int,
                    key: bytes | None, counter: _FreshCounter, fails: int) -> list[int]:
    """Of the first `fails` of `_segment_firsts`, those whose failure, armed on a copy, makes
    a fresh retirement (counted by `counter`)."""
    out = []
    for f in _segment_firsts(st, flash, o, op, i, key)[:fails]:
        counter.count = 0
        st2, fl2, o2 = _copy(st, flash, o)
        fl2.fail_after(f)
        try:
            _apply(st2, fl2, o2, op, i, "python", key)
        except (NoSpaceError, DeviceError):
            pass
        if counter.count:
            out.append(f)
    return out


def _fresh_cut_sweep(geo: str, seed: int, nops: int, fails: int, window: int,
                     counter: _FreshCounter, churn: Any = _big_churn
                     ) -> tuple[int, int, list[Any]]:
    """The Python model: at every op of a churn, a program failure armed at each of the
    first `fails` programs that start in a segment's header; where that made a fresh
    retirement, a power cut at each operation from 2 before the failure to `window` after
    (the re-run), the op and a sync; then a mount under the strict oracle (also when no cut
    fired: the sync returned), unique header seqs on flash, and with one grown bad block at
    most, `_drain`. Returns (fresh trials, runs, violations)."""
    st, flash, key = _store(geo, "python", seed)
    ops = churn(st, seed, nops)
    o = Oracle()
    trials = runs = 0
    bad: list[Any] = []
    seg = st.geo.seg_size
    for i, op in enumerate(ops):
        for f in _fresh_failures(st, flash, o, op, i, key, counter, fails):
            trials += 1
            for c in range(max(0, f - 2), f + window):
                _, fl3, o3, cut = _fail_and_cut(st, flash, o, op, i, key, f, c)
                runs += 1
                try:
                    m = Store.mount(fl3 if cut else fl3.copy(), engine="python", key=key)
                    o3.check_after_cut(read_all(m, o3.keys()))
                    assert _header_seqs_unique(fl3, seg), "two headers share a seq"
                    if cut and int(fl3._grown.sum()) <= 1:
                        _drain(m)
                except (AssertionError, CorruptError, NoSpaceError) as e:
                    bad.append((geo, seed, i, op, f, c, cut, repr(e)[:100]))
                if not cut:
                    break
        try:
            st, flash, _ = _apply(st, flash, o, op, i, "python", key)
        except NoSpaceError:
            break
    return trials, runs, bad


def test_fresh_retirements_under_cuts_over_the_rerun(monkeypatch: pytest.MonkeyPatch) -> None:
    """Held (the fast share of the sweep in the module docstring): fresh retirements on
    16-block SPI NAND and nRF5340 (large chunks), every cut over the re-run: the strict
    oracle after the mount, no two headers with one seq, deletion working."""
    counter = _FreshCounter(monkeypatch)
    for geo, seed in (("nand16", 1), ("nrf16", 1)):
        trials, runs, bad = _fresh_cut_sweep(geo, seed, 40, 2, 50, counter)
        assert trials >= 5 and runs >= 200 and bad == []


@pytest.mark.slow
@pytest.mark.parametrize("geo", ["nor64k16", "nand16", "nrf16", "stm32", "nor64k16-aead",
                                 "nand16-aead", "nor64k16-ci8", "nand16-ci8"])
def test_fresh_retirements_under_cuts_sweep(geo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: the larger share of the sweep (one churn of 100 ops per geometry)."""
    counter = _FreshCounter(monkeypatch)
    trials, runs, bad = _fresh_cut_sweep(geo, 2, 100, 2, 60, counter)
    assert bad == [] and trials >= 3


# ------------------------------------------------------------------ held: engines agree

def _fresh_scripts(geo: str, seed: int, n: int, counter: _FreshCounter
                   ) -> list[list[tuple[Any, ...]]]:
    """Up to `n` scripts of a large-chunk churn: at an op where a failure armed on a program
    starting in a segment's header makes a fresh retirement in the model, that failure (and
    for every other script a power cut 0..59 operations after it), the op, a sync and the
    next 24 ops."""
    st, flash, key = _store(geo, "python", seed)
    ops = _big_churn(st, seed, 160)
    o = Oracle()
    out: list[list[tuple[Any, ...]]] = []
    for i, op in enumerate(ops):
        if len(out) >= n:
            break
        for f in _fresh_failures(st, flash, o, op, i, key, counter, 1):
            extra: list[tuple[Any, ...]] = [("fail", f)]
            if len(out) % 2:
                extra.append(("cut", f + (i * 7919) % 60))
            out.append(ops[:i] + extra + [op, ("sync",)] + ops[i + 1:i + 25])
        try:
            st, flash, _ = _apply(st, flash, o, op, i, "python", key)
        except NoSpaceError:
            break
    return out


@needs_c
@pytest.mark.parametrize("geo, seed", [("nand16", 1), ("nrf16-aead", 1)])
def test_fresh_failure_scripts_same_in_both_engines(geo: str, seed: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: scripts with a fresh retirement (and half of them a cut over the re-run) give
    the same outcomes under the strict oracle and the same images in both engines."""
    counter = _FreshCounter(monkeypatch)
    scripts = _fresh_scripts(geo, seed, 4, counter)
    assert len(scripts) == 4
    for ops in scripts:
        py = _outcome(geo, "python", ops, seed)
        c = _outcome(geo, "c", ops, seed)
        assert py[:2] == c[:2] and py[2] == c[2] and py[3] == c[3]


@needs_c
def test_trace_records_alike_across_a_fresh_retirement() -> None:
    """Held: the put whose spill fails fresh and runs again is traced once, as a WRITE, and
    both engines (the C one built with FSW_TRACE) emit the same records."""
    recs = []
    for engine in ("python", "c"):
        flash = _flash(NAND16)
        st = Store.format(flash, engine=engine)
        got: list[bytes] = []
        st.trace = got.append
        st.put(0, payload(0, 0, 100))
        st.put(2, payload(2, 0, 100_000))
        st.sync()
        flash.fail_after(14)
        st.put(1, payload(1, 0, 60_000))
        assert list(flash._grown.nonzero()[0]) == [1]
        st.sync()
        recs.append(got)
    assert recs[0] == recs[1] and len(recs[0]) == 5


# ------------------------------------------------------------------ noticed: before 2.7 too

@pytest.mark.parametrize("engine", ENGINES)
def test_found_unsynced_chunk_lost_after_a_third_failure(engine: str) -> None:
    """16 x 64 KiB NOR with ckpt_interval 8 (reserve 4): test_recovery_chunks._churn seed 19,
    its first 98 ops, with program failures armed before op 28 (fail_after(24)), op 64 (6)
    and op 97 (0), each firing (4 KiB blocks 53, 128, 189). Op 96 puts key 153 (24 B, not
    synced since); op 97's put fails in block 189 (the head's unit holding key 153): key 153
    is then lost. Found by a mainline-failure fuzz (program failures armed at random,
    a mounted copy checked after every sync); not cut down further. Any one or two of the
    three failures leave key 153 readable. The third failure's recovery opened the second
    one's grown block (a remount had counted it free), which failed too, and its rescue copy
    replaced the first, which alone held key 153's bytes. Fixed in 2.7 as landed: an empty
    segment (no chunk in it) failing during a recovery leaves that
    recovery's rescue copy in place (SPEC §12 step 5)."""
    st0, _, _ = _store("nor64k16-ci8", "python", 19)
    ops = _churn(st0, 19, 200)[:98]
    script = (ops[:28] + [("fail", 24)] + ops[28:64] + [("fail", 6)] + ops[64:97]
              + [("fail", 0)] + ops[97:])
    st, flash, _ = _run("nor64k16-ci8", engine, script, 19)
    assert list(flash._grown.nonzero()[0]) == [53, 128, 189]
    assert st.get(153) == payload(153, 96 + 2, 24)
