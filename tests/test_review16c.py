"""Independent review of store revision 2.3 (issue 16's wedge fix "lean puts", issue 17's
AES-128-GCM), on both engines.

(1) The wedge: churn near full with exactly ONE program failure, remounts, syncs then copies,
and power cuts inside operations, on NAND (8 blocks), NOR 64 KiB segments, raw MLC NAND and
MCU internal flash, plaintext and encrypted; a refused put trims a live key and no trim may be
refused. Also a new workload: hundreds of small keys near max_keys with occasional big
chunks, trim_range over everything and idle steps. At the end trimming everything gives back
what format gave (less retired segments) and a put works.
(2) Regressions of "lean": a healthy store, cut at every operation of a short script, must
take a small put while little of it is live.
(3) Revival, program failure then a cut, one flipped byte in the replay window: spot checks on
new seeds, encrypted and not.
(4) Issue 17: no plaintext on flash, a flipped ciphertext bit reads corrupt, images identical
in both engines, a missing or wrong key fails cleanly and changes nothing.
(5) Both engines: same outcomes and same image for the same operations.

Helpers come from tests/storeutil.py (the strict oracle) and tests/geometries.py.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from flashswap import FlashSim, PowerCut, Store
from flashswap.errors import CorruptError, FlashswapError, NoSpaceError
from flashswap.store.layout import NO_KEY, T_CHECKPOINT
from flashswap.store.parse import parse_segment
from tests.geometries import pick
from tests.storeutil import (
    ENGINES,
    Oracle,
    image_copy,
    key_outcome,
    needs_c,
    oracle_workload,
    payload,
    read_all,
)

KEY = bytes(range(16))
_GEOS = pick("nand", "nor64k", "mlc", "stm", "nrf")


def _flash(geo: str, **kw: Any) -> FlashSim:
    part, cap, _ = _GEOS[geo]
    return FlashSim.from_part(part, capacity=cap, **kw)


def _format(flash: FlashSim, geo: str, engine: str, key: bytes | None, **over: int) -> Store:
    opts = dict(_GEOS[geo][2])
    opts.update(over)
    return Store.format(flash, engine=engine, key=key, **opts)


# ------------------------------------------------------------------ (1) the wedge


def _churn(geo: str, engine: str, seed: int, steps: int, *, key: bytes | None = None,
           small: bool = False, remount_p: float = 0.03, copy_p: float = 0.03,
           cut_p: float = 0.03, idle_p: float = 0.0, fail: bool = True
           ) -> tuple[list[Any], bytes]:
    """Churn near full under the strict oracle. `small`: keys 0..max_keys-1 (max_keys 200 on
    the large parts) of 1..200 bytes with a big chunk (up to two segments) one put in 25,
    trim_range over everything now and then; else 40 keys of 1..64 B or up to two segments.
    Exactly one program failure (fail_after) armed in the middle third when `fail`. Between
    steps: unmount+mount, sync+copy+mount, a power cut armed inside the next operation(s),
    idle(). A refused put trims a live key; a trim is never refused.
    Returns the outcomes and the final image (to compare the engines)."""
    flash = _flash(geo, seed=seed)
    over = {"max_keys": 200} if small and geo in ("nand", "nor64k", "mlc") else {}
    st = _format(flash, geo, engine, key, **over)
    fresh = st.stat()["free_segments"]
    nkeys = st.stat()["max_keys"] if small else 40
    top = min(2 * st.stat()["segment_size"], st.stat()["max_chunk"])
    rng = random.Random(seed)
    fail_step = rng.randrange(steps // 3, 2 * steps // 3) if fail else -1
    o = Oracle()
    log: list[Any] = []

    def remount(f: FlashSim) -> Store:
        return Store.mount(f, engine=engine, key=key)

    for i in range(steps):
        if i == fail_step:
            flash.fail_after(rng.randrange(0, 40))
            log.append(("arm fail", i, flash._fail))
        r = rng.random()
        try:
            if r < remount_p:
                st.unmount()
                o.sync()
                st = remount(flash)
                log.append(("remount", i))
            elif r < remount_p + copy_p:
                st.sync()
                o.sync()
                flash = flash.copy()
                st = remount(flash)
                log.append(("sync, copy, mount", i))
            elif r < remount_p + copy_p + cut_p:
                flash.power_cut_after(rng.randrange(0, 25))
                log.append(("arm cut", i, flash._cut))
            elif r < remount_p + copy_p + cut_p + idle_p:
                log.append(("idle", st.idle(rng.randint(1, 4))))
            k = rng.randrange(nkeys)
            r = rng.random()
            if small and r < 0.01:
                o.trim_range(0, NO_KEY - 1)
                log.append(("trim_range", st.trim_range(0, NO_KEY - 1)))
                continue
            if small and r < 0.06:
                o.trim(k)
                log.append(("trim", k, st.trim(k)))
                continue
            if small and r < 0.08:
                st.sync()
                o.sync()
                continue
            if small:
                n = rng.randint(1, top) if rng.random() < 0.04 else rng.randint(1, 200)
            else:
                n = rng.choice([rng.randint(1, 64), rng.randint(1, top)])
            data = payload(k, i, n)
            prev = o.current.get(k)
            o.put(k, data)
            try:
                st.put(k, data)
                log.append(("put", k))
            except NoSpaceError as e:
                o.put_refused(k, prev)
                log.append(("refused", k))
                assert o.current, f"step {i}: a {n}-byte put refused on an empty store: {e}"
                victim = rng.choice(sorted(o.current))
                o.trim(victim)
                try:
                    assert st.trim(victim) is True
                except NoSpaceError as e2:
                    raise AssertionError(f"step {i}: trim({victim}) refused: {e2}") from e2
        except PowerCut:
            flash.power_cut_after(None)
            log.append(("cut", i, "failure pending" if flash._fail is not None else ""))
            st = remount(flash)
            log.append(("mounted", st.stat()["free_segments"], st.stat()["live_bytes"]))
            o.check_after_cut(read_all(st, o.keys() | {k}))
    flash.power_cut_after(None)
    flash.fail_after(None)
    assert read_all(st, o.keys()) == {k: o.current.get(k) for k in o.keys()}
    assert st.trim_range(0, NO_KEY - 1) == len(o.current)
    s = st.stat()
    # What format gave (one segment open), less retired ones; one more when a mount left the
    # hot head without an open segment (a forgotten grown bad block counts as free, §12).
    assert s["free_segments"] + s["retired_blocks"] in (fresh, fresh + 1), (
        s["free_segments"], s["retired_blocks"], fresh)
    st.put(5, b"y")
    st.unmount()
    st = remount(flash)
    assert st.keys() == [5] and st.get(5) == b"y"
    log.append(("retired", s["retired_blocks"], "grown", int(flash._grown.sum())))
    return log, flash.image()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, seed, key", [
    ("nand", 31, None), ("nand", 32, KEY), ("nor64k", 33, KEY), ("mlc", 34, None),
    ("stm", 35, KEY), ("nrf", 36, None)])
def test_churn_one_failure_cuts_remounts(engine: str, geo: str, seed: int,
                                         key: bytes | None) -> None:
    _churn(geo, engine, seed, 150, key=key)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, seed, key", [("nand", 41, KEY), ("stm", 42, None),
                                            ("nor64k", 43, None)])
def test_many_small_keys_with_big_chunks(engine: str, geo: str, seed: int,
                                         key: bytes | None) -> None:
    _churn(geo, engine, seed, 400, key=key, small=True, idle_p=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", sorted(_GEOS))
@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aead"])
def test_churn_many_seeds(engine: str, geo: str, key: bytes | None) -> None:
    for seed in range(8):
        _churn(geo, engine, 500 + seed, 300, key=key)
        _churn(geo, engine, 600 + seed, 500, key=key, small=True, idle_p=0.05)


# Found here (both engines give the same outcomes and images on each).


@pytest.mark.parametrize("engine", ENGINES)
def test_found_one_failure_wedges_an_empty_encrypted_nand_store(engine: str) -> None:
    _churn("nand", engine, 2014, 300, key=KEY, remount_p=0, copy_p=0, cut_p=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_found_one_failure_then_copies_wedge_an_empty_store(engine: str) -> None:
    _churn("nand", engine, 1003, 300, key=KEY)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, seed", [("nand", 1004), ("mlc", 1005), ("nrf", 1005)])
def test_found_trim_refused_after_one_failure_remount_and_cut(engine: str, geo: str,
                                                             seed: int) -> None:
    _churn(geo, engine, seed, 500, small=True, idle_p=0.05)


# ------------------------------------------------------------------ (2) "lean" on healthy stores

_LEAN_GEOS = pick("nand", "nor64k", "stm", "nrf", "nor4k-tiny", "nor4k-wl")


def _lean_ops(cap: int, seed: int, n: int = 36) -> list[tuple[Any, ...]]:
    """A short script: two churn keys of 30..90% of a segment overwritten (dead data
    everywhere), six small long-lived keys scattered among them, syncs, trims, idle steps."""
    rng = random.Random(seed)
    ops: list[tuple[Any, ...]] = []
    for i in range(n):
        r = rng.random()
        if r < 0.5:
            ops.append(("put", rng.randrange(2), rng.randint(cap * 3 // 10, cap * 9 // 10), i))
        elif r < 0.7:
            ops.append(("put", 10 + rng.randrange(6), rng.randint(1, 100), i))
        elif r < 0.8:
            ops.append(("sync",))
        elif r < 0.9:
            ops.append(("trim", rng.choice([0, 1, 10, 11, 12])))
        else:
            ops.append(("idle", rng.randint(1, 3)))
    return ops


def _run_ops(st: Store, ops: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    for op in ops:
        try:
            if op[0] == "put":
                st.put(op[1], payload(op[1], op[3], op[2]))
                out.append("ok")
            elif op[0] == "sync":
                st.sync()
            elif op[0] == "trim":
                out.append(st.trim(op[1]))
            else:
                out.append(st.idle(op[1]))
        except NoSpaceError as e:
            raise AssertionError(f"{op}: refused on a healthy store: {e}") from e
    return out


def _lean_sweep(geo: str, engine: str, seed: int, key: bytes | None, cuts: int) -> int:
    """Cut the script at `cuts` points spread over its operations (each one torn); after the
    mount, with less than 40% of what format gave live, a small put and a quarter-segment put
    must both be taken, then the script's rest must run without a refusal."""
    part, cap, fmt = _LEAN_GEOS[geo]
    probe = FlashSim.from_part(part, capacity=cap, seed=seed)
    st = Store.format(probe, engine=engine, key=key, **fmt)
    fresh = st.stat()["free_bytes"]
    dcap = st.stat()["segment_size"] - 40
    ops = _lean_ops(min(dcap, st.stat()["max_chunk"]), seed)
    start = probe.ops_count
    _run_ops(st, ops)
    total = probe.ops_count - start
    n = 0
    for cut in sorted({total * j // cuts for j in range(cuts)}):
        flash = FlashSim.from_part(part, capacity=cap, seed=seed)
        st = Store.format(flash, engine=engine, key=key, **fmt)
        flash.power_cut_after(cut)
        try:
            _run_ops(st, ops)
            continue
        except PowerCut:
            pass
        flash.power_cut_after(None)
        st = Store.mount(flash, engine=engine, key=key)
        s = st.stat()
        where = f"{geo} seed {seed} cut {cut}/{total}: live {s['live_bytes']} of {fresh}"
        if s["live_bytes"] >= 0.4 * fresh:
            continue
        n += 1
        for k, size in ((99, 32), (98, dcap // 4)):
            try:
                st.put(k, payload(k, cut, size))
            except NoSpaceError as e:
                raise AssertionError(f"{where}: put of {size} B refused: {e} ({s})") from e
        st.sync()
        st = Store.mount(flash.copy(), engine=engine, key=key)
        assert st.get(98) == payload(98, cut, dcap // 4), where
    return n


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, key", [("nand", None), ("nor64k", KEY), ("stm", None),
                                      ("nrf", KEY), ("nor4k-tiny", None), ("nor4k-wl", KEY)])
def test_lean_healthy_store_takes_a_put_after_a_cut(engine: str, geo: str,
                                                     key: bytes | None) -> None:
    assert _lean_sweep(geo, engine, 51, key, 20) > 5


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", sorted(_LEAN_GEOS))
@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aead"])
def test_lean_healthy_store_many_seeds_and_cuts(engine: str, geo: str,
                                                 key: bytes | None) -> None:
    for seed in range(60, 66):
        _lean_sweep(geo, engine, seed, key, 150)


# ------------------------------------------------------------------ (5) engines after a cut


def _cut_image(geo: str, key: bytes | None, seed: int, cut: int | None, nops: int = 30
               ) -> FlashSim | None:
    """A store (Python engine) running puts of 1..1.5 segments and small ones, cut at `cut`:
    the torn flash, or None if the script ended first."""
    part, cap, fmt = _LEAN_GEOS[geo] if geo in _LEAN_GEOS else _GEOS[geo]
    flash = FlashSim.from_part(part, capacity=cap, seed=seed)
    st = Store.format(flash, key=key, **fmt)
    dcap = min(st.stat()["segment_size"] - 40, st.stat()["max_chunk"] * 2 // 3)
    rng = random.Random(seed)
    flash.power_cut_after(cut)
    try:
        for i in range(nops):
            k = rng.randrange(6)
            try:
                st.put(k, payload(k, i, rng.choice([rng.randint(1, 80),
                                                    rng.randint(dcap // 2, dcap * 3 // 2)])))
            except NoSpaceError:
                st.trim(k)  # near full (8-block NAND): free room and go on cutting
            if rng.random() < 0.2:
                st.sync()
    except PowerCut:
        flash.power_cut_after(None)
        return flash
    return None


def _torn_checkpoint(flash: FlashSim, key: bytes | None) -> bool:
    """The image holds a CHECKPOINT record whose header reads and whose payload does not."""
    st = Store.mount(flash.copy(), key=key)
    seg, img = st.geo.seg_size, flash.image()
    for s in range(st.geo.nseg):
        recs, _ = parse_segment(img[s * seg:(s + 1) * seg], s * seg, st.geo.prog_size,
                                st.geo.page_once, st.max_chunk, st.tag)
        if any(r.rtype == T_CHECKPOINT and not r.intact for r in recs):
            return True
    return False


def _engines_after_cut(flash: FlashSim, key: bytes | None) -> list[Any]:
    """Mount the torn image in each engine, read every key, write two chunks, trim one, sync:
    outcomes and image per engine."""
    res = []
    for engine in ("python", "c"):
        f = flash.copy()
        try:
            st = Store.mount(f, engine=engine, key=key)
        except FlashswapError as e:
            res.append((type(e).__name__, b""))
            continue
        out: list[Any] = [key_outcome(st, k) for k in range(7)]
        for k, n in ((1, 70), (6, 300)):
            try:
                st.put(k, payload(k, 999, n))
                out.append("ok")
            except FlashswapError as e:
                out.append(type(e).__name__)
        out.append(st.trim(6))
        st.sync()
        res.append((out, f.image()))
    return res


@needs_c
@pytest.mark.parametrize("geo, key, seed", [("nor64k", None, 71), ("nand", KEY, 72),
                                            ("nrf", None, 73), ("stm", KEY, 74)])
def test_engines_agree_after_cuts(geo: str, key: bytes | None, seed: int) -> None:
    """Strided cuts, torn checkpoint records included: outcomes and images agree."""
    n = 0
    for cut in range(0, 4000, 97):
        flash = _cut_image(geo, key, seed, cut, nops=60)
        if flash is None:
            break
        py, c = _engines_after_cut(flash, key)
        assert py == c, f"{geo} seed {seed} cut {cut}"
        n += 1
    assert n > 5


@needs_c
@pytest.mark.parametrize("geo, seed, cut", [("nor64k", 71, 728), ("nrf", 73, 3939)])
def test_torn_checkpoint_same_next_record_seq(geo: str, seed: int, cut: int) -> None:
    """The review's finding: a cut tears a CHECKPOINT record (header readable, payload not).
    Both engines now leave its seq out of next_record_seq (SPEC §9 step 8): C's parse() takes
    it for unreadable bytes, and the model did count it (15 against C's 14)."""
    flash = _cut_image(geo, None, seed, cut)
    assert flash is not None and _torn_checkpoint(flash, None)
    py, c = _engines_after_cut(flash, None)
    assert py[0] == c[0]
    assert py[1] == c[1]


# ------------------------------------------------------------------ (4) issue 17: AES-128-GCM


def _known_chunks(geo: str, engine: str) -> tuple[FlashSim, dict[int, bytes]]:
    part, cap, fmt = _GEOS[geo]
    flash = FlashSim.from_part(part, capacity=cap)
    st = Store.format(flash, engine=engine, key=KEY, **fmt)
    want = {k: (b"PLAINTEXT chunk %03d " % k) * (1 + 9 * k) for k in range(12)}
    for k, v in want.items():
        st.put(k, v)
    st.trim(3)
    del want[3]
    st.unmount()
    return flash, want


@pytest.mark.parametrize("geo", ["nand", "nrf", "stm"])
def test_encrypted_image_same_in_both_engines_and_holds_no_plaintext(geo: str) -> None:
    engines = ["python", "c"] if not needs_c.args[0] else ["python"]
    images = []
    for engine in engines:
        flash, want = _known_chunks(geo, engine)
        img = flash.image()
        assert b"PLAINTEXT" not in img
        for v in want.values():
            assert all(v[i:i + 16] not in img for i in range(0, len(v) - 16, 7))
        st = Store.mount(flash, engine=engine, key=KEY)
        assert {k: st.get(k) for k in st.keys()} == want
        images.append(img)
    assert all(i == images[0] for i in images)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", ["nand", "nrf"])
def test_flipped_ciphertext_bit_reads_corrupt(engine: str, geo: str) -> None:
    flash, want = _known_chunks(geo, engine)
    st = Store.mount(flash.copy(), key=KEY)
    rng = random.Random(81)
    for k in (0, 5, 11):
        addr, size = st.index[k][0], st.index[k][1]
        for _ in range(3):
            pos = addr + 32 + rng.randrange(min(size, st.geo.seg_size - addr % st.geo.seg_size
                                                - 32))
            img = bytearray(flash.image())
            img[pos] ^= 1 << rng.randrange(8)
            s2 = Store.mount(image_copy(flash, bytes(img)), engine=engine, key=KEY)
            assert key_outcome(s2, k) == ("corrupt", None), (k, pos)
            for j in want:
                if j != k:
                    assert s2.get(j) == want[j]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("key", [None, bytes(16), KEY[::-1]], ids=["nokey", "zeros", "wrong"])
def test_mount_without_or_with_a_wrong_key_fails_cleanly(engine: str, key: bytes | None) -> None:
    flash, _ = _known_chunks("nrf", engine)
    img, ops = flash.image(), (flash.ops["programs"], flash.ops["erases"])
    with pytest.raises(FlashswapError) as e:
        Store.mount(flash, engine=engine, key=key)
    assert "\n" not in str(e.value)
    assert flash.image() == img and (flash.ops["programs"], flash.ops["erases"]) == ops
    assert Store.mount(flash, engine=engine, key=KEY).get(0) == b"PLAINTEXT chunk 000 "


# ------------------------------------------------------------------ (3) spot checks, encrypted


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, bad, old_key", [("nand", [0, 5], None), ("stm", [0], KEY),
                                               ("nrf", [0, 1], KEY)])
def test_revival_encrypted_over_dead_blocks(engine: str, geo: str, bad: list[int],
                                            old_key: bytes | None) -> None:
    """An old store (plaintext or encrypted) with data, blocks that can be neither erased nor
    programmed, an encrypted format: no old key is visible, after a cut too."""
    part, cap, fmt = _GEOS[geo]
    flash = FlashSim.from_part(part, capacity=cap, wear="error", weibull=(2.0, 1e9), seed=91)
    old = Store.format(flash, engine=engine, key=old_key, **fmt)
    for i in range(15):
        old.put(i % 9, payload(i % 9, i, 1 + 57 * i))
    old.unmount()
    for b in bad:
        flash.block_endurance[b] = flash.wear_counts[b]
    new = Store.format(flash, engine=engine, key=KEY, **fmt)
    want = {20 + i: payload(20 + i, 0, 30 + 91 * i) for i in range(4)}
    for k, v in want.items():
        new.put(k, v)
    new.sync()
    st = Store.mount(flash.copy(), engine=engine, key=KEY)
    assert read_all(st, set(range(25))) == {k: want.get(k) for k in range(25)}


def _fail_cut_enc(geo: str, engine: str, seed: int, fail_at: int, cut: int | None) -> bool:
    """Encrypted: a synced store, a program failure armed at fail_at and a cut at `cut` in the
    next 30 operations; the strict oracle after the mount, and a write. False: no cut."""
    maxsz = {"nand": 20_000, "nrf": 1500, "stm": 900, "nor64k": 30_000, "mlc": 30_000}[geo]
    flash = _flash(geo, seed=seed)
    st = _format(flash, geo, engine, KEY)
    o = Oracle()
    oracle_workload(st, o, random.Random(seed), 30, maxsz)
    st.sync()
    o.sync()
    st = Store.mount(flash, engine=engine, key=KEY)
    flash.fail_after(fail_at)
    flash.power_cut_after(cut)
    try:
        oracle_workload(st, o, random.Random(seed + 1), 30, maxsz)
        return False
    except PowerCut:
        pass
    flash.power_cut_after(None)
    flash.fail_after(None)
    st = Store.mount(flash, engine=engine, key=KEY)
    o.check_after_cut(read_all(st, o.keys() | set(range(10))))
    st.put(3, b"after")
    st.sync()
    assert Store.mount(flash.copy(), engine=engine, key=KEY).get(3) == b"after"
    return True


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, seed, fail_at", [("nand", 93, 2), ("nrf", 94, 11),
                                                ("mlc", 95, 3)])
def test_encrypted_failure_then_cut_during_recovery(engine: str, geo: str, seed: int,
                                                    fail_at: int) -> None:
    n = sum(_fail_cut_enc(geo, engine, seed, fail_at, fail_at + d) for d in range(0, 12, 3))
    assert n >= 3


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo, key", [
    ("nand", KEY), pytest.param("nrf", None, marks=pytest.mark.slow),
    pytest.param("stm", KEY, marks=pytest.mark.slow)], ids=["nand-aead", "nrf", "stm-aead"])
def test_one_flipped_byte_in_the_replay_window(engine: str, geo: str,
                                               key: bytes | None) -> None:
    """Every key reads its synced value or corrupt, never an older one, for a flipped byte in
    each of the last 200 programmed bytes of every used segment."""
    flash = _flash(geo, seed=97)
    st = _format(flash, geo, "python", key)
    seg = st.stat()["segment_size"]
    want: dict[int, bytes] = {}
    for i in range(40):
        k = i % 7
        want[k] = payload(k, i, 1 + (i * 397) % (seg // 2))
        try:
            st.put(k, want[k])
        except NoSpaceError:
            st.trim(k)
            del want[k]
        if i % 9 == 0:
            st.sync()
    st.sync()
    base = flash.image()
    rng = random.Random(97)
    for s in range(len(base) // seg):
        body = base[s * seg:(s + 1) * seg]
        last = len(body.rstrip(b"\xff"))
        if last <= 40:
            continue
        for p in rng.sample(range(max(40, last - 200), last), min(4, last - 40)):
            img = bytearray(base)
            img[s * seg + p] ^= rng.randrange(1, 256)
            try:
                m = Store.mount(image_copy(flash, bytes(img)), engine=engine, key=key)
            except CorruptError:
                continue
            for k in range(8):
                kind, got = key_outcome(m, k)
                assert kind == "corrupt" or got == want.get(k), (s, p, k, kind)
