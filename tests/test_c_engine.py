"""The C library as a store engine (Store.format/mount(engine="c")) against the Python model.

Differential: the same generated operation sequences (put, get, trim, trim_range, sync, idle,
remount, a power cut at a random operation, worn-out blocks) run on the model and on the C
engine, each on its own FlashSim built identically. Every step must give the same result (return
value, exception type, chunk bytes); after every sync and remount the two flash images, spare
areas, page-program/erase counters and per-block erase counts must be identical. Then every
golden vector in tests/vectors/ is reproduced by the C engine.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flashswap import FlashSim, PowerCut, Store
from flashswap.errors import ChunkTooLargeError, FlashswapError, InputError, NoSpaceError
from tests.geometries import TABLE, pick
from tests.vectors.generate import _load_image, payload, vector_key

try:
    from flashswap.store.c_engine import library

    library()
    C_ERROR = ""
except InputError as e:  # no compiler: the only reason to skip (CI installs gcc)
    C_ERROR = str(e)

pytestmark = pytest.mark.skipif(bool(C_ERROR), reason=f"C library unavailable: {C_ERROR}")

VDIR = Path(__file__).resolve().parent / "vectors"
VECTORS = json.loads((VDIR / "vectors.json").read_text())

# name: part, capacity, format options, FlashSim options (the table: tests/geometries.py)
GEOS: dict[str, tuple[str, int, dict[str, int], dict[str, Any]]] = {
    n: (*pick(n)[n], dict(TABLE[n].sim))
    for n in ("nor4k", "nor4k-wl", "nor4k-tiny", "nor64k", "nand", "nand-bad")}

KEYS = 10
TEST_KEY = bytes(range(16))


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(*args))
    except FlashswapError as e:
        return ("err", type(e).__name__)


def same_flash(a: FlashSim, b: FlashSim, where: str) -> None:
    assert np.array_equal(a._inv, b._inv), f"{where}: images differ"
    assert np.array_equal(a._spare_inv, b._spare_inv), f"{where}: spare areas differ"
    assert (a.ops["programs"], a.ops["erases"], a.ops_count) == (
        b.ops["programs"], b.ops["erases"], b.ops_count), f"{where}: counters differ"
    assert np.array_equal(a.erase_counts, b.erase_counts), f"{where}: erase counts differ"
    assert np.array_equal(a.program_bytes, b.program_bytes), f"{where}: program bytes differ"


def same_state(py: Any, c: Any, where: str) -> None:
    assert py.keys() == c.keys(), where
    assert py.log_position() == c.log_position(), where
    sp, sc = py.stat(), c.stat()
    for k, v in sp.items():
        w = sc[k]
        ok = np.array_equal(v, w) if isinstance(v, np.ndarray) else v == w
        assert ok, f"{where}: stat[{k!r}] model {v} C {w}"


put_st = st.tuples(st.just("put"), st.integers(0, KEYS - 1), st.integers(0, 3),
                  st.integers(0, 2**16))
op_st = st.one_of(
    put_st, put_st, put_st, put_st,  # puts are most of a swap workload, and they wear the flash
    st.tuples(st.just("get"), st.integers(0, KEYS - 1)),
    st.tuples(st.just("trim"), st.integers(0, KEYS - 1)),
    st.tuples(st.just("trim_range"), st.integers(0, KEYS - 1), st.integers(0, 3)),
    st.tuples(st.just("sync")),
    st.tuples(st.just("idle"), st.integers(0, 3)),
    st.tuples(st.just("remount")),
    st.tuples(st.just("cut"), st.integers(0, 40)),
)


def run_differential(geo: str, wear: int | None, seed: int, ops: list[tuple],
                     key: bytes | None = None, every: bool = False) -> int:
    """Runs ops on both engines, checking as it goes; returns the segments retired. `key`: on
    encrypted stores (SPEC §4a). `every`: the flash is compared after every operation, not
    only at syncs and remounts."""
    part, cap, fmt, simopts = GEOS[geo]
    kw: dict[str, Any] = {"seed": seed, **simopts}
    if wear:  # per-block endurance drawn around `wear` cycles: blocks fail within a run.
        # Loud failures only: FlashSim draws silent faults per program call, and the model
        # programs several pages in one call where the C library programs one page per call,
        # so a silently worn block ends with different wrong bits (both stores behave alike).
        kw.update(wear="error", weibull=(1.5, float(wear)))
    sims = [FlashSim.from_part(part, capacity=cap, **kw) for _ in range(2)]
    engines = ("python", "c")

    def fresh(mount: bool) -> list[tuple[str, Any]]:
        for s in sims:
            s.power_cut_after(None)
        if mount:
            return [outcome(lambda s, e: Store.mount(s, engine=e, key=key), s, e)
                    for s, e in zip(sims, engines, strict=True)]
        return [outcome(lambda s, e: Store.format(s, engine=e, key=key, **fmt), s, e)
                for s, e in zip(sims, engines, strict=True)]

    r = fresh(mount=False)
    assert r[0][0] == r[1][0], r
    if r[0][0] != "ok":  # too many blocks failed at format
        same_flash(*sims, "format")
        return 0
    py, c = r[0][1], r[1][1]
    same_flash(*sims, "format")
    same_state(py, c, "format")
    maxn = min(py.stat()["max_chunk"], 3 * fmt.get("segment_size", sims[0].erase_size))
    for i, op in enumerate(ops):
        where = f"{geo} op {i} {op}"
        name = op[0]
        if name == "cut":
            for s in sims:
                s.power_cut_after(op[1])
            continue
        if name == "put":
            n = 1 + random.Random(op[3]).randrange((16, 300, 2000, maxn)[op[2]])
            data = random.Random(op[3]).randbytes(n)
            r = [outcome(s.put, op[1], data) for s in (py, c)]
        elif name == "get":
            r = [outcome(s.get, op[1]) for s in (py, c)]
        elif name == "trim":
            r = [outcome(s.trim, op[1]) for s in (py, c)]
        elif name == "trim_range":
            r = [outcome(s.trim_range, op[1], op[1] + op[2]) for s in (py, c)]
        elif name == "sync":
            r = [outcome(s.sync) for s in (py, c)]
        elif name == "idle":
            r = [outcome(s.idle, op[1]) for s in (py, c)]
        else:  # remount
            r = [outcome(s.unmount) for s in (py, c)]
        assert r[0] == r[1], f"{where}: model {r[0]} C {r[1]}"
        if r[0] == ("err", "PowerCut") or name == "remount":
            same_flash(*sims, where)
            r = fresh(mount=True)
            assert r[0][0] == r[1][0], f"{where}: mount after cut: model {r[0]} C {r[1]}"
            if r[0][0] != "ok":
                r = fresh(mount=False)
                assert r[0][0] == r[1][0] == "ok", r
            py, c = r[0][1], r[1][1]
            same_flash(*sims, where + " (mounted)")
            same_state(py, c, where + " (mounted)")
        elif name == "sync" and r[0][0] == "ok":
            same_flash(*sims, where)
            same_state(py, c, where)
        elif every:
            same_flash(*sims, where)
    for k in range(KEYS):
        assert outcome(py.get, k) == outcome(c.get, k), f"{geo} final get({k})"
    assert py.retired == c.retired
    return py.retired


differential_args = (
    st.sampled_from(sorted(GEOS)),
    st.sampled_from([None, None, 3, 6]),  # mean endurance of worn-out flash
    st.integers(0, 2**16),
    st.lists(op_st, min_size=1, max_size=40),
)


@settings(max_examples=400,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(*differential_args)
def test_c_engine_matches_model(geo: str, wear: int | None, seed: int,
                                ops: list[tuple]) -> None:
    run_differential(geo, wear, seed, ops)


@settings(max_examples=200,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(*differential_args)
def test_c_engine_matches_model_encrypted(geo: str, wear: int | None, seed: int,
                                          ops: list[tuple]) -> None:
    """The same on stores formatted with a key: identical images, every seal included."""
    run_differential(geo, wear, seed, ops, key=TEST_KEY)


@settings(max_examples=100,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(*differential_args)
def test_c_engine_writes_the_models_bytes_at_every_operation(geo: str, wear: int | None,
                                                             seed: int, ops: list[tuple]) -> None:
    """Between syncs too: each operation leaves the same bytes, spare and counters on flash."""
    run_differential(geo, wear, seed, ops, every=True)


@pytest.mark.slow
@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])
@given(*differential_args[:3], st.lists(op_st, min_size=1, max_size=120))
def test_c_engine_matches_model_long(geo: str, wear: int | None, seed: int,
                                     ops: list[tuple]) -> None:
    run_differential(geo, wear, seed, ops)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_c_engine_reproduces_vector(name: str) -> None:
    v = VECTORS[name]
    flash = FlashSim.from_part(v["part"], capacity=v["capacity"], seed=v.get("seed", 0))
    if "from" in v:
        _load_image(flash, gzip.decompress((VDIR / f"{v['from']}.img.gz").read_bytes()))
    store: Any = None
    with pytest.raises(PowerCut) if v.get("expect_cut") else _nothing():
        for op in v["ops"]:
            what, args = op[0], op[1:]
            if what == "format":
                store = Store.format(flash, engine="c", key=vector_key(v), **args[0])
            elif what == "mount":
                store = Store.mount(flash, engine="c", key=vector_key(v))
            elif what == "put":
                store.put(args[0], payload(args[2], args[1]))
            elif what == "cut_after":
                flash.power_cut_after(args[0])
            else:
                getattr(store, what)(*args)
    assert flash.image() == gzip.decompress((VDIR / f"{name}.img.gz").read_bytes())


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_c_engine_errors_match_model() -> None:
    """Bad input raises the model's exceptions; the data path counts as the model's does."""
    f = FlashSim.from_part("W25Q128JV", capacity=64 * 1024)
    c = Store.format(f, engine="c", segment_size=4096)
    with pytest.raises(InputError, match="a chunk holds at least one byte"):
        c.put(1, b"")
    with pytest.raises(InputError, match="key must be an integer"):
        c.put(-1, b"x")
    from flashswap.errors import ChunkTooLargeError, NotFoundError

    with pytest.raises(ChunkTooLargeError, match=f"exceeds the largest chunk {c.max_chunk}"):
        c.put(1, bytes(c.max_chunk + 1))
    with pytest.raises(NotFoundError):
        c.get(5)
    c.put(5, b"abc")
    assert 5 in c and c.get(5) == b"abc" and c.keys() == [5]
    assert c.trim(5) is True and c.trim(5) is False
    c.unmount()
    with pytest.raises(InputError, match="store is unmounted"):
        c.put(1, b"x")
    with pytest.raises(InputError, match="unknown store engine 'rust'"):
        Store.format(f, engine="rust")
    with pytest.raises(InputError, match="segment size must be a power of two, not 1000"):
        Store.format(f, engine="c", segment_size=1000)


@pytest.mark.parametrize("part, cap", [("W25N01GV", 8 * 128 * 1024),
                                       ("FNNL41A-8Gb", 16 * 256 * 1024),
                                       ("W25Q128JV", 64 * 4096)])
def test_c_engine_counts_time_and_energy_like_the_model(part: str, cap: int) -> None:
    """Programs, erases and bytes are exact; time and energy too, to rounding, although the C
    library reads in other pieces than the model (a record header, then its payload; moves 64
    bytes at a time), so read counts differ: on NAND only the page loads cost tR, and a read
    starting on the page in the data register loads nothing."""
    sims = [FlashSim.from_part(part, capacity=cap) for _ in range(2)]
    stores = [Store.format(s, engine=e) for s, e in zip(sims, ("python", "c"), strict=True)]
    for i in range(300):
        for s in stores:
            s.put(i % 7, payload(i, 3000 + 500 * (i % 5)))
            if i % 3 == 0 and (i + 3) % 7 in s:
                assert s.get((i + 3) % 7)
            if i % 11 == 0:
                s.trim(i % 7)
    for s in stores:
        s.sync()
    a, b = sims
    same_flash(a, b, "after 300 puts")
    assert a.ops["programs"] == b.ops["programs"] > 0 and a.ops["erases"] == b.ops["erases"] > 0
    assert b.program_bytes.tolist() == a.program_bytes.tolist()
    assert b.ops["reads"] > a.ops["reads"]
    for attr in ("time_s", "time_max_s", "energy_j", "energy_max_j"):
        assert getattr(b, attr) == pytest.approx(getattr(a, attr), rel=1e-12), attr


def test_without_the_library_engine_c_is_an_input_error(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No compiler, or a library that cannot be loaded: one InputError naming the cause."""
    from flashswap.store import c_engine

    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(InputError, match=r"^C engine not built: .*no-such-cc failed"):
        c_engine._build(tmp_path / "cache")
    monkeypatch.setenv("FLASHSWAP_CLIB", str(tmp_path / "missing.so"))
    c_engine.library.cache_clear()
    try:
        f = FlashSim.from_part("W25Q128JV", capacity=64 * 1024)
        with pytest.raises(InputError, match=r"^C engine not built: cannot load .*missing\.so"):
            Store.format(f, engine="c", segment_size=4096)
    finally:
        monkeypatch.undo()
        c_engine.library.cache_clear()
    assert Store.format(f, engine="c", segment_size=4096).keys() == []


