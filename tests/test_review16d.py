"""Independent review of store revision 2.4 (issue 16: a reserve for the recovery's checkpoint,
a recovery that finds no segment rebuilds the store from flash), on both engines.

What was attacked, and how:
(1) The wedge. A new churn (`_churn`): up to 300 keys (or max_keys) of 1..120 B, with chunks of a
quarter to two segments one put in nine and of exactly max_chunk one in thirty; trims,
trim_range of short sub-ranges, syncs, idle steps, unmount+mount, sync+copy+mount and power cuts
armed inside the next operations, all interleaved; a refused put trims a short sub-range around a
live key. Geometries the earlier reviews did not use: 8- and 16-segment devices, NOR with 8 KiB
and 32 KiB segments, ckpt_interval 1 and the largest the geometry allows, MCU internal flash
with 8 segments, SPI NAND and raw MLC with ckpt_interval 1, encrypted stores. Armed program or
erase failures (FlashSim.fail_after): none, one (the "not worn out" case of the issue), two and
three (counted, refusals allowed, loss never).
(2) Revival after a format over blocks that can neither be erased nor marked, on the new
geometries. (3) A program failure, then a power cut at every operation of its recovery, on the
new geometries, plaintext and encrypted. (4) One flipped byte in the replay window of a store
whose window is as large as the geometry allows. (5) MCU internal flash end to end.
Both engines: same outcomes and same image for the same operations.

The oracle is tests/storeutil.Oracle's (strict): a key untouched since the last sync reads its
synced value; one written since reads its synced value or one written since. A lost chunk may
read corrupt after a block failed (never an older value, never wrong bytes). Findings are strict
xfails with the trace of their cause; the scripts of ops were cut down from the churn by delta
debugging.

Found (both engines, identical outcomes and images); all but the encrypted trim are fixed or no
longer reached in revision 2.5 (a victim that fits moves into the hot head's room while a segment
is free, SPEC §10 step 3) and their tests, strict xfails until then, assert the fixed outcome:
- test_found_healthy_store_refuses_a_tiny_put: no grown bad block, four cuts; 453 B live of
  ~1 MB and a 1-byte put refused, after idle, a sync and a remount too.
- test_found_one_failure_store_refuses_a_tiny_put, ..._internal_flash_...: one program failure;
  66 B live (NAND) or 304 B (nRF5340), a 1-byte put refused until a remount or a trim that
  empties whole segments. Cause of the three: below reserve - 1 free segments (after a
  retirement, below reserve) no put is taken even into the hot head's room, and no segment is
  movable, so only trims can get the store back.
- test_found_encrypted_trim_refused_after_one_failure (still a strict xfail, 8 segments: zero
  slack): the wedge itself, a trim refused "no free segment left (worn-out device)" with one
  grown bad block, until idle(50) or a remount.
- test_found_refused_put_undoes_an_unsynced_trim (two grown blocks): the rebuild of §12 step 3
  behind a NoSpaceError like any other (the class remains possible with two or more grown
  blocks on an 8-segment store, SPEC §12 "Limits"); test_found_sync_fails_for_lack_of_space_
  after_two_grown_blocks (C): SPEC §6 says a sync never fails for lack of space (it now says a
  sync whose recovery finds no segment fails).
Still open:
- test_a_cut_leaves_the_armed_failure_as_it_would_page_by_page: FlashSim's fault counting
  depended on how many pages a call programs (fixed in the simulator since; the test passes).
- test_engines_read_the_same_bytes_at_mount: C reads 23% more bytes at mount than the model
  (programs, erases and images agree).
Held: no synced data lost, stale or wrong in any run (none, one, two or three grown blocks), no
revival, no stale read after a flipped byte, the recovery cut at each point, internal flash end
to end, and the engines identical wherever the faults they met were the same.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from flashswap import FlashSim, PowerCut, Store
from flashswap.errors import CorruptError, NoSpaceError, NotFoundError
from flashswap.store.layout import NO_KEY
from flashswap.store.parse import parse_segment
from tests.storeutil import (
    ENGINES,
    Oracle,
    check_only_new_store,
    image_copy,
    key_outcome,
    needs_c,
    payload,
)

KEY = bytes(range(16))
CORRUPT = b"<corrupt read>"  # what _read records for a key that reads corrupt

# name -> (part, capacity, format options); ckpt_interval 255 stands for the largest the
# geometry allows with the default reserve (_format works it out).
GEOS: dict[str, tuple[str, int, dict[str, int]]] = {
    # 8 segments
    "nand8": ("W25N01GV", 8 * 128 * 1024, {"ckpt_interval": 1}),
    "mlc8": ("FNNL41A-8Gb", 8 * 256 * 1024, {"ckpt_interval": 1}),
    "nrf8": ("nRF5340-APP", 32 * 1024, {}),
    "stm8": ("STM32L476-FLASH", 16 * 1024, {}),
    "nor8-32k": ("W25Q128JV", 256 * 1024, {"segment_size": 32768}),
    # 16 segments
    "nand16": ("W25N01GV", 16 * 128 * 1024, {}),
    "nrf16": ("nRF5340-APP", 64 * 1024, {"ckpt_interval": 1}),
    "stm16": ("STM32L476-FLASH", 32 * 1024, {}),
    "nor16-4k": ("W25Q128JV", 64 * 1024, {"segment_size": 4096, "ckpt_interval": 1}),
    "nor16-32k-cimax": ("W25Q128JV", 512 * 1024, {"segment_size": 32768, "ckpt_interval": 255}),
}
EIGHT = ["nand8", "mlc8", "nrf8", "stm8", "nor8-32k"]
SIXTEEN = ["nand16", "nrf16", "stm16", "nor16-4k", "nor16-32k-cimax"]


def _flash(geo: str, seed: int = 0) -> FlashSim:
    part, cap, _ = GEOS[geo]
    return FlashSim.from_part(part, capacity=cap, seed=seed)


def _format(flash: FlashSim, geo: str, engine: str, key: bytes | None) -> Store:
    part, cap, opts = GEOS[geo]
    opts = dict(opts)
    if opts.get("ckpt_interval") == 255:  # the largest allowed: nseg - reserve - 3
        seg = opts.get("segment_size", flash.erase_size)
        probe = Store.format(FlashSim.from_part(part, capacity=cap), engine="python",
                             segment_size=seg, ckpt_interval=1)
        opts["ckpt_interval"] = cap // seg - probe.stat()["reserve"] - 3
    return Store.format(flash, engine=engine, key=key, **opts)


def _read(st: Store, keys: set[int], res: dict[str, Any]) -> dict[int, bytes | None]:
    """Every key's value, None if absent, CORRUPT if it reads corrupt (counted)."""
    out: dict[int, bytes | None] = {}
    for k in keys:
        try:
            out[k] = st.get(k)
        except NotFoundError:
            out[k] = None
        except CorruptError:
            out[k] = CORRUPT
            res["corrupt_reads"] += 1
    return out


