"""Wear-out, bad blocks and corrupt images: the store degrades, reports, and never lies."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashswap import CorruptError, FlashSim, NoSpaceError, NotFoundError, Store
from flashswap.errors import DeviceError, FlashWearError, StoreError
from tests.storeutil import format_store, make_flash, payload


def _churn(store: Store, written: dict[int, bytes], n: int, rng: random.Random) -> None:
    for i in range(n):
        k = rng.randrange(6)
        d = payload(k, i, rng.randrange(200, 3000))
        store.put(k, d)
        written[k] = d
        if i % 5 == 0:
            store.sync()


def test_worn_blocks_are_retired_and_the_store_keeps_working() -> None:
    # Weibull endurance: blocks fail one by one (with a fixed rating, leveling makes them all
    # fail together).
    flash = FlashSim.from_part(
        "W25Q128JV", capacity=64 * 1024, wear="error", weibull=(2.0, 60.0), seed=4
    )
    store = Store.format(flash, segment_size=4096, ckpt_interval=2)
    written: dict[int, bytes] = {}
    rng = random.Random(3)
    retired_seen = []
    with pytest.raises((NoSpaceError, DeviceError)):
        for _ in range(100):
            _churn(store, written, 50, rng)
            retired_seen.append(store.stat()["retired_blocks"])
            for k, d in written.items():
                try:
                    assert store.get(k) == d
                except CorruptError:
                    pass  # lost with its block: reported, never garbage
    # Segments were retired one by one while the store went on working with less capacity.
    assert retired_seen[-1] > 0 and len(retired_seen) > 10
    assert store.stat()["retired_blocks"] >= retired_seen[-1]
    # Remount: the data still reads (or is reported lost), never garbage.
    store.sync()
    store2 = Store.mount(flash)
    for k in store2.keys():
        try:
            assert store2.get(k) == written[k]
        except CorruptError:
            pass


def test_silent_wear_is_caught_by_erase_verify() -> None:
    """A worn block that reports success but keeps bits programmed is retired after its erase
    (blank check), so its faults never reach a chunk."""
    flash = FlashSim.from_part(
        "W25Q128JV", capacity=64 * 1024, wear="silent", weibull=(2.0, 50.0), seed=2
    )
    store = Store.format(flash, segment_size=4096, ckpt_interval=2)
    rng = random.Random(5)
    for i in range(5000):
        k = rng.randrange(6)
        d = payload(k, i, rng.randrange(200, 3000))
        try:
            store.put(k, d)
        except StoreError:
            break
        assert store.get(k) == d
    assert store.stat()["retired_blocks"] > 0
    assert (flash.wear_counts > flash.block_endurance).any()


def test_factory_bad_nand_blocks_are_never_used() -> None:
    flash = FlashSim.from_part("W25N01GV", capacity=8 * 128 * 1024, factory_bad=[2, 5])
    store = Store.format(flash)
    assert store.stat()["bad_blocks"] == 2
    for i in range(60):
        store.put(i % 4, payload(i, 0, 20000))
    store.unmount()
    assert flash.erase_counts[2] == 0 and flash.erase_counts[5] == 0
    store = Store.mount(flash)
    assert store.stat()["bad_blocks"] == 2
    assert store.get(3) == payload(59, 0, 20000)


def _synced_store(geo: str) -> tuple[FlashSim, dict[int, bytes]]:
    flash = make_flash(geo)
    store = format_store(flash, geo)
    data = {}
    for i in range(30):
        k = i % 8
        data[k] = payload(k, i, 500 + 97 * i)
        store.put(k, data[k])
    store.unmount()
    return flash, data


def _check_never_lies(flash: FlashSim, data: dict[int, bytes]) -> None:
    try:
        store = Store.mount(flash)
    except CorruptError:
        return
    for k in range(10):
        try:
            got = store.get(k)
        except (NotFoundError, CorruptError):
            continue
        # Anything returned is a value once written under that key (an older version may
        # resurface when the newer record is damaged).
        assert got in {payload(k, i, 500 + 97 * i) for i in range(30)}
        del got


@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 20))
def test_bit_flips_anywhere_never_crash_or_lie(seed: int, flips: int) -> None:
    flash, data = _CACHE.setdefault("nor4k", _synced_store("nor4k"))
    flash = flash.copy()
    rng = np.random.default_rng(seed)
    img = bytearray(flash.image())
    for pos in rng.integers(0, len(img), flips):
        img[pos] ^= 1 << int(rng.integers(0, 8))
    _check_never_lies(_with_image(flash, bytes(img)), data)


@given(seed=st.integers(0, 2**32 - 1), start=st.integers(0, 65535), n=st.integers(1, 4096))
def test_random_bytes_anywhere_never_crash_or_lie(seed: int, start: int, n: int) -> None:
    flash, data = _CACHE.setdefault("nor4k", _synced_store("nor4k"))
    img = bytearray(flash.image())
    img[start : start + n] = np.random.default_rng(seed).bytes(len(img[start : start + n]))
    _check_never_lies(_with_image(flash, bytes(img)), data)


@pytest.mark.parametrize("geo", ["nor4k", "nand"])
def test_whole_random_image_is_refused(geo: str) -> None:
    flash = make_flash(geo)
    _check_never_lies(_with_image(flash, np.random.default_rng(1).bytes(flash.size)), {})


_CACHE: dict[str, tuple[FlashSim, dict[int, bytes]]] = {}


def _with_image(template: FlashSim, image: bytes) -> FlashSim:
    """A fresh simulator of the same part holding `image` (programmed page by page)."""
    flash = FlashSim(template.part, capacity=template.size)
    page = flash.page_size
    for a in range(0, len(image), page):
        chunk = image[a : a + page]
        if chunk != b"\xff" * len(chunk):
            flash.program(a, chunk)
    return flash


class _GrownBadFlash(FlashSim):
    """A device on which one program fails (a grown bad block): from then on every program
    and erase of that block fails too. The simulator's own wear model fails erases first, so
    this is how the store's program-failure path is exercised."""

    fail_at: int = -1
    bad_block: int = -1

    def program(self, addr: int, data: object, spare: object = None) -> None:  # type: ignore[override]
        blk = addr // self.erase_size
        if blk == self.bad_block or self.fail_at == 0:
            self.bad_block = blk
            self.fail_at = -1
            raise FlashWearError(f"program failed in block {blk}")
        self.fail_at -= 1
        super().program(addr, data, spare)

    def erase(self, addr: int, size: int | None = None) -> None:
        if addr // self.erase_size == self.bad_block:
            raise FlashWearError(f"erase failed in block {self.bad_block}")
        super().erase(addr, size)


