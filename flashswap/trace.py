"""The flashswap trace format: the logical swap operations an NN inference makes.

One file holds a 32-byte header, fixed 24-byte little-endian records, UTF-8 JSON metadata
padded to 8 bytes, and a CRC-32 of everything before it. traces/README.md is the byte-exact
specification; this module is its reference implementation.

The metadata sits AFTER the records so a writer can stream records straight to disk and
still store totals it learns only at the end (peak SRAM, bytes swapped). The header's record
count and metadata length are patched on close; the CRC is then computed without re-reading
the records by combining the header's CRC with the running CRC of the body.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from flashswap.errors import InputError, TraceFormatError

MAGIC = b"FSWTRACE"
VERSION = 1
RECORD_SIZE = 24
HEADER_SIZE = 32
CRC_SIZE = 4

RECORD_DTYPE = np.dtype(
    [
        ("op", "u1"),
        ("flags", "u1"),
        ("reserved", "<u2"),
        ("key", "<u4"),
        ("length", "<u4"),
        ("time_us", "<u4"),
        ("value", "<u8"),
    ]
)

# WRITE flag bit 0: the chunk is long-lived (a hint the store may use for placement).
FLAG_PINNED = 0x01

# magic, version, record size, header flags, record count, metadata length, reserved
_HEADER = struct.Struct("<8sHHIQII")
_RECORD = struct.Struct("<BBHIIIQ")
_CRC = struct.Struct("<I")
_CRC_SLICE = 16 << 20  # bytes per zlib.crc32 call: big enough to be fast, small enough to page
_PER_INFERENCE_ROWS = 10  # summary() details at most this many inferences


class Op(IntEnum):
    """Record op codes. Values are part of the file format: never renumber."""

    WRITE = 1  # key, length: swap-out of a chunk
    READ = 2  # key, length: swap-in of (a prefix of) a chunk
    TRIM = 3  # key: the chunk is dead
    INVALIDATE = 4  # every key in [key, value] inclusive is dead (one store write)
    SYNC = 5
    INFERENCE_BEGIN = 6  # value: inference index
    INFERENCE_END = 7
    COMPUTE = 8  # value: MACs; time_us: duration or 0; key: op index in the graph
    WEIGHT_READ = 9  # length: weight bytes streamed from flash; key: weight tensor id


_OP_CODES = frozenset(int(o) for o in Op)
_MAX_OP = max(_OP_CODES)
_FIELD_LIMITS = (("key", 32), ("length", 32), ("time_us", 32), ("value", 64))


def _required_metadata() -> dict[str, Any]:
    """Keys every trace's metadata has; the writer fills the ones the caller did not set."""
    return {
        "model": None,
        "sram_budget": None,
        "chunk_size": None,
        "generator": "flashswap.trace.TraceWriter",
        "peak_sram": None,
        "tensors": [],
    }


def _pad8(n: int) -> int:
    return -n % 8


# --- CRC-32 of a concatenation ---------------------------------------------------------


