"""Parsing a segment's log (firmware/SPEC.md §6, "Parsing a segment").

Used by mount (replay of the window) and by tools that dump an image. Pure functions over the
bytes of one segment: no store state.
"""

from __future__ import annotations

from dataclasses import dataclass

from flashswap.store.layout import (
    F_CONT,
    F_DAMAGED,
    F_MORE,
    HEADER_SIZE,
    REC_SIZE,
    T_CHECKPOINT,
    T_DATA,
    T_ERASED,
    T_RESERVE,
    T_SYNC,
    T_TRIM_RANGE,
    RecHeader,
    crc32,
    unpack_rec,
)

T_UNREADABLE = 0  # pseudo record type: bytes between two readable records that are not one
NOISE = 4  # an unreadable region with fewer non-0xFF bytes is stray bits in erased flash

_FLAGS = {T_DATA: F_MORE | F_CONT, T_TRIM_RANGE: 0, T_CHECKPOINT: F_DAMAGED, T_RESERVE: 0,
          T_SYNC: 0}


@dataclass(frozen=True)
class Rec:
    """One record found in a segment: where it is, what its header says, whether its data holds.
    An unreadable region is a Rec of type T_UNREADABLE whose `size` is its length."""

    addr: int  # absolute flash address of the record header
    rtype: int
    flags: int
    key: int
    size: int
    offset: int
    seq: int
    payload_len: int
    intact: bool  # dcrc matched
    payload: bytes  # kept for CHECKPOINT (the index) and TRIM_RANGE (its tag) records


def parse_segment(
    data: bytes, base: int, prog_size: int, page_once: bool, max_chunk: int, tag_len: int = 0
) -> tuple[list[Rec], int]:
    """The records of the segment whose bytes are `data` (at flash address `base`).

    Returns (records, good) where `good` is the offset just past the last intact record (40
    when there is none): a tear can only lie beyond it (SPEC.md §9).
    """
    seg_size = len(data)
    recs: list[Rec] = []
    p = good = HEADER_SIZE
    view = memoryview(data)
    while seg_size - p >= REC_SIZE:
        if data[p] == T_ERASED:
            if page_once and p % prog_size:
                p += prog_size - p % prog_size
                continue
            break
        found = header_at(view, p, max_chunk, tag_len=tag_len)
        if found is None:
            q = p + 1  # resynchronize: the next position where a readable header starts
            while seg_size - q >= REC_SIZE and (
                    data[q] == T_ERASED or header_at(view, q, max_chunk, tag_len=tag_len) is None):
                q += 1
            end = q if seg_size - q >= REC_SIZE else seg_size
            counted = min(end, seg_size - REC_SIZE + 1)
            if counted - p - data.count(T_ERASED, p, counted) >= NOISE:
                recs.append(Rec(base + p, T_UNREADABLE, 0, 0, end - p, 0, 0, 0, False, b""))
            p = end
            continue
        h, plen = found
        start = p + REC_SIZE
        payload = view[start : start + plen]
        intact = crc32(payload) == h.dcrc
        recs.append(
            Rec(base + p, h.rtype, h.flags, h.key, h.size, h.offset, h.seq, plen, intact,
                bytes(payload) if h.rtype != T_DATA else b"")
        )
        p = start + plen
        if intact:
            good = p
    return recs, good


def header_at(view: memoryview, p: int, max_chunk: int, seg_size: int | None = None,
              tag_len: int = 0) -> tuple[RecHeader, int] | None:
    """The record header at offset p of a segment of seg_size bytes (default: the view's
    length) and its payload length, or None when it cannot be read: hcrc, tag_len, an unknown
    type or flag (ENC included), inconsistent fields."""
    h = unpack_rec(view[p : p + REC_SIZE], tag_len)
    if h is None or h.rtype not in _FLAGS or h.flags & ~_FLAGS[h.rtype]:
        return None
    plen = _payload_len(h.rtype, h.flags, h.size, h.offset, p,
                        len(view) if seg_size is None else seg_size, tag_len)
    if plen is None or (h.rtype == T_DATA and not 0 < h.size <= max_chunk):
        return None
    return h, plen


def _payload_len(
    rtype: int, flags: int, size: int, offset: int, p: int, seg_size: int, tag_len: int = 0
) -> int | None:
    """Payload bytes of a record at offset p, or None when the header is inconsistent. In an
    encrypted store a TRIM_RANGE's payload is its tag, a CHECKPOINT's ends in one (§4a)."""
    room = seg_size - p - REC_SIZE
    if rtype == T_RESERVE:  # an encrypted store's header-only record
        return 0 if tag_len and not (size or offset) else None
    if rtype == T_SYNC:  # header only, in every store
        return None if offset else 0
    if rtype == T_TRIM_RANGE:
        return tag_len if offset == 0 and tag_len <= room else None
    if rtype == T_CHECKPOINT:
        if size < tag_len or (size - tag_len) % 12 or size > room:
            return None
        return size
    # DATA
    if offset >= size or (offset > 0) != bool(flags & F_CONT):
        return None
    if flags & F_MORE:
        if room <= 0 or offset + room >= size:
            return None
        return room
    n = size - offset
    return n if n <= room else None
