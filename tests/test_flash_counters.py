"""Counters, time and energy after scripted operations, and a model-based random walk."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from flashswap.errors import FlashRuleError, InputError
from flashswap.flash import FlashSim
from flashswap.parts import Bus, get_part

KIB = 1024


def test_nor_counters_are_exact() -> None:
    s = FlashSim.from_part("W25Q128JV", 256 * KIB)
    s.erase(0, 65536)
    assert s.erase_counts[:17].tolist() == [1] * 16 + [0]
    assert s.ops == {"reads": 0, "programs": 0, "erases": 1}
    assert s.ops_count == 1
    s.program(0, bytes(4096))  # 16 pages
    s.program(4096 + 250, bytes(10))  # straddles two pages
    assert s.program_bytes[:3].tolist() == [4096, 10, 0]
    assert s.ops["programs"] == 18 and s.ops_count == 19
    want = bytes(2048) + b"\xff" * 250 + bytes(10) + b"\xff" * (8192 - 2048 - 260)
    assert s.read(2048, 8192) == want
    assert s.read_bytes[:4].tolist() == [2048, 4096, 2048, 0]
    assert s.ops["reads"] == 1
    s.erase(32768, 32768)
    assert s.erase_counts[:17].tolist() == [1] * 8 + [2] * 8 + [0]
    assert s.erase_counts.sum() == 24

    p = get_part("W25Q128JV")
    bus = (8192 + 4106) / 66.5e6  # read-out and program data over quad SPI at 133 MHz
    t_typ = 0.150 + 18 * 400e-6 + 0.120 + bus
    t_max = 2.0 + 18 * 3e-3 + 1.6 + bus
    assert s.time_s == pytest.approx(t_typ, rel=1e-12)
    assert s.time_max_s == pytest.approx(t_max, rel=1e-12)
    w_prog = w_erase = 20e-3 * 3.3
    w_read = p.i_read_ma * 1e-3 * 3.3
    e_typ = (0.150 + 0.120) * w_erase + 18 * 400e-6 * w_prog + bus * w_read
    assert s.energy_j == pytest.approx(e_typ, rel=1e-12)
    assert s.energy_max_j > s.energy_j


def test_read_back_matches_programs() -> None:
    s = FlashSim.from_part("W25Q128JV", 64 * KIB)
    s.program(100, b"hello")
    s.program(5000, b"world")
    img = s.image()
    assert img[100:105] == b"hello" and img[5000:5005] == b"world"
    assert img.count(b"\xff") == len(img) - 10
    assert s.read(98, 9) == b"\xff\xffhello\xff\xff"


def test_nand_read_time_counts_pages_and_transfer() -> None:
    n = FlashSim.from_part("W25N01GV", 2 * 128 * KIB)
    n.read(1000, 3000)  # pages 0 and 1
    assert n.time_s == pytest.approx(2 * 60e-6 + 3000 / 52e6, rel=1e-12)
    n.read_spare(0)
    assert n.time_s == pytest.approx(3 * 60e-6 + 3064 / 52e6, rel=1e-12)
    assert n.read_bytes.tolist() == [3064, 0]
    n.program(0, bytes(2048), spare=bytes(8))
    assert n.program_bytes.tolist() == [2056, 0]
    n.erase(128 * KIB)
    assert n.time_max_s == pytest.approx(3 * 60e-6 + (3064 + 2056) / 52e6 + 700e-6 + 10e-3,
                                         rel=1e-12)


def test_the_board_bus_sets_the_transfer_time() -> None:
    """Page data crosses the part's bus, by default its fastest (quad SPI at 104 MHz on the
    W25N01GV); a board that clocks it slower or narrower pays more, for reads and programs
    alike; managed and internal parts take no bus (their figures include the transfer)."""
    slow = Bus(50, 1)
    for bus, rate in ((None, 52e6), (slow, 6.25e6)):
        n = FlashSim.from_part("W25N01GV", 2 * 128 * KIB, bus=bus)
        n.program(0, bytes(2048))
        n.read(0, 2048)
        assert n.time_s == pytest.approx(250e-6 + 60e-6 + 4096 / rate, rel=1e-12)
        assert n.stream_cost(4096, 2) == pytest.approx((2 * 60e-6 + 4096 / rate,
                                                        (2 * 60e-6 + 4096 / rate) * 25e-3 * 3.3))
    with pytest.raises(InputError, match=r"bus 4-bit bus at 133 MHz \(66.5 MB/s\) exceeds "
                       r"W25N01GV's 4-bit bus at 104 MHz"):
        FlashSim.from_part("W25N01GV", 2 * 128 * KIB, bus=Bus(133, 4))
    with pytest.raises(InputError, match="takes no bus setting"):
        FlashSim.from_part("S-46u-2GB", 1 << 20, bus=slow)
    s = FlashSim.from_part("STM32L476-FLASH", 4 * KIB)
    s.program(0, bytes(8))
    assert s.time_s == pytest.approx(81.69e-6, rel=1e-12)  # the word program time alone


def test_nand_page_in_the_data_register_costs_no_tr() -> None:
    """tR is paid per page loaded: a read starting on the page the last read (main or spare)
    left in the data register skips it; a program or an erase empties the register."""
    n = FlashSim.from_part("W25N01GV", 2 * 128 * KIB)
    tr, bw = 60e-6, 52e6
    n.read(0, 32)  # loads page 0
    n.read(32, 3000)  # page 0 is there: only page 1 is loaded
    assert n.time_s == pytest.approx(2 * tr + 3032 / bw, rel=1e-12)
    n.read_spare(2048)  # page 1 still there
    n.read(0, 10)  # page 0 again
    assert n.time_s == pytest.approx(3 * tr + 3106 / bw, rel=1e-12)
    assert n.ops["reads"] == 4
    n.program(64 * 2048, bytes(16))  # another block: the register is emptied all the same
    t = n.time_s
    n.read(0, 10)
    assert n.time_s - t == pytest.approx(tr + 10 / bw, rel=1e-9)
    n.erase(128 * KIB)
    t = n.time_s
    n.read(0, 10)
    assert n.time_s - t == pytest.approx(tr + 10 / bw, rel=1e-9)
    # the same reads booked in bulk, a program between two of them marked by an address < 0
    m = FlashSim.from_part("W25N01GV", 2 * 128 * KIB)
    m.account_reads(np.array([0, 32, 2048, -1, 2048]), np.array([32, 3000, 10, 0, 10]))
    assert m.ops["reads"] == 4
    assert m.time_s == pytest.approx(3 * tr + 3052 / bw, rel=1e-12)
    assert m.copy()._reg is not m._reg


def test_reset_counters_keeps_wear_and_data() -> None:
    s = FlashSim.from_part("W25Q128JV", 64 * KIB)
    s.erase(0)
    s.program(0, b"\x00")
    s.read(0, 10)
    s.reset_counters()
    assert s.erase_counts.sum() == s.program_bytes.sum() == s.read_bytes.sum() == 0
    assert s.ops == {"reads": 0, "programs": 0, "erases": 0} and s.ops_count == 0
    assert s.time_s == s.time_max_s == s.energy_j == s.energy_max_j == 0
    assert s.wear_counts[0] == 1 and s.read(0, 1) == b"\x00"
    with pytest.raises(ValueError):
        s.wear_counts[0] = 5  # read-only view


class NorAgainstBytearray(RuleBasedStateMachine):
    """Random legal and illegal operations on a small NOR, checked against a plain model."""

    def __init__(self) -> None:
        super().__init__()
        self.sim = FlashSim.from_part("W25Q128JV", 64 * KIB)
        self.model = bytearray(b"\xff" * (64 * KIB))
        self.page_ops = 0

    @rule(
        block=st.integers(0, 15),
        off=st.integers(0, 4095),
        data=st.binary(min_size=1, max_size=600),
    )
    def program_legal(self, block: int, off: int, data: bytes) -> None:
        addr = block * 4096 + off
        data = data[: 4096 - off]
        old = self.model[addr : addr + len(data)]
        new = bytes(a & b for a, b in zip(old, data, strict=True))  # only clears bits
        self.sim.program(addr, new)
        self.model[addr : addr + len(new)] = new
        self.page_ops += (addr + len(new) - 1) // 256 - addr // 256 + 1

    @rule(block=st.integers(0, 15), off=st.integers(0, 4095), bit=st.integers(0, 7))
    def program_illegal(self, block: int, off: int, bit: int) -> None:
        addr = block * 4096 + off
        if self.model[addr] >> bit & 1:
            return
        with pytest.raises(FlashRuleError, match="sets bits 0->1"):
            self.sim.program(addr, bytes([self.model[addr] | 1 << bit]))

    @rule(size=st.sampled_from([4096, 32768, 65536]), index=st.integers(0, 15))
    def erase(self, size: int, index: int) -> None:
        addr = index * 4096 // size * size
        self.sim.erase(addr, size)
        self.model[addr : addr + size] = b"\xff" * size
        self.page_ops += 1

    @invariant()
    def same_bytes(self) -> None:
        assert self.sim.image() == bytes(self.model)
        assert self.sim.ops_count == self.page_ops


TestNorAgainstBytearray = NorAgainstBytearray.TestCase


class NandAgainstModel(RuleBasedStateMachine):
    """Random NAND programs and erases: the simulator refuses exactly what the model predicts
    (NOP, page order, bit set) and otherwise holds the same bytes."""

    PAGE, PPB, BLOCKS = 2048, 64, 2

    def __init__(self) -> None:
        super().__init__()
        self.sim = FlashSim.from_part("W25N01GV", self.BLOCKS * self.PPB * self.PAGE)
        self.model = bytearray(b"\xff" * self.sim.size)
        self.writes = [0] * (self.BLOCKS * self.PPB)
        self.top = [-1] * self.BLOCKS

    @rule(
        block=st.integers(0, 1),
        page=st.integers(0, 5),
        off=st.integers(0, 2047),
        data=st.binary(min_size=1, max_size=64),
        legal_bits=st.booleans(),
    )
    def program(self, block: int, page: int, off: int, data: bytes, legal_bits: bool) -> None:
        p = block * self.PPB + page
        addr = p * self.PAGE + off
        data = data[: self.PAGE - off]
        old = self.model[addr : addr + len(data)]
        if legal_bits:
            data = bytes(a & b for a, b in zip(old, data, strict=True))
        sets_bits = any(b & ~a & 0xFF for a, b in zip(old, data, strict=True))
        refused = sets_bits or self.writes[p] >= 4 or page < self.top[block]
        if refused:
            with pytest.raises(FlashRuleError):
                self.sim.program(addr, data)
            return
        self.sim.program(addr, data)
        self.model[addr : addr + len(data)] = data
        self.writes[p] += 1
        self.top[block] = max(self.top[block], page)

    @rule(block=st.integers(0, 1))
    def erase(self, block: int) -> None:
        size = self.PPB * self.PAGE
        self.sim.erase(block * size)
        self.model[block * size : (block + 1) * size] = b"\xff" * size
        self.writes[block * self.PPB : (block + 1) * self.PPB] = [0] * self.PPB
        self.top[block] = -1

    @invariant()
    def same_bytes(self) -> None:
        assert self.sim.image() == bytes(self.model)


TestNandAgainstModel = NandAgainstModel.TestCase
