"""The per-part cost model: exact figures from the catalogue on hand-sized counts."""

from __future__ import annotations

import numpy as np
import pytest

from flashswap.errors import InputError
from flashswap.planner.fused.cost import CostModel, Counts, store_segment
from flashswap.trace import RECORD_DTYPE, Op


def records(*rows: tuple[int, int, int, int]) -> np.ndarray:
    return np.array([(op, 0, 0, key, length, 0, value) for op, key, length, value in rows],
                    dtype=RECORD_DTYPE)


def test_counts_from_records():
    cm = CostModel.for_part("W25N01GV")  # NAND: 2 KiB pages, 60 us array latency per page
    rec = records((Op.WRITE, 0, 4096, 0), (Op.WRITE, 1, 100, 0), (Op.READ, 0, 4096, 0),
                  (Op.WEIGHT_READ, 3, 2048, 0), (Op.COMPUTE, 0, 0, 1000), (Op.TRIM, 0, 0, 0),
                  (Op.INVALIDATE, 0, 0, 1))
    c = cm.counts(rec)
    # A 4096-byte chunk behind its 32-byte header spans 3 pages of 2 KiB; 2048 weight bytes 1.
    assert c == Counts(4196, 2, 2, 4096, 3, 2048, 1, 1000)


def test_nor_cost_figures():
    cm = CostModel.for_part("W25Q128JV", macs_per_s=50e6)
    assert store_segment(cm.part) == 65536
    c = Counts(bytes_written=8192, chunk_writes=2, trims=3, bytes_read=8192,
               weight_bytes_read=1000, macs=5_000_000)
    pc = cm.cost(c, base_macs=4_000_000, base_weight=Counts(weight_bytes_read=1000))
    programmed = 8192 + 32 * 5
    assert pc.bytes_programmed == programmed
    # 256-byte pages at 400 us typ; 64 KiB erases at 150 ms typ; quad SPI at 66.5 MB/s.
    assert pc.program_s == pytest.approx(programmed / 256 * 400e-6)
    assert pc.erase_s == pytest.approx(programmed / 65536 * 0.150)
    assert pc.read_s == pytest.approx(8192 / 66.5e6)
    assert pc.weight_read_s == pytest.approx(1000 / 66.5e6)
    assert pc.compute_s == pytest.approx(0.1)
    # 20 mA program and erase, 15 mA read, 3.3 V.
    assert pc.energy_j == pytest.approx(3.3e-3 * (20 * (pc.program_s + pc.erase_s)
                                                  + 15 * (pc.read_s + pc.weight_read_s)))
    base = 0.08 + 1000 / 66.5e6
    assert pc.slowdown == pytest.approx((0.1 + pc.io_s) / base)
    assert cm.score(pc) == (programmed, pytest.approx(pc.time_s))
    assert CostModel.for_part(objective="time", macs_per_s=1).score(pc)[1] == programmed


def test_slowdown_cap():
    cm = CostModel.for_part(macs_per_s=1e6, max_slowdown=1.5)
    pc = cm.cost(Counts(macs=1_400_000), base_macs=1_000_000)
    assert pc.slowdown == pytest.approx(1.4) and cm.within_slowdown(pc)
    assert not cm.within_slowdown(cm.cost(Counts(macs=1_600_000), base_macs=1_000_000))


@pytest.mark.parametrize("kwargs, message", [
    ({"objective": "speed"}, "unknown objective 'speed' (choose wear, time, energy)"),
    ({"objective": "time"}, "--objective time needs the MCU's MAC rate (--macs-per-s or --mcu)"),
    ({"max_slowdown": 2.0}, "--max-slowdown needs the MCU's MAC rate (--macs-per-s or --mcu)"),
    ({"max_slowdown": 0.5, "macs_per_s": 1}, "invalid --max-slowdown 0.5: must be >= 1"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(InputError) as e:
        CostModel.for_part(**kwargs)
    assert str(e.value) == message
