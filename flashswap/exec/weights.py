"""The weights region: every step's parameter block, programmed on flash once, read per WEIGHT_READ.

Block layout (planner/params.py decides the sizes; this module writes and reads the bytes):
the common part (weights without a channel axis, whole, in the step's weight order), then one
packed record per output channel: for each weight with a channel axis, that channel's slice
(the channel axis moved first, C order), then, for an int8 layer quantized per channel, its
32-bit fixed-point multiplier and 32-bit shift, computed offline from the scales as TFLite does.
A staging buffer holding the common part and the records of channels [c0, c1) unpacks into
numpy views of those channels' parameters, with no copy.

Where the region lives. The store formats, levels and garbage-collects the whole partition it is
given, so the weights cannot share it. They live in their own partition of the same part: a
second `FlashSim` of the same catalogue part, as large as the region rounded up to erase units
(the part's remaining address range on a device). Its reads cost the part's read time and
energy, and the store's partition keeps counters comparable one for one with the analyzer's
replay, which does not put weights in the store either. Blocks start on page boundaries, so a
block's first read does not share a NAND page with the block before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashswap.errors import InputError
from flashswap.exec.kernels.fixedpoint import quantize_multiplier
from flashswap.flash import FlashSim
from flashswap.model.graph import Graph
from flashswap.parts import get_part
from flashswap.planner import Plan
from flashswap.planner.params import QPARAM_BYTES, Needs
from flashswap.planner.steps import Step
from flashswap.sizes import format_size

MULTIPLIER, SHIFT = "multiplier", "shift"


@dataclass(frozen=True)
class Field:
    name: str  # weight tensor name, or MULTIPLIER / SHIFT
    dtype: np.dtype
    shape: tuple[int, ...]  # the whole array's shape
    axis: int | None  # channel axis; None: in the common part


class BlockLayout:
    """One step's parameter block: its fields, packing and unpacking."""

    def __init__(self, graph: Graph, step: Step, needs: Needs, weight_names: list[str]) -> None:
        self.needs = needs
        names = [weight_names[w] for w, _ in step.weights]
        node = graph.nodes[step.node_index]
        fields: list[Field] = []
        for i, name in enumerate(names):
            arr = graph.constants[name]
            axis = _channel_axis(graph, node.op_type, name, arr, needs, host=i < len(node.weights))
            fields.append(Field(name, arr.dtype, arr.shape, axis))
        self.common = [f for f in fields if f.axis is None]
        self.per = [f for f in fields if f.axis is not None]
        if self.per and _qbytes(needs, self.per):
            self.per += [Field(MULTIPLIER, np.dtype("<i4"), (needs.channels,), 0),
                         Field(SHIFT, np.dtype("<i4"), (needs.channels,), 0)]
        self.record = np.dtype([(f.name, f.dtype, _drop(f.shape, f.axis)) for f in self.per])
        if self.record.itemsize != needs.per_channel or self._common_bytes() != needs.common:
            raise InputError(f"step '{step.name}': parameter block layout "
                             f"({self._common_bytes()} + {self.record.itemsize}/channel) "
                             f"differs from the plan's ({needs.common} + {needs.per_channel})")

    def _common_bytes(self) -> int:
        return sum(int(np.prod(f.shape)) * f.dtype.itemsize for f in self.common)

    def pack(self, arrays: dict[str, np.ndarray]) -> bytes:
        """The block's bytes from the whole arrays (weights and MULTIPLIER / SHIFT)."""
        head = b"".join(np.ascontiguousarray(arrays[f.name], f.dtype).tobytes()
                        for f in self.common)
        rec = np.zeros(self.needs.channels if self.per else 0, dtype=self.record)
        for f in self.per:
            rec[f.name] = np.moveaxis(np.asarray(arrays[f.name], f.dtype), f.axis, 0)
        return head + rec.tobytes()

    def unpack(self, staging: np.ndarray, channels: int) -> dict[str, np.ndarray]:
        """Views of the parameters held in `staging`: common fields whole, channel fields for
        the `channels` staged channels (channel axis back in place)."""
        out: dict[str, np.ndarray] = {}
        at = 0
        for f in self.common:
            n = int(np.prod(f.shape)) * f.dtype.itemsize
            out[f.name] = staging[at:at + n].view(f.dtype).reshape(f.shape)
            at += n
        if self.per:
            rec = staging[at:at + channels * self.record.itemsize].view(self.record)
            for f in self.per:
                out[f.name] = np.moveaxis(rec[f.name], 0, f.axis)
        return out


def _drop(shape: tuple[int, ...], axis: int | None) -> tuple[int, ...]:
    return tuple(d for i, d in enumerate(shape) if i != axis)


