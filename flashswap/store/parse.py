"""Parsing a segment's log (firmware/SPEC.md §6, "Parsing a segment").

Used by mount (replay of the window) and by tools that dump an image. Pure functions over the
bytes of one segment: no store state.
"""

from __future__ import annotations

from dataclasses import dataclass

from flashswap.store.layout import (
    F_CONT,
    F_ENC,
    F_MORE,
    FLAGS_KNOWN,
    HEADER_SIZE,
    KNOWN_TYPES,
    REC_SIZE,
    T_CHECKPOINT,
    T_DATA,
    T_ERASED,
    T_TRIM,
    T_TRIM_RANGE,
    crc32,
    unpack_rec,
)


@dataclass(frozen=True)
class Rec:
    """One record found in a segment: where it is, what its header says, whether its data holds."""

    addr: int  # absolute flash address of the record header
    rtype: int
    flags: int
    key: int
    size: int
    offset: int
    seq: int
    payload_len: int
    intact: bool  # dcrc matched
    payload: bytes  # only kept for CHECKPOINT records (the index); b"" otherwise


def parse_segment(
    data: bytes, base: int, prog_size: int, page_once: bool, max_chunk: int
) -> tuple[list[Rec], int]:
    """The records of the segment whose bytes are `data` (at flash address `base`).

    Returns (records, end) where `end` is the offset at which the segment's log ends.
    """
    seg_size = len(data)
    recs: list[Rec] = []
    p = HEADER_SIZE
    view = memoryview(data)
    while seg_size - p >= REC_SIZE:
        if data[p] == T_ERASED:
            if page_once and p % prog_size:
                p += prog_size - p % prog_size
                continue
            break
        h = unpack_rec(view[p : p + REC_SIZE])
        if h is None or h.rtype not in KNOWN_TYPES or h.flags & ~FLAGS_KNOWN or h.flags & F_ENC:
            break
        plen = _payload_len(h.rtype, h.flags, h.size, h.offset, p, seg_size)
        if plen is None or (h.rtype == T_DATA and not 0 < h.size <= max_chunk):
            break
        start = p + REC_SIZE
        payload = view[start : start + plen]
        intact = crc32(payload) == h.dcrc
        recs.append(
            Rec(base + p, h.rtype, h.flags, h.key, h.size, h.offset, h.seq, plen, intact,
                bytes(payload) if h.rtype == T_CHECKPOINT else b"")
        )
        p = start + plen
    return recs, p


def _payload_len(
    rtype: int, flags: int, size: int, offset: int, p: int, seg_size: int
) -> int | None:
    """Payload bytes of a record at offset p, or None when the header is inconsistent."""
    room = seg_size - p - REC_SIZE
    if rtype in (T_TRIM, T_TRIM_RANGE):
        return 0 if flags == 0 and offset == 0 else None
    if rtype == T_CHECKPOINT:
        if flags or size % 12 or size > room:
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
