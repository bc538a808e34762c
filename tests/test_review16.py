"""Adversarial review of issue 16 on format version 2 (branch `store`).

Five classes, each on both engines (the Python model and the C library): the wedge (a full
device where freeing space must always work), the revival (a format over a block that can
neither be erased nor marked), a program failure followed by power cuts during the recovery,
staleness after flipped bits or bytes, and MCU internal flash. Plus randomly mutated images
mounted by both engines. Each failure it found has a test of its own ("Found here"); every test
asserts the strict oracle of issue 16.
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
    format_store,
    image_copy,
    key_outcome,
    make_flash,
    needs_c,
    oracle_workload,
    payload,
    read_all,
)

# ------------------------------------------------------------------ (1) the wedge


def _size(rng: random.Random, dist: str, cap: int) -> int:
    """Chunk sizes: uniform to one or two 64 KiB segments, log-uniform, tiny-or-huge, huge;
    none above `cap`, the store's max_chunk (since revision 2.6, SPEC §11: 1.5 segments here,
    so "uni128", "bimodal" and "big" meet the limit often and "big" puts only it)."""
    return min(cap, _draw(rng, dist))


def _draw(rng: random.Random, dist: str) -> int:
    if dist == "uni64":
        return rng.randint(1, 64 << 10)
    if dist == "uni128":
        return rng.randint(1, 128 << 10)
    if dist == "log":
        return int(2 ** rng.uniform(0, 17))
    if dist == "bimodal":
        return rng.choice([rng.randint(1, 64), rng.randint(60_000, 128 << 10)])
    return rng.randint(100 << 10, 200 << 10)  # "big": up to three segments


def _wedge_run(engine: str, seed: int, dist: str, steps: int = 400, remount: float = 0.0,
               crash: float = 0.0, idle: float = 0.0) -> None:
    """Default format on a 1 MiB NOR partition (16 x 64 KiB segments); overwrite random keys
    among 40; when a put is refused, trim a live key (never NoSpace) and check the put changed
    nothing. Between steps: unmount+mount, a sync then a mount of a copy (as after a power
    cut), idle(1..50). At the end, trim_range(everything) never fails, the free segments are
    what format gave less retired ones, and a 1-byte put fits."""
    flash = FlashSim.from_part("W25Q128JV", capacity=1 << 20, seed=seed)
    store = Store.format(flash, engine=engine)
    fresh = Store.format(FlashSim.from_part("W25Q128JV", capacity=1 << 20),
                         engine=engine).stat()["free_segments"]
    rng = random.Random(seed)
    live: dict[int, bytes] = {}
    for i in range(steps):
        r = rng.random()
        if r < remount:
            store.unmount()
            store = Store.mount(flash, engine=engine)
        elif r < remount + crash:
            store.sync()
            flash = flash.copy()
            store = Store.mount(flash, engine=engine)
        elif r < remount + crash + idle:
            store.idle(rng.randint(1, 50))
        k = rng.randrange(40)
        n = _size(rng, dist, store.stat()["max_chunk"])
        data = (bytes([i & 255, k]) * (n // 2 + 1))[:n]
        try:
            store.put(k, data)
            live[k] = data
        except NoSpaceError:
            assert read_all(store, {k}) == {k: live.get(k)}, f"step {i}: refused put changed"
            assert live, f"step {i}: a {len(data)}-byte put refused on an empty store"
            victim = rng.choice(sorted(live))
            assert store.trim(victim) is True, f"step {i}"
            del live[victim]
    assert {k: store.get(k) for k in live} == live
    assert store.trim_range(0, NO_KEY - 1) == len(live)
    st = store.stat()
    assert st["free_segments"] + st["retired_blocks"] == fresh, (st["free_segments"], fresh)
    store.put(5, b"y")
    store.unmount()
    assert Store.mount(flash, engine=engine).keys() == [5]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed, dist, mode", [(3, "bimodal", "all"), (4, "big", "all"),
                                              (5, "log", "remount")])
def test_wedge_churn_never_refuses_a_trim(engine: str, seed: int, dist: str, mode: str) -> None:
    kw = {"all": {"remount": 0.03, "crash": 0.03, "idle": 0.05},
          "remount": {"remount": 0.05}}[mode]
    _wedge_run(engine, seed, dist, steps=250, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dist", ["uni64", "uni128", "log", "bimodal", "big"])
def test_wedge_churn_many_seeds(engine: str, dist: str) -> None:
    """5 distributions x 10 seeds x {plain, remount+crash+idle} per engine."""
    for seed in range(10):
        _wedge_run(engine, 200 + seed, dist)
        _wedge_run(engine, 300 + seed, dist, remount=0.03, crash=0.03, idle=0.05)


# ------------------------------------------------------------------ (2) the revival


def _revival(engine: str, old_seg: int | None, new_seg: int | None, bad: list[int],
             part: str = "W25Q128JV", cap: int = 1 << 20, old_formats: int = 1,
             unmount: bool = True, seed: int = 0) -> None:
    """An old store (formatted old_formats times, with data), then the blocks `bad` wear out
    (erase and program fail: neither erased nor marked), then a format, possibly with another
    segment size: mount gives the new store, no old key is visible, and the new store works."""
    flash = FlashSim.from_part(part, capacity=cap, wear="error", weibull=(2.0, 1e9), seed=seed)
    rng = random.Random(seed)
    for f in range(old_formats):
        old = Store.format(flash, engine=engine,
                           **({"segment_size": old_seg} if old_seg else {}))
        for i in range(20):
            old.put(rng.randrange(30), bytes([f, i]) * rng.randint(1, 300))
        old.unmount()
    for b in bad:
        flash.block_endurance[b] = flash.wear_counts[b]
    new = Store.format(flash, engine=engine, **({"segment_size": new_seg} if new_seg else {}))
    want = {30 + i: bytes([99, i]) * (1 + 97 * i) for i in range(5)}
    check_only_new_store(new, flash, engine, want, rng, unmount, rounds=60, top=350)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("old_seg, new_seg, bad, part, cap", [
    (4096, 4096, [0, 3], "W25Q128JV", 1 << 16),
    (65536, 65536, [0, 17], "W25Q128JV", 1 << 20),
    (None, None, [0, 1, 2], "W25N01GV", 8 * 128 * 1024),
    (32768, 4096, [8, 9], "MX25R6435F", 1 << 18),
])
def test_revival_format_over_unerasable_unmarkable_blocks(engine: str, old_seg: int | None,
                                                          new_seg: int | None, bad: list[int],
                                                          part: str, cap: int) -> None:
    _revival(engine, old_seg, new_seg, bad, part, cap, old_formats=2, unmount=False)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("old_seg, new_seg, bad", [(4096, 65536, [5]), (65536, 4096, [0])])
def test_revival_format_with_another_segment_size_mounts_the_new_store(
        engine: str, old_seg: int, new_seg: int, bad: list[int]) -> None:
    """Found here. 4 KiB segments, then a format with 64 KiB segments whose erase of segment 0
    fails at block 5 (block 0 keeps the old header at address 0); or 64 KiB segments, then a
    format with 4 KiB segments whose block 0 can neither be erased nor marked. Both engines
    mount the new store (epoch 1, largest; SPEC §9 step 1) and take the old header's block for
    BAD (step 2), although C meets the old header, of another geometry, first."""
    flash = FlashSim.from_part("W25Q128JV", capacity=1 << 20, wear="error", weibull=(2.0, 1e9))
    old = Store.format(flash, engine=engine, segment_size=old_seg)
    old.put(1, b"old store")
    old.unmount()
    for b in bad:
        flash.block_endurance[b] = flash.wear_counts[b]
    new = Store.format(flash, engine=engine, segment_size=new_seg)
    new.put(100, b"new store")
    new.unmount()
    st = Store.mount(flash, engine=engine)
    assert st.keys() == [100] and st.get(100) == b"new store"


@pytest.mark.parametrize("engine", ENGINES)
def test_revival_format_over_a_smaller_store_mounts_the_new_store(engine: str) -> None:
    """Found here, same cause: an old store of 16 x 4 KiB segments, then a format of 32 x 4 KiB
    segments on a partition twice as large, whose block 0 can neither be erased nor marked:
    the old header (another segment count) at segment 0 is a BAD block, not the store."""
    small = FlashSim.from_part("W25Q128JV", capacity=1 << 16)
    old = Store.format(small, engine=engine, segment_size=4096)
    old.put(1, b"old store")
    old.unmount()
    flash = FlashSim.from_part("W25Q128JV", capacity=1 << 17, wear="error", weibull=(2.0, 1e9))
    img = small.image()
    for a in range(0, len(img), 256):
        if img[a:a + 256] != b"\xff" * 256:
            flash.program(a, img[a:a + 256])
    flash.block_endurance[0] = flash.wear_counts[0]
    new = Store.format(flash, engine=engine, segment_size=4096)
    new.put(100, b"new store")
    new.unmount()
    st = Store.mount(flash, engine=engine)
    assert st.keys() == [100] and st.get(100) == b"new store"

@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_revival_matrix(engine: str) -> None:
    """Same-geometry formats over 1..5 dead blocks (segment 0 among them or not), 2 old
    formats, unmounted or cut after a sync, 6 seeds. On the 8-block NAND at most 4 dead: with
    5 the new store's 3 good segments are all its reserve (revision 2.4), and no put fits."""
    geos = [(4096, 4096, "W25Q128JV", 1 << 16), (65536, 65536, "W25Q128JV", 1 << 20),
            (None, None, "W25N01GV", 8 * 128 * 1024)]
    for (os_, ns, part, cap) in geos:
        nb = cap // FlashSim.from_part(part, capacity=cap).erase_size
        for seed in range(6):
            rng = random.Random(seed)
            for bad in ([0], [0, 1], [0, *rng.sample(range(1, nb), 2)],
                        rng.sample(range(nb), 3), [nb - 1], list(range(min(5, nb - 4)))):
                for unmount in (True, False):
                    _revival(engine, os_, ns, bad, part, cap, 2, unmount, seed)