@pytest.mark.parametrize("fail_at", [0, 1, 3, 7, 15, 25, 40])
def test_failed_program_retires_the_segment_and_keeps_every_chunk(fail_at: int) -> None:
    part = FlashSim.from_part("W25Q128JV").part
    flash = _GrownBadFlash(part, capacity=64 * 1024)
    store = Store.format(flash, segment_size=4096, ckpt_interval=3)
    written: dict[int, bytes] = {}
    for i in range(8):
        written[i] = payload(i, 0, 700 + 211 * i)
        store.put(i, written[i])
    flash.fail_at = fail_at
    for i in range(8, 40):
        k = i % 10
        written[k] = payload(k, i, 300 + 61 * i)
        store.put(k, written[k])
    assert flash.bad_block >= 0, "the injected failure must have happened"
    assert store.stat()["retired_blocks"] == 1
    for k, d in written.items():
        assert store.get(k) == d
    store.unmount()
    store = Store.mount(flash)
    for k, d in written.items():
        assert store.get(k) == d


def test_erased_header_over_programmed_body_is_erased_before_use() -> None:
    """A torn erase may leave a segment's header erased but its body programmed: mount sees an
    erased segment by its header; the store blank-checks it before writing there (SPEC §8)."""
    flash = make_flash("nor4k")
    store = format_store(flash, "nor4k")
    store.unmount()
    for s in range(1, 16):  # garbage in every free segment's body, headers left erased
        flash.program(s * 4096 + 1000, b"\x00" * 64)
    store = Store.mount(flash)
    data = {k: payload(k, 1, 3000) for k in range(12)}
    for k, d in data.items():
        store.put(k, d)
    store.unmount()
    store = Store.mount(flash)
    assert all(store.get(k) == d for k, d in data.items())
