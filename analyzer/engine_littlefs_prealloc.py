"""littlefs, preallocated files overwritten in place: no create or remove per inference.

Every tensor (analyzer/tensors.py) gets its file once, at format, at its full size (the
files hold the whole working set of every tensor at once, not only the live ones). From then
on a tensor's file is opened when the trace first touches it and stays open while any of its
chunks lives: chunks are written over the file in order, the file is synced (one metadata
commit) after the tensor's last chunk, reads seek in it, and it is closed when its last
chunk dies; nothing is created or removed, and trims write nothing. littlefs files are
copy-on-write: overwriting a chunk writes new blocks and frees the old ones, and a file
synced before it was overwritten to its end has its remaining tail copied, so "in place" is
the file's name and size, not its blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from littlefs import lfs

from analyzer.device import ReplayFlash
from analyzer.engine_littlefs import CREATE, RDWR, LittlefsEngine
from analyzer.tensors import TensorMap
from analyzer.workload import WRITE

if TYPE_CHECKING:
    from analyzer.lifetime import Options
    from analyzer.workload import Workload

FILL = 4096  # bytes per write call when preallocating


class LittlefsPreallocEngine(LittlefsEngine):
    name = "littlefs-prealloc"
    variant = "prealloc"
    layout = "preallocated file per tensor"
    replay_cost = 2

    def __init__(
        self, flash: ReplayFlash, tensors: TensorMap, block_cycles: int = 100,
        rewritten: set[int] | None = None, **kw: Any
    ) -> None:
        """`rewritten`: the tensors the trace's inferences write (default: all); the files of
        the others are written once and keep their blocks (static)."""
        super().__init__(flash, block_cycles, **kw)
        self.tensors = tensors
        every = set(range(tensors.count))
        self.static_blocks = sum(-(-tensors.sizes[t] // flash.erase_size)
                                 for t in every - (every if rewritten is None else rewritten))
        self.handles: dict[int, Any] = {}  # tensor -> open handle while a chunk lives
        self.pos: dict[int, int] = {}
        self.live: dict[int, set[int]] = {}  # tensor -> its live chunks
        self.peak_open = 0
        zeros = bytes(FILL)
        for t, size in enumerate(tensors.sizes):
            fh = self._call(lfs.file_open, self.fs, self._path(t), CREATE)
            for off in range(0, size, FILL):
                self._call(lfs.file_write, self.fs, fh, zeros[: min(FILL, size - off)])
            self._call(lfs.file_close, self.fs, fh)
            self._hold(-(-size // flash.erase_size))

    @classmethod
    def build(
        cls, flash: ReplayFlash, wl: Workload, opt: Options, config: dict[str, Any]
    ) -> LittlefsPreallocEngine:
        written = {k for inf in wl.inferences for op, k, *_ in inf.ops if op == WRITE}
        rewritten = {wl.tensors.tensor_of(k)[0] for k in written}
        return cls(flash, wl.tensors, block_cycles=opt.block_cycles, rewritten=rewritten)

    def _path(self, t: int) -> str:
        return f"{self.tensors.keys[t][0]:x}"

    def _open(self, t: int) -> Any:
        fh = self.handles.get(t)
        if fh is None:
            fh = self.handles[t] = self._call(lfs.file_open, self.fs, self._path(t), RDWR)
            self.pos[t] = 0
            self.peak_open = max(self.peak_open, len(self.handles))
        return fh

    def put(self, key: int, data: bytes | memoryview) -> None:
        if not isinstance(data, bytes | bytearray):
            data = bytes(data)  # littlefs-python takes bytes only
        t, off = self.tensors.tensor_of(key)
        fh = self._open(t)
        if self.pos[t] != off:
            self._call(lfs.file_seek, self.fs, fh, off, 0)
        self._call(lfs.file_write, self.fs, fh, data)
        self.pos[t] = off + len(data)
        self.live.setdefault(t, set()).add(key)
        if key == self.tensors.keys[t][-1]:
            self._call(lfs.file_sync, self.fs, fh)  # the tensor is complete: commit

    def get(self, key: int, length: int) -> bytes:
        t, off = self.tensors.tensor_of(key)
        fh = self._open(t)
        if self.pos[t] != off:
            self._call(lfs.file_seek, self.fs, fh, off, 0)
        out = self._call(lfs.file_read, self.fs, fh, length)
        self.pos[t] = off + len(out)
        return bytes(out)

    def trim(self, key: int) -> None:
        """Nothing is written; the file's handle is closed when its last chunk dies."""
        t, _ = self.tensors.tensor_of(key)
        live = self.live.get(t)
        if live is None or key not in live:
            return
        live.discard(key)
        if not live:
            del self.live[t]
            fh = self.handles.pop(t, None)
            if fh is not None:
                self._call(lfs.file_close, self.fs, fh)  # synced: no commit

    def invalidate(self, first: int, last: int) -> None:
        for t in sorted(self.live, key=lambda t: self.tensors.keys[t][0]):
            for k in sorted(k for k in self.live[t] if first <= k <= last):
                self.trim(k)

    def static_units(self) -> int:
        """The superblock pair and the files no inference rewrites: a rewritten file's blocks
        move on every overwrite (copy-on-write), so they circulate with the free ones."""
        return 2 + self.static_blocks

    def config(self) -> dict[str, Any]:
        return super().config() | {"tensors": self.tensors.count,
                                   "tensor_source": self.tensors.source,
                                   "open_files_peak": self.peak_open}