# ------------------------------------------------------------------ (3) failure, then cuts


_MAXSZ = {"nor4k": 1500, "nor64k": 40_000, "nand": 20_000}


def _failure_cut_trial(geo: str, engine: str, seed: int, fail_at: int, cut: int) -> bool:
    """A synced store (40 random operations), then 120 more with a program failure armed at
    operation fail_at and a power cut at `cut`: the mount after the cut satisfies the strict
    oracle and takes a write. False if the workload ended before the cut."""
    flash = make_flash(geo, seed=seed)
    st = format_store(flash, geo, engine)
    o = Oracle()
    oracle_workload(st, o, random.Random(seed), 40, _MAXSZ[geo])
    st.sync()
    o.sync()
    st = Store.mount(flash, engine=engine)
    flash.fail_after(fail_at)
    flash.power_cut_after(cut)
    try:
        oracle_workload(st, o, random.Random(seed * 31 + 7), 120, _MAXSZ[geo])
        return False
    except PowerCut:
        pass
    flash.power_cut_after(None)
    flash.fail_after(None)
    st = Store.mount(flash, engine=engine)
    o.check_after_cut(read_all(st, o.keys() | set(range(10))))
    st.put(3, b"after")
    st.sync()
    assert Store.mount(flash.copy(), engine=engine).get(3) == b"after"
    return True


