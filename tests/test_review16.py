"""Adversarial review of issue 16 on format version 2 (branch `store`).

Five classes, each on both engines (the Python model and the C library): the wedge (a full
device where freeing space must always work), the revival (a format over a block that can
neither be erased nor marked), a program failure followed by power cuts during the recovery,
staleness after flipped bits or bytes, and MCU internal flash. Plus randomly mutated images
mounted by both engines. Failures found are reproduced by tests marked xfail(strict=True) with
the reason; everything else asserts the strict oracle of issue 16.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from flashswap import FlashSim, PowerCut, Store
from flashswap.errors import CorruptError, NoSpaceError, NotFoundError
from flashswap.store.layout import NO_KEY
from tests.storeutil import (
    ENGINES,
    Oracle,
    format_store,
    image_copy,
    make_flash,
    needs_c,
    payload,
    read_all,
)

# ------------------------------------------------------------------ (1) the wedge


def _size(rng: random.Random, dist: str) -> int:
    """Chunk sizes: uniform to one or two 64 KiB segments, log-uniform, tiny-or-huge, huge."""
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
        data = bytes([i & 255, k]) * (_size(rng, dist) // 2 + 1)
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
    for k, v in want.items():
        new.put(k, v)
    if unmount:
        new.unmount()
    else:
        new.sync()
        flash = flash.copy()
    st = Store.mount(flash, engine=engine)
    assert read_all(st, set(range(35))) == {k: want.get(k) for k in range(35)}
    for i in range(60):
        k = 30 + i % 5
        want[k] = bytes([77, i]) * rng.randint(1, 350)
        st.put(k, want[k])
    st.unmount()
    assert read_all(Store.mount(flash, engine=engine), set(range(35))) == {
        k: want.get(k) for k in range(35)}


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


_C_FOREIGN_HEADER = pytest.mark.xfail(
    strict=True, raises=CorruptError,
    reason="review16: C fsw_mount returns FSW_ERR_CORRUPT at the first valid header of another "
    "geometry at a segment boundary (mount.c: `if (!ours) return FSW_ERR_CORRUPT`) instead of "
    "taking the largest epoch (SPEC §9 step 1) and that block for BAD (step 2); the model "
    "mounts the new store")


@pytest.mark.parametrize("engine", ["python", pytest.param("c", marks=[needs_c,
                                                                       _C_FOREIGN_HEADER])])
@pytest.mark.parametrize("old_seg, new_seg, bad", [(4096, 65536, [5]), (65536, 4096, [0])])
def test_revival_format_with_another_segment_size_mounts_the_new_store(
        engine: str, old_seg: int, new_seg: int, bad: list[int]) -> None:
    """Found here. 4 KiB segments, then a format with 64 KiB segments whose erase of segment 0
    fails at block 5 (block 0 keeps the old header at address 0); or 64 KiB segments, then a
    format with 4 KiB segments whose block 0 can neither be erased nor marked. The model mounts
    the new store (epoch 1, largest); the C engine (same image, byte for byte) reports no
    store: the new store is lost in C."""
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


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_revival_matrix(engine: str) -> None:
    """Same-geometry formats over 1..5 dead blocks (segment 0 among them or not), 2 old
    formats, unmounted or cut after a sync, 6 seeds."""
    geos = [(4096, 4096, "W25Q128JV", 1 << 16), (65536, 65536, "W25Q128JV", 1 << 20),
            (None, None, "W25N01GV", 8 * 128 * 1024)]
    for (os_, ns, part, cap) in geos:
        nb = cap // FlashSim.from_part(part, capacity=cap).erase_size
        for seed in range(6):
            rng = random.Random(seed)
            for bad in ([0], [0, 1], [0, *rng.sample(range(1, nb), 2)],
                        rng.sample(range(nb), 3), [nb - 1], list(range(5))):
                for unmount in (True, False):
                    _revival(engine, os_, ns, bad, part, cap, 2, unmount, seed)
