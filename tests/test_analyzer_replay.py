"""Replay engines and the replay loop: exact flash counters, payload-free equality, errors."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.device import ReplayFlash
from analyzer.engine_flashswap import FlashswapEngine
from analyzer.engine_littlefs import LittlefsChunkEngine
from analyzer.engine_naive import NaiveEngine
from analyzer.lifetime import Options, analyze, make_engine
from analyzer.replay import Replayer, _overlap
from analyzer.synth import write_chain_trace
from analyzer.workload import Workload
from flashswap.errors import FlashWearError, InputError
from flashswap.parts import get_part

NOR = "W25Q128JV"
NAND = "W25N01GV"
SD = "S-46u-2GB"


def flash(part: str, capacity: int, **kw) -> ReplayFlash:
    return ReplayFlash(get_part(part), capacity, **kw)


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Workload:
    d = tmp_path_factory.mktemp("tr")
    return Workload.load(write_chain_trace(d / "c.bin", (16384, 8192, 4096, 1000), chunk=4096))


def counters(f: ReplayFlash) -> dict:
    return {
        "erase_counts": f.erase_counts.tolist(),
        "program_bytes": f.program_bytes.tolist(),
        "read_bytes": f.read_bytes.tolist(),
        "consumed": f.consumed.tolist(),
        "ops": dict(f.ops),
    }


# --- naive layout: exact flash operations ------------------------------------------------


def test_naive_read_modify_write_of_neighbours() -> None:
    f = flash(NOR, 64 * 1024)
    e = NaiveEngine(f, max_chunk=100, keys=2)
    assert (e.slot, e.per_block) == (256, 16)
    e.put(1, b"a" * 100)
    assert (f.erase_counts[0], f.program_bytes[0], f.read_bytes[0]) == (1, 100, 0)
    e.put(2, b"b" * 100)  # key 1 shares the 4 KiB sector: read it, erase, program both
    assert (f.erase_counts[0], f.program_bytes[0], f.read_bytes[0]) == (2, 300, 100)
    e.put(1, b"c" * 50)
    assert (f.erase_counts[0], f.program_bytes[0], f.read_bytes[0]) == (3, 450, 200)
    assert f.ops == {"reads": 2, "programs": 5, "erases": 3}
    assert e.get(1, 50) == b"c" * 50 and e.get(2, 100) == b"b" * 100
    e.trim(2)  # nothing written; key 2 is no longer copied along
    e.put(1, b"d" * 10)
    assert (f.erase_counts[0], f.program_bytes[0], f.read_bytes[0]) == (4, 460, 350)
    assert f.erase_counts[1:].sum() == 0


def test_naive_slots_spanning_erase_units() -> None:
    f = flash(NOR, 256 * 1024)
    e = NaiveEngine(f, max_chunk=6000, keys=3)
    assert (e.slot, e.per_block) == (8192, 1)
    e.put(7, bytes(6000))
    e.put(9, bytes(6000))
    assert f.erase_counts[:4].tolist() == [1, 1, 1, 1]
    assert f.program_bytes[:4].tolist() == [4096, 1904, 4096, 1904]
    assert f.ops["erases"] == 4  # two 4 KiB erases per slot (8 KiB is not an erase size)


def test_naive_uses_the_largest_aligned_erase() -> None:
    f = flash(NOR, 1 << 20)
    e = NaiveEngine(f, max_chunk=65536, keys=2)
    e.put(0, bytes(65536))
    assert f.ops["erases"] == 1 and f.erase_counts[:16].tolist() == [1] * 16


def test_naive_on_a_managed_device_overwrites_sectors() -> None:
    f = flash(SD, 1 << 20)
    e = NaiveEngine(f, max_chunk=1000, keys=1)
    e.put(3, bytes(1000))
    e.put(3, bytes(1000))
    assert f.ops["erases"] == 0
    assert int(f.program_bytes.sum()) == 2 * 1024  # whole 512-byte sectors


def test_naive_working_set_too_large() -> None:
    f = flash(NOR, 64 * 1024)
    with pytest.raises(InputError) as e:
        NaiveEngine(f, max_chunk=4096, keys=17)
    assert str(e.value) == (
        "naive layout needs 17 slots of 4096 bytes (69632 bytes) but W25Q128JV at 65536 "
        "bytes holds 16: the working set exceeds the capacity"
    )


# --- the other engines ---------------------------------------------------------------------


def test_littlefs_rejects_block_cycles_zero() -> None:
    with pytest.raises(InputError, match="block_cycles must be -1"):
        LittlefsChunkEngine(flash(NOR, 256 * 1024), block_cycles=0)


def test_flashswap_refuses_managed_devices() -> None:
    with pytest.raises(InputError, match="the flashswap store runs on raw flash"):
        FlashswapEngine(flash(SD, 1 << 20))


def test_flashswap_burn_in_consumes_every_unit_without_erasing() -> None:
    f = flash(NOR, 512 * 1024)
    e = FlashswapEngine(f)
    formatted = f.erase_counts.copy()
    e.burn_in(0xFFFFFFFE)
    assert (f.consumed > 0).all()
    # format erased each unit once; the filler reuses at most a few segments of this tiny
    # device (8 segments) before the last fresh one is reached
    assert (f.erase_counts - formatted).max() <= 1
    assert int((f.erase_counts - formatted).sum()) <= 2 * e.group
    assert e.log_units() > f.num_blocks - 16


@pytest.mark.parametrize(
    "store", ["flashswap", "littlefs-chunk", "littlefs-tensor", "littlefs-prealloc", "naive"])
@pytest.mark.parametrize("part, cap", [(NOR, 512 * 1024), (NAND, 2 << 20)])
def test_payload_free_replay_matches_full_replay(chain, store, part, cap) -> None:
    """Zero payloads (the fast mode) drive every counter exactly as random payloads whose
    every read is checked."""
    out = {}
    for mode in ("random", "zeros"):
        f = flash(part, cap)
        e = make_engine(store, f, chain, Options())
        r = Replayer(e, chain, payload=mode)
        for _ in range(12):
            r.step()
        out[mode] = (counters(f), f.time_s, f.energy_j)
    assert out["random"][0] == out["zeros"][0]
    assert out["random"][1] == pytest.approx(out["zeros"][1], rel=1e-12)
    assert out["random"][2] == pytest.approx(out["zeros"][2], rel=1e-12)


def c_engine_built() -> bool:
    from flashswap.store.c_engine import library

    try:
        library()
    except InputError:
        return False
    return True


@pytest.mark.parametrize("part, cap", [(NOR, 512 * 1024), (NAND, 2 << 20)])
def test_c_engine_batches_replay_as_the_model_wears(chain, part, cap) -> None:
    """The flashswap store replayed by the C engine, a whole inference per call, wears and
    consumes every block as the Python model does, and leaves exactly the counters, time and
    energy of the C engine called operation by operation."""
    if not c_engine_built():
        pytest.skip("C engine not built (no compiler)")
    out = {}
    for impl, batch in (("python", False), ("c", False), ("c", True)):
        f = flash(part, cap)
        e = make_engine("flashswap", f, chain, Options(implementation=impl))
        assert e.config()["implementation"] == impl
        r = Replayer(e, chain, batch=batch)
        assert (r._batch(0, chain.inferences[0]) is not None) == batch
        stats = [r.step() for _ in range(24)]
        out[impl, batch] = (counters(f), f.time_s, f.energy_j, f.time_max_s, stats)
    model, single, batched = out["python", False], out["c", False], out["c", True]
    for k in ("erase_counts", "program_bytes", "consumed"):
        assert model[0][k] == batched[0][k], k
    assert model[0]["ops"]["erases"] == batched[0]["ops"]["erases"]
    assert single[0] == batched[0]
    for a, b in zip(single[1:4], batched[1:4], strict=True):
        assert a == pytest.approx(b, rel=1e-12)
    for s, b in zip(single[4], batched[4], strict=True):
        assert (s.erases, s.consumed, s.programmed, s.read, s.idle_steps) == (
            b.erases, b.consumed, b.programmed, b.read, b.idle_steps)
        assert s.io_s == pytest.approx(b.io_s, rel=1e-9)
        assert s.latency_overlap_s == pytest.approx(b.latency_overlap_s, rel=1e-9)


def test_batch_falls_back_when_a_fault_model_is_armed(chain) -> None:
    """Wear-out on (validation runs): every operation goes through Python, so the failing one
    is noted with its inference."""
    if not c_engine_built():
        pytest.skip("C engine not built (no compiler)")
    f = flash(NOR, 512 * 1024, wear="error", endurance=1000)
    e = make_engine("flashswap", f, chain, Options(implementation="c"))
    r = Replayer(e, chain)
    assert r._batch(0, chain.inferences[0]) is None
    r.step()
    assert f.consumed.sum() > 0


def test_unknown_store_implementation() -> None:
    with pytest.raises(InputError, match="unknown store implementation 'rust'"):
        FlashswapEngine(flash(NOR, 512 * 1024), implementation="rust")


@pytest.mark.parametrize("part, cap", [(NOR, 512 * 1024), (NAND, 2 << 20)])
def test_littlefs_read_cache_books_every_read(chain, part, cap) -> None:
    """The deferred, cached read path of the littlefs engine leaves the same counters, time
    and energy as one FlashSim.read per littlefs read."""
    out = {}
    for fast in (True, False):
        f = flash(part, cap)
        e = LittlefsChunkEngine(f, fast_reads=fast)
        r = Replayer(e, chain, payload="random")
        for _ in range(10):
            r.step()
        out[fast] = (counters(f), f.time_s, f.time_max_s, f.energy_j)
    assert out[True][0] == out[False][0]
    for a, b in zip(out[True][1:], out[False][1:], strict=True):
        assert a == pytest.approx(b, rel=1e-9)


def test_replay_stats_add_up(chain) -> None:
    f = flash(NOR, 512 * 1024)
    r = Replayer(make_engine("flashswap", f, chain, Options()), chain)
    t0, e0 = f.time_s, int(f.erase_counts.sum())  # after format
    stats = [r.step() for _ in range(20)]
    assert sum(s.io_s + s.idle_s for s in stats) == pytest.approx(f.time_s - t0, rel=1e-9)
    assert sum(s.erases for s in stats) == int(f.erase_counts.sum()) - e0
    assert all(s.payload_written == 16384 + 8192 + 4096 + 1000 for s in stats)
    assert all(s.compute_s == pytest.approx(4e-3) for s in stats)
    assert any(s.idle_steps for s in stats)  # the store pre-erases between inferences


def test_overlap_model() -> None:
    # I/O 2, compute 3, I/O 1, compute 1, trailing I/O 4: 2 + max(1, 3) + max(4, 1)
    assert _overlap([(2.0, 3.0), (1.0, 1.0), (4.0, 0.0)]) == 9.0
    assert _overlap([(5.0, 0.0)]) == 5.0


def test_first_failure_is_noted(chain) -> None:
    f = flash(NOR, 64 * 1024, wear="error", endurance=3)
    e = NaiveEngine(f, chain.max_chunk, chain.distinct_keys)
    r = Replayer(e, chain)
    with pytest.raises(FlashWearError):
        for _ in range(10):
            r.step()
    assert f.first_failure_at == 3 and "worn out after 3 erase cycles" in f.first_failure


def test_analyze_reports_a_working_set_that_does_not_fit(chain) -> None:
    with pytest.raises(InputError) as e:
        analyze(chain, NOR, "flashswap", Options(capacity=16 * 1024))
    assert str(e.value) == (
        "c.bin: the working set (29672 bytes live at once) exceeds the 16384-byte capacity "
        "of W25Q128JV"
    )
    with pytest.raises(InputError, match="c.bin does not fit W25Q128JV .* under littlefs"):
        analyze(chain, NOR, "littlefs", Options(capacity=32 * 1024))


def test_counters_are_numpy_views_of_units(chain) -> None:
    f = flash(NAND, 2 << 20)
    assert f.num_blocks == 16 and f.fresh.all()
    f.program(0, bytes(2048))
    f.program(2048, bytes(2048))
    assert f.consumed.tolist() == [1] + [0] * 15
    f.erase(0)
    f.program(0, bytes(10))
    assert f.consumed[0] == 2 and not f.fresh[0] and np.count_nonzero(f.fresh) == 15