def _random_failure_trials(engine: str, n: int, s0: int) -> int:
    cut_count = 0
    for i in range(n):
        seed = s0 + i
        rng = random.Random(seed ^ 0xABC)
        fail_at = rng.randrange(60)
        cut_count += _failure_cut_trial(["nor4k", "nand", "nor64k"][i % 3], engine, seed,
                                        fail_at, fail_at + rng.randrange(40))
    return cut_count


@pytest.mark.parametrize("engine", ENGINES)
def test_program_failure_then_cut_random_trials(engine: str) -> None:
    assert _random_failure_trials(engine, 24, 1000) == 24


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_program_failure_then_cut_300_random_trials(engine: str) -> None:
    assert _random_failure_trials(engine, 300, 5000) == 300


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("geo", ["nor4k", "nand", "nor64k"])
def test_program_failure_then_cut_at_every_point(engine: str, geo: str) -> None:
    """The failure at operations 0, 5, 13, 29; a cut at each of the 45 operations from it."""
    for fail_at in (0, 5, 13, 29):
        for cut in range(fail_at, fail_at + 45):
            _failure_cut_trial(geo, engine, 1, fail_at, cut)


# ------------------------------------------------------------------ (4) corrupt, never stale

_FLIP_KEYS = 14


def _flip_image(geo: str, seed: int, nops: int, sync_p: float
                ) -> tuple[FlashSim, dict[int, bytes], dict[int, list[bytes | None]]]:
    """A store after random puts and trims (syncs at random, one at the end): the flash, the
    final state, and every value each key ever had (None: absent)."""
    flash = make_flash(geo, seed=seed)
    st = format_store(flash, geo)
    rng = random.Random(seed)
    cur: dict[int, bytes] = {}
    hist: dict[int, list[bytes | None]] = {k: [None] for k in range(_FLIP_KEYS)}
    maxsz = {"nor4k": 900, "nor64k": 9000, "nand": 5000}[geo]
    for i in range(nops):
        k = rng.randrange(_FLIP_KEYS)
        if rng.random() < 0.8:
            d = payload(k, i, rng.randint(1, maxsz))
            try:
                st.put(k, d)
            except NoSpaceError:
                continue
            cur[k] = d
            hist[k].append(d)
        else:
            st.trim(k)
            cur.pop(k, None)
            hist[k].append(None)
        if rng.random() < sync_p:
            st.sync()
    st.sync()
    return flash, cur, hist


