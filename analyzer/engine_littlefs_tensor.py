"""littlefs, file per tensor: how a careful user swaps activations through a file system.

Each tensor (analyzer/tensors.py: the trace's tensor table, or boundaries inferred from the
record order) is one file, named by its first key, opened when its first chunk is written and
kept open until it is removed: chunks are written in order through that handle (reopening
to append would make littlefs copy the file's partial last block), the file is synced (one
metadata commit) once the tensor's last chunk is written, chunks are read back by seeking in
it, and it is closed and removed (one more commit) when its last live chunk dies. A chunk
written after all the file's earlier chunks died starts a new file. Replacing a live chunk
rewrites it in place (littlefs copies the rest of the file: copy-on-write of the tail).
Every open file costs the device one cache buffer (a page) of RAM: `open_files_peak` in the
engine's config says how many were open at once.

A tensor of one chunk costs the flash what the file-per-chunk layout costs (one create and
one remove commit), apart from the lookups of reopening the file to read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from littlefs import lfs

from analyzer.device import ReplayFlash
from analyzer.engine_littlefs import CREATE, LittlefsEngine
from analyzer.tensors import TensorMap

if TYPE_CHECKING:
    from analyzer.lifetime import Options
    from analyzer.workload import Workload


class _File:
    """A tensor's open file: where it starts in the tensor, its size, its live chunks, the
    handle and its position."""

    def __init__(self, base: int, fh: Any) -> None:
        self.base = base
        self.size = 0
        self.blocks = 0
        self.live: set[int] = set()
        self.fh = fh
        self.pos = 0


class LittlefsTensorEngine(LittlefsEngine):
    name = "littlefs-tensor"
    variant = "tensor"
    layout = "file per tensor"
    replay_cost = 2

    def __init__(
        self, flash: ReplayFlash, tensors: TensorMap, block_cycles: int = 100, **kw: Any
    ) -> None:
        super().__init__(flash, block_cycles, **kw)
        self.tensors = tensors
        self.files: dict[int, _File] = {}  # tensor -> its open file while any chunk lives
        self.peak_open = 0

    @classmethod
    def build(
        cls, flash: ReplayFlash, wl: Workload, opt: Options, config: dict[str, Any]
    ) -> LittlefsTensorEngine:
        return cls(flash, wl.tensors, block_cycles=opt.block_cycles)

    def _path(self, t: int) -> str:
        return f"{self.tensors.keys[t][0]:x}"

    def put(self, key: int, data: bytes | memoryview) -> None:
        if not isinstance(data, bytes | bytearray):
            data = bytes(data)  # littlefs-python takes bytes only
        t, off = self.tensors.tensor_of(key)
        f = self.files.get(t)
        if f is None:
            f = self.files[t] = _File(off, self._call(lfs.file_open, self.fs, self._path(t),
                                                      CREATE))
            self.peak_open = max(self.peak_open, len(self.files))
        pos = off - f.base
        if pos < 0:  # a chunk before the file's start: the planner never writes one
            raise ValueError(f"littlefs-tensor: key {key} lies before its file's start")
        if pos != f.pos:
            self._call(lfs.file_seek, self.fs, f.fh, pos, 0)
        self._call(lfs.file_write, self.fs, f.fh, data)
        f.pos = pos + len(data)
        f.size = max(f.size, f.pos)
        f.live.add(key)
        blocks = -(-f.size // self.flash.erase_size)
        self._hold(blocks - f.blocks)
        f.blocks = blocks
        if key == self.tensors.keys[t][-1]:
            self._call(lfs.file_sync, self.fs, f.fh)  # the tensor is complete: commit

    def get(self, key: int, length: int) -> bytes:
        t, off = self.tensors.tensor_of(key)
        f = self.files[t]
        pos = off - f.base
        if pos != f.pos:
            self._call(lfs.file_seek, self.fs, f.fh, pos, 0)
        out = self._call(lfs.file_read, self.fs, f.fh, length)
        f.pos = pos + len(out)
        return bytes(out)

    def trim(self, key: int) -> None:
        t, _ = self.tensors.tensor_of(key)
        f = self.files.get(t)
        if f is None or key not in f.live:
            return
        f.live.discard(key)
        if not f.live:
            self._call(lfs.file_close, self.fs, f.fh)  # synced: no commit unless unfinished
            self._call(lfs.remove, self.fs, self._path(t))
            self._hold(-f.blocks)
            del self.files[t]

    def invalidate(self, first: int, last: int) -> None:
        # one remove (one commit) per file whose last live chunk is in the range
        for t in sorted(self.files, key=lambda t: self.tensors.keys[t][0]):
            for k in sorted(k for k in self.files[t].live if first <= k <= last):
                self.trim(k)

    def config(self) -> dict[str, Any]:
        return super().config() | {"tensors": self.tensors.count,
                                   "tensor_source": self.tensors.source,
                                   "open_files_peak": self.peak_open}
