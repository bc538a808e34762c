"""Mount's work is bounded on any image (firmware/SPEC.md §6, §9), in both engines.

A crafted or corrupted flash must never hang mount. Each image here is mounted by the Python
model and by the C library through a device that refuses reads past a cap, so a mount that
loops or goes quadratic fails at once (it would otherwise hang the suite), and both engines
must give the same answer. Caps: the model reads each header once and each segment at most
once in full, plus one record header per segment without a store header (3 reads a segment);
the C library reads a record header at each byte of an unreadable region, in at most two
scans of a segment (the tear scan and the walk): 2 reads a flash byte.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from flashswap import FlashSim, Store
from flashswap.errors import CorruptError
from flashswap.parts import Part, get_part
from flashswap.store.layout import T_TRIM_RANGE, SegHeader, pack_record
from tests.storeutil import ENGINES

CORPUS = Path(__file__).resolve().parents[1] / "firmware" / "fuzz" / "corpus"

# Geometry 0 of the libFuzzer target (firmware/fuzz/fuzz_mount.c): NOR, 512-byte segments and
# erase units, 64-byte pages. No catalogue part has it; the W25Q128JV's timings stand in (an
# assumption: no timing is asserted here).
FUZZ_NOR = replace(get_part("W25Q128JV"), name="fuzz-nor-512", erase_sizes=(512,), page_size=64,
                   t_erase_typ_us=(45_000.0,), t_erase_max_us=(400_000.0,))


class _Capped:
    """A FlashSim whose reads stop at a cap (AssertionError, which mount passes on in both
    engines). It is no FlashSim to the C engine (no `_inv`), so every C read goes through
    `read` as well."""

    def __init__(self, flash: FlashSim, cap: int) -> None:
        self.flash = flash
        self.cap = cap
        self.reads = 0

    def read(self, addr: int, n: int) -> bytes:
        self.reads += 1
        if self.reads > self.cap:
            raise AssertionError(f"mount read the flash more than {self.cap} times")
        return self.flash.read(addr, n)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.flash, name)


def _flash(image: bytes, part: Part = FUZZ_NOR) -> FlashSim:
    """A device of `part` holding `image` (padded with erased bytes to a whole erase unit)."""
    es = part.erase_sizes[0]
    image += b"\xff" * (-len(image) % es)
    flash = FlashSim(part, capacity=len(image))
    page = flash.page_size
    for a in range(0, len(image), page):
        if image[a : a + page] != b"\xff" * page:
            flash.program(a, image[a : a + page])
    return flash


def _mount(flash: FlashSim, engine: str) -> tuple[Store | None, int]:
    """The store mounted from flash (None: CorruptError) and the reads it took, within the
    engine's cap."""
    nseg = flash.size // flash.erase_size
    dev = _Capped(flash, 3 * nseg if engine == "python" else 2 * flash.size)
    try:
        store = Store.mount(dev, engine=engine)
    except CorruptError:
        store = None
    return store, dev.reads


@pytest.mark.parametrize("engine", ENGINES)
def test_unreadable_bytes_31_long_after_a_checkpoint_segments_first_record(engine: str) -> None:
    """The libFuzzer input that hung the C library: the first record of the only segment with
    a header is a damaged continuation, then 31 unreadable bytes before a readable header,
    whose payload length 31 - 32 wraps to the cursor's old start mark (0xFFFFFFFF): the walk
    restarted at that record forever. Now: no checkpoint, the store is corrupt."""
    image = (CORPUS / "timeout_g0_damage31").read_bytes()
    assert image[0] % 3 == 0  # the fuzz target's geometry 0
    store, reads = _mount(_flash(image[1 : 1 + 8192]), engine)
    assert store is None
    assert reads == {"python": 17, "c": 114}[engine]


@pytest.mark.parametrize("engine", ENGINES)
def test_unreadable_bytes_31_long_before_the_last_record_are_damage(engine: str) -> None:
    """The same 31 unreadable bytes in the replay window, before an intact TRIM_RANGE newer
    than the checkpoint: damage of unknown extent (§9), so every chunk reads as corrupt, absent
    keys too."""
    flash = FlashSim(FUZZ_NOR, capacity=8192)
    store = Store.format(flash, segment_size=512)
    for k in range(5):
        store.put(k, bytes([k]) * (50 + 20 * k))
    store.sync()
    wp, rseq = store.wp, store.next_rseq
    store.unmount()
    image = bytearray(flash.image())
    junk = bytes(random.Random(5).randrange(0xFF) for _ in range(31))
    trim = pack_record(T_TRIM_RANGE, 0, 1000, 1000, 0, rseq)  # a range holding no key
    assert wp % 512 + len(junk) + len(trim) <= 512 and image[wp : wp + 63] == b"\xff" * 63
    image[wp : wp + 63] = junk + trim
    mounted, reads = _mount(_flash(bytes(image)), engine)
    assert mounted is not None
    assert mounted.keys() == [] and mounted.stat()["damaged"]
    for k in (0, 4, 77):
        with pytest.raises(CorruptError):
            mounted.get(k)
    assert reads == {"python": 18, "c": 176}[engine]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_flash_of_damaged_segments_is_read_a_bounded_number_of_times(engine: str) -> None:
    """64 hot segments with valid headers (seqs 1..64) and bodies of random bytes, no
    checkpoint anywhere. Looking for the newest checkpoint, the C library walked on from each
    segment tried through every later one (945,632 reads here, quadratic in the segment
    count); it now parses each segment's first records only (28,793: under half a read a
    byte)."""
    flash = FlashSim(FUZZ_NOR, capacity=64 * 512)
    Store.format(flash, segment_size=512).unmount()
    first = SegHeader.unpack(flash.image()[:40])
    assert first is not None
    rng = random.Random(7)
    image = b"".join(replace(first, seq=s + 1).pack() + bytes(rng.randrange(0xFF)
                                                               for _ in range(512 - 40))
                     for s in range(64))
    store, reads = _mount(_flash(image), engine)
    assert store is None
    assert reads == {"python": 128, "c": 28_793}[engine]