def _mount_outcome(flash: FlashSim, img: bytes, engine: str) -> Any:
    try:
        st = Store.mount(image_copy(flash, img), engine=engine)
    except CorruptError:
        return "corrupt"
    return [key_outcome(st, k) for k in range(_FLIP_KEYS + 1)]


def _check_damage(flash: FlashSim, img: bytes, pos: int, cur: dict[int, bytes],
                  hist: dict[int, list[bytes | None]], engines: list[str]) -> None:
    """Every key reads its final value or corrupt, never an older one: the end of each log
    too, which a SYNC record follows (SPEC.md §6); both engines give the same answer."""
    res = [_mount_outcome(flash, img, e) for e in engines]
    assert all(r == res[0] for r in res), f"pos {pos}: engines differ"
    if res[0] == "corrupt":
        return
    for k, (kind, got) in enumerate(res[0]):
        if kind == "corrupt" or got == cur.get(k):
            continue
        raise AssertionError(
            f"pos {pos}: key {k} read {'a stale' if got in hist.get(k, []) else 'a wrong'} "
            "value")


def _flip_run(engines: list[str], images: range, per_image: int) -> None:
    for i in images:
        geo = ["nor4k", "nand", "nor64k"][i % 3]
        flash, cur, hist = _flip_image(geo, 100 + i, 30 + 7 * (i % 9), [0.0, 0.1, 0.3][i % 3])
        base = flash.image()
        used = [p for p in range(len(base)) if base[p] != 0xFF]
        rng = random.Random(i)
        for _ in range(per_image):
            img = bytearray(base)
            pos = rng.choice(used)
            r = rng.random()
            if r < 0.5:
                img[pos] ^= 1 << rng.randrange(8)
            elif r < 0.8:
                img[pos] ^= rng.randrange(1, 256)
            else:
                pos = rng.randrange(len(img))
                img[pos] ^= 1 << rng.randrange(8)
            _check_damage(flash, bytes(img), pos, cur, hist, engines)


