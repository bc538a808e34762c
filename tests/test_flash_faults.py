"""Injected faults: power cut at every operation, wear-out, Weibull endurance, bit flips,
factory-bad blocks."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from flashswap.errors import FlashWearError, InputError, PowerCut
from flashswap.flash import FlashSim
from flashswap.parts import get_part

KIB = 1024

# A scripted sequence: (op, addr, data-or-size, spare). Programs may span several pages.
NOR_SCRIPT = [
    ("erase", 0, 4096, None),
    ("program", 0, bytes(range(256)) * 4, None),
    ("program", 1000, b"\x00" * 300, None),
    ("erase", 32768, 32768, None),
    ("program", 32768, b"\x5a" * 512, None),
    ("erase", 0, 4096, None),
    ("program", 4096, b"\xa5" * 256, None),
    ("erase", 0, 65536, None),
    ("program", 100, b"\x0f" * 50, None),
]
NAND_SCRIPT = [
    ("program", 0, bytes(range(256)) * 16, b"\x11" * 100),
    ("program", 4096, b"\x00" * 10, b"\x22" * 4),
    ("program", 128 * KIB, b"\x33" * 2048, None),
    ("erase", 0, 128 * KIB, None),
    ("program", 2048, b"\x44" * 3000, b"\x55" * 70),
]
MANAGED_SCRIPT = [
    ("program", 0, b"\x00" * 1536, None),
    ("program", 512, b"\xff" * 1024, None),  # overwrite: the card's FTL allows it
    ("erase", 0, 512, None),
    ("program", 4096, bytes(range(256)) * 4, None),
]


def run_script(sim: FlashSim, script: list) -> None:
    for op, addr, arg, spare in script:
        if op == "erase":
            sim.erase(addr, arg)
        else:
            sim.program(addr, arg, spare)


def unit_ops(sim: FlashSim, script: list) -> list:
    """The script split into the device operations the power-cut countdown sees."""
    out = []
    ps, ss = sim.page_size, sim.spare_size
    for op, addr, arg, spare in script:
        if op == "erase":
            out.append(("erase", addr, arg, None))
            continue
        end = addr + max(len(arg), 1)
        first = addr // ps
        for page in range(first, (end - 1) // ps + 1):
            lo, hi = max(addr, page * ps), min(end, (page + 1) * ps)
            k = page - first
            sp = None if spare is None else spare[k * ss : (k + 1) * ss] or None
            out.append(("program", lo, arg[lo - addr : hi - addr], sp))
    return out


def states(make, script: list) -> tuple[list, list]:
    """(main, spare) images before each unit op, plus the final one."""
    ref = make()
    ops = unit_ops(ref, script)
    images = [(ref.image(), ref.spare_image())]
    for op in ops:
        run_script(ref, [op])
        images.append((ref.image(), ref.spare_image()))
    return ops, images


def between(got: np.ndarray, old: np.ndarray, new: np.ndarray) -> bool:
    """Every bit equals the old or the new value of that bit."""
    return bool(((got & ~(old | new)) == 0).all() and ((old & new & ~got) == 0).all())


def arr(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint8)


@pytest.mark.parametrize(
    ("part", "capacity", "script"),
    [
        ("W25Q128JV", 64 * KIB, NOR_SCRIPT),
        ("W25N01GV", 2 * 128 * KIB, NAND_SCRIPT),
        ("S-46u-2GB", 64 * KIB, MANAGED_SCRIPT),
        ("nRF5340-APP", 16 * KIB, [("program", 0, bytes(64), None), ("erase", 0, 4096, None)]),
    ],
)
def test_power_cut_at_every_operation(part: str, capacity: int, script: list) -> None:
    def make() -> FlashSim:
        return FlashSim.from_part(part, capacity, seed=7)

    ops, images = states(make, script)
    full = make()
    run_script(full, script)
    assert full.ops_count == len(ops)
    for n, (op, addr, arg, spare) in enumerate(ops):
        sim = make()
        sim.power_cut_after(n)
        with pytest.raises(PowerCut):
            run_script(sim, script)
        assert sim.ops_count == n + 1, f"cut at operation {n}"
        (old_main, old_spare), (new_main, new_spare) = images[n], images[n + 1]
        got_main, got_spare = arr(sim.image()), arr(sim.spare_image())
        lo, hi = (addr, addr + arg) if op == "erase" else (addr, addr + len(arg))
        if op == "erase":  # a torn erase also tears the spare areas of its pages
            s_lo = addr // sim.page_size * sim.spare_size
            s_hi = (addr + arg) // sim.page_size * sim.spare_size
        else:
            s_lo = addr // sim.page_size * sim.spare_size
            s_hi = s_lo + (0 if spare is None else len(spare))
        for got, old, new, a, b in (
            (got_main, arr(old_main), arr(new_main), lo, hi),
            (got_spare, arr(old_spare), arr(new_spare), s_lo, s_hi),
        ):
            # outside the torn op: exactly the state before it
            assert (got[:a] == old[:a]).all() and (got[b:] == old[b:]).all(), f"op {n}"
            assert between(got[a:b], old[a:b], new[a:b]), f"op {n}"
        # disarmed afterwards, and the device keeps working
        sim.erase(0, sim.erase_sizes[-1])
        k = max(16, sim.page_size)
        sim.program(0, bytes(k))
        assert sim.read(0, k) == bytes(k)


def test_torn_program_leaves_a_random_subset() -> None:
    sim = FlashSim.from_part("W25Q128JV", 64 * KIB, seed=1)
    sim.power_cut_after(0)
    with pytest.raises(PowerCut, match=r"power cut during page program 1 of 1 at 0x0"):
        sim.program(0, bytes(256))
    cleared = np.unpackbits(~arr(sim.read(0, 256))).sum()
    assert 0 < cleared < 2048  # some of the bits it was clearing, not none, not all
    sim.power_cut_after(None)
    sim.program(0, bytes(256))  # disarmed: no cut
    # same seed, same tear
    again = FlashSim.from_part("W25Q128JV", 64 * KIB, seed=1)
    again.power_cut_after(0)
    with pytest.raises(PowerCut):
        again.program(0, bytes(256))
    other = FlashSim.from_part("W25Q128JV", 64 * KIB, seed=1)
    other.power_cut_after(2)
    other.program(0, bytes(512))  # two pages complete: countdown 2 -> 0
    with pytest.raises(PowerCut, match=r"page program 1 of 2 at 0x200"):
        other.program(512, bytes(512))
    assert other.ops_count == 3


def test_power_cut_argument_checks() -> None:
    sim = FlashSim.from_part("W25Q128JV", 64 * KIB)
    with pytest.raises(InputError):
        sim.power_cut_after(-1)


def test_wear_error_mode() -> None:
    sim = FlashSim.from_part("W25Q128JV", 128 * KIB, wear="error", endurance=3)
    for _ in range(3):
        sim.erase(0)
    sim.program(0, b"\x00\x01")
    with pytest.raises(
        FlashWearError, match=r"^block 0 worn out after 3 erase cycles: erase failed$"
    ):
        sim.erase(0)
    assert sim.erase_counts[0] == 4 and sim.read(0, 3) == b"\x00\x01\xff"  # data unchanged
    with pytest.raises(
        FlashWearError, match=r"^block 0 worn out after 3 erase cycles: program failed$"
    ):
        sim.program(8, b"\x00")
    with pytest.raises(FlashWearError, match=r"block 0 worn out"):
        sim.erase(0, 65536)
    sim.erase(4096)
    sim.program(4096, b"\x00")  # other blocks are fine


def test_wear_silent_mode() -> None:
    sim = FlashSim.from_part("W25Q128JV", 64 * KIB, wear="silent", endurance=2, seed=3)
    sim.program(0, bytes(4096))
    sim.erase(0)
    sim.erase(0)
    sim.program(0, bytes(4096))
    sim.erase(0)  # the third erase: past endurance, completes with wrong bits
    img = arr(sim.read(0, 4096))
    stuck = int(np.unpackbits(~img).sum())
    assert 1 <= stuck <= 4096 * 8 * 0.02
    sim.program(0, img & 0)  # program on the worn block: some bits fail to clear
    left = int(np.unpackbits(arr(sim.read(0, 4096))).sum())
    assert 1 <= left <= (4096 * 8 - stuck) * 0.02 + 1
    assert sim.erase_counts[0] == 3


def test_weibull_endurance_is_seeded() -> None:
    part = get_part("W25N01GV")
    a = FlashSim(part, seed=1, weibull=(2.0, 1000.0)).block_endurance
    b = FlashSim(part, seed=1, weibull=(2.0, 1000.0)).block_endurance
    c = FlashSim(part, seed=2, weibull=(2.0, 1000.0)).block_endurance
    assert (a == b).all() and not (a == c).all()
    assert a.dtype == np.int64 and a.shape == (1024,)
    mean = 1000 * math.gamma(1.5)
    sd = 1000 * math.sqrt(1 - math.gamma(1.5) ** 2)
    assert abs(a.mean() - mean) < 5 * sd / math.sqrt(1024)
    # uniform endurance by default, the part's rating or the override
    assert (FlashSim(part, 256 * KIB).block_endurance == 100_000).all()
    assert (FlashSim(part, 256 * KIB, endurance=7).block_endurance == 7).all()
    with pytest.raises(InputError, match="weibull"):
        FlashSim(part, 256 * KIB, weibull=(0, 10))


def test_weibull_endurance_drives_wear_out() -> None:
    sim = FlashSim.from_part("W25Q128JV", 64 * KIB, wear="error", weibull=(1.5, 6.0), seed=5)
    b = int(np.argmin(sim.block_endurance))
    e = int(sim.block_endurance[b])
    for _ in range(e):
        sim.erase(b * 4096)
    with pytest.raises(FlashWearError, match=f"block {b} worn out after {e} erase cycles"):
        sim.erase(b * 4096)


def test_bit_flips_rate_and_growth_with_wear() -> None:
    part = replace(get_part("W25N01GV"), rber=(1e-4, 1e-2))
    sim = FlashSim(part, 4 * 128 * KIB, bit_errors=True, endurance=10, seed=11, ecc=False)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 128 * KIB, dtype=np.uint8).tobytes()
    for p in range(64):
        sim.program(p * 2048, data[p * 2048 : (p + 1) * 2048])
    stored = sim.image()
    reads, nbits = 10, 128 * KIB * 8

    def flips(addr: int, expect: bytes, times: int) -> int:
        ref = arr(expect)
        return sum(
            int(np.unpackbits(arr(sim.read(addr, len(expect))) ^ ref).sum()) for _ in range(times)
        )

    got = flips(0, data, reads)
    exp = reads * nbits * 1e-4
    assert abs(got - exp) < 5 * math.sqrt(exp), (got, exp)
    assert sim.image() == stored  # flips are in the returned data only
    assert sim.rber([0])[0] == pytest.approx(1e-4)
    for _ in range(5):
        sim.erase(128 * KIB)
    assert sim.rber([1])[0] == pytest.approx(1e-3)  # log-linear: halfway in log space
    got_worn = flips(128 * KIB, b"\xff" * 128 * KIB, 5)
    exp_worn = 5 * nbits * 1e-3
    assert abs(got_worn - exp_worn) < 5 * math.sqrt(exp_worn), (got_worn, exp_worn)
    assert got_worn / 5 > 5 * got / reads
    for _ in range(10):
        sim.erase(2 * 128 * KIB)
    assert sim.rber([2])[0] == pytest.approx(1e-2)
    for _ in range(20):
        sim.erase(3 * 128 * KIB)
    assert sim.rber([3])[0] == 0.5  # extrapolated, capped


def test_no_bit_flips_unless_asked_or_on_nor() -> None:
    part = replace(get_part("W25N01GV"), rber=(1e-2, 1e-1))
    quiet = FlashSim(part, 128 * KIB)
    assert quiet.read(0, 128 * KIB) == b"\xff" * 128 * KIB
    nor = FlashSim.from_part("W25Q128JV", 64 * KIB, bit_errors=True)
    assert nor.bit_errors is False and nor.read(0, 64 * KIB) == b"\xff" * 64 * KIB


def test_factory_bad_blocks() -> None:
    sim = FlashSim.from_part("W25N01GV", seed=3, factory_bad=20)
    bad = sim.factory_bad_blocks.tolist()
    assert len(set(bad)) == 20 and 0 not in bad and bad == sorted(bad)
    assert FlashSim.from_part("W25N01GV", seed=3, factory_bad=20).factory_bad_blocks.tolist() == bad
    block = 128 * KIB
    scanned = [b for b in range(sim.num_blocks) if sim.read_spare(b * block, 1) != b"\xff"]
    assert scanned == bad  # the store finds them through the spare-area marker
    assert sim.read_spare(bad[0] * block)[0] == 0x00
    with pytest.raises(FlashWearError, match=f"^block {bad[0]} is factory-bad .*: program failed$"):
        sim.program(bad[0] * block, b"\x00")
    with pytest.raises(FlashWearError, match=f"^block {bad[0]} is factory-bad .*: erase failed$"):
        sim.erase(bad[0] * block)
    explicit = FlashSim.from_part("W25N01GV", 4 * block, factory_bad=[0, 3])
    assert explicit.factory_bad_blocks.tolist() == [0, 3]
    assert explicit.read_spare(0, 1) == b"\x00" and explicit.read_spare(block, 1) == b"\xff"
    with pytest.raises(InputError, match=r"factory_bad blocks must be in 0\.\.3"):
        FlashSim.from_part("W25N01GV", 4 * block, factory_bad=[4])


def test_managed_wear_counts_per_sector() -> None:
    sd = FlashSim.from_part("S-46u-2GB", 8 * KIB, wear="error", endurance=1)
    sd.erase(0)
    with pytest.raises(
        FlashWearError, match=r"^block 0 worn out after 1 erase cycles: erase failed$"
    ):
        sd.erase(0)
    with pytest.raises(
        FlashWearError, match=r"^sector 0 worn out after 1 erase cycles: write failed$"
    ):
        sd.program(0, bytes(1024))
    sd.program(512, bytes(512))


def test_ecc_corrects_up_to_its_strength_per_sector() -> None:
    """W25N01GV's on-die ECC corrects 1 bit per 512 B: at a raw rate of 1e-4 (0.41 errors per
    sector) a sector reads clean with probability e^-0.41 * 1.41 = 0.936, and a sector that
    does not keeps all its errors (two or more); raw reads (ecc=False) show errors in
    1 - e^-0.41 = 33.6% of sectors."""
    part = replace(get_part("W25N01GV"), rber=(1e-4, 1e-2))
    lam = 4096 * 1e-4
    for ecc, p_dirty in ((True, 1 - math.exp(-lam) * (1 + lam)), (False, 1 - math.exp(-lam))):
        sim = FlashSim(part, 128 * KIB, bit_errors=True, seed=5, ecc=ecc)
        dirty, n, min_flips = 0, 0, 99
        for _ in range(10):
            got = arr(sim.read(0, 128 * KIB)).reshape(-1, 512)
            flips = np.unpackbits(~got, axis=1).sum(axis=1)
            dirty += int(np.count_nonzero(flips))
            n += flips.size
            min_flips = min(min_flips, int(flips[flips > 0].min()))
        assert abs(dirty - n * p_dirty) < 5 * math.sqrt(n * p_dirty), (ecc, dirty, n * p_dirty)
        assert min_flips == (2 if ecc else 1)


def test_parts_without_ecc_read_raw() -> None:
    part = replace(get_part("W25N01GV"), rber=(1e-3, 1e-2), ecc=None, ecc_bits=None,
                   ecc_sector=None)
    sim = FlashSim(part, 128 * KIB, bit_errors=True, seed=5)
    got = arr(sim.read(0, 128 * KIB))
    assert int(np.unpackbits(~got).sum()) > 500  # ~1049 expected: nothing corrected
