"""`prepare(graph, node_index, fused)`: the kernels of one planner step, as one object.

A planner step (flashswap/planner/steps.py) runs one graph node - the host - and the chain of
elementwise nodes fused into it (`Step.fused`). `StepKernel` computes the step's final output
band by band, in the step's tiling mode (see the package docstring for the contract).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.kernels.activations import (
    DivInt8,
    HardSwishInt8,
    LeakyReluInt8,
    LookupInt8,
)
from flashswap.exec.kernels.base import Op
from flashswap.exec.kernels.conv import ConvFloat, ConvInt8, DepthwiseInt8
from flashswap.exec.kernels.elementwise import (
    BinaryFloat,
    BinaryInt8,
    Dequantize,
    Quantize,
    ReluInt8,
    UnaryFloat,
)
from flashswap.exec.kernels.fc import FullyConnected
from flashswap.exec.kernels.layout import as_band, band_shape, np_dtype
from flashswap.exec.kernels.pool import Mean, Pool, ReduceOp
from flashswap.exec.kernels.shape import Concat, Pad, Reshape, Transpose
from flashswap.exec.kernels.softmax import ChannelNorm, L2NormInt8, SoftmaxFloat, SoftmaxInt8
from flashswap.model.graph import FUSABLE, Graph, Node

Band = tuple[np.ndarray, int] | np.ndarray
QUANT = ("int8", "uint8", "int16")


def make_op(graph: Graph, node: Node) -> Op:
    """The kernel of one node (ModelError when there is none for its op and types)."""
    if graph.dtype_override is not None:
        raise ModelError(f"model '{graph.name}' was loaded with its element types overridden "
                         f"({graph.dtype_override}, a planning what-if): it cannot be executed")
    if "layout_error" in node.attrs:
        raise ModelError(node.attrs["layout_error"])
    op = node.op_type
    out_q = graph.tensors[node.outputs[0]].dtype in QUANT
    in_q = any(graph.tensors[x].dtype in QUANT for x in node.inputs)
    q = out_q or in_q
    src = node.attrs.get("source_op", op)
    if not q and any(graph.tensors[w].dtype in QUANT for w in node.weights):
        raise ModelError(f"no kernel for the hybrid op '{src}' (node '{node.name}': int8 "
                         "weights, float activations): LiteRT quantizes such an op's whole "
                         "input by its own range at run time, which a band cannot know")
    if op == "Conv":
        return ConvInt8(graph, node) if q else ConvFloat(graph, node)
    if op == "DepthwiseConv":
        return DepthwiseInt8(graph, node) if q else ConvFloat(graph, node)
    if op in ("MaxPool", "AveragePool"):
        return Pool(graph, node)
    if op == "GlobalAveragePool":
        return Mean(graph, node)
    if op == "FullyConnected":
        return FullyConnected(graph, node)
    if op == "Div" and q:
        return DivInt8(graph, node)
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):
        return BinaryInt8(graph, node) if q else BinaryFloat(graph, node)
    if q and op in ("Sigmoid", "Tanh"):
        return LookupInt8(graph, node)
    if q and op == "HardSwish":
        return HardSwishInt8(graph, node)
    if q and op == "LeakyRelu":
        return LeakyReluInt8(graph, node)
    if op in ("Relu", "Relu6"):
        return ReluInt8(graph, node) if q else UnaryFloat(graph, node)
    if op == "Quantize":
        return Quantize(graph, node)
    if op == "Dequantize":
        return Dequantize(graph, node)
    if op == "Softmax":
        return SoftmaxInt8(graph, node) if q else SoftmaxFloat(graph, node)
    if op == "Concat":
        return Concat(graph, node)
    if op == "Transpose":
        return Transpose(graph, node)
    if op == "Pad":
        return Pad(graph, node)
    if op == "Reshape":
        return Reshape(graph, node)
    if not q and op in ("LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "BatchNormalization"):
        return UnaryFloat(graph, node)
    if not q and op == "LRN":
        return ChannelNorm(graph, node)
    if q and src == "L2_NORMALIZATION":
        return L2NormInt8(graph, node)
    kind = "int8" if q else "float"
    raise ModelError(f"no {kind} kernel for op '{src}' (node '{node.name}')")


def check_executable(graph: Graph) -> None:
    """ModelError naming every op of a kind the kernels refuse, in one line:

    - hybrid ops (int8 weights, float activations): LiteRT quantizes such an op's whole
      input by its own range at run time, which a band cannot know (`make_op` refuses each);
    - ops reading or writing int16 activations: the kernels follow TFLite's int8 arithmetic,
      and its 16x8 quantization differs (64-bit convolution accumulators, ADD's smaller
      shift, int16 softmax and lookup tables), so such a model would run and give wrong
      numbers. (`make_op` still prepares them: the planner's int16 what-ifs use their
      scratch sizes.)"""
    hybrid: dict[str, int] = {}
    wide: dict[str, int] = {}
    for n in graph.nodes:
        if n.op_type == "Reshape":
            continue
        src = n.attrs.get("source_op", n.op_type)
        acts = [graph.tensors[t].dtype for t in (*n.inputs, *n.outputs)]
        if not any(d in QUANT for d in acts) and any(graph.tensors[w].dtype in QUANT
                                                     for w in n.weights):
            hybrid[src] = hybrid.get(src, 0) + 1
        elif "int16" in acts:
            wide[src] = wide.get(src, 0) + 1

    def listed(ops: dict[str, int]) -> str:
        return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in ops.items())

    if hybrid:
        raise ModelError(f"model '{graph.name}' has hybrid ops (int8 weights, float "
                         f"activations): {listed(hybrid)}; no kernel: LiteRT quantizes such an "
                         "op's whole input by its own range at run time, which a band cannot "
                         "know")
    if wide:
        raise ModelError(f"model '{graph.name}' has int16 activations (TFLite 16x8 "
                         f"quantization) in {listed(wide)}: the kernels are int8 and float32 "
                         "only")


def fused_chain(graph: Graph, node_index: int, count: int) -> list[int]:
    """Indices of the `count` nodes the planner fused after graph.nodes[node_index]: each
    is the only reader of the previous one's output (planner/steps.py `_fuse`)."""
    chain: list[int] = []
    x = graph.nodes[node_index].outputs[0]
    for _ in range(count):
        readers = [i for i, n in enumerate(graph.nodes) if x in n.inputs]
        if len(readers) != 1 or graph.nodes[readers[0]].op_type not in FUSABLE:
            raise ModelError(f"no fusable single reader of '{x}' after node "
                             f"'{graph.nodes[node_index].name}'")
        chain.append(readers[0])
        x = graph.nodes[readers[0]].outputs[0]
    return chain