_BOTH = ["python", pytest.param("python,c", marks=needs_c)]


@pytest.mark.parametrize("engines", _BOTH)
def test_flipped_bits_and_bytes_give_errors_not_stale_data(engines: str) -> None:
    _flip_run(engines.split(","), range(3), 12)


@pytest.mark.slow
@needs_c
def test_flipped_bits_and_bytes_many_images() -> None:
    """30 images (nor4k, nand, nor64k; no/some/many syncs) x 60 damages, both engines."""
    _flip_run(["python", "c"], range(30), 60)


# ------------------------------------------------------------------ (5) internal flash

_INTERNAL = {"nRF5340-APP": 64 * 1024, "STM32L476-FLASH": 32 * 1024}


def _internal_scenario(st: Store, o: Oracle, seed: int, n: int = 40) -> None:
    rng = random.Random(seed)
    oracle_workload(st, o, rng, n, 900, keys=8)
    st.sync()
    o.sync()


def _internal_sweep(part: str, engine: str, seed: int, fail_at: int | None,
                    stride: int) -> int:
    """A store on MCU internal flash (whole-word programs), then a scenario cut at every
    `stride`-th operation (with a program failure armed at fail_at): strict oracle, and the
    store takes a write after the cut."""
    base = FlashSim.from_part(part, capacity=_INTERNAL[part], seed=seed)
    st = Store.format(base, engine=engine)
    o0 = Oracle()
    _internal_scenario(st, o0, seed + 1000, 25)
    st.unmount()
    probe = base.copy()
    probe.fail_after(fail_at)
    before = probe.ops_count
    _internal_scenario(Store.mount(probe, engine=engine),
                       Oracle(synced=dict(o0.synced), current=dict(o0.synced)), seed)
    total = probe.ops_count - before
    for cut in range(0, total, stride):
        flash = base.copy()
        o = Oracle(synced=dict(o0.synced), current=dict(o0.synced))
        flash.fail_after(fail_at)
        flash.power_cut_after(cut)
        with pytest.raises(PowerCut):
            _internal_scenario(Store.mount(flash, engine=engine), o, seed)
        flash.power_cut_after(None)
        flash.fail_after(None)
        st = Store.mount(flash, engine=engine)
        o.check_after_cut(read_all(st, o.keys() | set(range(10))))
        st.put(9, b"after")
        st.sync()
        assert Store.mount(flash.copy(), engine=engine).get(9) == b"after"
    return total


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("part", sorted(_INTERNAL))
@pytest.mark.parametrize("fail_at", [None, 17])
def test_internal_flash_power_cuts(engine: str, part: str, fail_at: int | None) -> None:
    assert _internal_sweep(part, engine, 0, fail_at, stride=97) > 500


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("part", sorted(_INTERNAL))
def test_internal_flash_power_cut_at_every_operation(engine: str, part: str) -> None:
    for fail_at in (None, 3, 17):
        _internal_sweep(part, engine, 0, fail_at, stride=1)


# ------------------------------------------------------------------ mutated images


def _mutate(img: bytearray, rng: random.Random, seg: int, kind: str) -> None:
    """One damage: a bit (anywhere programmed, in a segment header, or in a segment's first
    records), random bytes, a u32 set to an edge value, a segment copied over another, or a
    segment erased."""
    used = [i for i in range(0, len(img), 16) if img[i:i + 16] != b"\xff" * 16]
    n = len(img) // seg
    if kind == "hdr":
        at = rng.randrange(n) * seg + rng.randrange(40)
    elif kind == "ckpt":
        at = rng.randrange(n) * seg + 40 + rng.randrange(min(seg - 40, 400))
    else:
        at = rng.choice(used) + rng.randrange(16) if used else rng.randrange(len(img))
    if kind in ("bit", "hdr", "ckpt"):
        img[at] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for j in range(min(rng.randint(1, 64), len(img) - at)):
            img[at + j] = rng.randrange(256)
    elif kind == "u32":
        a = at & ~3
        v = rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 16),
                        rng.randrange(1 << 32)])
        img[a:a + 4] = v.to_bytes(4, "little")
    elif kind == "copyseg":
        a, b = rng.randrange(n), rng.randrange(n)
        img[b * seg:(b + 1) * seg] = img[a * seg:(a + 1) * seg]
    else:  # "erase"
        b = rng.randrange(n)
        img[b * seg:(b + 1) * seg] = b"\xff" * seg


