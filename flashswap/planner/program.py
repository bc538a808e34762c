"""A plan as a program: every SRAM, flash and compute operation of one inference, in order.

The scheduler (schedule.py) emits the program; `layout` places its buffers in an arena of the
budget's size; the executor (flashswap/exec/executor.py) follows it instruction by instruction;
the trace is derived from it (`records`), one record per flash or compute instruction. So the
trace the executor produces is the planned trace by construction, and tests check it.

Buffers. Every byte of SRAM the inference uses belongs to a buffer with a role:
- "tensor": a whole activation tensor, resident from its production (or read-back) to its
  eviction or death;
- "window": the sliding window of chunks of a tensor a step streams through flash (inputs read
  chunk by chunk, outputs written chunk by chunk): it holds a contiguous byte range of the
  tensor, chunks are appended at its end (`Read`, or produced by `Compute`) and dropped from
  its front (`Slide`: the rest moves down, a memmove inside the buffer);
- "staging": the parameters of a step streamed from the weights region (`WeightRead`);
- "scratch": what a kernel needs besides its inputs and outputs;
- "accum": accumulators a step holds across its tiles (a reduction's int32 sums).
`Alloc` places a buffer (its offset is set by `layout`), `Free` releases it, `Move` slides it
to a lower offset when the arena is compacted (a memmove, no flash traffic).

Compute. `Compute` runs one step (a graph op with its fused epilogue) for output units
[u0, u1) (rows, or features when a step is tiled by features; for a reduction, input rows) and
output channels [c0, c1). Each `Bind` says where a tensor the step reads or writes is: in buffer
`buf`, whose byte 0 holds byte `base` of the tensor (rows are contiguous, channels-last).

Other planners. The executor knows nothing of the scheduler's policy: it carries out any
program whose buffers fit and whose binds cover what each compute reads and writes (the arena
refuses overlaps and overruns; a bind that does not cover a band is an error). The fused
planner (planner/fused/) adds two instructions: `Patch` runs one op over a 2-D region (output
rows x columns x channels) with its tensors bound as sub-rectangles (`Bind2D`: a row and
column origin and a row pitch), and `Copy2D` moves rows of bytes between or within buffers
(a window keeping a halo, a line buffer); the executor runs a patch with the same row
kernels on a column window of the op (exec/patches.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from operator import attrgetter

import numpy as np

from flashswap.planner.arena import ALIGN
from flashswap.trace import RECORD_DTYPE, Op

ROLES = ("tensor", "window", "staging", "scratch", "accum")

# Instructions are plain slotted dataclasses, not frozen ones: a frozen dataclass's __init__
# sets each field through object.__setattr__, about 5x the cost, and a large model's program
# has a million instructions (VGG-19 at 128 KiB: 590,000). A program is not changed once
# `layout` has placed it (`replace` makes new instructions).


@dataclass(frozen=True)
class BufferSpec:
    id: int
    size: int  # bytes, a multiple of ALIGN
    label: str
    role: str
    tensor: int = -1  # storage tensor of a "tensor" or "window" buffer


@dataclass(slots=True)
class Begin:
    index: int = 0


@dataclass(slots=True)
class End:
    pass


@dataclass(slots=True)
class Alloc:
    buf: int
    offset: int = -1  # set by layout()


@dataclass(slots=True)
class Free:
    buf: int


@dataclass(slots=True)
class Move:
    buf: int
    src: int
    dst: int


@dataclass(slots=True)
class Slide:
    """Drop the first `drop` bytes of a window buffer's content; the rest moves to its start."""

    buf: int
    drop: int
    keep: int  # bytes that move down


@dataclass(slots=True)
class Write:
    """Store `length` bytes at byte `at` of buffer `buf` under `key` (tensor bytes `start`..)."""

    key: int
    length: int
    buf: int
    at: int
    tensor: int
    start: int
    flags: int = 0


@dataclass(slots=True)
class Read:
    """Read chunk `key` (`length` bytes, tensor bytes `start`..) into buffer `buf` at `at`."""

    key: int
    length: int
    buf: int
    at: int
    tensor: int
    start: int


@dataclass(slots=True)
class Trim:
    key: int


@dataclass(slots=True)
class Invalidate:
    first: int
    last: int


