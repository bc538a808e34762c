"""save/load round trip, corrupt images, and copy()."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from flashswap.errors import InputError, PowerCut
from flashswap.flash import FlashSim
from flashswap.parts import get_part

KIB = 1024


def busy_nand() -> FlashSim:
    part = replace(get_part("W25N01GV"), name="MyNand", rber=(1e-4, 1e-3))  # not in the catalogue
    sim = FlashSim(
        part, 8 * 128 * KIB, seed=4, wear="error", bit_errors=True, factory_bad=[5],
        weibull=(2.0, 50.0),
    )  # fmt: skip
    sim.program(0, bytes(range(256)) * 8, spare=b"\xab" * 10)
    sim.erase(128 * KIB)
    sim.program(128 * KIB + 2048, b"\x00" * 100)
    sim.read(0, 5000)
    return sim


def state(sim: FlashSim) -> dict:
    return {
        "part": sim.part,
        "size": sim.size,
        "image": sim.image(),
        "spare": sim.spare_image(),
        "erase": sim.erase_counts.tolist(),
        "prog": sim.program_bytes.tolist(),
        "read": sim.read_bytes.tolist(),
        "wear": sim.wear_counts.tolist(),
        "endurance": sim.block_endurance.tolist(),
        "bad": sim.factory_bad_blocks.tolist(),
        "ops": dict(sim.ops),
        "ops_count": sim.ops_count,
        "time": (sim.time_s, sim.time_max_s, sim.energy_j, sim.energy_max_j),
        "flags": (sim.seed, sim.wear, sim.bit_errors, sim.endurance, sim.weibull),
    }


def test_save_load_round_trip(tmp_path: Path) -> None:
    sim = busy_nand()
    path = tmp_path / "flash.img"  # no .npz suffix: saved exactly where asked
    sim.save(path)
    back = FlashSim.load(path)
    assert state(back) == state(sim)
    # the random stream continues identically: same bit flips on the next reads
    assert back.read(0, 4096) == sim.read(0, 4096)
    # and the rules state too: page 1 of block 1 is the highest programmed page
    with pytest.raises(Exception, match="ascending order"):
        back.program(128 * KIB, b"\x00")


def test_armed_power_cut_survives_save(tmp_path: Path) -> None:
    sim = FlashSim.from_part("W25Q128JV", 64 * KIB)
    sim.power_cut_after(1)
    sim.save(tmp_path / "a.npz")
    back = FlashSim.load(tmp_path / "a.npz")
    back.program(0, bytes(256))
    with pytest.raises(PowerCut):
        back.program(256, bytes(256))


def test_load_rejects_non_images(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError) as e:
        FlashSim.load(text)
    assert str(e.value).startswith(f"{text}: not a flashswap flash image (")
    assert "\n" not in str(e.value)

    other = tmp_path / "other.npz"
    np.savez(other, main=np.zeros(4, np.uint8))
    with pytest.raises(InputError, match=r"other\.npz: not a flashswap flash image"):
        FlashSim.load(other)

    good = tmp_path / "good.npz"
    FlashSim.from_part("W25Q128JV", 64 * KIB).save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError, match=r"truncated\.npz: not a flashswap flash image"):
        FlashSim.load(truncated)

    # a well-formed archive whose arrays do not fit the header
    buf = io.BytesIO()
    with zipfile.ZipFile(good) as z, zipfile.ZipFile(buf, "w") as out:
        for item in z.namelist():
            data = z.read(item)
            if item == "inv.npy":
                npy = io.BytesIO()
                np.save(npy, np.zeros(10, np.uint8))
                data = npy.getvalue()
            out.writestr(item, data)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(buf.getvalue())
    with pytest.raises(InputError, match=r"bad\.npz: not a flashswap flash image \(array inv"):
        FlashSim.load(bad)
    with pytest.raises(InputError, match=r"missing\.npz: not a flashswap flash image"):
        FlashSim.load(tmp_path / "missing.npz")


def test_copy_is_independent() -> None:
    sim = busy_nand()
    fork = sim.copy()
    assert state(fork) == state(sim)
    fork.program(2 * 128 * KIB, b"\x00" * 10)
    fork.erase(0)
    assert sim.image()[: 2 * 128 * KIB + 10] != fork.image()[: 2 * 128 * KIB + 10]
    assert sim.erase_counts[0] == 0 and fork.erase_counts[0] == 1
    assert sim.ops != fork.ops
    # both continue with the same random stream from the fork point
    a, b = sim.copy(), sim.copy()
    assert a.read(0, 8192) == b.read(0, 8192)
    # an armed cut is copied too, and counts down separately
    s = FlashSim.from_part("W25Q128JV", 64 * KIB)
    s.power_cut_after(0)
    t = s.copy()
    with pytest.raises(PowerCut):
        t.program(0, b"\x00")
    with pytest.raises(PowerCut):
        s.program(0, b"\x00")