_MUT_GEOS = pick("nor4k", "nand", "stm", "nrf")


def _op(fn: Any, *a: Any) -> tuple[str, Any]:
    from flashswap.errors import FlashswapError

    try:
        r = fn(*a)
    except FlashswapError as e:
        return (type(e).__name__, None)
    return ("ok", None if isinstance(r, Store) else r)


def _mutated_once(seed: int) -> None:
    rng = random.Random(seed)
    geo = rng.choice(sorted(_MUT_GEOS))
    part, cap, fmt = _MUT_GEOS[geo]
    src = FlashSim.from_part(part, capacity=cap, seed=seed)
    st = Store.format(src, **fmt)
    seg = st.geo.seg_size
    for _ in range(rng.randint(5, 80)):
        k = rng.randrange(12)
        try:
            if rng.random() < 0.8:
                st.put(k, rng.randbytes(rng.choice([rng.randint(1, 200),
                                                    rng.randint(200, 3000)])))
            else:
                st.trim(k)
        except NoSpaceError:
            pass
        if rng.random() < 0.2:
            st.sync()
    st.sync()
    img = bytearray(src.image())
    kinds = [rng.choice(["bit", "bytes", "u32", "hdr", "ckpt", "erase", "copyseg"])
             for _ in range(rng.randint(1, 3))]
    for kind in kinds:
        _mutate(img, rng, seg, kind)
    where = f"seed {seed} {geo} {kinds}"
    r = [_op(Store.mount, image_copy(src, bytes(img)), e) for e in ("python", "c")]
    assert r[0][0] == r[1][0], f"{where}: mount model {r[0][0]} C {r[1][0]}"
    if r[0][0] != "ok":
        return
    py = Store.mount(image_copy(src, bytes(img)), engine="python")
    c = Store.mount(image_copy(src, bytes(img)), engine="c")
    assert sorted(py.keys()) == sorted(c.keys()), where
    for k in range(14):
        assert _op(py.get, k) == _op(c.get, k), f"{where}: get({k})"
    for i in range(6):
        k, d = rng.randrange(12), rng.randbytes(rng.randint(1, 2000))
        assert _op(py.put, k, d) == _op(c.put, k, d), f"{where}: put {i}"
    assert _op(py.unmount) == _op(c.unmount), where


@needs_c
def test_mutated_images_one_answer_from_both_engines() -> None:
    for seed in range(40):
        _mutated_once(seed)


@pytest.mark.slow
@needs_c
def test_mutated_images_one_answer_from_both_engines_many() -> None:
    for seed in range(1000, 1300):
        _mutated_once(seed)


@needs_c
@pytest.mark.parametrize("geo", ["nor4k", "nand"])
def test_a_segment_copied_over_another_gets_one_answer_from_both_engines(geo: str) -> None:
    """Found by the mutated-image run (seed 1027: NAND, 'copyseg'). The store's only segment
    (0, seq 1) copied over an erased one (5): two headers of one log with one seq, which the
    format cannot attribute (SPEC §9): the store is damaged and every key reads corrupt."""
    part, cap, fmt = _MUT_GEOS[geo]
    src = FlashSim.from_part(part, capacity=cap)
    st = Store.format(src, **fmt)
    seg = st.geo.seg_size
    for k in range(3):
        st.put(k, payload(k, 0, 100))
    st.sync()
    img = bytearray(src.image())
    img[5 * seg:6 * seg] = img[:seg]
    got = []
    for engine in ("python", "c"):
        s = Store.mount(image_copy(src, bytes(img)), engine=engine)
        got.append(([key_outcome(s, k)[0] for k in range(4)], s.stat()["damaged"]))
    assert got[0] == got[1] == (["corrupt"] * 4, True), f"model {got[0]}, C {got[1]}"


