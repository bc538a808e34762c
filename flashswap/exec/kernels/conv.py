"""Convolutions: TFLite int8 CONV_2D / DEPTHWISE_CONV_2D and float ONNX Conv (with groups).

Int8 follows TFLite's reference ConvPerChannel / DepthwiseConvPerChannel: acc = sum of
filter * (input - input_zero_point) over the taps inside the image (uint8 models, TFLite's
legacy quantization: (filter - filter_zero_point) * (input - input_zero_point), as its
reference Conv and DepthwiseConv do) (padding contributes
nothing, i.e. the input is padded with its zero point), plus the int32 bias; then
MultiplyByQuantizedMultiplier with the channel's multiplier (from double(input_scale) *
double(filter_scale[c]) / double(output_scale)), plus the output zero point, clamped to the
fused activation's range. Integer sums are computed as float64 matrix products, which are
exact: every partial sum is an integer below 2**53 (|filter * input| <= 255 * 255).

Filters are OHWI (TFLite CONV_2D; the ONNX importer stores ONNX's OIHW filters that way) and
(1, kh, kw, C*m) for TFLite depthwise, where output channel c*m + j reads input channel c.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from flashswap.errors import ModelError
from flashswap.exec.kernels.base import Op, Weights, int_range
from flashswap.exec.kernels.fixedpoint import activation_range, mbqm, quantize_multipliers
from flashswap.exec.kernels.window import Geometry, im2col, padded_window, tap
from flashswap.model.graph import Graph, Node


def geometry(op: Op) -> Geometry:
    a = op.node.attrs
    x_shape = op.sshape(op.inputs[0])
    o_shape = op.sshape(op.out)
    if len(x_shape) != 4 or len(o_shape) != 4:
        raise ModelError(f"op '{op.node.name}': spatial ops need rank-4 tensors")
    kh, kw = a["kernel"]
    sh, sw = a["stride"]
    dh, dw = a.get("dilation", (1, 1))
    top, left = a["pads"][0], a["pads"][1]
    return Geometry(kh, kw, sh, sw, dh, dw, top, left, x_shape[1], x_shape[2], o_shape[1],
                    o_shape[2])


class _Spatial(Op):
    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        self.g = geometry(self)
        self.in_c = self.sshape(self.inputs[0])[3]
        self.out_c = self.sshape(self.out)[3]

    def input_rows(self, i: int, r0: int, r1: int) -> tuple[int, int]:
        return self.g.input_rows(r0, r1)


class _QuantConv(_Spatial):
    """Per-channel requantization parameters shared by the int8 convolutions."""

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        xq, wq, oq = self.quant(self.inputs[0]), self.quant(self.arg(1)), self.quant(self.out)
        self.in_zp = xq.zero_point[0]
        self.out_zp = oq.zero_point[0]
        scales = np.array(wq.scale * (self.out_c if len(wq.scale) == 1 else 1), np.float64)
        if scales.size != self.out_c:
            raise ModelError(f"op '{node.name}': {scales.size} filter scales for "
                             f"{self.out_c} output channels")
        # uint8 models (TFLite's legacy quantization) have asymmetric per-tensor filters:
        # the reference kernels add the filter offset to every tap (int8 filters have 0).
        if len(set(wq.zero_point)) > 1 or (len(wq.zero_point) > 1 and wq.zero_point[0]):
            raise ModelError(f"op '{node.name}': per-channel filter zero points "
                             f"{list(wq.zero_point)[:4]}... have no kernel")
        self.w_zp = int(wq.zero_point[0]) if wq.zero_point else 0
        # double(input_scale) * double(filter_scale) / double(output_scale), as TFLite.
        self.mult, self.shift = quantize_multipliers(xq.scale[0] * scales / oq.scale[0])
        lo, hi = int_range(graph.tensors[self.out].dtype)
        self.act = activation_range(node.attrs.get("activation", "NONE"), oq.scale[0],
                                    self.out_zp, lo, hi)
        self.bias = self.arg(2)

    def requantize(self, acc: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.bias:
            acc = acc + self.weight(weights, self.bias).astype(np.int64)
        y = mbqm(acc, self.mult, self.shift) + self.out_zp
        return np.clip(y, *self.act).astype(self.out_dtype)

    @property
    def param_bytes(self) -> int:
        return 8 * self.out_c


class ConvInt8(_QuantConv):
    """TFLite CONV_2D, int8 (groups allowed: filter input depth = input depth / groups)."""

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        w_shape = graph.constants[self.arg(1)].shape
        self.groups = self.in_c // w_shape[3]

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        rows = r1 - r0
        x = xs[0].astype(np.int32) - self.in_zp
        win = padded_window(x, firsts[0], self.g, r0, r1, 0)
        cols = im2col(win, self.g, rows).astype(np.float64)  # (rows, ow, kk, cin)
        w = self.weight(weights, self.arg(1)).astype(np.float64) - self.w_zp  # OHWI (cin/g)
        acc = _grouped_matmul(cols, w, self.groups)
        out[...] = self.requantize(acc.astype(np.int64), weights).reshape(out.shape)

    def scratch_bytes(self, r0: int, r1: int) -> int:
        # CMSIS-NN arm_convolve_s8: an im2col buffer of 2 patches of int16 (2*Cin*k*k*2 B);
        # 1x1 convolutions without padding need none.
        g = self.g
        if g.kh == g.kw == 1 and not any(self.node.attrs["pads"]):
            return 0
        return 4 * (self.in_c // self.groups) * g.kh * g.kw


class DepthwiseInt8(_QuantConv):
    """TFLite DEPTHWISE_CONV_2D, int8: output channel c*m + j reads input channel c."""

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        self.mult_depth = self.out_c // self.in_c

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        rows = r1 - r0
        g = self.g
        x = xs[0].astype(np.int64) - self.in_zp
        win = padded_window(x, firsts[0], g, r0, r1, 0)
        w = (self.weight(weights, self.arg(1)).reshape(g.kh, g.kw, self.out_c).astype(np.int64)
             - self.w_zp)
        acc = np.zeros((rows, g.out_w, self.out_c), dtype=np.int64)
        for ky, kx in g.taps():
            t = tap(win, g, ky, kx, rows)
            if self.mult_depth > 1:
                t = np.repeat(t, self.mult_depth, axis=-1)
            acc += t * w[ky, kx]
        out[...] = self.requantize(acc, weights).reshape(out.shape)

    def scratch_bytes(self, r0: int, r1: int) -> int:
        # CMSIS-NN: 3x3 (arm_depthwise_conv_3x3_s8), 1x1 and multiplier > 1 (generic) need
        # none; other kernels with multiplier 1 take an int16 im2col of C*k*k values.
        g = self.g
        if (g.kh, g.kw) in ((3, 3), (1, 1)) or self.mult_depth > 1:
            return 0
        return 2 * self.in_c * g.kh * g.kw


class ConvFloat(_Spatial):
    """Float32 convolution: ONNX Conv (groups, dilation, asymmetric pads) and TFLite
    CONV_2D / DEPTHWISE_CONV_2D, with an optional bias and fused activation."""

    def __init__(self, graph: Graph, node: Node) -> None:
        super().__init__(graph, node)
        w = graph.constants[self.arg(1)]
        # TFLite depthwise filters are (1, kh, kw, C*m): one input channel per group.
        self.tflite_dw = node.op_type == "DepthwiseConv" and graph.source == "tflite"
        self.groups = self.in_c if self.tflite_dw else self.in_c // w.shape[3]
        self.bias = self.arg(2)
        self.act = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)
                    }.get(node.attrs.get("activation", "NONE"), (-np.inf, np.inf))

    def compute(self, xs: list[np.ndarray], firsts: list[int], weights: Weights, r0: int,
                r1: int, out: np.ndarray) -> None:
        rows = r1 - r0
        win = padded_window(xs[0], firsts[0], self.g, r0, r1, 0.0)
        cols = im2col(win, self.g, rows).astype(np.float64)
        w = self.weight(weights, self.arg(1)).astype(np.float64)
        if self.tflite_dw:
            w = w.reshape(self.g.kh, self.g.kw, self.out_c).transpose(2, 0, 1)[..., None]
        acc = _grouped_matmul(cols, w, self.groups)
        if self.bias:
            acc = acc + self.weight(weights, self.bias).astype(np.float64)
        out[...] = np.clip(acc, *self.act).astype(np.float32).reshape(out.shape)

    def scratch_bytes(self, r0: int, r1: int) -> int:
        g = self.g
        if g.kh == g.kw == 1:
            return 0
        return 4 * (self.in_c // self.groups) * g.kh * g.kw  # one float32 patch


def _grouped_matmul(cols: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
    """cols (rows, ow, kk, cin) x filters (cout, kh, kw, cin/groups) -> (rows, ow, cout)."""
    rows, ow, kk, cin = cols.shape
    cout = w.shape[0]
    if groups == 1:
        return (cols.reshape(rows * ow, kk * cin) @ w.reshape(cout, -1).T).reshape(rows, ow,
                                                                                   cout)
    cg, og = cin // groups, cout // groups
    if cg == 1 and og >= 1:  # depthwise-like: one input channel per group, no matmul needed
        x = np.repeat(cols, og, axis=-1)  # (rows, ow, kk, cout)
        return np.einsum("rokc,ck->roc", x, w.reshape(cout, kk), optimize=True)
    acc = np.empty((rows, ow, cout), dtype=np.float64)
    for gi in range(groups):
        part = cols[..., gi * cg:(gi + 1) * cg].reshape(rows * ow, kk * cg)
        wg = w[gi * og:(gi + 1) * og].reshape(og, -1)
        acc[..., gi * og:(gi + 1) * og] = (part @ wg.T).reshape(rows, ow, og)
    return acc
