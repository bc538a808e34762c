"""Every rule of the flash is enforced with FlashRuleError, and a refused op changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from flashswap import FlashSim as LazyFlashSim
from flashswap.errors import FlashRuleError, InputError
from flashswap.flash import FlashSim

KIB = 1024


def nor(capacity: int = 256 * KIB, **kw: object) -> FlashSim:
    return FlashSim.from_part("W25Q128JV", capacity, **kw)


def nand(capacity: int = 8 * 128 * KIB, **kw: object) -> FlashSim:
    return FlashSim.from_part("W25N01GV", capacity, **kw)


def snapshot(sim: FlashSim) -> tuple:
    return (
        sim.image(),
        sim.spare_image(),
        sim.erase_counts.tolist(),
        sim.program_bytes.tolist(),
        sim.read_bytes.tolist(),
        dict(sim.ops),
        sim.ops_count,
        sim.time_s,
    )


def refused(sim: FlashSim, fn, message: str) -> None:
    """fn() raises FlashRuleError with exactly `message` and leaves the device untouched."""
    before = snapshot(sim)
    with pytest.raises(FlashRuleError) as e:
        fn()
    assert str(e.value) == message
    assert snapshot(sim) == before


def test_attributes() -> None:
    s = nor()
    assert LazyFlashSim is FlashSim
    assert (s.kind, s.size, s.erase_size, s.erase_sizes) == (
        "nor",
        262144,
        4096,
        (4096, 32768, 65536),
    )
    assert (s.page_size, s.spare_size, s.nop, s.num_blocks, s.pages_per_block) == (
        256,
        0,
        0,
        64,
        16,
    )
    n = nand()
    assert (n.kind, n.erase_sizes, n.page_size, n.spare_size, n.nop) == (
        "nand",
        (131072,),
        2048,
        64,
        4,
    )
    assert (n.num_blocks, n.pages_per_block) == (8, 64)
    assert s.image() == b"\xff" * s.size
    full = FlashSim.from_part("W25Q128JV")
    assert full.size == 16 * 1024 * KIB and full.num_blocks == 4096


def test_bad_capacity_and_options() -> None:
    with pytest.raises(
        InputError, match=r"capacity 5000 for W25Q128JV must be a positive multiple"
    ):
        nor(5000)
    with pytest.raises(InputError, match="at most 16777216"):
        nor(32 * 1024 * KIB)
    with pytest.raises(InputError, match="wear must be None, 'error' or 'silent'"):
        nor(wear="loud")
    with pytest.raises(InputError, match="factory-bad blocks exist only on NAND"):
        nor(factory_bad=2)
    # a partition smaller than the large erase sizes keeps only those that fit
    assert nor(16 * KIB).erase_sizes == (4096,)


def test_program_can_only_clear_bits() -> None:
    s = nor()
    s.program(0x10, b"\xf0\x0f")
    s.program(0x10, b"\x30\x0c")  # clears more bits: allowed on NOR, any number of times
    assert s.read(0x10, 2) == b"\x30\x0c"
    refused(
        s,
        lambda: s.program(0x10, b"\x30\x1c"),
        "program at 0x11 sets bits 0->1 (old 0x0c, new 0x1c): program can only clear bits; "
        "erase first",
    )
    aligned = bytes(4096)
    s.program(8192, aligned)
    refused(
        s,
        lambda: s.program(8192, b"\x00" * 4095 + b"\x01"),
        "program at 0x2fff sets bits 0->1 (old 0x00, new 0x01): program can only clear bits; "
        "erase first",
    )


def test_program_range_and_block_crossing() -> None:
    s = nor()
    refused(
        s,
        lambda: s.program(4090, b"\x00" * 12),
        "program of 12 bytes at 0xffa crosses the erase-block boundary at 0x1000: "
        "split it per block",
    )
    refused(
        s,
        lambda: s.program(s.size - 2, b"\x00" * 4),
        "program of 4 bytes at 0x3fffe is out of range (device size 0x40000)",
    )
    refused(
        s,
        lambda: s.program(-1, b"\x00"),
        "program of 1 bytes at -0x1 is out of range (device size 0x40000)",
    )
    refused(s, lambda: s.program(0, b""), "program at 0x0 of 0 bytes: nothing to program")
    refused(
        s,
        lambda: s.read(s.size, 1),
        "read of 1 bytes at 0x40000 is out of range (device size 0x40000)",
    )
    assert s.read(s.size, 0) == b""


def test_erase_size_and_alignment() -> None:
    s = nor()
    refused(s, lambda: s.erase(100), "erase of 4096 bytes at 0x64: address not aligned to 4096")
    refused(
        s,
        lambda: s.erase(4096, 32768),
        "erase of 32768 bytes at 0x1000: address not aligned to 32768",
    )
    refused(
        s,
        lambda: s.erase(0, 8192),
        "erase size 8192 is not one of W25Q128JV's (4096, 32768, 65536)",
    )
    refused(
        s,
        lambda: s.erase(s.size),
        "erase of 4096 bytes at 0x40000 is out of range (device size 0x40000)",
    )
    s.program(0, b"\x00" * 256)
    s.erase(0, 65536)
    assert s.read(0, 256) == b"\xff" * 256


def test_nand_nop_limit() -> None:
    n = nand()
    for i in range(4):  # four partial programs of page 0, each clearing new bits
        n.program(i * 16, b"\x00" * 16)
    refused(
        n,
        lambda: n.program(100, b"\x00"),
        "page 0 at 0x0 already programmed 4 time(s) since its erase: NOP limit of W25N01GV is 4",
    )
    n.program(2048, b"\x00")  # the next page is fresh
    n.erase(0)
    n.program(0, b"\x00")  # the erase reset the count


def test_nand_pages_in_ascending_order() -> None:
    n = nand()
    n.program(5 * 2048, b"\x00" * 10)
    n.program(5 * 2048 + 10, b"\x00" * 10)  # the same (highest) page again: allowed
    refused(
        n,
        lambda: n.program(3 * 2048, b"\x00"),
        "page 3 of block 0 (0x1800) programmed after page 5: NAND pages must be programmed in "
        "ascending order",
    )
    n.program(128 * KIB + 3 * 2048, b"\x00")  # order is per block
    n.program(6 * 2048, b"\x00")


def test_nand_multi_page_program_counts_each_page() -> None:
    n = nand()
    n.program(1000, b"\x00" * 5000)  # touches pages 0, 1, 2
    assert n.ops["programs"] == 3
    n.program(3 * 2048, b"\x00" * 2048)
    assert n.ops["programs"] == 4


def test_spare_rules() -> None:
    s = nor()
    refused(
        s,
        lambda: s.program(0, b"\x00", spare=b"\x00"),
        "W25Q128JV is nor: only NAND has a spare area",
    )
    with pytest.raises(FlashRuleError, match="only NAND has a spare area"):
        s.read_spare(0)
    n = nand()
    refused(
        n,
        lambda: n.program(10, b"\x00", spare=b"\x00"),
        "program with spare at 0xa: address must be page-aligned (2048 bytes)",
    )
    refused(
        n,
        lambda: n.program(0, b"\x00", spare=bytes(65)),
        "65 spare bytes for 1 page(s) of 64 spare bytes",
    )
    n.program(0, b"", spare=b"\x12\x34")  # spare only: one page program
    assert n.read_spare(0)[:3] == b"\x12\x34\xff"
    assert n.read_spare(0, 2) == b"\x12\x34"
    n.program(2048, bytes(4096), spare=bytes(100))  # two pages: spare spills into the second
    assert n.read_spare(2048) == bytes(64) and n.read_spare(4096) == bytes(36) + b"\xff" * 28
    n.program(6 * 2048, b"", spare=b"\x00")
    refused(
        n,
        lambda: n.program(6 * 2048, b"", spare=b"\x01"),
        "spare program of page 6 (0x3000) sets bits 0->1: erase the block first",
    )
    with pytest.raises(FlashRuleError, match="address must be page-aligned"):
        n.read_spare(1)
    n.erase(0)
    assert n.read_spare(0) == b"\xff" * 64


def test_internal_flash_write_unit_rules() -> None:
    nrf = FlashSim.from_part("nRF5340-APP", 16 * KIB)
    refused(
        nrf,
        lambda: nrf.program(2, b"\x00\x00\x00\x00"),
        "program of 4 bytes at 0x2: nRF5340-APP writes whole aligned 4-byte words",
    )
    refused(
        nrf,
        lambda: nrf.program(0, b"\x00\x00"),
        "program of 2 bytes at 0x0: nRF5340-APP writes whole aligned 4-byte words",
    )
    nrf.program(0, b"\xff\x00\xff\xff")
    nrf.program(0, b"\x00\x00\xff\xff")  # nWRITE = 2
    refused(
        nrf,
        lambda: nrf.program(0, b"\x00\x00\x00\xff"),
        "word 0 at 0x0 already programmed 2 time(s) since its erase: NOP limit of nRF5340-APP is 2",
    )
    nrf.program(4, bytes(4088))  # 1022 words, each one write
    assert nrf.ops["programs"] == 2 + 1022
    stm = FlashSim.from_part("STM32L476-FLASH", 8 * KIB)
    stm.program(0, bytes(16))
    refused(
        stm,
        lambda: stm.program(8, bytes(8)),
        "word 1 at 0x8 already programmed 1 time(s) since its erase: "
        "NOP limit of STM32L476-FLASH is 1",
    )
    stm.erase(0)
    stm.program(8, bytes(8))


def test_managed_sectors_overwrite() -> None:
    sd = FlashSim.from_part("S-46u-2GB", 64 * KIB)
    assert (sd.kind, sd.erase_size, sd.page_size) == ("managed", 512, 512)
    sd.program(0, bytes(1024))
    sd.program(0, b"\xab" * 512)  # rewrite without erase: the card's FTL handles it
    assert sd.read(0, 1024) == b"\xab" * 512 + bytes(512)
    assert sd.program_bytes[:3].tolist() == [1024, 512, 0]
    assert sd.ops["programs"] == 3
    refused(
        sd,
        lambda: sd.program(100, bytes(512)),
        "write of 512 bytes at 0x64: S-46u-2GB takes whole aligned 512-byte sectors",
    )
    refused(
        sd,
        lambda: sd.program(0, bytes(100)),
        "write of 100 bytes at 0x0: S-46u-2GB takes whole aligned 512-byte sectors",
    )
    sd.erase(0)
    assert sd.read(0, 512) == b"\xff" * 512


def test_accepts_any_bytes_like() -> None:
    s = nor()
    s.program(0, bytearray(b"\x01\x02"))
    s.program(2, memoryview(b"\x03"))
    s.program(3, np.array([4], dtype=np.uint8))
    assert s.read(0, 4) == b"\x01\x02\x03\x04"
