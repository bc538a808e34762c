"""Import 5-column block traces (DiskSim / SSDsim / MQSim style) as flashswap traces.

Input: one request per line, `time_ms device lba size_in_sectors rw`, whitespace-separated;
rw is 1/R for a read, 0/W for a write (DiskSim's flag bit 0 = read). Blank lines and lines
starting with '#' are skipped. Requests must be in time order.

Each request becomes one store operation per chunk it touches (key = byte offset // chunk):
a write is WRITE(key, chunk), a read is READ(key, chunk). A block trace starts on a disk
that already holds data, so a chunk read before any write is pre-existing data; by default
("preload") it gets one WRITE before the first inference, outside every inference, so
per-inference traffic is unaffected; with "skip" such reads are dropped and counted.
The whole file is one inference unless an inference gap splits it where requests pause.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from flashswap.errors import TraceFormatError
from flashswap.trace import RECORD_DTYPE, Op, TraceWriter

Unwritten = Literal["preload", "skip"]
_READ_FLAGS = {"1": True, "r": True, "0": False, "w": False}


@dataclass(frozen=True)
class BlockRequests:
    """Parsed requests, one array element per request (line: 1-based source line)."""

    line: np.ndarray  # int64
    time_ms: np.ndarray  # float64
    device: np.ndarray  # int64
    lba: np.ndarray  # uint64
    sectors: np.ndarray  # uint64
    is_read: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.line.size)


@dataclass(frozen=True)
class ImportStats:
    """What the import did; printed by `flashswap trace import`."""

    requests: int
    read_requests: int
    write_requests: int
    writes: int  # WRITE records from write requests
    reads: int  # READ records emitted
    preloaded: int  # WRITE records of pre-existing data (before the first inference)
    skipped_reads: int  # READs of never-written chunks dropped (unwritten="skip")
    inferences: int
    records: int
    distinct_keys: int
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_blocktrace(path: str | os.PathLike[str]) -> BlockRequests:
    """Reads a block trace; any bad line raises TraceFormatError naming the line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise TraceFormatError(f"{p}: cannot read: {e.strerror}") from None
    cols: tuple[list[Any], ...] = ([], [], [], [], [], [])
    line_no, time_ms, device, lba, sectors, is_read = cols
    prev_time = -math.inf
    for n, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        fields = s.split()
        if len(fields) != 5:
            raise TraceFormatError(
                f"{p}: line {n}: expected 5 fields (time device lba sectors rw), "
                f"found {len(fields)}"
            )
        t = _number(p, n, "time", fields[0], float)
        if not math.isfinite(t) or t < 0:
            raise TraceFormatError(f"{p}: line {n}: time {fields[0]!r} is not a time in ms")
        if t < prev_time:
            raise TraceFormatError(
                f"{p}: line {n}: time {t:g} ms is before the previous request's {prev_time:g} ms"
            )
        prev_time = t
        dev = _number(p, n, "device", fields[1], int)
        block = _number(p, n, "lba", fields[2], int)
        size = _number(p, n, "size", fields[3], int)
        if dev < 0 or block < 0 or block >= 1 << 48:
            bad = ("device", fields[1]) if dev < 0 else ("lba", fields[2])
            raise TraceFormatError(f"{p}: line {n}: {bad[0]} {bad[1]} is out of range")
        if not 0 < size < 1 << 32:
            raise TraceFormatError(f"{p}: line {n}: size {fields[3]} sectors is out of range")
        flag = _READ_FLAGS.get(fields[4].lower())
        if flag is None:
            raise TraceFormatError(
                f"{p}: line {n}: rw flag {fields[4]!r} is not 1/R (read) or 0/W (write)"
            )
        line_no.append(n)
        time_ms.append(t)
        device.append(dev)
        lba.append(block)
        sectors.append(size)
        is_read.append(flag)
    return BlockRequests(
        line=np.array(line_no, dtype=np.int64),
        time_ms=np.array(time_ms, dtype=np.float64),
        device=np.array(device, dtype=np.int64),
        lba=np.array(lba, dtype=np.uint64),
        sectors=np.array(sectors, dtype=np.uint64),
        is_read=np.array(is_read, dtype=bool),
    )


