"""Format options and geometry, shared by every store engine (SPEC §5, §10, §13).

Both engines (the Python model in core.py, the C library through c_engine.py) check a store's
options the same way (`options`), find the store on a flash the same way (`probe`,
`probe_geometry`, `cipher_for`) and derive the same sizes; mount reads the segment states. This
module holds that one copy, below all of them, so none of them imports another for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flashswap.errors import CorruptError, InputError, StoreKeyError
from flashswap.store.aead import SUITE_AES128GCM, SUITE_NONE, TAG_LEN, Aead
from flashswap.store.layout import ENTRY_SIZE, HEADER_SIZE, HF_PAGE_ONCE, REC_SIZE, SegHeader

if TYPE_CHECKING:
    from flashswap.flash import FlashDevice

# Segment states (§5).
FREE_ERASED, FREE, IN_LOG, BAD = 0, 1, 2, 3

DEFAULT_RESERVE = 2
# Format's least reserve (§10, since revision 2.7): a segment for trims, one for the checkpoint
# that ends a recovery, one for a segment a power cut tears near full. With 2, churns near full
# refused a trim after a cut (11 and 12 of 240 on 6 and 7 segments of 4 KiB; 3 of 960 with 3).
MIN_RESERVE = 3
MIN_SPARE_RESERVE = 4
DEFAULT_WL_THRESHOLD = 12
MAX_KEYS_CAP = 1024
MIN_SEGMENTS = 6  # what a mount accepts (stores formatted before revision 2.7)
FORMAT_MIN_SEGMENTS = MIN_RESERVE + 1 + 3  # reserve, ckpt_interval 1, three more (§10)


def index_limit(segment_size: int, tag: int = 0) -> int:
    """The most chunks the index can hold with segments of `segment_size` bytes: a checkpoint
    record (with its tag in an encrypted store) carries the whole index and may fill at most
    half a segment."""
    return (segment_size // 2 - HEADER_SIZE - REC_SIZE - tag) // ENTRY_SIZE


def min_reserve(segment_size: int, max_keys: int, tag: int = 0, prog_size: int = 0) -> int:
    """Segments kept free so that deleting every chunk always fits (§10, "Room to delete"):
    one trim record each, every segment opened for them a checkpoint segment (which max_keys
    leaves at least half empty), plus one; and one more for the checkpoint that ends a program
    failure's recovery (§12), which near full otherwise found none. The default reserve. In an
    encrypted store records carry a tag, and two reservations per segment are counted, each
    with the rest of its program unit (a sync)."""
    waste = 2 * (REC_SIZE + prog_size) if tag else 0
    per_seg = (segment_size - HEADER_SIZE - REC_SIZE - tag - 1 - ENTRY_SIZE * max_keys
               - waste) // (REC_SIZE + tag)
    return 2 + -(-max_keys // per_seg)


def log2(n: int, what: str) -> int:
    if n <= 0 or n & (n - 1):
        raise InputError(f"{what} must be a power of two, not {n}")
    return n.bit_length() - 1


class Geometry:
    """Sizes derived once from the flash and the format options."""

    def __init__(self, flash: FlashDevice, seg_size: int, prog_size: int, page_once: bool) -> None:
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
        if flash.size >= 1 << 32:
            # Record addresses and index entries are 32-bit (SPEC §2, §4): a larger part
            # takes the store on a partition.
            raise InputError(
                f"flash of {flash.size} bytes: the store addresses less than 4 GiB (32-bit "
                f"addresses); give it a partition below 4 GiB"
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


def check_raw(flash: FlashDevice) -> str:
    """The flash's kind; InputError for a managed device, which no engine runs on."""
    kind = getattr(flash, "kind", "nor")
    if kind == "managed":
        raise InputError("the store runs on raw flash (nor, nand, internal), not on a managed "
                         "device (SD/eMMC): its FTL already remaps writes")
    return kind