def test_host_crc32_is_zlibs_at_every_length_and_alignment() -> None:
    """The host build's CRC-32 (carry-less multiply folding where the CPU has it, else
    slicing-by-8; firmware/port/crc32_host.c) is zlib's, at the lengths and offsets where its
    paths meet (64 bytes, multiples of 16, unaligned starts)."""
    import ctypes
    import zlib

    lib = library()
    lib.fsw_crc32.restype = ctypes.c_uint32
    lib.fsw_crc32.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_uint32]
    rng = random.Random(7)
    data = rng.randbytes(9000)
    lengths = list(range(0, 200)) + [255, 256, 4095, 4096, 4097, 8191, 8192, 8960]
    for n in lengths:
        off = rng.randrange(0, 17)
        seed = rng.getrandbits(32)
        piece = data[off : off + n]
        assert lib.fsw_crc32(seed, piece, n) == zlib.crc32(piece, seed), (n, off)


def test_batch_runs_as_single_calls() -> None:
    """CStore.run_batch (one C call per batch) leaves the flash, the counters and the results
    of the same operations called one by one; an error stops it where the single call would
    fail, with the single call's exception."""
    import ctypes

    ops = []
    for i in range(300):
        k = i % 7
        ops += [(1, k, 500 + 37 * i % 3000, 0), (2, k, 0, 0), (8, 0, 0, 0)]
        if i % 5 == 4:
            ops += [(3, k, 0, 0), (5, 0, 0, 0)]
        if i % 50 == 49:
            ops.append((4, 2, 0, 4))
    arr = np.array(ops, dtype=np.uint32)
    wbuf = bytes(range(256)) * 64
    flashes = []
    for batch in (False, True):
        f = FlashSim.from_part("W25Q128JV", capacity=64 * 1024)
        s = Store.format(f, engine="c", segment_size=4096, ckpt_interval=3)
        t_start = f.time_s
        if batch:
            rbuf = ctypes.create_string_buffer(s.max_chunk)
            marks = s.run_batch(arr, wbuf, rbuf)
            assert len(marks) == 301 and marks[-1] == pytest.approx(f.time_s - t_start)
            assert np.all(np.diff(marks) > 0)
        else:
            for op, k, n, v in ops:
                if op == 1:
                    s.put(k, wbuf[:n])
                elif op == 2:
                    got = s.get(k)
                    assert got == wbuf[: len(got)]
                elif op == 3:
                    s.trim(k)
                elif op == 4:
                    s.trim_range(k, v)
                elif op == 5:
                    s.sync()
        s.sync()
        flashes.append((f, s.stat()))
    (a, sa), (b, sb) = flashes
    assert a.read_bytes.tolist() == b.read_bytes.tolist()
    assert np.array_equal(a._inv, b._inv)
    assert a.erase_counts.tolist() == b.erase_counts.tolist()
    assert a.program_bytes.tolist() == b.program_bytes.tolist()
    assert a.ops["programs"] == b.ops["programs"] and a.ops["erases"] == b.ops["erases"]
    assert {k: v for k, v in sa.items() if k != "erase_counts"} == \
        {k: v for k, v in sb.items() if k != "erase_counts"}
    # an error mid-batch: a chunk too large for the store, as put() raises it
    f = FlashSim.from_part("W25Q128JV", capacity=64 * 1024)
    s = Store.format(f, engine="c", segment_size=4096)
    bad = np.array([(1, 1, 10, 0), (1, 2, s.max_chunk + 1, 0), (1, 3, 10, 0)], dtype=np.uint32)
    with pytest.raises(ChunkTooLargeError, match=f"chunk of {s.max_chunk + 1} bytes exceeds"):
        s.run_batch(bad, bytes(s.max_chunk + 1), ctypes.create_string_buffer(s.max_chunk))
    assert s.keys() == [1]


