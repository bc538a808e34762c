"""littlefs (through littlefs-python) as a replay engine: the shared machinery of every file
layout, and the file-per-chunk layout (each chunk a file named by its key).

Geometry follows the flash: block = an erase size of the part (the smallest by default; on NOR
also the 64 KiB block, `configs`), prog_size = read_size = the page (the littlefs-python
default of block_size would hide every partial-page cost), one page of cache, and a lookahead
bitmap covering the whole device. `block_cycles` defaults to 100 (the value the littlefs docs
suggest); -1 (the littlefs default) disables metadata eviction; 0 would abort the process
inside littlefs, so it is refused.

littlefs-python swallows exceptions raised in the block-device callbacks, so the callbacks
record them and return an error code, and every call into littlefs re-raises what was recorded.
A worn-out block is reported to littlefs as LFS_ERR_CORRUPT, which makes it relocate the data:
littlefs's own bad-block handling (it keeps no bad-block table and does not verify erases, so
a worn block returns to the free pool and fails again when next allocated).

The layouts (how a careful user maps chunks onto files) are subclasses, one module each:
file per chunk here (`LittlefsChunkEngine`), file per tensor (engine_littlefs_tensor.py),
preallocated files overwritten in place (engine_littlefs_prealloc.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from littlefs import LittleFSError, lfs
from littlefs.context import UserContext

from analyzer.device import ReplayFlash
from analyzer.engine_base import Engine, Spare
from flashswap.errors import DeviceError, FlashWearError, InputError, NoSpaceError
from flashswap.parts import Part
from flashswap.sizes import format_size

if TYPE_CHECKING:
    from analyzer.lifetime import Options
    from analyzer.workload import Workload

LFS_ERR_IO = -5
LFS_ERR_NOSPC = -28
LFS_ERR_CORRUPT = -84
METADATA_BLOCKS = 4  # superblock pair and root directory pair


CACHE_ENTRIES = 1 << 16  # page copies kept by the read cache before it starts over
NOR_BIG_BLOCK = 64 << 10  # the NOR block erase tried besides the sector (issue 15)
# open flags (littlefs-python's stubs do not list the members)
_F: Any = lfs.LFSFileFlag
RDONLY = _F.rdonly
RDWR = _F.rdonly | _F.wronly
CREATE = RDWR | _F.creat | _F.trunc


class _Context(UserContext):
    """Block device callbacks onto the ReplayFlash; records errors for the caller.

    littlefs re-reads the same metadata pages over and over (every lookup in a directory of
    hundreds of files scans its log). Each read is still booked on the flash, but the bytes
    come from a cache of earlier reads, keyed by (block, offset, size) and invalidated by a
    per-block version that every program and erase of the block bumps.
    """

    def __init__(self, flash: ReplayFlash, fast_reads: bool = True) -> None:
        self.flash = flash
        self.fast = fast_reads
        self.bs = flash.erase_size
        self.managed = flash.kind == "managed"
        self.error: BaseException | None = None
        self.version = [0] * flash.num_blocks
        self.cache: dict[tuple[int, int, int], tuple[int, bytes]] = {}

    def read(self, cfg: Any, block: int, off: int, size: int) -> bytes:  # type: ignore[override]
        if not self.fast:
            try:
                return self.flash.read(block * self.bs + off, size)
            except Exception as e:  # noqa: BLE001 - swallowed by littlefs-python otherwise
                self.error = self.error or e
                return bytes(size)
        key = (block, off, size)
        hit = self.cache.get(key)
        addr = block * self.bs + off
        if hit is not None and hit[0] == self.version[block]:
            self.flash.note_read(addr, size)
            return hit[1]
        try:
            data = self.flash.read_deferred(addr, size)
        except Exception as e:  # noqa: BLE001 - swallowed by littlefs-python otherwise
            self.error = self.error or e
            return bytes(size)
        if len(self.cache) >= CACHE_ENTRIES:
            self.cache.clear()
        self.cache[key] = (self.version[block], data)
        return data

    def prog(self, cfg: Any, block: int, off: int, data: bytes) -> int:
        self.version[block] += 1
        return self._device(lambda: self.flash.program(block * self.bs + off, data))

    def erase(self, cfg: Any, block: int) -> int:
        if self.managed:
            return 0  # SD/eMMC: sectors are overwritten, the card's FTL erases
        self.version[block] += 1
        return self._device(lambda: self.flash.erase(block * self.bs))

    def _device(self, op: Any) -> int:
        """Run a flash operation for littlefs: a worn block is its CORRUPT; anything else is
        kept (littlefs swallows callback exceptions) and re-raised by the engine afterwards."""
        try:
            op()
        except FlashWearError:
            return LFS_ERR_CORRUPT
        except Exception as e:  # noqa: BLE001
            self.error = self.error or e
            return LFS_ERR_IO
        return 0

    def sync(self, cfg: Any) -> int:
        return 0


class LittlefsEngine(Engine):
    """What every littlefs layout shares: format and mount, the callbacks, error mapping,
    the stint rule and the spare accounting. Subclasses map put/get/trim onto files."""

    store = "littlefs"
    model = "circulating"
    layout: ClassVar[str] = ""  # how chunks map onto files, in words

    def __init__(
        self,
        flash: ReplayFlash,
        block_cycles: int = 100,
        cache_size: int | None = None,
        fast_reads: bool = True,
    ) -> None:
        super().__init__(flash)
        if block_cycles == 0 or block_cycles < -1:
            raise InputError(
                f"littlefs block_cycles must be -1 (no metadata eviction) or positive, "
                f"not {block_cycles}"
            )
        bs = flash.erase_size
        page = flash.page_size
        self.block_cycles = block_cycles
        self.blocks = flash.num_blocks
        self.cache_size = page if cache_size is None else cache_size
        self.ctx = _Context(flash, fast_reads)
        self.cfg = lfs.LFSConfig(
            context=self.ctx,
            block_size=bs,
            block_count=self.blocks,
            read_size=page,
            prog_size=page,
            cache_size=self.cache_size,
            lookahead_size=max(8, -(-self.blocks // 64) * 8),
            block_cycles=block_cycles,
        )
        self.fs = lfs.LFSFilesystem()
        self._call(lfs.format, self.fs, self.cfg)
        self._call(lfs.mount, self.fs, self.cfg)
        self.live_blocks = 0  # blocks the files hold now
        self.peak_blocks = 0

    @classmethod
    def configs(cls, part: Part, capacity: int, opt: Options) -> list[dict[str, Any]]:
        """The smallest erase unit, and on NOR also the 64 KiB block (one erase command for
        16 sectors: less erase time, coarser allocation)."""
        sizes = [part.erase_size]
        if part.kind == "nor" and NOR_BIG_BLOCK in part.erase_sizes[1:] and \
                capacity % NOR_BIG_BLOCK == 0 and capacity // NOR_BIG_BLOCK >= 8:
            sizes.append(NOR_BIG_BLOCK)
        return [{"block_size": s} for s in sizes]

    @staticmethod
    def flash_part(part: Part, config: dict[str, Any]) -> Part:
        """The part as littlefs sees it with `config`'s block: a block larger than the
        smallest erase unit is erased whole, so the simulated part erases only that size
        (wear is then counted per block; the Weibull projection knows a block holds
        block / sector sectors, `ReplayFlash.sectors_per_unit`)."""
        bs = config.get("block_size", part.erase_size)
        if bs == part.erase_size:
            return part
        if bs not in part.erase_sizes:
            raise InputError(f"littlefs block {bs} is not an erase size of {part.name}")
        i = part.erase_sizes.index(bs)
        return replace(part, erase_sizes=(bs,), t_erase_typ_us=(part.t_erase_typ_us[i],),
                       t_erase_max_us=(part.t_erase_max_us[i],))

    def _call(self, fn: Any, *args: Any) -> Any:
        """Call into littlefs; re-raise what the callbacks recorded. Deferred reads are booked
        by the replay loop (or when they pile up), not after every call: per-call bookkeeping
        was most of the replay time."""
        try:
            out = fn(*args)
        except LittleFSError as e:
            self.flash.flush_reads()
            self._raise_recorded()
            if e.code == LFS_ERR_NOSPC:
                raise NoSpaceError(f"littlefs: no space left ({self.blocks} blocks)") from None
            raise DeviceError(f"littlefs: {e}") from None
        if self.ctx.error is not None:
            self.flash.flush_reads()
            self._raise_recorded()
        return out

    def _raise_recorded(self) -> None:
        err, self.ctx.error = self.ctx.error, None
        if err is not None:
            raise err

    def _hold(self, delta_blocks: int) -> None:
        self.live_blocks += delta_blocks
        self.peak_blocks = max(self.peak_blocks, self.live_blocks)

    def remount(self) -> None:
        """Unmount and mount again, as a device does at every boot. littlefs starts its block
        allocator at a pseudo-random block at mount (a checksum of the metadata it read), so
        this moves the allocator off its current path (validation of the stint model)."""
        self._call(lfs.unmount, self.fs)
        self._call(lfs.mount, self.fs, self.cfg)

    def stint_erases(self) -> int | None:
        """Erases a metadata block takes before littlefs relocates it: a pair is moved one
        block at a time every (block_cycles + 1) | 1 compactions (lfs.c,
        lfs_dir_needsrelocation), and each block takes every other compaction for two such
        periods. None when metadata never moves."""
        return (self.block_cycles + 1) | 1 if self.block_cycles > 0 else None

    @property
    def hot_spots_move(self) -> bool:
        """Metadata pairs move every block_cycles erases; with -1 they never do."""
        return self.block_cycles > 0

    def static_units(self) -> int:
        """Blocks of files alive between inferences (littlefs does no static leveling) and
        the superblock pair, which stays at blocks 0-1 once the root directory moves out."""
        return self.live_blocks + 2

    def spare(self) -> Spare:
        """The blocks, the blocks its files occupy at their peak, and its metadata pairs
        (superblock and root). On a program or erase error littlefs relocates the data to
        another block; it keeps no bad-block table and does not verify erases, so a worn block
        goes back to the free pool and fails again whenever it is allocated: the store lasts
        while the blocks that still work hold the files and the metadata."""
        return Spare(
            total=self.blocks,
            working_set=self.peak_blocks,
            reserved=METADATA_BLOCKS,
            remaps=True,
            on_wear="relocates on a program or erase error; no bad-block table, no erase "
            "verification (a worn block is retried whenever allocated)",
        )

    def config(self) -> dict[str, Any]:
        return {
            "layout": self.variant,
            "block_size": self.flash.erase_size,
            "block_count": self.blocks,
            "prog_size": self.flash.page_size,
            "cache_size": self.cache_size,
            "block_cycles": self.block_cycles,
        }

    def describe(self) -> str:
        return f"{self.layout}, {format_size(self.flash.erase_size)} blocks"

    @classmethod
    def label(cls, config: dict[str, Any]) -> str:
        bs = config.get("block_size")
        return f"{cls.layout}, {format_size(bs)} blocks" if bs else cls.layout


class LittlefsChunkEngine(LittlefsEngine):
    """File per chunk: each chunk is a file named by its key, in one directory; bulk
    invalidation removes the files one by one (littlefs has no range delete). The worst way
    to use littlefs (a create, a close and a remove commit per chunk, and on NAND a whole
    block per chunk file), kept as a reference."""

    name = "littlefs-chunk"
    variant = "chunk"
    layout = "file per chunk"
    replay_cost = 3

    def __init__(self, flash: ReplayFlash, block_cycles: int = 100, **kw: Any) -> None:
        super().__init__(flash, block_cycles, **kw)
        self.live: dict[int, int] = {}  # key -> blocks its file occupies

    @classmethod
    def build(
        cls, flash: ReplayFlash, wl: Workload, opt: Options, config: dict[str, Any]
    ) -> LittlefsChunkEngine:
        return cls(flash, block_cycles=opt.block_cycles)

    def put(self, key: int, data: bytes | memoryview) -> None:
        if not isinstance(data, bytes | bytearray):
            data = bytes(data)  # littlefs-python takes bytes only
        fh = self._call(lfs.file_open, self.fs, f"{key:x}", "w")
        self._call(lfs.file_write, self.fs, fh, data)
        self._call(lfs.file_close, self.fs, fh)
        blocks = -(-len(data) // self.flash.erase_size)
        self._hold(blocks - self.live.get(key, 0))
        self.live[key] = blocks

    def get(self, key: int, length: int) -> bytes:
        fh = self._call(lfs.file_open, self.fs, f"{key:x}", "r")
        out = self._call(lfs.file_read, self.fs, fh, length)
        self._call(lfs.file_close, self.fs, fh)
        return bytes(out)

    def trim(self, key: int) -> None:
        if key in self.live:
            self._call(lfs.remove, self.fs, f"{key:x}")
            self._hold(-self.live.pop(key))

    def invalidate(self, first: int, last: int) -> None:
        # littlefs has no bulk delete: one remove (one metadata commit) per file.
        for k in sorted(k for k in self.live if first <= k <= last):
            self.trim(k)