def options(flash: FlashDevice, segment_size: int | None, max_keys: int | None,
            ckpt_interval: int | None, reserve: int | None, wl_threshold: int | None,
            key: bytes | None = None) -> Options:
    """The options a store on `flash` gets: defaults filled in (§13), each checked (a bad one is
    an InputError naming it). Every engine's format takes its options from here."""
    kind = check_raw(flash)
    if segment_size is None:
        # NOR: the largest erase up to 64 KiB (the larger erase is ~5x cheaper per byte) that
        # still gives FORMAT_MIN_SEGMENTS, else the smallest; a segment is always one erase the part
        # has (halving 64 KiB would reach 16 KiB, which a 4/32/64 KiB part cannot erase).
        # NAND and internal flash: the block.
        fits = [s for s in flash.erase_sizes
                if s <= 64 * 1024 and flash.size // s >= FORMAT_MIN_SEGMENTS] or [flash.erase_size]
        segment_size = max(fits) if kind == "nor" else flash.erase_size
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
        # and at least 4 where that leaves a segment to spare (§10: a recovery that a power
        # cut interrupts, and a grown bad block a mount takes for free)
        reserve = max(reserve, min(MIN_SPARE_RESERVE, geo.nseg - ckpt_interval - 4))
    if geo.nseg < MIN_RESERVE + ckpt_interval + 3:
        raise InputError(
            f"flash of {flash.size} bytes holds {geo.nseg} segments of {segment_size}; with "
            f"ckpt_interval {ckpt_interval} the store needs at least "
            f"{MIN_RESERVE + ckpt_interval + 3} (a reserve of {MIN_RESERVE})")
    if not MIN_RESERVE <= reserve <= 255 or reserve + ckpt_interval + 3 > geo.nseg:
        raise InputError(f"reserve must be {MIN_RESERVE}..255 and leave room in {geo.nseg} "
                         f"segments, not {reserve}")
    wl_threshold = DEFAULT_WL_THRESHOLD if wl_threshold is None else wl_threshold
    if not 1 <= wl_threshold <= 65535:
        raise InputError(f"wl_threshold must be 1..65535, not {wl_threshold}")
    return Options(geo, max_keys, ckpt_interval, reserve, wl_threshold, aead)


# ------------------------------------------------------------------ finding a store (§9 step 1)


def probe(flash: FlashDevice) -> tuple[SegHeader, dict[int, bytes]]:
    """The header that names the store (§9 step 1): among the valid headers at erase-unit
    boundaries whose address is a multiple of their segment size, the one with the largest
    epoch (the first found on ties). Returns it and the headers read, by address."""
    best: SegHeader | None = None
    raws: dict[int, bytes] = {}
    e = flash.erase_size
    for addr in range(0, flash.size, e):
        raw = raws[addr] = flash.read(addr, HEADER_SIZE)
        h = SegHeader.unpack(raw)
        if h is not None and addr % (1 << h.seg_shift) == 0 and (
                best is None or h.epoch > best.epoch):
            best = h
    if best is None:
        raise CorruptError("no flashswap store on this flash (no valid segment header)")
    return best, raws


def probe_geometry(flash: FlashDevice, first: SegHeader) -> Geometry:
    """The geometry the store's header `first` names, on this flash; CorruptError if it does not
    fit it (any mismatch means the image is not a store of this flash)."""
    try:
        geo = Geometry(flash, 1 << first.seg_shift, 1 << first.prog_shift,
                       bool(first.flags & HF_PAGE_ONCE))
    except Exception as e:  # noqa: BLE001 - any mismatch means the image is not ours
        raise CorruptError(f"store header does not fit this flash: {e}") from None
    if first.segment_count != geo.nseg:
        raise CorruptError(f"store has {first.segment_count} segments, flash holds {geo.nseg}")
    return geo


def cipher_for(first: SegHeader, key: bytes | None) -> Aead | None:
    """The cipher for the store `first` names, or StoreKeyError: no key for an encrypted
    store, a key for a plaintext one (a plaintext store put in place of an encrypted one must
    not be trusted), an unknown suite, or a key whose check value differs (§4a)."""
    if first.suite == SUITE_NONE:
        if key is not None:
            raise StoreKeyError("store is not encrypted: refusing to mount it with a key")
        return None
    if first.suite != SUITE_AES128GCM:
        raise StoreKeyError(f"store uses unknown cipher suite 0x{first.suite:02x}")
    if key is None:
        raise StoreKeyError("store is encrypted (AES-128-GCM): mount it with its key")
    aead = Aead(key)
    if aead.check_value() != first.kcv:
        raise StoreKeyError("wrong key: the store's key check value does not match")
    return aead