def _both(part: str, cap: int, image: bytes | None = None, **kw: Any) -> list[FlashSim]:
    """Two identical simulators (one per engine), holding `image` if given."""
    from tests.storeutil import image_copy

    sims = [FlashSim.from_part(part, capacity=cap, **kw) for _ in range(2)]
    return [image_copy(s, image) for s in sims] if image is not None else sims


def test_format_over_worn_blocks_then_churn_matches_model() -> None:
    """Regression (found by tests/test_store_stateful.py): a format over a block that can no
    longer be erased leaves the old store's header; the C mount demoted such a segment to FREE
    but kept its seq, which then tied with a live segment's in the chain lookup once the block
    was retired, and the engines wrote different images."""
    import random as _random

    from tests.storeutil import payload

    sims = _both("W25Q128JV", 64 * 1024, seed=0, wear="error", weibull=(2.0, 1e12))
    opts = {"segment_size": 4096, "ckpt_interval": 3}
    engines = ("python", "c")
    stores = [Store.format(s, engine=e, **opts) for s, e in zip(sims, engines, strict=True)]

    def format_over_worn(block: int) -> list[Any]:
        for st_, s in zip(stores, sims, strict=True):
            st_.sync()
            s.block_endurance[block] = s.wear_counts[block]
        new = [Store.format(s, engine=e, **opts) for s, e in zip(sims, engines, strict=True)]
        for st_ in new:
            st_.put(99, b"new store")
            st_.unmount()
        new = [Store.mount(s, engine=e) for s, e in zip(sims, engines, strict=True)]
        for st_ in new:
            st_.trim(99)
            st_.sync()
        same_flash(*sims, f"format over {block}")
        return new

    stores = format_over_worn(707174 % sims[0].num_blocks)
    for st_ in stores:
        st_.put(0, payload(0, 1, 5547))
    stores = format_over_worn(0)
    for st_ in stores:
        st_.put(0, payload(0, 1, 826))
    rng, version, live = _random.Random(2489), 1, {0}
    seg = 4096
    for i in range(9):
        k = rng.randrange(12)
        size = min(stores[0].max_chunk, rng.randint(seg // 2, 2 * seg))
        version += 1
        r = [outcome(st_.put, k, payload(k, version, size)) for st_ in stores]
        assert r[0] == r[1], f"churn {i}: model {r[0]} C {r[1]}"
        if r[0][0] == "ok":
            live.add(k)
        elif live:
            victim = rng.choice(sorted(live))
            assert [st_.trim(victim) for st_ in stores] == [True, True]
            live.discard(victim)
        for st_ in stores:
            st_.sync()
        same_flash(*sims, f"churn {i}")
        same_state(*stores, f"churn {i}")


def _mutate(img: bytearray, rng: random.Random, kind: str, unit: int) -> None:
    """One kind of damage at a random programmed place of the image."""
    used = [i for i in range(0, len(img), 16) if img[i:i + 16] != b"\xff" * 16]
    at = rng.choice(used) + rng.randrange(16) if used else rng.randrange(len(img))
    if kind == "bit":
        img[at] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for j in range(rng.randint(1, 40)):
            if at + j < len(img):
                img[at + j] = rng.randrange(256)
    elif kind == "erase":  # a program unit reads erased
        a = at - at % unit
        img[a:a + unit] = b"\xff" * unit
    else:  # "zero": a program unit reads programmed to zero
        a = at - at % unit
        img[a:a + unit] = bytes(unit)


MUTATED = {"nor4k": GEOS["nor4k"], "nand": GEOS["nand"], "nor64k": GEOS["nor64k"]}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(sorted(MUTATED)), st.integers(0, 2**16),
       st.lists(st.sampled_from(["bit", "bytes", "erase", "zero"]), min_size=1, max_size=3))
def test_mutated_images_get_one_answer_from_both_engines(geo: str, seed: int,
                                                         kinds: list[str]) -> None:
    """A store's image, damaged (bit flips, random bytes, program units read erased or
    zeroed): both engines mount it with the same result, read every key the same way (value,
    corrupt or absent), and write the same bytes after it."""
    _mutated(geo, seed, kinds, None)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(sorted(MUTATED)), st.integers(0, 2**16),
       st.lists(st.sampled_from(["bit", "bytes", "erase", "zero"]), min_size=1, max_size=3))