def _number(path: Path, line: int, name: str, text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise TraceFormatError(f"{path}: line {line}: {name} {text!r} is not a number") from None


def select_device(req: BlockRequests, device: int | None, path: Path) -> BlockRequests:
    """Keeps one device's requests; without a choice the trace must name only one device."""
    if len(req) == 0:
        return req
    if device is None:
        other = np.flatnonzero(req.device != req.device[0])
        if other.size:
            i = int(other[0])
            raise TraceFormatError(
                f"{path}: line {req.line[i]}: device {req.device[i]} differs from device "
                f"{req.device[0]} of line {req.line[0]}; choose one with --device"
            )
        return req
    keep = req.device == device
    if not keep.any():
        found = ", ".join(str(d) for d in np.unique(req.device))
        raise TraceFormatError(f"{path}: no request for device {device} (devices: {found})")
    return BlockRequests(*(getattr(req, f)[keep] for f in BlockRequests.__dataclass_fields__))


def blocktrace_records(
    req: BlockRequests,
    path: Path,
    sector_size: int = 512,
    chunk_size: int = 4096,
    inference_gap_ms: float | None = None,
    unwritten: Unwritten = "preload",
) -> tuple[np.ndarray, ImportStats]:
    """The RECORD_DTYPE records for a block trace, and what was done (vectorized)."""
    if sector_size <= 0 or not 0 < chunk_size < 1 << 32:
        raise TraceFormatError(f"{path}: sector size and chunk size must be positive (< 4 GiB)")
    if unwritten not in ("preload", "skip"):
        raise TraceFormatError(f"{path}: unknown policy for unwritten reads {unwritten!r}")
    start = req.lba * np.uint64(sector_size)
    end = start + req.sectors * np.uint64(sector_size)
    first = start // np.uint64(chunk_size)
    last = (end - np.uint64(1)) // np.uint64(chunk_size)
    too_far = np.flatnonzero(last >= np.uint64(1 << 32))
    if too_far.size:
        i = int(too_far[0])
        raise TraceFormatError(
            f"{path}: line {req.line[i]}: chunk {last[i]} does not fit a u32 key; "
            "use a larger --chunk"
        )

    # One event per (request, chunk touched), in request order then address order.
    per_req = (last - first + np.uint64(1)).astype(np.int64)
    req_of = np.repeat(np.arange(len(req)), per_req)
    offset = np.arange(req_of.size) - np.repeat(np.cumsum(per_req) - per_req, per_req)
    key = (first[req_of] + offset.astype(np.uint64)).astype(np.uint32)
    is_read = req.is_read[req_of]

    # A read is of pre-existing data when no earlier event wrote its key.
    wpos = np.flatnonzero(~is_read)
    wkeys, first_w = np.unique(key[wpos], return_index=True)
    first_write = np.full(key.size, np.iinfo(np.int64).max)
    if wkeys.size:
        slot = np.minimum(np.searchsorted(wkeys, key), wkeys.size - 1)
        known = wkeys[slot] == key
        first_write[known] = wpos[first_w[slot[known]]]
    stale = is_read & (np.arange(key.size) < first_write)
    preload = np.unique(key[stale]) if unwritten == "preload" else key[:0]
    skipped = int(stale.sum()) if unwritten == "skip" else 0
    if skipped:
        keep = ~stale
        key, is_read, req_of = key[keep], is_read[keep], req_of[keep]

    # Inferences: a new one starts where the pause before a request exceeds the gap.
    new_inf = np.zeros(len(req), dtype=bool)
    if inference_gap_ms is not None and len(req) > 1:
        new_inf[1:] = np.diff(req.time_ms) > inference_gap_ms
    inf_of_req = np.cumsum(new_inf)
    n_inf = int(inf_of_req[-1]) + 1 if len(req) else 0
    inf_of = inf_of_req[req_of]
    events_in = np.bincount(inf_of, minlength=n_inf)
    n_pre = preload.size
    begin_at = n_pre + np.cumsum(events_in) - events_in + 2 * np.arange(n_inf)

    out = np.zeros(n_pre + key.size + 2 * n_inf, dtype=RECORD_DTYPE)
    out["op"][:n_pre] = Op.WRITE
    out["key"][:n_pre] = preload
    out["length"][:n_pre] = chunk_size
    at = n_pre + np.arange(key.size) + 2 * inf_of + 1
    out["op"][at] = np.where(is_read, Op.READ, Op.WRITE)
    out["key"][at] = key
    out["length"][at] = chunk_size
    out["op"][begin_at] = Op.INFERENCE_BEGIN
    out["value"][begin_at] = np.arange(n_inf)
    out["op"][begin_at + events_in + 1] = Op.INFERENCE_END

    n_read_req = int(req.is_read.sum())
    stats = ImportStats(
        requests=len(req),
        read_requests=n_read_req,
        write_requests=len(req) - n_read_req,
        writes=int((~is_read).sum()),
        reads=int(is_read.sum()),
        preloaded=int(n_pre),
        skipped_reads=skipped,
        inferences=n_inf,
        records=int(out.size),
        distinct_keys=int(np.unique(np.concatenate([key, preload])).size),
        duration_ms=float(req.time_ms[-1] - req.time_ms[0]) if len(req) else 0.0,
    )
    return out, stats


def import_blocktrace(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    sector_size: int = 512,
    chunk_size: int = 4096,
    inference_gap_ms: float | None = None,
    device: int | None = None,
    unwritten: Unwritten = "preload",
) -> ImportStats:
    """Converts block trace SRC into flashswap trace OUT."""
    src = Path(src)
    req = select_device(parse_blocktrace(src), device, src)
    records, stats = blocktrace_records(
        req, src, sector_size, chunk_size, inference_gap_ms, unwritten
    )
    metadata: dict[str, object] = {
        "model": f"blocktrace:{src.name}",
        "sram_budget": None,
        "chunk_size": chunk_size,
        "generator": "flashswap trace import",
        "peak_sram": None,
        "tensors": [],
        "source": {
            "format": "blocktrace-5col",
            "file": src.name,
            "device": int(req.device[0]) if len(req) else device,
            "sector_size": sector_size,
            "inference_gap_ms": inference_gap_ms,
            "unwritten_reads": unwritten,
        },
        "import": stats.as_dict(),
    }
    with TraceWriter(out, metadata) as w:
        w.write_records(records)
    return stats