class StepKernel:
    """The host node's kernel and its fused chain; see the package docstring."""

    def __init__(self, graph: Graph, node_index: int, fused: Sequence[str] = (),
                 units: int | None = None) -> None:
        self.graph = graph
        self.node_index = node_index
        self.node = graph.nodes[node_index]
        self.host = make_op(graph, self.node)
        self.chain_indices = fused_chain(graph, node_index, len(fused))
        self.chain = [make_op(graph, graph.nodes[i]) for i in self.chain_indices]
        got = tuple(op.node.op_type for op in self.chain)
        if got != tuple(fused):
            raise ModelError(f"step '{self.node.name}': fused ops {list(fused)} but the graph "
                             f"has {list(got)} after it")
        self.out = self.chain[-1].out if self.chain else self.host.out
        self.in_names = tuple(dict.fromkeys(self.node.inputs))
        self.weight_names = tuple(dict.fromkeys(
            w for op in (self.host, *self.chain) for w in op.node.weights))
        out_rows = self.host.rows(self.host.out)
        if isinstance(self.host, ReduceOp) and (not isinstance(self.host, Pool)
                                                or out_rows == 1):
            self.mode = "reduce"
            self.units = self.host.rows(self.host.inputs[0])
        elif isinstance(self.host, FullyConnected) and out_rows == 1:
            self.mode = "features"
            self.units = self.host.features
            if graph.tensors[self.host.out].elements != self.units:
                raise ModelError(f"op '{self.node.name}': a one-row fully connected output "
                                 "of several batches cannot be split by features")
        else:
            self.mode = "rows"
            self.units = out_rows
        # A step the planner cannot band (an op moving data across rows, or a view it must
        # read whole) has one unit; given units=1, unit [0, 1) is every row.
        self.rows_per_unit = 1
        if units == 1 and self.units > 1 and self.mode != "features":
            self.rows_per_unit = self.units
            self.units = 1
        self.out_dtype = np_dtype(graph.tensors[self.out])

    def span(self, u0: int, u1: int) -> tuple[int, int]:
        """Units -> rows (output rows, or input rows in reduce mode)."""
        if not 0 <= u0 < u1 <= self.units:
            raise ModelError(f"step '{self.node.name}': units [{u0}, {u1}) outside "
                             f"[0, {self.units})")
        return u0 * self.rows_per_unit, u1 * self.rows_per_unit

    # ---- sizes ------------------------------------------------------------------------------
    def input_rows(self, name: str, u0: int, u1: int) -> tuple[int, int]:
        """Rows of input `name` that units [u0, u1) read (rows mode: the planner's RowMap,
        clipped; features mode: all; reduce mode: the same rows)."""
        i = self.host.inputs.index(name)
        if self.mode == "features":
            return 0, self.host.rows(name)
        r0, r1 = self.span(u0, u1)
        if self.mode == "reduce":
            return r0, r1
        return self.host.input_rows(i, r0, r1)

    def scratch_bytes(self, u0: int, u1: int) -> int:
        """Device scratch for units [u0, u1): the host kernel's (CMSIS-NN model, see the
        package docstring) plus intermediate bands of fused ops whose type differs from the
        step's output type (they cannot share the output band)."""
        if self.mode == "features":
            return sum(self._chain_scratch(u0, u1))
        r0, r1 = self.span(u0, u1)
        host = 0 if self.mode == "reduce" else self.host.scratch_bytes(r0, r1)
        return host + sum(self._chain_scratch(r0, r1))

    def _chain_scratch(self, u0: int, u1: int) -> list[int]:
        sizes = []
        for op in self.chain:
            name = op.inputs[0]
            t = self.graph.tensors[name]
            if t.dtype != self.graph.tensors[self.out].dtype:
                sizes.append(self._band_bytes(name, u0, u1))
        return sizes

    def _band_bytes(self, name: str, u0: int, u1: int) -> int:
        t = self.graph.tensors[name]
        if self.mode == "features":
            n = u1 - u0
        elif self.mode == "reduce":
            n = t.elements
        else:
            n = int(np.prod(band_shape(self.graph, name, u0, u1)))
        return n * np_dtype(t).itemsize

    @property
    def param_bytes(self) -> int:
        """Derived per-channel parameters (multipliers, shifts) of the host and chain."""
        return sum(op.param_bytes for op in (self.host, *self.chain))

    @property
    def reducer(self) -> ReduceOp:
        if not isinstance(self.host, ReduceOp):
            raise ModelError(f"step '{self.node.name}' is not a reduction")
        return self.host

    @property
    def acc_bytes(self) -> int:
        """Reduce mode: the accumulator a device keeps across bands (int32 / float32)."""
        return self.reducer.acc_bytes if self.mode == "reduce" else 0

    # ---- running ----------------------------------------------------------------------------
    def _bands(self, inputs: Mapping[str, Band], rows: dict[str, tuple[int, int]] | None
               ) -> tuple[list[np.ndarray], list[int]]:
        xs, firsts = [], []
        for name in self.host.inputs:
            if name not in inputs:
                raise ModelError(f"step '{self.node.name}': input '{name}' was not passed")
            band = inputs[name]
            data, first = band if isinstance(band, tuple) else (band, 0)
            n = self.host.rows(name)
            size = np.asarray(data).size * np.asarray(data).itemsize
            row_bytes = self.graph.tensors[name].nbytes // n
            count = size // row_bytes if row_bytes else 0
            xs.append(as_band(self.graph, name, data, first, first + count))
            firsts.append(first)
        return xs, firsts

    def _out_view(self, out: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.asarray(out)
        dt = np_dtype(self.graph.tensors[name])
        if not arr.flags.c_contiguous:
            raise ModelError(f"step '{self.node.name}': output buffer is not contiguous")
        if arr.dtype != dt:
            arr = arr.reshape(-1).view(dt)
        if arr.size != int(np.prod(shape)):
            raise ModelError(f"step '{self.node.name}': output buffer holds {arr.size} values "
                             f"of '{name}', the band needs {int(np.prod(shape))}")
        return arr.reshape(shape)

    def _scratch_view(self, scratch: np.ndarray | None, offset: int, name: str,
                      shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
        dt = np_dtype(self.graph.tensors[name])
        n = int(np.prod(shape)) * dt.itemsize
        if scratch is None:
            return np.empty(shape, dtype=dt), offset
        buf = np.asarray(scratch).reshape(-1).view(np.uint8)
        if offset + n > buf.size:
            raise ModelError(f"step '{self.node.name}': scratch of {buf.size} B is too small "
                             f"(needs {offset + n} B)")
        return buf[offset:offset + n].view(dt).reshape(shape), offset + n

    def _run_chain(self, band: np.ndarray, weights: Mapping[str, np.ndarray], r0: int,
                   r1: int, out: np.ndarray, scratch: np.ndarray | None, offset: int,
                   shape_of) -> None:
        """Applies the fused ops to `band` (the host's output rows [r0, r1)) into `out`."""
        for k, op in enumerate(self.chain):
            last = k == len(self.chain) - 1
            shape = shape_of(op.out)
            if last:
                dst = self._out_view(out, op.out, shape)
            elif self.graph.tensors[op.out].dtype == self.graph.tensors[self.out].dtype:
                dst = self._out_view(out, op.out, shape)  # same type: reuse the output band
            else:
                dst, offset = self._scratch_view(scratch, offset, op.out, shape)
            op.compute([band], [r0], weights, r0, r1, dst)
            band = dst

    def _host_dst(self, out: np.ndarray, scratch: np.ndarray | None, shape: tuple[int, ...]
                  ) -> tuple[np.ndarray, int]:
        name = self.host.out
        if not self.chain or self.graph.tensors[name].dtype == self.graph.tensors[
                self.out].dtype:
            return self._out_view(out, name, shape), 0
        return self._scratch_view(scratch, 0, name, shape)

    def run_rows(self, inputs: Mapping[str, Band], weights: Mapping[str, np.ndarray],
                 out: np.ndarray, r0: int, r1: int, scratch: np.ndarray | None = None) -> None:
        """Rows mode: output rows [r0, r1) into `out` (see the package docstring)."""
        if self.mode != "rows":
            raise ModelError(f"step '{self.node.name}' runs in {self.mode} mode")
        r0, r1 = self.span(r0, r1)
        xs, firsts = self._bands(inputs, None)
        shape = band_shape(self.graph, self.host.out, r0, r1)
        dst, offset = self._host_dst(out, scratch, shape)
        self.host.compute(xs, firsts, weights, r0, r1, dst)
        self._run_chain(dst, weights, r0, r1, out, scratch, offset,
                        lambda n: band_shape(self.graph, n, r0, r1))

    def run_features(self, inputs: Mapping[str, Band], weights: Mapping[str, np.ndarray],
                     out: np.ndarray, f0: int, f1: int, scratch: np.ndarray | None = None
                     ) -> None:
        """Features mode: output features [f0, f1) of the (one-row) output into `out`;
        the host's weights are its share (filter rows, bias entries [f0, f1)); a fused op's
        per-feature weights may be passed whole or as their [f0, f1) share."""
        if self.mode != "features":
            raise ModelError(f"step '{self.node.name}' is not split by output features")
        xs, firsts = self._bands(inputs, None)
        host: FullyConnected = self.host  # type: ignore[assignment]
        x = host.slice_input(0, xs[0], firsts[0], 0, 1)
        shape = (f1 - f0,)
        dst, offset = self._host_dst(out, scratch, shape)
        host.compute_features(x, weights, f0, f1, dst)
        if self.chain:
            self._run_chain_features(dst, weights, f0, f1, out, scratch, offset)

    def _run_chain_features(self, band, weights, f0, f1, out, scratch, offset) -> None:
        # Elementwise ops do not mix features: run them on the feature slice, with each
        # per-feature weight cut to [f0, f1) (a broadcast constant stays whole).
        host = self.host
        assert isinstance(host, FullyConnected)
        feats = host.features
        for k, op in enumerate(self.chain):
            w = dict(weights)
            for name in op.node.weights:
                const = self.graph.constants[name]
                arr = np.asarray(weights[name])
                if arr.dtype != const.dtype:
                    arr = np.ascontiguousarray(arr).reshape(-1).view(const.dtype)
                if const.shape and const.shape[-1] == feats:
                    if arr.size == const.size:
                        arr = arr.reshape(const.shape)[..., f0:f1]
                    full = np.zeros(const.shape, dtype=const.dtype)
                    full[..., f0:f1] = arr.reshape(*const.shape[:-1], f1 - f0)
                    arr = full
                w[name] = arr
            last = k == len(self.chain) - 1
            full_shape = band_shape(self.graph, op.out, 0, 1)
            src = np.zeros(band_shape(self.graph, op.inputs[0], 0, 1),
                           dtype=band.dtype)
            src.reshape(-1)[f0:f1] = band.reshape(-1)
            tmp = np.empty(full_shape, dtype=np_dtype(self.graph.tensors[op.out]))
            op.compute([src], [0], w, 0, 1, tmp)
            if last:
                dst = self._out_view(out, op.out, (f1 - f0,))
            else:
                dst, offset = self._scratch_view(scratch, offset, op.out, (f1 - f0,))
            dst[...] = tmp.reshape(-1)[f0:f1]
            band = dst

    def reduce_start(self, acc: np.ndarray) -> None:
        """Reduce mode: initializes the caller's accumulator (`acc_shape()`, `acc_dtype`)."""
        self.reducer.reduce_start(acc)

    def acc_shape(self) -> tuple[int, ...]:
        return self.reducer.acc_shape()

    @property
    def acc_dtype(self) -> np.dtype:
        return self.reducer.acc_dtype

    def reduce_rows(self, inputs: Mapping[str, Band], acc: np.ndarray, r0: int, r1: int
                    ) -> None:
        """Reduce mode: folds input rows [r0, r1) into `acc`."""
        r0, r1 = self.span(r0, r1)
        xs, firsts = self._bands(inputs, None)
        self.reducer.reduce_rows(xs[0], firsts[0], r0, r1, acc)

    def reduce_finish(self, acc: np.ndarray, weights: Mapping[str, np.ndarray],
                      out: np.ndarray, scratch: np.ndarray | None = None) -> None:
        """Reduce mode: the step's whole (small) output from the accumulator."""
        shape = band_shape(self.graph, self.host.out, 0, self.host.rows(self.host.out))
        dst, offset = self._host_dst(out, scratch, shape)
        self.reducer.reduce_finish(acc, dst)
        rows = self.host.rows(self.host.out)
        self._run_chain(dst, weights, 0, rows, out, scratch, offset,
                        lambda n: band_shape(self.graph, n, 0, rows))


def prepare(graph: Graph, node_index: int, fused: Sequence[str] = (),
            units: int | None = None) -> StepKernel:
    """The kernel of the step whose host is graph.nodes[node_index], with `fused` (the
    step's `fused` op types) applied to its output; `units` is the step's (Step.units: 1
    makes the whole output one unit)."""
    return StepKernel(graph, node_index, fused, units)