def test_mutated_encrypted_images_get_one_answer_from_both_engines(
        geo: str, seed: int, kinds: list[str]) -> None:
    """The same on encrypted stores (SPEC §4a)."""
    _mutated(geo, seed, kinds, TEST_KEY)


def _mutated(geo: str, seed: int, kinds: list[str], key: bytes | None) -> None:
    part, cap, fmt, simopts = MUTATED[geo]
    rng = random.Random(seed)
    src = FlashSim.from_part(part, capacity=cap, seed=seed, **simopts)
    store = Store.format(src, key=key, **fmt)
    for _ in range(rng.randint(5, 60)):
        k = rng.randrange(KEYS)
        if rng.random() < 0.8:
            data = rng.randbytes(rng.choice([rng.randint(1, 200), rng.randint(200, 6000)]))
            try:
                store.put(k, data)
            except NoSpaceError:  # an encrypted store keeps a larger reserve: refused, no harm
                pass
        else:
            store.trim(k)
        if rng.random() < 0.2:
            store.sync()
    store.sync()
    img = bytearray(src.image())
    for kind in kinds:
        _mutate(img, rng, kind, src.page_size)
    sims = _both(part, cap, bytes(img))
    r = [outcome(lambda s, e: Store.mount(s, engine=e, key=key), s, e)
         for s, e in zip(sims, ("python", "c"), strict=True)]
    assert (r[0][0], r[0][0] == "ok" or r[0][1]) == (r[1][0], r[1][0] == "ok" or r[1][1]), r
    if r[0][0] != "ok":
        return
    py, c = r[0][1], r[1][1]
    same_state(py, c, "mount")
    for k in range(KEYS + 2):
        assert outcome(py.get, k) == outcome(c.get, k), f"get({k})"
    for i in range(6):
        k = rng.randrange(KEYS)
        data = rng.randbytes(rng.randint(1, 3000))
        r = [outcome(s.put, k, data) for s in (py, c)]
        assert r[0] == r[1], f"put {i}: model {r[0]} C {r[1]}"
    r = [outcome(s.unmount) for s in (py, c)]
    assert r[0] == r[1]
    same_flash(*sims, "after writes")
