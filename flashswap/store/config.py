"""Format options and geometry, shared by every store engine (SPEC §5, §10, §13).

Both engines (the Python model in core.py, the C library through c_engine.py) check a store's
options the same way and derive the same sizes from them; mount reads the segment states. This
module holds that one copy, below all of them, so none of them imports another for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flashswap.errors import InputError
from flashswap.store.aead import TAG_LEN, Aead
from flashswap.store.layout import ENTRY_SIZE, HEADER_SIZE, REC_SIZE

# Segment states (§5).
FREE_ERASED, FREE, IN_LOG, BAD = 0, 1, 2, 3

DEFAULT_RESERVE = 2
DEFAULT_WL_THRESHOLD = 12
MAX_KEYS_CAP = 1024
MIN_SEGMENTS = 6


def index_limit(segment_size: int, tag: int = 0) -> int:
    """The most chunks the index can hold with segments of `segment_size` bytes: a checkpoint
    record (with its tag in an encrypted store) carries the whole index and may fill at most
    half a segment."""
    return (segment_size // 2 - HEADER_SIZE - REC_SIZE - tag) // ENTRY_SIZE


def min_reserve(segment_size: int, max_keys: int, tag: int = 0, prog_size: int = 0) -> int:
    """Segments kept free so that deleting every chunk always fits (§10, "Room to delete"):
    one trim record each, every segment opened for them a checkpoint segment (which max_keys
    leaves at least half empty), plus one. The default reserve. In an encrypted store records
    carry a tag, and two reservations per segment are counted, each with the rest of its
    program unit (a sync)."""
    waste = 2 * (REC_SIZE + prog_size) if tag else 0
    per_seg = (segment_size - HEADER_SIZE - REC_SIZE - tag - 1 - ENTRY_SIZE * max_keys
               - waste) // (REC_SIZE + tag)
    return 1 + -(-max_keys // per_seg)


def log2(n: int, what: str) -> int:
    if n <= 0 or n & (n - 1):
        raise InputError(f"{what} must be a power of two, not {n}")
    return n.bit_length() - 1


class Geometry:
    """Sizes derived once from the flash and the format options."""

    def __init__(self, flash: Any, seg_size: int, prog_size: int, page_once: bool) -> None:
        self.seg_size = seg_size
        self.seg_shift = log2(seg_size, "segment size")
        self.prog_size = prog_size
        self.prog_shift = log2(prog_size, "program unit")
        self.page_once = page_once
        self.nseg = flash.size // seg_size
        self.data_cap = seg_size - HEADER_SIZE
        if seg_size < 512 or seg_size > 1 << 24 or seg_size < 8 * prog_size:
            raise InputError(
                f"segment size {seg_size} unsupported: needs 512 B..16 MiB and >= 8 program units"
            )
        if self.nseg < MIN_SEGMENTS:
            raise InputError(
                f"flash of {flash.size} bytes holds {self.nseg} segments of {seg_size}; "
                f"the store needs at least {MIN_SEGMENTS}"
            )
        if seg_size % flash.erase_size or seg_size not in flash.erase_sizes:
            raise InputError(
                f"segment size {seg_size} is not an erase size of this flash "
                f"({', '.join(map(str, flash.erase_sizes))})"
            )


@dataclass(frozen=True)
class Options:
    """A store's checked format options (the arguments of `Store`'s constructor, in order)."""

    geo: Geometry
    max_keys: int
    ckpt_interval: int
    reserve: int
    wl_threshold: int
    aead: Aead | None


def options(flash: Any, segment_size: int | None, max_keys: int | None,
            ckpt_interval: int | None, reserve: int | None, wl_threshold: int | None,
            key: bytes | None = None) -> Options:
    """The options a store on `flash` gets: defaults filled in (§13), each checked (a bad one is
    an InputError naming it)."""
    kind = getattr(flash, "kind", "nor")
    if kind == "managed":
        raise InputError("the store runs on raw flash (nor, nand, internal), not on a managed "
                         "device (SD/eMMC): its FTL already remaps writes")
    if segment_size is None:
        # NOR: the largest erase up to 64 KiB (the larger erase is ~5x cheaper per byte);
        # NAND and internal flash: the block.
        fits = [s for s in flash.erase_sizes if s <= 64 * 1024] or [flash.erase_size]
        segment_size = max(fits) if kind == "nor" else flash.erase_size
        while flash.size // segment_size < MIN_SEGMENTS and segment_size > flash.erase_size:
            segment_size //= 2
    page_once = getattr(flash, "nop", 0) != 0
    geo = Geometry(flash, segment_size, flash.page_size, page_once)
    aead = None if key is None else Aead(key)
    tag = TAG_LEN if aead is not None else 0
    limit = index_limit(segment_size, tag)
    if max_keys is None:
        max_keys = min(MAX_KEYS_CAP, limit)
    if not 1 <= max_keys <= min(65535, limit):
        raise InputError(f"max_keys must be 1..{min(65535, limit)} for {segment_size}-byte "
                         f"segments, not {max_keys}")
    if ckpt_interval is None:
        ckpt_interval = max(1, min(16, geo.nseg // 16))
    if not 1 <= ckpt_interval <= 255:
        raise InputError(f"ckpt_interval must be 1..255, not {ckpt_interval}")
    if reserve is None:  # what deleting every chunk needs, if the device has room for it
        reserve = max(DEFAULT_RESERVE, min(min_reserve(segment_size, max_keys, tag,
                                                       flash.page_size),
                                           geo.nseg - ckpt_interval - 3))
    if not 2 <= reserve <= 255 or reserve + ckpt_interval + 3 > geo.nseg:
        raise InputError(f"reserve must be 2..255 and leave room in {geo.nseg} segments, "
                         f"not {reserve}")
    wl_threshold = DEFAULT_WL_THRESHOLD if wl_threshold is None else wl_threshold
    if not 1 <= wl_threshold <= 65535:
        raise InputError(f"wl_threshold must be 1..65535, not {wl_threshold}")
    return Options(geo, max_keys, ckpt_interval, reserve, wl_threshold, aead)