@dataclass(slots=True)
class Sync:
    pass


@dataclass(slots=True)
class WeightRead:
    """Bytes [start, start + length) of parameter block `block` into buffer `buf` at `at`."""

    block: int
    start: int
    length: int
    buf: int
    at: int


@dataclass(slots=True)
class Bind:
    tensor: int
    buf: int
    base: int  # tensor byte held at the buffer's byte 0


@dataclass(slots=True)
class Compute:
    step: int
    node: int  # graph node index of the step's op (COMPUTE key); -1 for Input/Output steps
    u0: int
    u1: int
    c0: int
    c1: int
    macs: int
    time_us: int
    binds: tuple[Bind, ...]
    staging: int = -1  # buffer holding the parameters of channels [c0, c1) (-1: none)
    staging_base: int = 0  # channel record of c0 at this byte of staging (after the common)
    scratch: int = -1
    accum: int = -1


@dataclass(slots=True)
class Bind2D:
    """Where a 2-D region of a tensor is: pixel (y, x) of tensor `tensor` is at byte
    offset + (y - row0) * pitch + (x - col0) * pixel_bytes of buffer `buf` (channels last).
    A whole tensor is offset 0, row0 = col0 = 0, pitch = its row bytes; a chunk window of its
    rows is offset -base; a fused run's window of an intermediate tensor is its own pitch."""

    tensor: int
    buf: int
    offset: int
    row0: int
    col0: int
    pitch: int
    rows: int = 1 << 30  # the region the buffer holds valid data for (a window's frame)
    cols: int = 1 << 30


@dataclass(slots=True)
class Patch:
    """One op of a fused run over output rows [r0, r1) x columns [x0, x1) and output
    channels [c0, c1); its inputs and output are bound as 2-D regions (`Bind2D`). Its
    parameters are in buffer `staging` from byte `staging_at`: the block's common part,
    then the records of channels [c0, c1) at `staging_at + staging_base`."""

    step: int
    node: int
    r0: int
    r1: int
    x0: int
    x1: int
    c0: int
    c1: int
    macs: int
    time_us: int
    binds: tuple[Bind2D, ...]
    staging: int = -1
    staging_at: int = 0  # byte of the block's common part in the staging buffer
    staging_base: int = 0  # channel record of c0 at staging_at + this
    scratch: int = -1


@dataclass(slots=True)
class Copy2D:
    """An SRAM copy of `rows` rows of `nbytes` bytes: row k from byte src_off + k*src_pitch
    of buffer `src` to byte dst_off + k*dst_pitch of buffer `dst`, as if through a
    temporary (source and destination may overlap: a window shifting inside its buffer)."""

    src: int
    src_off: int
    src_pitch: int
    dst: int
    dst_off: int
    dst_pitch: int
    rows: int
    nbytes: int


Instr = (Begin | End | Alloc | Free | Move | Slide | Write | Read | Trim | Invalidate | Sync
         | WeightRead | Compute | Patch | Copy2D)


@dataclass
class Program:
    """One inference: buffers and instructions (offsets and moves once `layout` has run)."""

    buffers: list[BufferSpec]
    instrs: list[Instr]
    peak: int = 0  # most bytes allocated at once (set by layout)
    high_water: int = 0  # highest arena address used
    compactions: int = 0
    bytes_moved: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    _records: np.ndarray | None = field(default=None, repr=False, compare=False)

    def records(self) -> np.ndarray:
        """The trace of one inference: one record per flash or compute instruction (computed
        once; a program is not changed after layout)."""
        if self._records is None:
            self._records = self._make_records()
        return self._records

    def _make_records(self) -> np.ndarray:
        # Column by column for each kind of instruction, not record by record: a large
        # model's program has a million instructions.
        instrs = self.instrs
        kind = np.fromiter(map(_RECORD_KIND.__getitem__, map(type, instrs)), dtype=np.int8,
                           count=len(instrs))
        cols = {f: np.zeros(len(instrs), dtype=np.int64)
                for f in ("op", "flags", "key", "length", "time_us", "value")}
        keep = kind > 0
        for k, (op, fields) in _RECORD_FIELDS.items():
            idx = np.flatnonzero(kind == k)
            if not idx.size:
                continue
            cols["op"][idx] = op
            for col, attr in fields.items():
                cols[col][idx] = np.fromiter(map(attrgetter(attr), map(instrs.__getitem__,
                                                                       idx.tolist())),
                                             dtype=np.int64, count=idx.size)
            if k == 1:  # Input and Output steps (node -1) compute nothing
                keep[idx[cols["key"][idx] < 0]] = False
        out = np.zeros(int(keep.sum()), dtype=RECORD_DTYPE)
        for f, c in cols.items():
            out[f] = c[keep]
        return out