# ------------------------------------------------------------------ (1) the wedge: the churn


def _churn(geo: str, engine: str, seed: int, steps: int, nfail: int, *,
           key: bytes | None = None, raise_tiny: bool = False,
           tolerate: bool = False) -> dict[str, Any]:
    """The review's churn under the strict oracle (module doc); `nfail` failures armed at
    random steps in the middle two thirds, each on one of the next 30 programs or erases.

    Counts: trims refused (the driver stops at the first), small puts (<= 120 B) refused while
    less than 10% ("empty_put_refused") or 1% ("tiny_put_refused") of what format gave is live,
    reads that were corrupt, refused puts that rolled back writes since the last sync (a rebuild,
    SPEC §12 step 3: checked like a power cut), cuts, grown bad blocks. With `raise_tiny` the
    first small put refused below 1% live raises its NoSpaceError. A refused trim raises its
    NoSpaceError, or with `tolerate` (several grown bad blocks) ends the churn, as does any
    other operation refused ("other_refused"), and the reads are judged as after a power cut.
    A stale or wrong read raises AssertionError.
    Returns the counts, the outcomes (to compare the engines) and the image."""
    flash = _flash(geo, seed)
    st = _format(flash, geo, engine, key)
    s0 = st.stat()
    fresh, maxk, maxc, seg = (s0["free_bytes"], s0["max_keys"], s0["max_chunk"],
                              s0["segment_size"])
    rng = random.Random(seed)
    o = Oracle()
    log: list[Any] = []
    res: dict[str, Any] = {k: 0 for k in (
        "trim_refused", "empty_put_refused", "tiny_put_refused", "puts", "refused", "cuts",
        "corrupt_reads", "rollback", "other_refused")}
    fail_steps = sorted(rng.sample(range(steps // 6, 5 * steps // 6), nfail)) if nfail else []
    nkeys = min(maxk, 300)

    def remount(f: FlashSim) -> Store:
        return Store.mount(f, engine=engine, key=key)

    def agrees(got: bytes | None, want: bytes | None) -> bool:
        return got == want or (got == CORRUPT and want is not None)

    def trim(a: int, b: int) -> None:
        """trim_range(a, b) with the oracle told first; a refusal restores the oracle."""
        snap = dict(o.current), {j: list(v) for j, v in o.since.items()}
        o.trim_range(a, b)
        try:
            log.append(("trim_range", a, b, st.trim_range(a, b)))
        except NoSpaceError:
            res["trim_refused"] += 1
            o.current, o.since = snap
            raise

    for i in range(steps):
        if i in fail_steps:
            flash.fail_after(rng.randrange(0, 30))
        r = rng.random()
        try:
            if r < 0.03:
                st.unmount()
                o.sync()
                st = remount(flash)
                log.append(("remount", i))
                continue
            r -= 0.03
            if r < 0.03:
                st.sync()
                o.sync()
                flash = flash.copy()
                st = remount(flash)
                log.append(("copy", i))
                continue
            r -= 0.03
            if r < 0.03:
                flash.power_cut_after(rng.randrange(0, 40))
            r -= 0.03
            if r < 0.05:
                log.append(("idle", st.idle(rng.randint(1, 4))))
                continue
            r = rng.random()
            k = rng.randrange(nkeys)
            if r < 0.06:
                a = rng.randrange(nkeys)
                trim(a, a + rng.randrange(1, 30))
                continue
            if r < 0.14:
                trim(k, k)
                continue
            if r < 0.22:
                st.sync()
                o.sync()
                log.append(("sync", i))
                continue
            if r < 0.26 and flash._cut is None:
                got = _read(st, {k}, res)[k]
                assert agrees(got, o.current.get(k)), f"step {i}: get({k}) during the run"
                continue
            q = rng.random()
            n = (maxc if q < 0.03 else rng.randint(seg // 4, min(maxc, 2 * seg)) if q < 0.15
                 else rng.randint(1, 120))
            data = payload(k, rng.randrange(1 << 30), n)
            prev = o.current.get(k)
            o.put(k, data)
            res["puts"] += 1
            try:
                st.put(k, data)
                log.append(("put", i, k, n))
            except NoSpaceError:
                o.put_refused(k, prev)
                res["refused"] += 1
                log.append(("refused", i, k, n))
                if o.since:  # a refused put changes nothing, unless the store was rebuilt
                    now = _read(st, set(o.since), res)
                    if any(now[j] != o.current.get(j) for j in o.since):
                        res["rollback"] += 1
                        o.check_after_cut(_read(st, o.keys() | set(range(nkeys)), res))
                s = st.stat()
                index_full = s["live_chunks"] >= maxk and prev is None
                if not index_full and n <= 120 and s["live_bytes"] < fresh // 10:
                    res["empty_put_refused"] += 1
                    if s["live_bytes"] < fresh // 100:
                        res["tiny_put_refused"] += 1
                        if raise_tiny:
                            raise
                if o.current:
                    v = rng.choice(sorted(o.current))
                    trim(v, v + rng.randrange(3))
        except NoSpaceError:
            if not tolerate:
                raise
            # several grown bad blocks: a refused trim, or a sync whose recovery found no
            # segment (the store rebuilt from flash, SPEC §12 step 3), ends the churn; what the
            # store holds is then judged as after a power cut
            res["other_refused"] += not res["trim_refused"]
            o.check_after_cut(_read(st, o.keys() | set(range(nkeys)), res))
            break
        except PowerCut:
            flash.power_cut_after(None)
            res["cuts"] += 1
            st = remount(flash)
            log.append(("cut", i))
            o.check_after_cut(_read(st, o.keys() | set(range(nkeys)), res))
    flash.power_cut_after(None)
    flash.fail_after(None)
    got = _read(st, o.keys(), res)
    for k in o.keys():
        assert agrees(got[k], o.current.get(k)), f"final read of key {k}"
    res["grown"] = int(flash._grown.sum())
    res["log"] = log
    res["image"] = flash.image()
    return res


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, seed, key", [
    ("nand8", 100, None), ("nrf8", 100, KEY), ("nor16-4k", 102, KEY), ("mlc8", 104, None)])
def test_churn_one_failure_no_trim_refused_no_loss(engine: str, geo: str, seed: int,
                                                  key: bytes | None) -> None:
    res = _churn(geo, engine, seed, 300, 1, key=key)
    assert res["trim_refused"] == 0 and res["rollback"] == 0


# Found: a store with a few hundred bytes live refuses a 1-byte put. Both scripts were cut down
# from the churn (delta debugging) on the 8-block W25N01GV geometry with ckpt_interval 1 (default
# reserve 3). Ops: ("put", key, size) writes payload(key, op index, size); ("cut", n) arms
# a power cut after n more programs/erases (then a mount of the torn flash); ("fail", n) a
# program failure; "copy" is sync + mount of a copy; "remount" unmount + mount.

_HEALTHY_WEDGE: list[tuple[Any, ...]] = [
    ("cut", 26), ("put", 85, 113), ("sync",), ("put", 226, 16), ("sync",), ("put", 71, 52426),
    ("put", 237, 69293), ("put", 46, 52), ("cut", 6), ("put", 203, 54300), ("put", 5, 63),
    ("put", 147, 95677), ("put", 52, 131032), ("put", 44, 7), ("put", 94, 53550), ("cut", 29),
    ("put", 297, 125889), ("cut", 19), ("put", 177, 131032), ("trim_range", 147, 168),
    ("put", 195, 43), ("put", 237, 53780), ("put", 80, 58923), ("copy",), ("put", 215, 93),
    ("sync",), ("put", 80, 33), ("copy",), ("put", 3, 59479), ("trim_range", 50, 52),
    ("remount",), ("trim_range", 93, 94), ("sync",), ("put", 129, 33), ("sync",),
    ("trim_range", 3, 4), ("trim_range", 237, 239)]

_ONE_FAILURE_WEDGE: list[tuple[Any, ...]] = [
    ("put", 157, 57253), ("put", 155, 13), ("put", 78, 75771), ("put", 91, 19),
    ("put", 150, 59865), ("put", 80, 120295), ("put", 213, 3), ("put", 64, 69063), ("fail", 0),
    ("put", 86, 31), ("trim_range", 157, 159), ("sync",), ("trim_range", 78, 80),
    ("trim_range", 148, 150), ("trim_range", 47, 71)]

# nRF5340 internal flash, 8 segments of 4 KiB (32 KiB), default format.
_NRF_WEDGE: list[tuple[Any, ...]] = [
    ("put", 121, 23), ("put", 87, 60), ("put", 50, 1800), ("put", 135, 3), ("put", 100, 1225),
    ("put", 163, 42), ("put", 50, 82), ("put", 67, 66), ("put", 69, 89), ("put", 112, 52),
    ("put", 102, 66), ("put", 126, 82), ("put", 136, 20), ("cut", 33), ("put", 103, 109),
    ("put", 139, 114), ("fail", 18), ("put", 34, 30), ("trim_range", 139, 141), ("remount",),
    ("cut", 18), ("put", 80, 71), ("put", 100, 82), ("cut", 38), ("put", 144, 1293),
    ("cut", 22), ("trim_range", 87, 87), ("trim_range", 67, 69), ("idle", 3),
    ("trim_range", 72, 88), ("trim_range", 34, 34), ("trim_range", 50, 66),
    ("trim_range", 101, 102)]


# Encrypted (key=KEY), 8-block W25N01GV, ckpt_interval 1: one failure, a cut, remounts.
_AEAD_TRIM_WEDGE: list[tuple[Any, ...]] = [
    ('put', 62, 25), ('put', 174, 112524), ('put', 63, 66), ('put', 213, 40831),
    ('put', 169, 89262), ('remount',), ('put', 102, 101), ('put', 40, 62), ('put', 274, 16),
    ('put', 36, 88), ('put', 193, 119), ('put', 128, 131016), ('put', 99, 13), ('put', 133, 18),
    ('put', 6, 90), ('remount',), ('put', 140, 82), ('put', 86, 5), ('put', 165, 64),
    ('put', 182, 116498), ('put', 26, 28), ('put', 228, 118), ('put', 11, 28),
    ('trim_range', 112, 132), ('cut', 6), ('put', 288, 106), ('put', 220, 97645),
    ('put', 103, 65), ('put', 77, 67), ('put', 37, 110), ('put', 134, 84603), ('put', 272, 96354),
    ('sync',), ('put', 213, 78), ('sync',), ('put', 221, 51), ('put', 29, 131016), ('sync',),
    ('put', 149, 73), ('remount',), ('put', 281, 86), ('sync',), ('put', 111, 72), ('sync',),
    ('put', 169, 108), ('put', 160, 97), ('put', 168, 74), ('put', 4, 83), ('put', 265, 96),
    ('put', 54, 117), ('put', 268, 42154), ('remount',), ('put', 97, 98), ('remount',),
    ('trim_range', 134, 136), ('remount',), ('put', 291, 8), ('fail', 23), ('put', 267, 74045),
    ('trim_range', 102, 104), ('sync',), ('trim_range', 272, 273), ('sync',),
    ('trim_range', 62, 62), ('copy',), ('put', 28, 80), ('trim_range', 279, 281), ('copy',),
    ('put', 168, 87), ('trim_range', 63, 64), ('sync',), ('trim_range', 221, 221), ('copy',),
    ('put', 128, 98)]


def _script(geo: str, engine: str, ops: list[tuple[Any, ...]], seed: int,
            key: bytes | None = None) -> tuple[Store, FlashSim, list[Any]]:
    """Run a script of ops (above); a refused put is an outcome, a cut mounts the torn flash."""
    flash = _flash(geo, seed)
    st = _format(flash, geo, engine, key)
    out: list[Any] = []
    for i, op in enumerate(ops):
        try:
            if op[0] == "put":
                try:
                    st.put(op[1], payload(op[1], i, op[2]))
                    out.append("ok")
                except NoSpaceError:
                    out.append("refused")
            elif op[0] == "trim_range":
                out.append(st.trim_range(op[1], op[2]))
            elif op[0] == "sync":
                st.sync()
            elif op[0] == "remount":
                st.unmount()
                st = Store.mount(flash, engine=engine, key=key)
            elif op[0] == "copy":
                st.sync()
                flash = flash.copy()
                st = Store.mount(flash, engine=engine, key=key)
            elif op[0] == "cut":
                flash.power_cut_after(op[1])
            elif op[0] == "idle":
                st.idle(op[1])
            else:
                flash.fail_after(op[1])
        except PowerCut:
            flash.power_cut_after(None)
            st = Store.mount(flash, engine=engine, key=key)
            out.append("cut")
    return st, flash, out


def _tiny_put_after(st: Store) -> None:
    """A 1-byte put, then (if refused) the same after idle(50) and a sync: the wedge raises."""
    for _ in range(2):
        try:
            st.put(999, b"q")
            return
        except NoSpaceError:
            st.idle(50)
            st.sync()
    st.put(999, b"q")


@pytest.mark.parametrize("engine", ENGINES)
def test_found_healthy_store_refuses_a_tiny_put(engine: str) -> None:
    """Found by this review (strict xfail until revision 2.5): a healthy store (four power cuts)
    with 453 B live in 9 chunks refused a 1-byte put, also after idle(50), a sync and a
    remount. F was 1 with reserve 3, the hot head had 126 KiB of room, and no segment was
    movable to the cold head (cost <= room_cold + data_cap * (F + 1 - reserve) < 0). Since
    2.5 a victim whose chunks fit in the hot head's room, a trim record to spare, moves there
    (§10 step 3): a move that opens no segment frees one."""
    st, flash, out = _script("nand8", engine, _HEALTHY_WEDGE, 101)
    s = st.stat()
    assert (out.count("cut"), s["retired_blocks"], int(flash._grown.sum())) == (4, 0, 0)
    assert s["live_bytes"] == 453 and s["free_segments"] == 1
    _tiny_put_after(st)
    st = Store.mount(flash.copy(), engine=engine)
    st.put(999, b"q")


@pytest.mark.parametrize("engine", ENGINES)
def test_found_one_failure_store_refuses_a_tiny_put(engine: str) -> None:
    """Found by this review (strict xfail until revision 2.5): one program failure, then trims,
    66 B live in 4 chunks on 4 segments, F 2, reserve 3, one segment retired (a lean put then
    needs F >= reserve), the hot head open with 126 KiB of room: a 1-byte put was refused.
    Fixed as the healthy case above."""
    st, flash, out = _script("nand8", engine, _ONE_FAILURE_WEDGE, 1)
    s = st.stat()
    assert (s["retired_blocks"], int(flash._grown.sum()), s["live_bytes"]) == (1, 1, 66)
    _tiny_put_after(st)


@pytest.mark.parametrize("engine", ENGINES)
def test_found_internal_flash_one_failure_refuses_a_tiny_put(engine: str) -> None:
    """Found by this review (strict xfail until revision 2.5): nRF5340 internal flash (8 x 4 KiB),
    one program failure, four power cuts, a remount, trims, 304 B live, one segment retired: a
    1-byte put was refused. Fixed as the healthy case above."""
    st, flash, out = _script("nrf8", engine, _NRF_WEDGE, 102)
    s = st.stat()
    assert (out.count("cut"), s["retired_blocks"], int(flash._grown.sum())) == (4, 1, 1)
    assert s["live_bytes"] == 304
    _tiny_put_after(st)


# ------------------------------------------------------------------ the simulator's fault counts


def _cut_then_fail(pages_per_call: int, fail: int) -> tuple[int, int | None]:
    """Four 2 KiB pages programmed `pages_per_call` at a time, a cut armed on the second and a
    failure on page `fail + 1`: the operations counted and the failure still armed."""
    flash = FlashSim.from_part("W25N01GV", capacity=8 * 128 * 1024)
    flash.fail_after(fail)
    flash.power_cut_after(1)
    data = bytes(range(256)) * 32
    with pytest.raises(PowerCut):
        for a in range(0, len(data), 2048 * pages_per_call):
            flash.program(a, data[a:a + 2048 * pages_per_call])
    return flash.ops_count, flash._fail


@pytest.mark.parametrize("fail", [2, 10])
def test_a_cut_leaves_the_armed_failure_as_it_would_page_by_page(fail: int) -> None:
    """Found here: FlashSim.program took every page of a multi-page program off fail_after's
    count before the cut tore one, and with the failure inside the program it disarmed it; the
    model programs several pages per call and C one, so the same armed faults fired at
    different operations in the two engines (nand8 seed 103, three failures: two grown bad
    blocks in C, none in the model)."""
    assert _cut_then_fail(4, fail) == _cut_then_fail(1, fail)


# ------------------------------------------------------------------ (3) failure, then a cut


def _near_full(geo: str, engine: str, seed: int, key: bytes | None
               ) -> tuple[FlashSim, Store, Oracle]:
    """A store filled until a put is refused with chunks of a quarter to one segment and a
    small key after each (so each segment holds one), four of them trimmed, synced."""
    flash = _flash(geo, seed)
    st = _format(flash, geo, engine, key)
    seg, maxc = st.stat()["segment_size"], st.stat()["max_chunk"]
    rng = random.Random(seed)
    o = Oracle()
    for i in range(200):
        for k, n in ((100 + i, rng.randint(seg // 4, min(maxc, seg))), (i, rng.randint(1, 90))):
            d = payload(k, i, n)
            o.put(k, d)
            try:
                st.put(k, d)
            except NoSpaceError:
                o.put_refused(k, None)
                break
        else:
            continue
        break
    for k in rng.sample(sorted(o.current), 4):
        o.trim(k)
        st.trim(k)
    st.sync()
    o.sync()
    return flash, st, o


def _fail_cut_run(geo: str, engine: str, seed: int, key: bytes | None, fail_at: int,
                  cut: int | None) -> tuple[int, bytes]:
    """Near full (above), a failure armed on operation fail_at, a cut on operation `cut`, in
    25 operations of puts up to max_chunk, trims, trim_range, syncs and idle steps; then the
    strict oracle after a mount; then trimming everything works and a put is taken. Returns
    the operations the run took and the image the mount found."""
    flash, st, o = _near_full(geo, engine, seed, key)
    maxc = st.stat()["max_chunk"]
    start = flash.ops_count
    flash.fail_after(fail_at)
    flash.power_cut_after(cut)
    rng = random.Random(seed + 1)
    try:
        for i in range(25):
            r, k = rng.random(), rng.choice(sorted(o.keys()) or [0])
            if r < 0.5:
                d = payload(k, 1000 + i, rng.choice([rng.randint(1, 90), maxc]))
                prev = o.current.get(k)
                o.put(k, d)
                try:
                    st.put(k, d)
                except NoSpaceError:
                    o.put_refused(k, prev)
                    o.trim(k)
                    st.trim(k)
            elif r < 0.7:
                o.trim(k)
                st.trim(k)
            elif r < 0.8:
                o.trim_range(k, k + 40)
                st.trim_range(k, k + 40)
            elif r < 0.95:
                st.sync()
                o.sync()
            else:
                st.idle(2)
    except PowerCut:
        pass
    took = flash.ops_count - start
    flash.power_cut_after(None)
    flash.fail_after(None)
    st = Store.mount(flash, engine=engine, key=key)
    res = {"corrupt_reads": 0}
    got = _read(st, o.keys(), res)
    assert res["corrupt_reads"] == 0, f"cut {cut}: a chunk reads corrupt"
    o.check_after_cut(got)
    image = flash.image()
    st.trim_range(0, NO_KEY - 1)  # never refused with one grown bad block
    st.put(7, b"after")
    st.sync()
    assert Store.mount(flash.copy(), engine=engine, key=key).keys() == [7]
    return took, image


def _fail_cut_every(geo: str, engine: str, seed: int, key: bytes | None, fail_at: int,
                    limit: int | None = None) -> int:
    total, _ = _fail_cut_run(geo, engine, seed, key, fail_at, None)
    cuts = range(fail_at, total + 1)
    n = 0
    for cut in (cuts if limit is None else cuts[:limit]):
        _fail_cut_run(geo, engine, seed, key, fail_at, cut)
        n += 1
    return n


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, key, fail_at", [("nor16-4k", KEY, 3), ("nrf8", None, 5)])
def test_failure_near_full_then_cut_at_each_point(engine: str, geo: str, key: bytes | None,
                                                  fail_at: int) -> None:
    assert _fail_cut_every(geo, engine, 11, key, fail_at, limit=8) == 8


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", EIGHT + SIXTEEN)
@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aead"])
def test_failure_near_full_then_cut_at_every_point(engine: str, geo: str,
                                                   key: bytes | None) -> None:
    for seed, fail_at in ((12, 0), (13, 4), (14, 9)):
        _fail_cut_every(geo, engine, seed, key, fail_at)


@needs_c
@pytest.mark.parametrize("geo, key", [("nrf8", KEY), ("nand8", None)])
def test_failure_near_full_then_cut_same_image_in_both_engines(geo: str,
                                                              key: bytes | None) -> None:
    for cut in (None, 6, 9, 17):
        assert _fail_cut_run(geo, "python", 15, key, 4, cut) == _fail_cut_run(
            geo, "c", 15, key, 4, cut)


# ------------------------------------------------------------------ (4) one flipped byte


def _versions_image(geo: str, key: bytes | None, seed: int
                    ) -> tuple[FlashSim, dict[int, bytes], list[int]]:
    """16 keys each written 8 times (1..1500 B, at most a quarter of max_chunk), trim_range of
    sub-ranges between, syncs, a final sync: the image, what every key must read (absent if
    trimmed), and the address of every record header in the replay window."""
    flash = _flash(geo, seed)
    st = _format(flash, geo, "python", key)
    rng = random.Random(seed)
    want: dict[int, bytes] = {}
    top = min(1500, st.stat()["max_chunk"] // 4)
    for i in range(128):
        k = rng.randrange(16)
        want[k] = payload(k, i, rng.randint(1, top))
        try:
            st.put(k, want[k])
        except NoSpaceError:  # small devices: make room, as a caller would
            del want[k]
            st.trim(k)
        if i % 11 == 10:
            a = rng.randrange(16)
            b = a + rng.randrange(3)
            st.trim_range(a, b)
            want = {j: v for j, v in want.items() if not a <= j <= b}
        if i % 17 == 0:
            st.sync()
    st.sync()
    assert sorted(want) == st.keys()
    seg, img = st.geo.seg_size, flash.image()
    heads = []
    window = [s for s in range(st.geo.nseg) if st.state[s] == 2 and not st._outside_window()[s]]
    for s in window:
        recs, _ = parse_segment(img[s * seg:(s + 1) * seg], s * seg, st.geo.prog_size,
                                st.geo.page_once, st.max_chunk, st.tag)
        heads += [r.addr for r in recs if r.rtype != 0xFF]
    return flash, want, heads


def _flip_window(geo: str, key: bytes | None, seed: int, engines: list[str],
                 stride: int, every: int = 1) -> int:
    """Flip one byte (every `stride`-th byte of every record header in the window, XOR with a
    random nonzero value): every key reads its value or corrupt, never an older version, and a
    trimmed key never comes back; the engines agree."""
    flash, want, heads = _versions_image(geo, key, seed)
    base = flash.image()
    rng = random.Random(seed)
    n = 0
    for h in heads[::every]:
        for p in range(h + rng.randrange(stride), h + 32, stride):
            img = bytearray(base)
            img[p] ^= rng.randrange(1, 256)
            outs = []
            for engine in engines:
                try:
                    st = Store.mount(image_copy(flash, bytes(img)), engine=engine, key=key)
                except CorruptError:
                    outs.append("corrupt")
                    continue
                outs.append([key_outcome(st, k) for k in range(17)])
            assert all(o == outs[0] for o in outs), f"byte {p:#x}: engines differ"
            n += 1
            if outs[0] == "corrupt":
                continue
            for k, (kind, got) in enumerate(outs[0]):
                assert kind == "corrupt" or got == want.get(k), (
                    f"byte {p:#x} (record at {h:#x}): key {k} read {kind}"
                    f"{'' if got is None else f' of {len(got)} B'}, want "
                    f"{'absent' if k not in want else f'{len(want[k])} B'}")
    return n


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aead"])
def test_one_flipped_byte_in_a_wide_window(key: bytes | None) -> None:
    """The largest window the geometry allows (ckpt_interval 9 of 16 segments, reserve 4):
    one byte of every third record header."""
    engines = ["python"] if needs_c.args[0] else ["python", "c"]
    assert _flip_window("nor16-32k-cimax", key, 21, engines, 32, every=3) > 40


@pytest.mark.slow
@needs_c
@pytest.mark.parametrize("geo", ["nor16-32k-cimax", "nor8-32k", "stm16", "nand16"])
@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aead"])
def test_one_flipped_byte_at_every_header_byte(geo: str, key: bytes | None) -> None:
    for seed in (22, 23):
        _flip_window(geo, key, seed, ["python", "c"], 1)


# ------------------------------------------------------------------ (2) the revival


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("old, new, bad", [
    ({"segment_size": 32768, "ckpt_interval": 1}, {"segment_size": 4096}, [0, 8]),
    ({"segment_size": 4096, "ckpt_interval": 55}, {"segment_size": 32768}, [0, 1, 9]),
    ({"segment_size": 32768, "key": KEY}, {"segment_size": 32768, "ckpt_interval": 1}, [0, 24]),
    ({"segment_size": 4096, "max_keys": 60}, {"segment_size": 4096, "max_keys": 160},
     [0, 2, 3])])
@pytest.mark.parametrize("unmount", [True, False], ids=["unmount", "cut"])
def test_revival_with_other_options_over_dead_blocks(engine: str, old: dict[str, Any],
                                                     new: dict[str, int], bad: list[int],
                                                     unmount: bool) -> None:
    """W25Q128JV, 256 KiB: an old store (other segment size, ckpt_interval at an extreme, an
    encrypted one, a small index) full of data; 4 KiB sectors at old header positions can be
    neither erased nor programmed; a format with other options: no old key is ever visible."""
    flash = FlashSim.from_part("W25Q128JV", capacity=256 * 1024, wear="error",
                               weibull=(2.0, 1e9), seed=31)
    rng = random.Random(31)
    st = Store.format(flash, engine=engine, **old)
    top = min(9000, st.stat()["max_chunk"])
    for i in range(40):
        k = rng.randrange(30)
        try:
            st.put(k, payload(k, i, rng.randint(1, top)))
        except NoSpaceError:
            st.trim(k)
    st.unmount()
    for b in bad:
        flash.block_endurance[b] = flash.wear_counts[b]
    fresh = Store.format(flash, engine=engine, **new)
    want = {30 + i: payload(30 + i, 99, 1 + 377 * i) for i in range(5)}
    check_only_new_store(fresh, flash, engine, want, rng, unmount, rounds=40, top=3000)


# ------------------------------------------------------------------ the churn: engines, counts


@needs_c
@pytest.mark.parametrize("geo, seed, key", [("nand8", 200, None), ("stm8", 201, KEY),
                                            ("nor16-32k-cimax", 202, None)])
def test_churn_same_outcomes_and_image_in_both_engines(geo: str, seed: int,
                                                       key: bytes | None) -> None:
    """No failure armed (with one, FlashSim's fault count differs by how many pages a call
    programs: test_a_cut_leaves_the_armed_failure_as_it_would_page_by_page)."""
    py, c = (_churn(geo, e, seed, 300, 0, key=key) for e in ("python", "c"))
    assert py["log"] == c["log"] and py["image"] == c["image"]
    assert {k: v for k, v in py.items() if k not in ("log", "image")} == {
        k: v for k, v in c.items() if k not in ("log", "image")}


def _counts(geos: list[str], engine: str, nfail: int, seeds: range, key: bytes | None
            ) -> dict[str, int]:
    """Runs of the churn with `nfail` failures armed: how many ended with a trim refused, saw a
    small put refused below 1% live, rolled back writes (a rebuild), and the grown bad blocks.
    A loss (stale or wrong read) fails the test."""
    out = {"runs": 0, "trim_refused": 0, "tiny_put_refused": 0, "rollback": 0, "other_refused": 0,
           "grown": 0}
    for geo in geos:
        for seed in seeds:
            res = _churn(geo, engine, seed, 300, nfail, key=key, tolerate=True)
            out["runs"] += 1
            for k in ("trim_refused", "tiny_put_refused", "rollback", "other_refused"):
                out[k] += res[k] > 0
            out["grown"] += res["grown"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("size, key", [
    (8, None), (16, None),
    pytest.param(8, KEY, marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
        "nand8 seed 300: a trim refused after one failure, on a zero-slack store "
        "(test_found_encrypted_trim_refused_after_one_failure)"))),
    (16, KEY)], ids=["8-plain", "16-plain", "8-aead", "16-aead"])
def test_one_failure_never_refuses_a_trim_nor_loses_data(engine: str, size: int,
                                                         key: bytes | None) -> None:
    """Seeds 200..205 (plain) or 300..304 (aead) on the five geometries of each size: no trim
    refused with one failure (the tiny-put refusals are the findings above)."""
    seeds = range(200, 206) if key is None else range(300, 305)
    res = _counts(EIGHT if size == 8 else SIXTEEN, engine, 1, seeds, key)
    assert res["trim_refused"] == 0, res


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("size", [8, 16])
@pytest.mark.parametrize("nfail", [2, 3])
def test_two_or_three_failures_never_lose_data(engine: str, size: int, nfail: int) -> None:
    """Refusals are allowed with two or three grown bad blocks, and counted (the review's
    report); a stale or wrong read is not."""
    res = _counts(EIGHT if size == 8 else SIXTEEN, engine, nfail, range(200, 206), None)
    assert res["runs"] == 30, res


@needs_c
def test_found_sync_fails_for_lack_of_space_after_two_grown_blocks() -> None:
    """Found by this review (strict xfail until revision 2.5): with three failures armed on
    8-block raw MLC (two grew bad), C's sync raised NoSpaceError after its recovery found no
    segment and the store was rebuilt (§12 step 3; SPEC §6 now says so). Since 2.5 this churn
    ends without that: its puts free segments by moving victims into the hot head's room
    instead of leaving them to a recovery. The churn's own checks (strict oracle, no loss)
    hold."""
    _churn("mlc8", "c", 202, 300, 3)


# ------------------------------------------------------------------ (5) MCU internal flash

_MCU = ["nrf8", "stm8", "nrf16", "stm16"]


def _mcu_run(geo: str, engine: str, key: bytes | None, cut: int | None) -> tuple[int, bytes]:
    """Chunks of odd lengths (never whole words: 1, 3, 5 .. and max_chunk - 1), each synced
    (a partial word ends every sync), trims, trim_range, idle; a cut at operation `cut`; the
    strict oracle after the mount; then trimming everything, two chunks of max_chunk, an
    unmount and a mount that reads them back. Returns the operations and the image."""
    flash = _flash(geo, 41)
    st = _format(flash, geo, engine, key)
    maxc = st.stat()["max_chunk"]
    rng = random.Random(41)
    o = Oracle()
    start = flash.ops_count
    flash.power_cut_after(cut)
    try:
        for i in range(40):
            k = rng.randrange(12)
            if i % 7 == 6:
                o.trim_range(k, k + 3)
                st.trim_range(k, k + 3)
                continue
            n = rng.choice([1, 3, 5, 7, 2 * rng.randrange(maxc // 2) + 1, maxc - 1])
            d = payload(k, i, n)
            prev = o.current.get(k)
            o.put(k, d)
            try:
                st.put(k, d)
            except NoSpaceError:
                o.put_refused(k, prev)
                o.trim(k)
                st.trim(k)
            if i % 3:
                st.sync()
                o.sync()
            else:
                st.idle(1)
        flash.power_cut_after(None)
    except PowerCut:
        flash.power_cut_after(None)
        st = Store.mount(flash, engine=engine, key=key)
        res = {"corrupt_reads": 0}
        o.check_after_cut(_read(st, o.keys() | set(range(12)), res))
        assert res["corrupt_reads"] == 0
    took = flash.ops_count - start
    image = flash.image()
    st.trim_range(0, NO_KEY - 1)
    big = {50: payload(50, 0, maxc), 51: payload(51, 0, maxc)}
    for k, v in big.items():
        st.put(k, v)
    st.unmount()
    st = Store.mount(flash, engine=engine, key=key)
    assert {k: st.get(k) for k in st.keys()} == big
    return took, image


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, key", [("nrf8", None), ("stm8", KEY)])
def test_internal_flash_end_to_end_with_cuts(engine: str, geo: str, key: bytes | None) -> None:
    total, _ = _mcu_run(geo, engine, key, None)
    for cut in range(0, total, max(1, total // 4)):
        _mcu_run(geo, engine, key, cut)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", _MCU)
@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aead"])
def test_internal_flash_cut_at_every_operation(engine: str, geo: str,
                                               key: bytes | None) -> None:
    total, _ = _mcu_run(geo, engine, key, None)
    for cut in range(total):
        _mcu_run(geo, engine, key, cut)


@needs_c
@pytest.mark.parametrize("geo, key", [("nrf16", KEY), ("stm16", None)])
def test_internal_flash_same_image_in_both_engines(geo: str, key: bytes | None) -> None:
    for cut in (None, 17):
        assert _mcu_run(geo, "python", key, cut) == _mcu_run(geo, "c", key, cut)


@pytest.mark.parametrize("engine", [
    pytest.param(e, marks=[pytest.mark.xfail(strict=True, raises=NoSpaceError, reason=(
        "the wedge of issue 16 with one grown bad block, on a zero-slack store: an encrypted "
        "8-block NAND store (ckpt_interval 1, reserve 3), one program failure, a cut, "
        "remounts; with 26% of it live trim_range(193, 193) is refused 'no free segment left "
        "(worn-out device)'. F is 0: the only dead segment is pinned in the replay window "
        "(stat counts it free), the hot head's room is below an encrypted trim's 48 B, and the "
        "forced checkpoint that would release the pinned segment needs a free one. idle(50) "
        "or a remount (which forgets the bad block) lets the same trim through. A trim rule "
        "that took the cold head's room whenever the hot head had none fixed it but let a "
        "synced trim on the cold log read stale after one flipped byte "
        "(test_review16e.test_found_synced_cold_trim_undone_by_a_flipped_byte): withdrawn"))]
        + ([needs_c] if e == "c" else [])) for e in ("python", "c")])
def test_found_encrypted_trim_refused_after_one_failure(engine: str) -> None:
    st, flash, out = _script("nand8", engine, _AEAD_TRIM_WEDGE, 300, KEY)
    s = st.stat()
    assert (out.count("cut"), s["retired_blocks"], int(flash._grown.sum())) == (1, 1, 1)
    assert s["live_bytes"] == 273574
    st.trim_range(193, 193)


# Two program failures on the 8-block NAND geometry; the last op before the put is a trim.
_ROLLBACK: list[tuple[Any, ...]] = [
    ('put', 165, 36), ('put', 210, 131032), ('put', 298, 89580), ('put', 9, 122624),
    ('put', 190, 91788), ('put', 294, 54255), ('put', 210, 73), ('put', 133, 100989),
    ('fail', 10), ('put', 158, 73714), ('fail', 9), ('trim_range', 165, 165), ('copy',),
    ('put', 294, 69), ('idle', 1), ('remount',), ('put', 139, 109), ('copy',),
    ('trim_range', 180, 205), ('remount',), ('trim_range', 202, 225), ('sync',),
    ('put', 137, 113), ('remount',), ('put', 142, 59), ('copy',), ('trim_range', 139, 139)]


@pytest.mark.parametrize("engine", ENGINES)
def test_found_refused_put_undoes_an_unsynced_trim(engine: str) -> None:
    """Found by this review (strict xfail until revision 2.5): with two grown bad blocks, a
    put's recovery found no segment and the store was rebuilt from flash (§12 step 3): the put
    failed with NoSpaceError, and key 139, trimmed since the last sync, read its old value
    again. Since 2.5 (a victim that fits moves into the hot head's room, §10 step 3) this
    script's put finds room, and the trim stands. The class remains possible with two or
    more grown bad blocks on a store with no segment to spare (SPEC §12 "Limits")."""
    st, flash, _ = _script("nand8", engine, _ROLLBACK, 103)
    assert key_outcome(st, 139) == ("absent", None)
    st.put(171, payload(171, 0, 50298))
    assert int(flash._grown.sum()) == 2
    assert key_outcome(st, 139) == ("absent", None), "a trimmed key came back"
    assert st.get(171) == payload(171, 0, 50298)


def _mount_reads(engine: str) -> int:
    """Bytes the mount of a small NAND store reads (a few chunks written, GC run, unmounted)."""
    flash = _flash("nand8", 5)
    st = _format(flash, "nand8", engine, None)
    st.put(1, payload(1, 0, 100))
    st.put(2, payload(2, 0, 60000))
    for _ in range(2):
        for i in range(3):
            st.put(3 + i, payload(3, i, 100000))
    st.unmount()
    before = int(flash.read_bytes.sum())
    Store.mount(flash, engine=engine)
    return int(flash.read_bytes.sum()) - before


@needs_c
@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "programs, erases and images agree, reads do not: this mount reads 162,062 B in C against "
    "the model's 131,394 (+23%); a 150-operation churn on the same geometry read 16.7 MB in C "
    "against 11.4 MB (simulated time and energy +23%). Traced (2026-12-08): the model reads "
    "each window segment whole, once; the C library walks records through a 64-byte buffer "
    "and walks a log's last segment twice (good_end finds where a tear may lie, then the "
    "walk), and the checkpoint search walks the checkpoint segment before the replay does: "
    "its records are read four times. The C engine's binding also probes every header "
    "before the library reads them (+320 B here). Read patterns are no part of the format; "
    "on the sample trace the projections agree (test_engines_project_the_same_lifetime)"))
def test_engines_read_the_same_bytes_at_mount() -> None:
    assert _mount_reads("c") == _mount_reads("python")


@needs_c
def test_engines_project_the_same_lifetime() -> None:
    """What finding 7's read difference costs a user: on the sample trace, on NOR and NAND
    with a 4 MiB partition (GC at work), both engines project the same years from the same
    programs and erases; their reads differ by 0.1% (NOR) and 0.24% (NAND), their I/O time
    by under 0.02% (measured 2026-12-08)."""
    from analyzer.lifetime import Options, analyze
    from analyzer.workload import Workload
    wl = Workload.load(Path(__file__).resolve().parent.parent / "traces"
                       / "mobilenet_v2_128k.bin")
    for part in ("W25Q128JV", "W25N01GV"):
        c, py = (analyze(wl, part, "flashswap", Options(capacity=4 << 20, implementation=e)).data
                 for e in ("c", "python"))
        assert c["engine"]["implementation"] == "c" and py["engine"]["implementation"] == "python"
        assert c["years"] == py["years"] and c["years"] > 1
        for k in ("programmed_bytes_per_inference", "erases_per_inference"):
            assert c["traffic"][k] == py["traffic"][k]
        reads = c["traffic"]["read_bytes_per_inference"] / py["traffic"]["read_bytes_per_inference"]
        assert 1 <= reads < 1.005
        assert c["io_seconds_per_inference"] == pytest.approx(py["io_seconds_per_inference"],
                                                              rel=5e-4)