def _gf2_times(matrix: list[int], vector: int) -> int:
    total = 0
    row = 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A+B from crc32(A), crc32(B) and len(B) (zlib's crc32_combine, in Python).

    Lets the writer patch the header last without re-reading the records it streamed.
    """
    if len2 <= 0:
        return crc1
    # Operator that appends one zero bit, then squared to 2, 4, 8 ... zero bits.
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


# --- record checks shared by the writer and the reader -------------------------------


def _record_field_problem(records: np.ndarray) -> tuple[int, str] | None:
    """First record with an unknown op, a reserved flag bit or a nonzero reserved field."""
    op = records["op"]
    bad = (op == 0) | (op > _MAX_OP)
    if bad.any():
        i = int(np.argmax(bad))
        return i, f"unknown op {int(op[i])}"
    flags = records["flags"]
    bad = (flags > FLAG_PINNED) | ((flags != 0) & (op != Op.WRITE))
    if bad.any():
        i = int(np.argmax(bad))
        return i, f"reserved flag bits 0x{int(flags[i]):02x} set on {Op(int(op[i])).name}"
    reserved = records["reserved"]
    bad = reserved != 0
    if bad.any():
        i = int(np.argmax(bad))
        return i, f"reserved field is 0x{int(reserved[i]):04x}, expected 0"
    return None


# --- writer ----------------------------------------------------------------------------


class TraceWriter:
    """Streams records to a trace file; header, metadata and CRC are written on close().

    Records go through a fixed buffer, so memory stays constant however long the trace.
    The file is assembled under PATH.partial and renamed on close, so a crashed writer never
    leaves a half-written file under the final name.
    """

    BUFFER_RECORDS = 16384

    def __init__(self, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None):
        self.path = Path(path)
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        self.count = 0
        self._partial = self.path.with_name(self.path.name + ".partial")
        try:
            self._file = open(self._partial, "wb")  # closed in close() or abort()
        except OSError as e:
            raise InputError(f"{self.path}: cannot create: {e.strerror}") from None
        self._file.write(bytes(HEADER_SIZE))  # placeholder, patched on close
        self._body_crc = 0  # CRC of everything after the header
        self._body_len = 0
        self._buf = bytearray(self.BUFFER_RECORDS * RECORD_SIZE)
        self._fill = 0
        self._closed = False

    # -- context manager --

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- records --

    def write(
        self,
        op: Op | int,
        key: int = 0,
        length: int = 0,
        value: int = 0,
        time_us: int = 0,
        flags: int = 0,
    ) -> None:
        """Appends one record. Raises TraceFormatError for an op, flag or field out of range."""
        if self._closed:
            raise ValueError(f"{self.path}: TraceWriter is closed")
        if op not in _OP_CODES:
            raise TraceFormatError(f"{self.path}: record {self.count}: unknown op {op!r}")
        if flags and (op != Op.WRITE or flags & ~FLAG_PINNED):
            raise TraceFormatError(
                f"{self.path}: record {self.count}: flags 0x{flags:x} not allowed on {Op(op).name}"
            )
        try:
            _RECORD.pack_into(
                self._buf, self._fill * RECORD_SIZE, op, flags, 0, key, length, time_us, value
            )
        except struct.error:
            raise TraceFormatError(
                f"{self.path}: record {self.count}: "
                + _field_range_problem(key=key, length=length, time_us=time_us, value=value)
            ) from None
        self._fill += 1
        self.count += 1
        if self._fill == self.BUFFER_RECORDS:
            self._flush()

    def write_records(self, arr: np.ndarray) -> None:
        """Appends a RECORD_DTYPE array in one go (checked vectorized, written without copies)."""
        if self._closed:
            raise ValueError(f"{self.path}: TraceWriter is closed")
        arr = np.asarray(arr)
        if arr.dtype != RECORD_DTYPE:
            raise TypeError(f"write_records needs a RECORD_DTYPE array, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr.reshape(-1))
        problem = _record_field_problem(arr)
        if problem is not None:
            i, what = problem
            raise TraceFormatError(f"{self.path}: record {self.count + i}: {what}")
        self._flush()
        raw = arr.view(np.uint8)
        for start in range(0, raw.size, _CRC_SLICE):
            self._put_body(raw[start : start + _CRC_SLICE])
        self.count += arr.size

    def put(self, key: int, length: int, pinned: bool = False) -> None:
        self.write(Op.WRITE, key=key, length=length, flags=FLAG_PINNED if pinned else 0)

    def get(self, key: int, length: int) -> None:
        self.write(Op.READ, key=key, length=length)

    def trim(self, key: int) -> None:
        self.write(Op.TRIM, key=key)

    def invalidate(self, first: int, last: int) -> None:
        self.write(Op.INVALIDATE, key=first, value=last)

    def sync(self) -> None:
        self.write(Op.SYNC)

    def begin(self, index: int) -> None:
        self.write(Op.INFERENCE_BEGIN, value=index)

    def end(self) -> None:
        self.write(Op.INFERENCE_END)

    def compute(self, macs: int, time_us: int = 0, op_index: int = 0) -> None:
        self.write(Op.COMPUTE, key=op_index, value=macs, time_us=time_us)

    def weight_read(self, length: int, tensor_id: int = 0) -> None:
        self.write(Op.WEIGHT_READ, key=tensor_id, length=length)

    # -- finishing --

    def close(self) -> None:
        """Writes metadata, header and CRC, and moves the file to its final name."""
        if self._closed:
            return
        self._flush()
        for k, default in _required_metadata().items():
            self.metadata.setdefault(k, default)
        try:
            meta = json.dumps(
                self.metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode("utf-8")
        except (TypeError, ValueError) as e:
            self.abort()
            raise TraceFormatError(f"{self.path}: metadata cannot be stored as JSON: {e}") from None
        if len(meta) > 0xFFFFFFFF:
            self.abort()
            raise TraceFormatError(f"{self.path}: metadata is {len(meta)} bytes, limit 4 GiB")
        self._put_body(meta + bytes(_pad8(len(meta))))
        header = _HEADER.pack(MAGIC, VERSION, RECORD_SIZE, 0, self.count, len(meta), 0)
        crc = crc32_combine(zlib.crc32(header), self._body_crc, self._body_len)
        self._file.write(_CRC.pack(crc))
        self._file.seek(0)
        self._file.write(header)
        self._file.close()
        self._closed = True
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Discards the partial file (used when the caller's block raised)."""
        if self._closed:
            return
        self._closed = True
        self._file.close()
        self._partial.unlink(missing_ok=True)

    def _flush(self) -> None:
        if self._fill:
            self._put_body(memoryview(self._buf)[: self._fill * RECORD_SIZE])
            self._fill = 0

    def _put_body(self, data: Any) -> None:
        self._body_crc = zlib.crc32(data, self._body_crc)
        self._file.write(data)
        self._body_len += len(data)


def _field_range_problem(**fields: int) -> str:
    for name, bits in _FIELD_LIMITS:
        v = fields[name]
        if not isinstance(v, int):
            return f"{name} {v!r} is not an integer"
        if not 0 <= v < 1 << bits:
            return f"{name} {v} does not fit in u{bits}"
    return "a field is out of range"


# --- reader ----------------------------------------------------------------------------


class Trace:
    """A trace file opened read-only: `.records` is a memory-mapped RECORD_DTYPE array."""

    def __init__(self, path: Path, records: np.ndarray, metadata: dict[str, Any]):
        self.path = path
        self.records = records
        self.metadata = metadata
        self._spans: list[tuple[int, int]] | None = None
        self._semantics_ok = False

    def __len__(self) -> int:
        return int(self.records.size)

    def __repr__(self) -> str:
        return f"Trace({str(self.path)!r}, records={len(self)})"

    @classmethod
    def open(cls, path: str | os.PathLike[str], validate: bool = True) -> Trace:
        """Maps a trace file. Header, sizes and metadata are always checked; validate=True
        also checks the CRC and every record's op code, flags and reserved field (all
        vectorized). Key semantics are checked by validate_semantics()."""
        p = Path(path)

        def fail(what: str) -> TraceFormatError:
            return TraceFormatError(f"{p}: {what}")

        try:
            f = open(p, "rb")  # the mmap keeps its own handle
        except OSError as e:
            raise fail(f"cannot open: {e.strerror}") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(HEADER_SIZE)
            if head[:8] != MAGIC:
                raise fail(f"byte 0: bad magic {head[:8]!r} (not a flashswap trace)")
            if len(head) < HEADER_SIZE:
                raise fail(f"truncated: file is {size} bytes, the header alone is {HEADER_SIZE}")
            _, version, record_size, hflags, count, meta_len, reserved = _HEADER.unpack(head)
            if version != VERSION:
                raise fail(f"byte 8: unsupported version {version} (this reader knows {VERSION})")
            if record_size != RECORD_SIZE:
                raise fail(f"byte 10: record size {record_size}, expected {RECORD_SIZE}")
            if hflags != 0:
                raise fail(f"byte 12: unknown header flags 0x{hflags:08x}")
            if reserved != 0:
                raise fail(f"byte 28: reserved header field is 0x{reserved:08x}, expected 0")
            meta_off = HEADER_SIZE + count * RECORD_SIZE
            crc_off = meta_off + meta_len + _pad8(meta_len)
            expected = crc_off + CRC_SIZE
            if size < expected:
                held = min(count, (size - HEADER_SIZE) // RECORD_SIZE)
                if held < count:
                    raise fail(f"truncated: header says {count} records but file holds {held}")
                raise fail(
                    f"truncated: file is {size} bytes but its header describes {expected} "
                    f"({count} records, {meta_len} bytes of metadata, CRC)"
                )
            if size > expected:
                raise fail(f"byte {expected}: {size - expected} unexpected bytes after the CRC")
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

        if validate:
            (stored,) = _CRC.unpack(mm[crc_off:expected])
            computed = _crc32_of(mm, crc_off)
            if stored != computed:
                raise fail(f"CRC mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}")
        raw_meta = mm[meta_off : meta_off + meta_len]
        try:
            metadata = json.loads(raw_meta.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise fail(f"byte {meta_off}: metadata is not UTF-8 JSON ({e})") from None
        if not isinstance(metadata, dict):
            raise fail(
                f"byte {meta_off}: metadata is a JSON {type(metadata).__name__}, not an object"
            )
        if mm[meta_off + meta_len : crc_off].strip(b"\0"):
            raise fail(f"byte {meta_off + meta_len}: nonzero padding after the metadata")
        records = np.frombuffer(mm, dtype=RECORD_DTYPE, count=count, offset=HEADER_SIZE)
        if validate:
            problem = _record_field_problem(records)
            if problem is not None:
                i, what = problem
                raise fail(f"record {i}: {what}")
        return cls(p, records, metadata)

    # -- structure of the run --

    def inferences(self) -> list[tuple[int, int]]:
        """(begin, end) per inference, end exclusive: records[begin:end] runs from the
        INFERENCE_BEGIN record to its INFERENCE_END record inclusive."""
        if self._spans is None:
            op = self.records["op"]
            marks = np.flatnonzero((op == Op.INFERENCE_BEGIN) | (op == Op.INFERENCE_END))
            problem = _nesting_problem(op, marks)
            if problem is not None:
                raise TraceFormatError(f"{self.path}: record {problem[0]}: {problem[1]}")
            self._spans = list(zip(marks[0::2].tolist(), (marks[1::2] + 1).tolist(), strict=True))
        return self._spans

    def validate_semantics(self) -> None:
        """Raises TraceFormatError naming the first record that breaks the key rules or the
        inference nesting (see traces/README.md, "Semantics"). Vectorized: one stable radix
        sort of the WRITE/READ/TRIM records by key, then per-key neighbour comparisons."""
        if self._semantics_ok:
            return
        problem = _semantic_problem(self.records)
        if problem is not None:
            raise TraceFormatError(f"{self.path}: record {problem[0]}: {problem[1]}")
        self._semantics_ok = True

    def summary(self) -> dict[str, Any]:
        """Counts and per-inference traffic, the data behind `flashswap trace info`."""
        rec = self.records
        op = rec["op"]
        counts = np.bincount(op, minlength=_MAX_OP + 1)
        spans = self.inferences()
        begins = np.array([b for b, _ in spans], dtype=np.int64)
        ends = np.array([e for _, e in spans], dtype=np.int64)

        def per_inference(mask: np.ndarray, field: str) -> tuple[int, np.ndarray]:
            values = np.where(mask, rec[field], 0).astype(np.uint64)
            cum = np.concatenate(([np.uint64(0)], np.cumsum(values, dtype=np.uint64)))
            return int(cum[-1]), (cum[ends] - cum[begins]).astype(np.int64)

        written, w_inf = per_inference(op == Op.WRITE, "length")
        read, r_inf = per_inference(op == Op.READ, "length")
        weights, wr_inf = per_inference(op == Op.WEIGHT_READ, "length")
        macs, m_inf = per_inference(op == Op.COMPUTE, "value")

        def mean(per: np.ndarray) -> float | None:
            return float(per.mean()) if per.size else None

        md = self.metadata
        details = [
            {
                "index": int(rec["value"][b]),
                "first_record": int(b),
                "records": int(e - b),
                "bytes_written": int(w_inf[j]),
                "bytes_read": int(r_inf[j]),
                "weight_bytes_read": int(wr_inf[j]),
                "macs": int(m_inf[j]),
            }
            for j, (b, e) in enumerate(spans[:_PER_INFERENCE_ROWS])
        ]
        return {
            "path": str(self.path),
            "model": md.get("model"),
            "generator": md.get("generator"),
            "records": len(self),
            "inferences": len(spans),
            "ops": {o.name: int(counts[o]) for o in Op},
            "distinct_keys": _distinct_keys(rec),
            "chunk_size": md.get("chunk_size"),
            "sram_budget": md.get("sram_budget"),
            "peak_sram": md.get("peak_sram"),
            "bytes_written": written,
            "bytes_read": read,
            "weight_bytes_read": weights,
            "macs": macs,
            "bytes_written_per_inference": mean(w_inf),
            "bytes_read_per_inference": mean(r_inf),
            "weight_bytes_read_per_inference": mean(wr_inf),
            "macs_per_inference": mean(m_inf),
            "per_inference": details,
            "metadata": md,
        }


def _crc32_of(buf: mmap.mmap, length: int) -> int:
    crc = 0
    with memoryview(buf) as view:
        for start in range(0, length, _CRC_SLICE):
            crc = zlib.crc32(view[start : min(start + _CRC_SLICE, length)], crc)
    return crc


def _distinct_keys(rec: np.ndarray) -> int:
    op = rec["op"]
    keys = rec["key"][(op == Op.WRITE) | (op == Op.READ) | (op == Op.TRIM)]
    if keys.size == 0:
        return 0
    if int(keys.max()) < 1 << 24:  # small key spaces: a bincount beats a sort
        return int(np.count_nonzero(np.bincount(keys)))
    return int(np.unique(keys).size)


# --- semantic checks -------------------------------------------------------------------


def _nesting_problem(op: np.ndarray, marks: np.ndarray) -> tuple[int, str] | None:
    """Properly nested inferences alternate BEGIN, END, BEGIN, END ... in record order."""
    if marks.size == 0:
        return None
    is_begin = op[marks] == Op.INFERENCE_BEGIN
    wrong = np.flatnonzero(is_begin != (np.arange(marks.size) % 2 == 0))
    if wrong.size:
        j = int(wrong[0])
        if is_begin[j]:
            opened = marks[j - 1]
            return int(marks[j]), f"INFERENCE_BEGIN inside the inference begun at record {opened}"
        return int(marks[j]), "INFERENCE_END without INFERENCE_BEGIN"
    if marks.size % 2:
        return int(marks[-1]), "INFERENCE_BEGIN never ended"
    return None


def _stable_key_order(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of u32 keys as an LSD radix sort: numpy radix-sorts 16-bit integers
    (O(n)) but falls back to timsort for wider ones, which is 4x slower on 10 M keys."""
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    if keys.size and int(keys.max()) > 0xFFFF:
        high = (keys[order] >> 16).astype(np.uint16)
        order = order[np.argsort(high, kind="stable")]
    return order


def _semantic_problem(rec: np.ndarray) -> tuple[int, str] | None:
    """The first record (lowest index) that breaks a semantic rule, as (index, message).

    Each READ/TRIM is judged against the previous WRITE/READ/TRIM of its key ("prev"): it
    is bad if there is none, if prev is a TRIM, or if an INVALIDATE covering the key lies
    between prev and it. Judging against prev alone is exact for the FIRST error: every
    event before it is valid, so a valid prev READ/WRITE means the key was alive there.
    """
    op = np.ascontiguousarray(rec["op"])  # one strided pass; later scans are contiguous
    problems: list[tuple[int, Callable[[], str]]] = []

    marks = np.flatnonzero((op == Op.INFERENCE_BEGIN) | (op == Op.INFERENCE_END))
    nesting = _nesting_problem(op, marks)
    if nesting is not None:
        problems.append((nesting[0], lambda: nesting[1]))

    inv = np.flatnonzero(op == Op.INVALIDATE)
    first = rec["key"][inv].astype(np.uint64)
    last = rec["value"][inv]
    empty = np.flatnonzero(first > last)
    if empty.size:
        j = int(empty[0])
        problems.append(
            (int(inv[j]), lambda: f"INVALIDATE of an empty range {first[j]}..{last[j]}")
        )

    keyed = np.zeros(256, dtype=bool)
    keyed[[Op.WRITE, Op.READ, Op.TRIM]] = True
    idx = np.flatnonzero(keyed[op])
    if idx.size:
        problems.extend(_key_problems(rec, op, idx, inv, first, last))

    if not problems:
        return None
    index, message = min(problems, key=lambda p: p[0])
    return index, message()


def _key_problems(
    rec: np.ndarray,
    op: np.ndarray,
    idx: np.ndarray,
    inv: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
) -> list[tuple[int, Callable[[], str]]]:
    """The earliest problem of each kind among the WRITE/READ/TRIM records at `idx`."""
    itype = np.int32 if rec.size < 1 << 31 else np.int64  # halves memory traffic
    idx = idx.astype(itype)
    # Gather the fields in record order (sequential reads), then permute the compact copies.
    keys = rec["key"][idx]
    order = _stable_key_order(keys)
    sidx = idx[order]  # record indices, grouped by key, in record order within a key
    skey = keys[order]
    sop = op[idx][order]
    slen = rec["length"][idx][order]
    # Invalidates before each event: those between two events of a key are the difference.
    sinv = np.searchsorted(inv, idx).astype(itype)[order]
    n = sidx.size
    pos = np.arange(n, dtype=itype)
    same = np.zeros(n, dtype=bool)
    same[1:] = skey[1:] == skey[:-1]
    prev_op = np.zeros(n, dtype=sop.dtype)
    prev_op[1:] = sop[:-1]
    use = sop != Op.WRITE
    out: list[tuple[int, Callable[[], str]]] = []

    def name(p: int) -> str:
        return Op(int(sop[p])).name

    def earliest(mask: np.ndarray) -> int | None:
        hits = np.flatnonzero(mask)
        return int(hits[np.argmin(sidx[hits])]) if hits.size else None

    p = earliest(use & ~same)
    if p is not None:
        def never(p: int = p) -> str:
            return f"{name(p)} of key {skey[p]} that was never written"

        out.append((int(sidx[p]), never))

    p = earliest(use & same & (prev_op == Op.TRIM))
    if p is not None:
        def trimmed(p: int = p) -> str:
            return f"{name(p)} of key {skey[p]} that was trimmed at record {sidx[p - 1]}"

        out.append((int(sidx[p]), trimmed))

    alive = use & same & (prev_op != Op.TRIM)
    # Length rule: a READ may not exceed the last WRITE of its key.
    last_w = np.where(sop == Op.WRITE, pos, itype(-1))
    np.maximum.accumulate(last_w, out=last_w)
    group_start = np.where(same, itype(0), pos)
    np.maximum.accumulate(group_start, out=group_start)
    too_long = alive & (sop == Op.READ) & (last_w >= group_start)
    too_long[too_long] = slen[too_long] > slen[last_w[too_long]]
    p = earliest(too_long)
    if p is not None:
        w = int(last_w[p])
        def longer(p: int = p, w: int = w) -> str:
            return (f"READ of {slen[p]} bytes of key {skey[p]}, but the WRITE at record "
                    f"{sidx[w]} wrote {slen[w]} bytes")

        out.append((int(sidx[p]), longer))

    if inv.size:
        q = np.flatnonzero(alive)
        lo = sinv[q - 1]
        killed = _killed(lo, sinv[q] - lo, skey[q], first, last)
        if killed.size:
            qk = q[killed]
            p = int(qk[np.argmin(sidx[qk])])
            j = _covering_invalidate(int(sinv[p - 1]), int(sinv[p]), int(skey[p]), first, last)
            def invalidated(p: int = p, j: int = j) -> str:
                return (f"{name(p)} of key {skey[p]} that was invalidated at record {inv[j]} "
                        f"(INVALIDATE {first[j]}..{last[j]})")

            out.append((int(sidx[p]), invalidated))
    return out


_KILL_BATCH = 1 << 22  # (event, invalidate) pairs examined at once: bounds temporary memory


def _killed(
    lo: np.ndarray, span: np.ndarray, key: np.ndarray, first: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """Positions q where one of invalidates lo[q] .. lo[q]+span[q]-1 covers key[q].

    Only the invalidates between a key's consecutive events are examined; in traces where
    chunks live within one inference that is none or one per event, so the cost is linear.
    """
    todo = np.flatnonzero(span > 0)
    if todo.size == 0:
        return todo
    cum = np.cumsum(span[todo], dtype=np.int64)
    cuts = np.searchsorted(cum, np.arange(_KILL_BATCH, int(cum[-1]), _KILL_BATCH), side="left")
    hits = []
    for batch in np.split(todo, cuts):
        if batch.size == 0:
            continue
        cnt = span[batch]
        q = np.repeat(batch, cnt)
        offset = np.arange(q.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        j = lo[q] + offset
        k = key[q].astype(np.uint64)
        covered = (first[j] <= k) & (k <= last[j])
        hits.append(np.unique(q[covered]))
    return np.concatenate(hits) if hits else todo[:0]


def _covering_invalidate(lo: int, hi: int, key: int, first: np.ndarray, last: np.ndarray) -> int:
    """Index (into the invalidate list) of the first of invalidates lo..hi-1 covering key."""
    j = np.arange(lo, hi)
    return int(j[np.argmax((first[j] <= key) & (key <= last[j]))])