# Which instructions make records (program order) and the fields they carry.
_RECORD_KIND: dict[type, int] = {
    Begin: 7, End: 8, Alloc: 0, Free: 0, Move: 0, Slide: 0, Write: 3, Read: 4, Trim: 5,
    Invalidate: 6, Sync: 9, WeightRead: 2, Compute: 1, Patch: 1, Copy2D: 0}
_RECORD_FIELDS: dict[int, tuple[int, dict[str, str]]] = {
    1: (Op.COMPUTE, {"key": "node", "time_us": "time_us", "value": "macs"}),
    2: (Op.WEIGHT_READ, {"key": "block", "length": "length"}),
    3: (Op.WRITE, {"flags": "flags", "key": "key", "length": "length"}),
    4: (Op.READ, {"key": "key", "length": "length"}),
    5: (Op.TRIM, {"key": "key"}),
    6: (Op.INVALIDATE, {"key": "first", "value": "last"}),
    7: (Op.INFERENCE_BEGIN, {"value": "index"}),
    8: (Op.INFERENCE_END, {}),
    9: (Op.SYNC, {}),
}


class LayoutError(ValueError):
    """More bytes live at once than the arena holds (a planner bug)."""


def layout(prog: Program, limit: int) -> Program:
    """Places every buffer in an arena of `limit` bytes, compacting when fragmented.

    Buffers are allocated in program order at the lowest free 16-byte-aligned offset (first
    fit); when no hole is large enough although the free bytes suffice, every live buffer
    slides down in address order (`Move` instructions before the `Alloc`), closing the holes.
    So the arena never needs more than the most bytes live at once. Returns the program with
    offsets set and moves inserted, its peak, high water and compaction counts.
    """
    sizes = [b.size for b in prog.buffers]
    live: list[list[int]] = []  # [offset, size, buf], sorted by offset
    where: dict[int, list[int]] = {}
    out: list[Instr] = []
    live_bytes = peak = high = compactions = moved = 0
    instrs = prog.instrs
    # Only allocations and frees matter here; the instructions between are copied in slices.
    marks = [i for i, ins in enumerate(instrs) if type(ins) is Alloc or type(ins) is Free]
    prev = 0
    for i in marks:
        out.extend(instrs[prev:i])
        prev = i + 1
        ins = instrs[i]
        if isinstance(ins, Alloc):
            size = sizes[ins.buf]
            assert size % ALIGN == 0 and ins.buf not in where, ins
            off = _first_fit(live, size, limit)
            if off is None:
                if live_bytes + size > limit:
                    raise LayoutError(f"{live_bytes + size} bytes live, over the limit {limit}")
                top = 0
                for e in live:  # ascending addresses: each move goes down, never over another
                    if e[0] != top:
                        out.append(Move(e[2], e[0], top))
                        moved += e[1]
                        e[0] = top
                    top += e[1]
                compactions += 1
                off = top
            e = [off, size, ins.buf]
            live.append(e)
            live.sort()
            where[ins.buf] = e
            live_bytes += size
            peak = max(peak, live_bytes)
            high = max(high, off + size)
            out.append(replace(ins, offset=off))
        else:
            assert isinstance(ins, Free)
            e = where.pop(ins.buf)
            live.remove(e)
            live_bytes -= e[1]
            out.append(ins)
    out.extend(instrs[prev:])
    assert not where, f"buffers never freed: {sorted(where)}"
    return Program(prog.buffers, out, peak, high, compactions, moved, dict(prog.stats))


def _first_fit(live: list[list[int]], size: int, limit: int) -> int | None:
    off = 0
    for o, s, _ in live:
        if o - off >= size:
            return off
        off = max(off, o + s)
    return off if off + size <= limit else None
