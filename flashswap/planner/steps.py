"""From a model graph to the planner's steps: fusion, views, and how each step can be tiled.

- Views: Reshape/Flatten/Squeeze/Unsqueeze/Dropout/Identity produce no step and no copy;
  their output shares its input's storage.
- Fusion: an op with one activation input that an int8 kernel applies in its producer's
  epilogue (ReLU, clip, batch norm, per-channel scale/bias; `graph.FUSABLE`) is fused into
  the producer when the producer is a real op and the intermediate tensor has no other
  reader. Its weights join the producer's. Unfused elementwise ops (a residual Add, a DenseNet
  pre-activation BN+ReLU after a pooled tensor that two ops read) are planned as cheap steps.
- Virtual steps: step 0.. are "Input" steps (the application writes each graph input) and the
  last ones are "Output" steps (the application reads each graph output), so the input and the
  result take part in the plan like any tensor.

Tiling: every step has `units` (output rows, output features, or input rows) and, for each
tensor it reads or writes, a `RowMap` from a band of units to a band of the tensor's rows
(None: the whole tensor for every tile). A convolution's input map is the kernel window: band
[u0, u1) of output rows needs input rows [u0*s - pad, (u1-1)*s - pad + (k-1)*d + 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from flashswap.model.graph import FUSABLE, Graph, Node, Tensor


@dataclass(frozen=True)
class RowMap:
    """Units [u0, u1) -> tensor rows [u0*stride + offset, (u1-1)*stride + offset + extent)."""

    stride: int = 1
    extent: int = 1
    offset: int = 0

    def band(self, u0: int, u1: int, rows: int) -> tuple[int, int]:
        a = max(0, u0 * self.stride + self.offset)
        b = min(rows, (u1 - 1) * self.stride + self.offset + self.extent)
        return a, max(a, b)


IDENTITY = RowMap()


@dataclass(frozen=True)
class StepIO:
    """One tensor a step reads or writes, with how a band of units maps onto its bytes."""

    tensor: int
    rowmap: RowMap | None
    unit_bytes: int  # bytes per row as this step sees the tensor (rows = nbytes // unit_bytes)


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    op_type: str
    node_index: int  # index in graph.nodes (COMPUTE key); -1 for virtual steps
    inputs: tuple[StepIO, ...]
    outputs: tuple[StepIO, ...]
    weights: tuple[tuple[int, int], ...]  # (weight id, bytes)
    macs: int
    units: int
    split_weights: bool = False  # True: units are output features (each tile its share)
    fused: tuple[str, ...] = ()
    kind: str = "whole"  # how it is tiled: spatial, pad, rowwise, fc, reduce, whole, io
    nodes: tuple[int, ...] = ()  # graph node indices: the op, then its fused epilogue

    @property
    def virtual(self) -> bool:
        return self.node_index < 0


@dataclass(frozen=True)
class Storage:
    """An activation buffer: a tensor and every view of it."""

    id: int
    name: str
    nbytes: int
    rows: int


@dataclass
class StepGraph:
    tensors: list[Storage]
    steps: list[Step]
    weight_names: list[str]
    producer: list[int]  # step index producing each storage tensor
    consumers: list[list[int]]  # step indices reading each storage tensor, ascending
    canon: dict[str, str]  # view tensor name -> the storage tensor it shares
    storage: dict[str, int]  # storage tensor name -> id

    def storage_of(self, name: str) -> int:
        """The storage tensor holding the bytes of graph tensor `name` (a view's too)."""
        while name in self.canon:
            name = self.canon[name]
        return self.storage[name]

    def last_use(self, t: int) -> int:
        return self.consumers[t][-1] if self.consumers[t] else self.producer[t]


def build_steps(graph: Graph) -> StepGraph:
    """The steps of `graph` in execution order (see the module docstring)."""
    return _Builder(graph).build()


class _Builder:
    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.canon: dict[str, str] = {}  # view name -> storage tensor name
        self.storage: dict[str, int] = {}
        self.tensors: list[Storage] = []
        self.weight_ids: dict[str, int] = {}

    def _canon(self, name: str) -> str:
        while name in self.canon:
            name = self.canon[name]
        return name

    def _sid(self, name: str) -> int:
        name = self._canon(name)
        if name not in self.storage:
            t = self.g.tensors[name]
            self.storage[name] = len(self.tensors)
            self.tensors.append(Storage(len(self.tensors), name, t.nbytes, t.rows))
        return self.storage[name]

    def _wid(self, name: str) -> int:
        return self.weight_ids.setdefault(name, len(self.weight_ids))

    def _fuse(self) -> list[tuple[int, Node, list[int]]]:
        """Nodes after fusion, as (node index, node with fused outputs, fused node indices)."""
        g = self.g
        readers: dict[str, int] = {}
        for n in g.nodes:
            for x in set(n.inputs):
                readers[x] = readers.get(x, 0) + 1
        outputs = set(g.outputs)
        merged: list[tuple[int, Node, list[int]]] = []
        producer_of: dict[str, int] = {}  # tensor -> position in merged
        for i, n in enumerate(g.nodes):
            if n.kind == "alias":
                self.canon[n.outputs[0]] = n.inputs[0]
                continue
            src = n.inputs[0] if len(n.inputs) == 1 else None
            j = producer_of.get(src) if src is not None else None
            if (src is not None and j is not None and n.op_type in FUSABLE
                    and readers.get(src) == 1 and src not in outputs
                    and len(merged[j][1].outputs) == 1):
                k, host, fused = merged[j]
                host = Node(host.name, host.op_type, host.inputs, host.weights + n.weights,
                            n.outputs, host.macs + n.macs, host.attrs)
                merged[j] = (k, host, [*fused, i])
                del producer_of[src]
                producer_of[n.outputs[0]] = j
                continue
            merged.append((i, n, []))
            for o in n.outputs:
                producer_of[o] = len(merged) - 1
        return merged

    def build(self) -> StepGraph:
        g = self.g
        merged = self._fuse()
        steps: list[Step] = []
        for name in g.inputs:
            sid = self._sid(name)
            st = self.tensors[sid]
            steps.append(Step(len(steps), f"input:{name}", "Input", -1, (),
                              (StepIO(sid, IDENTITY, st.nbytes // st.rows),), (), 0, st.rows,
                              kind="io"))
        for node_index, node, fused in merged:
            s = self._step(len(steps), node_index, node,
                           tuple(g.nodes[f].op_type for f in fused))
            steps.append(replace(s, nodes=(node_index, *fused)))
        for name in dict.fromkeys(self._canon(o) for o in g.outputs):
            sid = self._sid(name)
            st = self.tensors[sid]
            steps.append(Step(len(steps), f"output:{name}", "Output", -1,
                              (StepIO(sid, IDENTITY, st.nbytes // st.rows),), (), (), 0, st.rows,
                              kind="io"))
        producer = [-1] * len(self.tensors)
        consumers: list[list[int]] = [[] for _ in self.tensors]
        for s in steps:
            for io in s.outputs:
                producer[io.tensor] = s.index
            for io in s.inputs:
                consumers[io.tensor].append(s.index)
        weight_names = sorted(self.weight_ids, key=self.weight_ids.__getitem__)
        return StepGraph(self.tensors, steps, weight_names, producer, consumers,
                         dict(self.canon), dict(self.storage))

    def _io(self, view: Tensor, rowmap: RowMap | None) -> StepIO:
        """A tensor as this step sees it; a view whose rows differ from its storage's rows
        cannot be banded consistently, so the step needs it whole."""
        sid = self._sid(view.name)
        st = self.tensors[sid]
        if rowmap is not None and (view.rows != st.rows or view.nbytes != st.nbytes):
            rowmap = None
        return StepIO(sid, rowmap, st.nbytes // st.rows)

    def _step(self, index: int, node_index: int, node: Node, fused: tuple[str, ...]) -> Step:
        g = self.g
        ins = [g.tensors[x] for x in dict.fromkeys(node.inputs)]
        outs = [g.tensors[x] for x in node.outputs]
        out = outs[0]
        a = node.attrs
        kind = node.kind
        split = False
        if node.op_type in ("AveragePool", "MaxPool") and out.rows == 1:
            # A pool whose window spans every input row (ResNet's final 7x7 average pool) is a
            # global pool: stream its input rows into a small output.
            kind = "reduce"
        if kind == "spatial":
            kh = a["kernel"][0]
            dh = a.get("dilation", (1, 1))[0]
            rm = RowMap(a["stride"][0], (kh - 1) * dh + 1, -a["pads"][0])
            units = out.rows
            in_maps: list[RowMap | None] = [rm] * len(ins)
            out_maps: list[RowMap | None] = [IDENTITY] * len(outs)
        elif kind == "pad":
            units = out.rows
            in_maps = [RowMap(1, 1, -a["pads"][0])] * len(ins)
            out_maps = [IDENTITY] * len(outs)
        elif kind == "rowwise" and not a.get("rows_axis", False) and len(outs) == 1:
            units = out.rows
            in_maps = [IDENTITY if t.rows == out.rows else None for t in ins]
            out_maps = [IDENTITY]
        elif kind == "fc" and out.rows == 1 and len(outs) == 1:
            # Output features are the units: unit_bytes = one element.
            sid = self._sid(out.name)
            w = [(self._wid(x), g.tensors[x].nbytes) for x in node.weights]
            return Step(index, node.name, node.op_type, node_index,
                        tuple(self._io(t, None) for t in ins),
                        (StepIO(sid, IDENTITY, out.nbytes // out.elements),),
                        tuple(w), node.macs, out.elements, True, fused, "fc")
        elif kind == "fc":
            units = out.rows
            in_maps = [IDENTITY if t.rows == out.rows else None for t in ins]
            out_maps = [IDENTITY] * len(outs)
        elif kind == "reduce" and len(ins) == 1:
            src = self._io(ins[0], IDENTITY)
            rows = self.tensors[src.tensor].rows if src.rowmap else 1
            return Step(index, node.name, node.op_type, node_index, (src,),
                        tuple(self._io(t, None) for t in outs),
                        tuple((self._wid(x), g.tensors[x].nbytes) for x in node.weights),
                        node.macs, rows, False, fused, "reduce")
        else:
            kind = "whole"
            units = 1
            in_maps = [None] * len(ins)
            out_maps = [None] * len(outs)
        if len({t.rows for t in outs}) > 1:
            kind = "whole"
            out_maps = [None] * len(outs)
            in_maps = [None] * len(ins)
            units = 1
        return Step(index, node.name, node.op_type, node_index,
                    _merge([self._io(t, m) for t, m in zip(ins, in_maps, strict=True)]),
                    tuple(self._io(t, m) for t, m in zip(outs, out_maps, strict=True)),
                    tuple((self._wid(x), g.tensors[x].nbytes) for x in node.weights),
                    node.macs, units, split, fused, kind)


def _merge(ios: list[StepIO]) -> tuple[StepIO, ...]:
    """One entry per storage tensor: two views of one buffer read differently need it whole."""
    merged: dict[int, StepIO] = {}
    for io in ios:
        prev = merged.get(io.tensor)
        if prev is not None and prev != io:
            io = StepIO(io.tensor, None, io.unit_bytes)
        merged[io.tensor] = io
    return tuple(merged.values())
