"""Byte layout of the store on flash (firmware/SPEC.md §3, §4, §7): pack and unpack only.

Kept apart from the algorithms so that the format can be read (by tests, by a dump tool) without
a store, and so a format change touches one small file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAGIC = b"FSWP"
VERSION = 2
HEADER_SIZE = 40
REC_SIZE = 32
MIN_ROOM = REC_SIZE + 1  # a record starts only where a header and one byte fit (§4)
ENTRY_SIZE = 12
NO_KEY = 0xFFFFFFFF
LOST_ADDR = 0xFFFFFFFF  # checkpoint entry of a chunk that was lost (§12)

T_DATA = 0x01
T_TRIM_RANGE = 0x03  # a single-key trim is [key, key]; 0x02 (version 1's TRIM) is unused
T_CHECKPOINT = 0x04
T_RESERVE = 0x05  # encrypted stores only: seqs below its seq field may be used (§4a)
T_SYNC = 0x06  # header only: what precedes it was synced (§6 "Marking a sync")
T_ERASED = 0xFF
KNOWN_TYPES = (T_DATA, T_TRIM_RANGE, T_CHECKPOINT, T_RESERVE, T_SYNC)

F_MORE = 0x01
F_CONT = 0x02
F_ENC = 0x04  # record of an encrypted store (§4a); any other store finds it unreadable
F_DAMAGED = 0x08  # CHECKPOINT only: keys absent from it read as corrupt, not absent (§9)

HF_PAGE_ONCE = 0x01
HF_COLD = 0x02  # segment of the cold log (relocated chunks)
HF_TEAR = 0x04  # the previous segment of this log ends in a torn write (§9)

EPOCH_BITS = 48  # a record seq is epoch << 48 | count: unique across formats (§4, §13)

_HDR = struct.Struct("<4sBBBBIIIIHBBHH4s")  # 36 bytes + crc
_REC = struct.Struct("<BBHIIIQ")  # 24 bytes + dcrc + hcrc
_CRC = struct.Struct("<I")
_U32x2 = struct.Struct("<II")


def crc32(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    """CRC-32 as zlib computes it (SPEC.md preamble)."""
    return zlib.crc32(data, start) & 0xFFFFFFFF


@dataclass(frozen=True)
class SegHeader:
    seg_shift: int
    prog_shift: int
    flags: int
    erase_count: int
    seq: int
    replay_seq: int
    segment_count: int
    max_keys: int
    ckpt_interval: int
    reserve: int
    wl_threshold: int
    epoch: int  # the store's identity: one more than the newest store format found (§13)
    suite: int = 0xFF  # 0xFF unencrypted, 0x01 AES-128-GCM (§4a)
    kcv: bytes = b"\xff\xff\xff"  # key check value of an encrypted store (§4a)

    def pack(self) -> bytes:
        body = _HDR.pack(
            MAGIC, VERSION, self.seg_shift, self.prog_shift, self.flags, self.erase_count,
            self.seq, self.replay_seq, self.segment_count, self.max_keys, self.ckpt_interval,
            self.reserve, self.wl_threshold, self.epoch, bytes([self.suite]) + self.kcv,
        )
        return body + _CRC.pack(crc32(body))

    @classmethod
    def unpack(cls, raw: bytes) -> SegHeader | None:
        """The header in `raw` (40 bytes), or None when it is not a valid version-2 header."""
        if len(raw) < HEADER_SIZE or raw[:4] != MAGIC:
            return None
        if _CRC.unpack_from(raw, 36)[0] != crc32(raw[:36]):
            return None
        (_, ver, seg_shift, prog_shift, flags, ec, seq, rseq, nseg, max_keys, ckpt, reserve,
         wl, epoch, crypt) = _HDR.unpack_from(raw)
        if ver != VERSION:
            return None
        return cls(seg_shift, prog_shift, flags, ec, seq, rseq, nseg, max_keys, ckpt, reserve,
                   wl, epoch, crypt[0], bytes(crypt[1:]))

    def same_store(self, other: SegHeader) -> bool:
        """True when both headers belong to one store: same epoch, geometry, configuration."""
        return (
            self.seg_shift, self.prog_shift, self.flags & HF_PAGE_ONCE, self.segment_count,
            self.max_keys, self.ckpt_interval, self.reserve, self.wl_threshold, self.epoch,
        ) == (
            other.seg_shift, other.prog_shift, other.flags & HF_PAGE_ONCE, other.segment_count,
            other.max_keys, other.ckpt_interval, other.reserve, other.wl_threshold, other.epoch,
        ) and (self.suite, self.kcv) == (other.suite, other.kcv)


def pack_record(rtype: int, flags: int, key: int, size: int, offset: int, seq: int,
                payload: bytes | memoryview = b"", tag_len: int = 0) -> bytes:
    """A record header followed by its payload (SPEC.md §4); an encrypted store's records
    carry flag ENC and tag_len 16, their payload sealed (§4a)."""
    if tag_len:
        flags |= F_ENC
    head = _REC.pack(rtype, flags, tag_len, key, size, offset, seq)
    head += _CRC.pack(crc32(payload))
    return head + _CRC.pack(crc32(head)) + bytes(payload)


@dataclass(frozen=True)
class RecHeader:
    rtype: int
    flags: int
    key: int
    size: int
    offset: int
    seq: int
    dcrc: int


def unpack_rec(raw: bytes | memoryview, tag_len: int = 0) -> RecHeader | None:
    """The record header in the first 32 bytes of `raw`, or None if its hcrc fails or it is
    not a record of this store's kind: tag_len and ENC as the store has them (§4a)."""
    if _CRC.unpack_from(raw, 28)[0] != crc32(raw[:28]):
        return None
    rtype, flags, tl, key, size, offset, seq = _REC.unpack_from(raw)
    if tl != tag_len or bool(flags & F_ENC) != bool(tag_len):
        return None
    flags &= ~F_ENC
    return RecHeader(rtype, flags, key, size, offset, seq, _CRC.unpack_from(raw, 24)[0])


def pack_entries(entries: list[tuple[int, int, int]]) -> bytes:
    """Checkpoint payload: (key, addr, size) triples, already sorted by key."""
    return b"".join(struct.pack("<III", k, a, s) for k, a, s in entries)


def unpack_entries(payload: bytes, n: int) -> list[tuple[int, int, int]]:
    return [struct.unpack_from("<III", payload, i * ENTRY_SIZE) for i in range(n)]