def _qbytes(needs: Needs, per: list[Field]) -> bool:
    """True when the plan counted a multiplier and a shift per channel."""
    weights = sum(int(np.prod(_drop(f.shape, f.axis))) * f.dtype.itemsize for f in per)
    return needs.per_channel - weights == QPARAM_BYTES


def _channel_axis(graph: Graph, op_type: str, name: str, arr: np.ndarray, needs: Needs,
                  host: bool) -> int | None:
    """The axis of `arr` along output channels, or None (common part); planner/params.py
    counts a weight as per-channel exactly when it has an axis as long as the channels."""
    if not needs.per_channel:
        return None
    ch = needs.channels
    axes = [i for i, d in enumerate(arr.shape) if d == ch]
    if not axes:
        return None
    q = graph.quant.get(name)
    # A bias's stated quantized dimension may be its filter's (older converters write 3 for
    # a depthwise bias of shape [C]): only an axis the array has can be its channel axis.
    if host and q is not None and q.per_channel and q.axis < arr.ndim and arr.shape[q.axis] == ch:
        return q.axis
    if host and op_type == "DepthwiseConv":
        return axes[-1]  # TFLite's depthwise filter is [1, kh, kw, channels]
    return axes[0]


def channel_qparams(graph: Graph, step: Step) -> dict[str, np.ndarray]:
    """The per-channel multiplier and shift of an int8 layer (input scale x filter scale /
    output scale per channel, in double precision as TFLite computes it)."""
    node = graph.nodes[step.node_index]
    args = node.attrs.get("args", ())
    filt = args[1] if len(args) > 1 and args[1] else node.weights[0]
    q_in = graph.quant[node.inputs[0]].scale[0]
    q_out = graph.quant[node.outputs[0]].scale[0]
    fs = graph.quant[filt].scale
    channels = step_channels = graph.constants[filt].shape[graph.quant[filt].axis]
    if len(fs) == 1:
        fs = fs * step_channels
    assert len(fs) == channels
    pairs = [quantize_multiplier(q_in * f / q_out) for f in fs]
    return {MULTIPLIER: np.array([p[0] for p in pairs], dtype="<i4"),
            SHIFT: np.array([p[1] for p in pairs], dtype="<i4")}


def block_layouts(plan: Plan) -> dict[int, BlockLayout]:
    sg = plan.steps
    return {n.block: BlockLayout(plan.graph, s, n, sg.weight_names)
            for s, n in zip(sg.steps, plan.needs, strict=True) if n.block >= 0}


def pack_blocks(plan: Plan, layouts: dict[int, BlockLayout]) -> dict[int, bytes]:
    """Every parameter block's bytes."""
    g = plan.graph
    out: dict[int, bytes] = {}
    for s, n in zip(plan.steps.steps, plan.needs, strict=True):
        if n.block < 0:
            continue
        lay = layouts[n.block]
        arrays = {f.name: g.constants[f.name] for f in lay.common + lay.per
                  if f.name not in (MULTIPLIER, SHIFT)}
        if any(f.name == MULTIPLIER for f in lay.per):
            arrays |= channel_qparams(g, s)
        out[n.block] = lay.pack(arrays)
    return out


class WeightsRegion:
    """The parameter blocks on their own flash partition (see the module docstring)."""

    def __init__(self, blocks: dict[int, bytes], part: str, seed: int = 0) -> None:
        p = get_part(part)
        self.offsets: dict[int, int] = {}
        self.sizes = {b: len(d) for b, d in blocks.items()}
        at = 0
        for b in sorted(blocks):
            self.offsets[b] = at
            at += -(-len(blocks[b]) // p.page_size) * p.page_size
        es = p.erase_size
        self.capacity = max(es, -(-at // es) * es)
        if self.capacity > p.capacity:
            raise InputError(f"the weights region ({format_size(self.capacity)}) does not fit "
                             f"on {p.name} ({format_size(p.capacity)})")
        self.flash = FlashSim(p, self.capacity, seed=seed)
        for b in sorted(blocks):
            self._program(self.offsets[b], blocks[b])
        f = self.flash
        self.install = {"bytes": at, "programs": f.ops["programs"], "time_s": f.time_s,
                        "energy_j": f.energy_j}
        f.reset_counters()  # from here on the counters are the inferences' reads

    def _program(self, addr: int, data: bytes) -> None:
        """Programs `data` erase unit by erase unit (one program call may not cross one)."""
        es = self.flash.erase_size
        mv = memoryview(data)
        while mv:
            n = min(len(mv), es - addr % es)
            self.flash.program(addr, mv[:n])
            mv = mv[n:]
            addr += n

    def read(self, block: int, start: int, length: int) -> bytes:
        if start < 0 or start + length > self.sizes[block]:
            raise InputError(f"weight read [{start}, {start + length}) outside block {block} "
                             f"({self.sizes[block]} bytes)")
        return self.flash.read(self.offsets[block] + start, length)
