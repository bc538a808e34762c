"""The trace format: round trips, every kind of corruption, and the semantic validator."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashswap.errors import InputError, TraceFormatError
from flashswap.trace import (
    HEADER_SIZE,
    MAGIC,
    RECORD_DTYPE,
    RECORD_SIZE,
    VERSION,
    Op,
    Trace,
    TraceWriter,
    crc32_combine,
)

DEFAULTS = {
    "model": None,
    "sram_budget": None,
    "chunk_size": None,
    "generator": "flashswap.trace.TraceWriter",
    "peak_sram": None,
    "tensors": [],
}


def records_of(rows: list[tuple[int, ...]]) -> np.ndarray:
    """(op, key, length, value) rows -> a RECORD_DTYPE array."""
    arr = np.zeros(len(rows), dtype=RECORD_DTYPE)
    for i, (op, key, length, value) in enumerate(rows):
        arr[i] = (op, 0, 0, key, length, 0, value)
    return arr


def write_trace(path: Path, rows: list[tuple[int, ...]], metadata: dict | None = None) -> Path:
    with TraceWriter(path, metadata) as w:
        w.write_records(records_of(rows))
    return path


def fix_crc(data: bytearray) -> bytearray:
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    return data


def small_trace(tmp_path: Path) -> Path:
    p = tmp_path / "small.fst"
    with TraceWriter(p, {"model": "tiny"}) as w:
        w.begin(0)
        w.put(1, 100)
        w.get(1, 100)
        w.trim(1)
        w.end()
    return p


# --- round trip ------------------------------------------------------------------------

U32 = st.integers(0, 2**32 - 1)
RECORD = st.tuples(
    st.sampled_from(list(Op)), st.booleans(), U32, U32, U32, st.integers(0, 2**64 - 1)
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


class SmallBufferWriter(TraceWriter):
    BUFFER_RECORDS = 3  # so that short examples cross buffer flushes


@given(
    rows=st.lists(RECORD, max_size=40),
    split=st.lists(st.booleans(), max_size=40),
    metadata=st.dictionaries(TEXT, JSON_VALUE, max_size=5),
)
def test_round_trip(tmp_path_factory, rows, split, metadata):
    path = tmp_path_factory.mktemp("rt") / "t.fst"
    expected = np.zeros(len(rows), dtype=RECORD_DTYPE)
    with SmallBufferWriter(path, metadata) as w:
        for i, (op, pinned, key, length, time_us, value) in enumerate(rows):
            flags = int(pinned and op == Op.WRITE)
            expected[i] = (op, flags, 0, key, length, time_us, value)
            if i < len(split) and split[i]:
                w.write_records(expected[i : i + 1])
            else:
                w.write(op, key=key, length=length, value=value, time_us=time_us, flags=flags)
        assert w.count == len(rows)
    trace = Trace.open(path)
    assert len(trace) == len(rows)
    assert trace.records.tobytes() == expected.tobytes()
    assert trace.metadata == {**DEFAULTS, **metadata}
    assert not trace.records.flags.writeable
    assert not path.with_name("t.fst.partial").exists()


@given(a=st.binary(max_size=300), b=st.binary(max_size=300))
def test_crc32_combine_matches_zlib(a, b):
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_file_layout_byte_by_byte(tmp_path):
    p = tmp_path / "t.fst"
    with TraceWriter(p, {"model": "m"}) as w:
        w.put(7, 4096, pinned=True)
    data = p.read_bytes()
    meta = json.dumps(
        {"model": "m", **{k: v for k, v in DEFAULTS.items() if k != "model"}}, separators=(",", ":")
    ).encode()
    header = MAGIC + struct.pack("<HHIQII", VERSION, RECORD_SIZE, 0, 1, len(meta), 0)
    record = struct.pack("<BBHIIIQ", 1, 1, 0, 7, 4096, 0, 0)
    body = header + record + meta + bytes(-len(meta) % 8)
    assert data == body + struct.pack("<I", zlib.crc32(body))


def test_empty_trace(tmp_path):
    p = tmp_path / "e.fst"
    TraceWriter(p).close()
    t = Trace.open(p)
    assert len(t) == 0 and t.inferences() == []
    t.validate_semantics()
    s = t.summary()
    assert s["records"] == 0 and s["bytes_written_per_inference"] is None


def test_writer_metadata_can_change_until_close(tmp_path):
    p = tmp_path / "m.fst"
    with TraceWriter(p, {"model": "a"}) as w:
        w.put(0, 8)
        w.metadata["peak_sram"] = 1234
        w.metadata["model"] = "b"
    assert Trace.open(p).metadata == {**DEFAULTS, "model": "b", "peak_sram": 1234}


# --- writer errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda w: w.write(0), "record 1: unknown op 0"),
        (lambda w: w.write(10), "record 1: unknown op 10"),
        (lambda w: w.write(Op.READ, flags=1), "record 1: flags 0x1 not allowed on READ"),
        (lambda w: w.write(Op.WRITE, flags=2), "record 1: flags 0x2 not allowed on WRITE"),
        (lambda w: w.put(2**32, 1), "record 1: key 4294967296 does not fit in u32"),
        (lambda w: w.get(1, -1), "record 1: length -1 does not fit in u32"),
        (lambda w: w.begin(2**64), "record 1: value 18446744073709551616 does not fit in u64"),
        (lambda w: w.compute(1, time_us=1.5), "record 1: time_us 1.5 is not an integer"),
    ],
)
def test_writer_rejects_bad_records(tmp_path, call, message):
    p = tmp_path / "w.fst"
    w = TraceWriter(p)
    w.sync()
    with pytest.raises(TraceFormatError) as e:
        call(w)
    assert str(e.value) == f"{p}: {message}"
    assert w.count == 1


def test_write_records_checks_fields(tmp_path):
    p = tmp_path / "w.fst"
    arr = records_of([(Op.WRITE, 1, 8, 0), (Op.READ, 1, 8, 0), (Op.READ, 1, 8, 0)])
    arr["flags"][2] = 1
    with TraceWriter(p) as w:
        w.sync()
        with pytest.raises(TraceFormatError) as e:
            w.write_records(arr)
        assert str(e.value) == f"{p}: record 3: reserved flag bits 0x01 set on READ"
        with pytest.raises(TypeError):
            w.write_records(np.zeros(2, dtype=np.uint8))


def test_writer_after_close_and_abort(tmp_path):
    p = tmp_path / "w.fst"
    with pytest.raises(RuntimeError), TraceWriter(p) as w:
        w.put(1, 1)
        raise RuntimeError("planner failed")
    assert not p.exists() and not (tmp_path / "w.fst.partial").exists()
    with pytest.raises(ValueError, match="closed"):
        w.put(1, 1)


def test_writer_metadata_must_be_json(tmp_path):
    p = tmp_path / "w.fst"
    w = TraceWriter(p, {"tensors": {1, 2}})
    with pytest.raises(TraceFormatError) as e:
        w.close()
    assert str(e.value) == (
        f"{p}: metadata cannot be stored as JSON: Object of type set is not JSON serializable"
    )
    with pytest.raises(TraceFormatError, match="Out of range float values"):
        TraceWriter(p, {"peak_sram": float("nan")}).close()
    assert not p.exists() and not (tmp_path / "w.fst.partial").exists()


def test_writer_cannot_create(tmp_path):
    with pytest.raises(InputError) as e:
        TraceWriter(tmp_path / "no" / "such" / "t.fst")
    assert (
        str(e.value) == f"{tmp_path / 'no' / 'such' / 't.fst'}: cannot create: "
        "No such file or directory"
    )


# --- structural corruption -------------------------------------------------------------


def expect_error(path: Path, message: str, validate: bool = True) -> None:
    with pytest.raises(TraceFormatError) as e:
        Trace.open(path, validate=validate)
    assert str(e.value) == f"{path}: {message}"


def test_missing_file(tmp_path):
    expect_error(tmp_path / "none.fst", "cannot open: No such file or directory")


def test_bad_magic(tmp_path):
    p = small_trace(tmp_path)
    data = bytearray(p.read_bytes())
    data[:4] = b"XXXX"
    p.write_bytes(data)
    expect_error(p, "byte 0: bad magic b'XXXXRACE' (not a flashswap trace)")
    p.write_bytes(b"")
    expect_error(p, "byte 0: bad magic b'' (not a flashswap trace)")


def test_truncated_header(tmp_path):
    p = small_trace(tmp_path)
    p.write_bytes(p.read_bytes()[:20])
    expect_error(p, "truncated: file is 20 bytes, the header alone is 32")


def test_truncated_records(tmp_path):
    p = small_trace(tmp_path)
    data = p.read_bytes()
    p.write_bytes(data[: HEADER_SIZE + 3 * RECORD_SIZE + 5])
    expect_error(p, "truncated: header says 5 records but file holds 3")


def test_truncated_metadata(tmp_path):
    p = small_trace(tmp_path)
    data = p.read_bytes()
    meta_len = struct.unpack_from("<I", data, 24)[0]
    p.write_bytes(data[:-10])
    expect_error(
        p,
        f"truncated: file is {len(data) - 10} bytes but its header describes {len(data)} "
        f"(5 records, {meta_len} bytes of metadata, CRC)",
    )


def test_trailing_bytes(tmp_path):
    p = small_trace(tmp_path)
    size = p.stat().st_size
    p.write_bytes(p.read_bytes() + b"\0\0\0")
    expect_error(p, f"byte {size}: 3 unexpected bytes after the CRC")


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (8, "<H", 7, "byte 8: unsupported version 7 (this reader knows 1)"),
        (10, "<H", 32, "byte 10: record size 32, expected 24"),
        (12, "<I", 4, "byte 12: unknown header flags 0x00000004"),
        (28, "<I", 1, "byte 28: reserved header field is 0x00000001, expected 0"),
    ],
)
def test_bad_header_fields(tmp_path, offset, fmt, value, message):
    p = small_trace(tmp_path)
    data = bytearray(p.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    p.write_bytes(fix_crc(data))
    expect_error(p, message)


def test_every_flipped_byte_is_caught(tmp_path):
    p = small_trace(tmp_path)
    good = p.read_bytes()
    bad = tmp_path / "bad.fst"
    for i in range(len(good)):
        data = bytearray(good)
        data[i] ^= 0x40
        bad.write_bytes(data)
        with pytest.raises(TraceFormatError) as e:
            Trace.open(bad)
        if i >= HEADER_SIZE:  # past the header the CRC is the first check that can fail
            stored = struct.unpack("<I", data[-4:])[0]
            computed = zlib.crc32(bytes(data[:-4]))
            assert str(e.value) == (
                f"{bad}: CRC mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}"
            ), i


def test_validate_false_skips_crc_but_not_header(tmp_path):
    p = small_trace(tmp_path)
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(data)
    assert len(Trace.open(p, validate=False)) == 5
    expect_error(
        p,
        "CRC mismatch: stored 0x"
        + data[-4:][::-1].hex()
        + ", computed 0x"
        + f"{zlib.crc32(bytes(data[:-4])):08x}",
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("op", 0, "record 2: unknown op 0"),
        ("op", 200, "record 2: unknown op 200"),
        ("flags", 1, "record 2: reserved flag bits 0x01 set on READ"),
        ("reserved", 9, "record 2: reserved field is 0x0009, expected 0"),
    ],
)
def test_bad_record_fields(tmp_path, field, value, message):
    p = small_trace(tmp_path)
    data = bytearray(p.read_bytes())
    recs = np.frombuffer(data, dtype=RECORD_DTYPE, count=5, offset=HEADER_SIZE)
    recs[field][2] = value
    p.write_bytes(fix_crc(data))
    expect_error(p, message)


def build_file(meta: bytes, padding: bytes | None = None) -> bytes:
    """A trace assembled by hand (no records), independent of TraceWriter."""
    header = MAGIC + struct.pack("<HHIQII", VERSION, RECORD_SIZE, 0, 0, len(meta), 0)
    body = header + meta + (bytes(-len(meta) % 8) if padding is None else padding)
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("meta", "padding", "message"),
    [
        (b"{}", None, None),
        (b"[]", None, "byte 32: metadata is a JSON list, not an object"),
        (
            b'{"a":',
            None,
            "byte 32: metadata is not UTF-8 JSON (Expecting value: line 1 column 6 (char 5))",
        ),
        (
            b'{"\xff":1}',
            None,
            "byte 32: metadata is not UTF-8 JSON ('utf-8' codec can't "
            "decode byte 0xff in position 2: invalid start byte)",
        ),
        (b"{}", b"\0\0\0\0\0\1", "byte 34: nonzero padding after the metadata"),
    ],
)
def test_bad_metadata(tmp_path, meta, padding, message):
    p = tmp_path / "m.fst"
    p.write_bytes(build_file(meta, padding))
    if message is None:
        assert Trace.open(p).metadata == {}
    else:
        expect_error(p, message)


# --- semantics -------------------------------------------------------------------------

W, R, T, INV, SYNC, B, E = (
    Op.WRITE,
    Op.READ,
    Op.TRIM,
    Op.INVALIDATE,
    Op.SYNC,
    Op.INFERENCE_BEGIN,
    Op.INFERENCE_END,
)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(W, 1, 8, 0), (R, 5, 8, 0)], "record 1: READ of key 5 that was never written"),
        ([(T, 5, 0, 0)], "record 0: TRIM of key 5 that was never written"),
        (
            [(W, 5, 8, 0), (T, 5, 0, 0), (R, 5, 8, 0)],
            "record 2: READ of key 5 that was trimmed at record 1",
        ),
        (
            [(W, 5, 8, 0), (T, 5, 0, 0), (T, 5, 0, 0)],
            "record 2: TRIM of key 5 that was trimmed at record 1",
        ),
        (
            [
                (W, 5, 8, 0),
                (R, 5, 8, 0),
                (INV, 0, 0, 4),
                (INV, 5, 0, 9),
                (INV, 0, 0, 9),
                (R, 5, 8, 0),
            ],
            "record 5: READ of key 5 that was invalidated at record 3 (INVALIDATE 5..9)",
        ),
        (
            [(W, 5, 8, 0), (INV, 5, 0, 5), (T, 5, 0, 0)],
            "record 2: TRIM of key 5 that was invalidated at record 1 (INVALIDATE 5..5)",
        ),
        (
            [(W, 5, 8, 0), (R, 5, 8, 0), (R, 5, 9, 0)],
            "record 2: READ of 9 bytes of key 5, but the WRITE at record 0 wrote 8 bytes",
        ),
        (
            [(W, 5, 8, 0), (W, 5, 4, 0), (R, 5, 8, 0)],
            "record 2: READ of 8 bytes of key 5, but the WRITE at record 1 wrote 4 bytes",
        ),
        (
            [(B, 0, 0, 0), (E, 0, 0, 0), (E, 0, 0, 0)],
            "record 2: INFERENCE_END without INFERENCE_BEGIN",
        ),
        ([(E, 0, 0, 0)], "record 0: INFERENCE_END without INFERENCE_BEGIN"),
        (
            [(B, 0, 0, 0), (SYNC, 0, 0, 0), (B, 0, 0, 1)],
            "record 2: INFERENCE_BEGIN inside the inference begun at record 0",
        ),
        ([(B, 0, 0, 0), (E, 0, 0, 0), (B, 0, 0, 1)], "record 2: INFERENCE_BEGIN never ended"),
        ([(INV, 7, 0, 6)], "record 0: INVALIDATE of an empty range 7..6"),
        # several problems: the earliest record is reported
        (
            [(W, 1, 8, 0), (W, 2, 8, 0), (T, 2, 0, 0), (R, 1, 9, 0), (R, 2, 8, 0), (R, 3, 1, 0)],
            "record 3: READ of 9 bytes of key 1, but the WRITE at record 0 wrote 8 bytes",
        ),
        (
            [(W, 70000, 8, 0), (W, 1, 8, 0), (INV, 0, 0, 69999), (R, 70000, 8, 0), (R, 1, 8, 0)],
            "record 4: READ of key 1 that was invalidated at record 2 (INVALIDATE 0..69999)",
        ),
    ],
)
def test_semantic_errors(tmp_path, rows, message):
    p = write_trace(tmp_path / "s.fst", rows)
    t = Trace.open(p)  # structurally fine
    with pytest.raises(TraceFormatError) as e:
        t.validate_semantics()
    assert str(e.value) == f"{p}: {message}"


def test_valid_semantics(tmp_path):
    rows = [
        (W, 3, 8, 0),
        (B, 0, 0, 0),
        (W, 1, 16, 0),
        (R, 1, 8, 0),
        (R, 1, 16, 0),
        (T, 1, 0, 0),
        (W, 1, 4, 0),
        (W, 2**32 - 1, 1, 0),
        (INV, 0, 0, 2),
        (E, 0, 0, 0),
        (R, 3, 8, 0),
        (B, 0, 0, 1),
        (W, 1, 4, 0),
        (R, 1, 4, 0),
        (INV, 2**32 - 1, 0, 2**64 - 1),
        (R, 1, 4, 0),
        (E, 0, 0, 0),
        (INV, 9, 0, 9),
    ]
    t = Trace.open(write_trace(tmp_path / "ok.fst", rows))
    t.validate_semantics()
    assert t.inferences() == [(1, 10), (11, 17)]


def test_inferences_requires_nesting(tmp_path):
    p = write_trace(tmp_path / "n.fst", [(E, 0, 0, 0)])
    with pytest.raises(TraceFormatError) as e:
        Trace.open(p).inferences()
    assert str(e.value) == f"{p}: record 0: INFERENCE_END without INFERENCE_BEGIN"


def reference_problem(rows: list[tuple[int, ...]]) -> str | None:
    """A plain loop over the records: the model the vectorized validator must agree with."""
    first: tuple[int, str] | None = None
    state: dict[int, tuple[str, int, int]] = {}  # key -> (state, record, written length)
    for i, (op, key, length, value) in enumerate(rows):
        problem = None
        if op == W:
            state[key] = ("live", i, length)
        elif op in (R, T):
            name = Op(op).name
            s = state.get(key)
            if s is None:
                problem = f"{name} of key {key} that was never written"
            elif s[0] == "trimmed":
                problem = f"{name} of key {key} that was trimmed at record {s[1]}"
            elif s[0] == "dead":
                problem = (
                    f"{name} of key {key} that was invalidated at record {s[1]} "
                    f"(INVALIDATE {rows[s[1]][1]}..{rows[s[1]][3]})"
                )
            elif op == R and length > s[2]:
                problem = (
                    f"READ of {length} bytes of key {key}, but the WRITE at record "
                    f"{s[1]} wrote {s[2]} bytes"
                )
            elif op == T:
                state[key] = ("trimmed", i, 0)
        elif op == INV:
            if key > value:
                problem = f"INVALIDATE of an empty range {key}..{value}"
            for k, s in state.items():
                if s[0] == "live" and key <= k <= value:
                    state[k] = ("dead", i, 0)
        if problem and first is None:
            first = (i, problem)
    open_at = None
    nesting = None
    for i, (op, *_) in enumerate(rows):
        if op == B:
            if open_at is not None:
                nesting = (i, f"INFERENCE_BEGIN inside the inference begun at record {open_at}")
                break
            open_at = i
        elif op == E:
            if open_at is None:
                nesting = (i, "INFERENCE_END without INFERENCE_BEGIN")
                break
            open_at = None
    if nesting is None and open_at is not None:
        nesting = (open_at, "INFERENCE_BEGIN never ended")
    found = [x for x in (first, nesting) if x is not None]
    if not found:
        return None
    i, msg = min(found, key=lambda x: x[0])
    return f"record {i}: {msg}"


@st.composite
def mostly_valid_rows(draw) -> list[tuple[int, ...]]:
    """Random traces over a few keys that usually read what is alive, so errors come late."""
    rows: list[tuple[int, ...]] = []
    live: dict[int, int] = {}
    in_inference = False
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from("WWWRRRTIBx"))
        key = draw(st.integers(0, 5))
        if kind in "RT" and draw(st.integers(0, 29)):  # rarely an arbitrary (dead?) key
            if live:
                key = draw(st.sampled_from(sorted(live)))
            else:
                kind = "W"
        if kind == "W":
            length = draw(st.integers(0, 4))
            rows.append((W, key, length, 0))
            live[key] = length
        elif kind == "R":
            cap = live.get(key, 0)
            rows.append((R, key, draw(st.integers(0, cap + (draw(st.integers(0, 29)) == 0))), 0))
        elif kind == "T":
            rows.append((T, key, 0, 0))
            live.pop(key, None)
        elif kind == "I":
            a, b = draw(st.integers(0, 6)), draw(st.integers(0, 6))
            if draw(st.integers(0, 9)):
                a, b = min(a, b), max(a, b)
            rows.append((INV, a, 0, b))
            live = {k: v for k, v in live.items() if not a <= k <= b}
        elif kind == "B":
            bad = draw(st.integers(0, 19)) == 0
            rows.append((E if in_inference != bad else B, 0, 0, len(rows)))
            in_inference = not in_inference
        else:
            rows.append((SYNC, 0, 0, 0))
    if in_inference and draw(st.booleans()):
        rows.append((E, 0, 0, 0))
    return rows


@given(rows=mostly_valid_rows())
def test_validator_agrees_with_reference_loop(tmp_path_factory, rows):
    p = write_trace(tmp_path_factory.mktemp("sem") / "t.fst", rows)
    expected = reference_problem(rows)
    t = Trace.open(p)
    if expected is None:
        t.validate_semantics()
    else:
        with pytest.raises(TraceFormatError) as e:
            t.validate_semantics()
        assert str(e.value) == f"{p}: {expected}"


def test_validator_on_a_long_trace_matches_reference(tmp_path):
    """Many inferences and invalidates, keys above 16 bits: exercises both radix passes and
    the batched invalidate scan, with the error planted near the end."""
    rng = np.random.default_rng(5)
    rows: list[tuple[int, ...]] = []
    for inf in range(300):
        rows.append((B, 0, 0, inf))
        keys = rng.choice(200_000, size=6, replace=False)
        for k in keys:
            rows.append((W, int(k), 64, 0))
        for k in keys:
            rows.append((R, int(k), 64, 0))
        rows.append((INV, 0, 0, 199_999))
        rows.append((E, 0, 0, 0))
    rows.insert(len(rows) - 3, (R, int(keys[0]), 64, 0))
    rows.insert(len(rows) - 2, (R, int(keys[1]), 64, 0))
    rows.insert(len(rows) - 2, (R, int(keys[1]), 64, 0))
    rows[-1:] = [(R, int(keys[2]), 64, 0), (E, 0, 0, 0)]
    p = write_trace(tmp_path / "long.fst", rows)
    with pytest.raises(TraceFormatError) as e:
        Trace.open(p).validate_semantics()
    assert str(e.value) == f"{p}: {reference_problem(rows)}"


# --- summary ---------------------------------------------------------------------------


def test_summary_counts(tmp_path):
    p = tmp_path / "sum.fst"
    with TraceWriter(
        p, {"model": "net", "sram_budget": 65536, "peak_sram": 60000, "chunk_size": 4096}
    ) as w:
        w.put(9, 4096, pinned=True)  # before any inference: counted in totals only
        for i in range(3):
            w.begin(i)
            w.weight_read(1000 + i, tensor_id=2)
            w.compute(5000, time_us=10, op_index=0)
            w.put(1, 4096)
            w.put(2, 2048 * (i + 1))
            w.get(1, 4096)
            w.get(2, 1024)
            w.invalidate(1, 2)
            w.end()
        w.sync()
    s = Trace.open(p).summary()
    assert s["records"] == 1 + 3 * 9 + 1
    assert s["inferences"] == 3
    assert s["ops"] == {
        "WRITE": 7,
        "READ": 6,
        "TRIM": 0,
        "INVALIDATE": 3,
        "SYNC": 1,
        "INFERENCE_BEGIN": 3,
        "INFERENCE_END": 3,
        "COMPUTE": 3,
        "WEIGHT_READ": 3,
    }
    assert s["distinct_keys"] == 3
    assert s["bytes_written"] == 4096 * 4 + 2048 * 6
    assert s["bytes_written_per_inference"] == 4096 + 2048 * 2
    assert s["bytes_read_per_inference"] == 5120
    assert s["weight_bytes_read_per_inference"] == 1001
    assert s["macs_per_inference"] == 5000
    assert (s["model"], s["sram_budget"], s["peak_sram"], s["chunk_size"]) == (
        "net",
        65536,
        60000,
        4096,
    )
    assert s["per_inference"][2] == {
        "index": 2,
        "first_record": 19,
        "records": 9,
        "bytes_written": 4096 + 6144,
        "bytes_read": 5120,
        "weight_bytes_read": 1002,
        "macs": 5000,
    }


def test_records_are_read_only_views(tmp_path):
    t = Trace.open(small_trace(tmp_path))
    with pytest.raises(ValueError):
        t.records["key"][0] = 3
    assert os.fspath(t.path).endswith("small.fst")


def test_invalidate_scan_in_small_batches(tmp_path, monkeypatch):
    """Chunks that outlive many (non-covering) invalidates: the scan runs in batches."""
    import flashswap.trace as trace_mod

    monkeypatch.setattr(trace_mod, "_KILL_BATCH", 4)
    rows: list[tuple[int, ...]] = [(W, k, 8, 0) for k in range(10)]
    for _ in range(50):
        rows.append((INV, 100, 0, 200))
    rows += [(R, k, 8, 0) for k in range(10)]
    rows += [(INV, 100, 0, 200), (INV, 5, 0, 5), (INV, 100, 0, 200)]
    rows += [(R, k, 8, 0) for k in range(10)]
    p = write_trace(tmp_path / "b.fst", rows)
    with pytest.raises(TraceFormatError) as e:
        Trace.open(p).validate_semantics()
    assert str(e.value) == f"{p}: {reference_problem(rows)}"
    assert reference_problem(rows) == (
        "record 78: READ of key 5 that was invalidated at record 71 (INVALIDATE 5..5)"
    )