@needs_c
@pytest.mark.parametrize("damage", ["newest header", "copyseg"])
def test_history_found_missing_sets_the_same_erase_counts_in_both_engines(damage: str) -> None:
    """Found here: when mount finds history missing (the newest segment's header damaged, so
    that segment reads FREE with a newer record at byte 40; or a segment copied over an erased
    one), every segment of unknown count gets the largest known count (SPEC §9 step 3) in both
    engines; C used to stop at the first finding and leave the later ones at 0, so the engines
    opened different segments next."""
    part, cap, fmt = _MUT_GEOS["nor4k"]
    src = FlashSim.from_part(part, capacity=cap)
    st = Store.format(src, **fmt)
    seg = st.geo.seg_size
    for i in range(12):
        st.put(i % 5, payload(i % 5, i, 1500))
    st.sync()
    img = bytearray(src.image())
    newest = max((s for s in range(st.geo.nseg) if st.state[s] == 2), key=lambda s: st.seq[s])
    if damage == "newest header":
        img[newest * seg + 8] ^= 1  # its erase count: the header no longer checks
    else:
        to = min(s for s in range(st.geo.nseg) if st.state[s] == 0)  # the first erased one
        img[to * seg:(to + 1) * seg] = img[newest * seg:(newest + 1) * seg]
    stores = [Store.mount(image_copy(src, bytes(img)), engine=e) for e in ("python", "c")]
    counts = [list(s.stat()["erase_counts"]) for s in stores]
    assert counts[0] == counts[1] == [1] * 16
    assert [s.stat()["damaged"] for s in stores] == [True, True]
    for s in stores:
        s.put(7, b"after")
    assert stores[0].flash.image() == stores[1].flash.image()


# ------------------------------------------------------------------ (1) x (3): the wedge after a
# program failure


@pytest.mark.parametrize("engine", [pytest.param("python"), pytest.param("c", marks=needs_c)])
def test_trims_still_work_after_a_program_failure_near_full(engine: str) -> None:
    """Found here: the wedge recipe with a program failure armed at step 100 (fires 12
    operations later, inside the put that is refused): the recovery moves the failed cold
    segment's chunks into the last free segments and its checkpoint finds none; the trims go
    to the cold head's room (SPEC §10), and then a put collects the segments they freed.
    Since revision 2.6 the chunks are capped at max_chunk (1.5 segments with reserve 3): the
    failure still fires in the refused-put stretch and one block is retired."""
    flash = FlashSim.from_part("W25Q128JV", capacity=1 << 20, seed=0)
    # the finding's format: reserve 3 (the default is 4 since revision 2.6, SPEC §10)
    store = Store.format(flash, engine=engine, reserve=3)
    cap = store.stat()["max_chunk"]  # 1.5 segments since revision 2.6 (SPEC §11)
    rng = random.Random(0)
    live: dict[int, bytes] = {}
    for i in range(101):
        if i == 100:
            flash.fail_after(rng.randrange(1, 30))
        k = rng.randrange(40)
        d = bytes([i & 255]) * min(cap, rng.randint(1, 128 << 10))
        try:
            store.put(k, d)
            live[k] = d
        except NoSpaceError:
            victim = rng.choice(sorted(live))
            assert store.trim(victim) is True, f"step {i}"
            del live[victim]
    assert flash._fail is None and store.stat()["retired_blocks"] == 1
    assert {k: store.get(k) for k in live} == live
    assert store.trim_range(0, NO_KEY - 1) == len(live)
    store.put(999, b"x")
    assert store.get(999) == b"x"
    store.unmount()
    st = Store.mount(flash, engine=engine)
    assert st.keys() == [999] and st.get(999) == b"x"
