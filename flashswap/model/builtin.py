"""Built-in generators for common MCU networks, so a user can plan without a model file.

Names: `mobilenet_v1[_ALPHA[_RES]]`, `mobilenet_v2[_ALPHA[_RES]]`, `resnet8`,
`resnet18[_RES]`, `ds_cnn`; e.g. `builtin:mobilenet_v2_0.35_96`. Architectures follow the
published networks (MobileNetV1: Howard et al. 2017; MobileNetV2: Sandler et al. 2018;
ResNet-18: He et al. 2016; ResNet-8 and DS-CNN as in the MLPerf Tiny image-classification
and keyword-spotting reference models). Tensors are NHWC, activations `dtype` (int8 by
default), weights int8 with int32 biases as in TFLite int8 models. Batch normalisation is
folded into the convolutions and ReLU fused, as a converted deployment model has them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from flashswap.errors import ModelError
from flashswap.model.graph import Graph, Node, Tensor, conv_macs


class GraphBuilder:
    """Builds an NHWC graph op by op, tracking shapes and MACs."""

    def __init__(self, name: str, dtype: str = "int8") -> None:
        self.name = name
        self.dtype = dtype
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []

    def _act(self, name: str, shape: tuple[int, ...]) -> str:
        rows = shape[0] * shape[1] if len(shape) == 4 else 1
        self.tensors[name] = Tensor(name, shape, self.dtype, False, rows)
        return name

    def _weight(self, name: str, shape: tuple[int, ...], dtype: str = "int8") -> str:
        self.tensors[name] = Tensor(name, shape, dtype, True)
        return name

    def shape(self, t: str) -> tuple[int, ...]:
        return self.tensors[t].shape

    def input(self, h: int, w: int, c: int, name: str = "input") -> str:
        self.inputs.append(self._act(name, (1, h, w, c)))
        return name

    def conv(self, x: str, out_c: int, k: int | tuple[int, int], stride: int = 1,
             depthwise: bool = False, name: str | None = None) -> str:
        """SAME-padded convolution (TensorFlow's convention), BN folded, ReLU fused."""
        kh, kw = (k, k) if isinstance(k, int) else k
        _, h, w, c = self.shape(x)
        name = name or f"conv{len(self.nodes)}"
        oh, ow = -(-h // stride), -(-w // stride)
        pad_h = max((oh - 1) * stride + kh - h, 0)
        pad_w = max((ow - 1) * stride + kw - w, 0)
        group = c if depthwise else 1
        if depthwise:
            out_c = c
        # TFLite's filter layouts: OHWI for a convolution, (1, kh, kw, C) for a depthwise one.
        shape = (1, kh, kw, out_c) if depthwise else (out_c, kh, kw, c // group)
        wt = self._weight(f"{name}/weights", shape)
        bias = self._weight(f"{name}/bias", (out_c,), "int32")
        y = self._act(f"{name}/out", (1, oh, ow, out_c))
        self.nodes.append(Node(
            name, "DepthwiseConv" if depthwise else "Conv", (x,), (wt, bias), (y,),
            conv_macs(oh * ow * out_c, kh, kw, c, group),
            {"kernel": (kh, kw), "stride": (stride, stride),
             "pads": (pad_h // 2, pad_w // 2, pad_h - pad_h // 2, pad_w - pad_w // 2),
             "dilation": (1, 1), "group": group, "activation": "RELU", "args": (x, wt, bias)},
        ))
        return y

    def pool(self, x: str, k: int, stride: int, kind: str = "MaxPool",
             name: str | None = None, pad: int = 0) -> str:
        """Pooling window with `pad` rows and columns of padding on every side (0: VALID);
        padded positions never win a max and are not counted in an average."""
        _, h, w, c = self.shape(x)
        name = name or f"pool{len(self.nodes)}"
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        y = self._act(f"{name}/out", (1, oh, ow, c))
        self.nodes.append(Node(name, kind, (x,), (), (y,), 0,
                               {"kernel": (k, k), "stride": (stride, stride),
                                "pads": (pad, pad, pad, pad), "dilation": (1, 1)}))
        return y

    def global_pool(self, x: str, name: str = "avgpool") -> str:
        c = self.shape(x)[3]
        y = self._act(f"{name}/out", (1, 1, 1, c))
        self.nodes.append(Node(name, "GlobalAveragePool", (x,), (), (y,)))
        return y

    def fc(self, x: str, units: int, name: str = "fc") -> str:
        k = math.prod(self.shape(x))
        wt = self._weight(f"{name}/weights", (units, k))
        bias = self._weight(f"{name}/bias", (units,), "int32")
        y = self._act(f"{name}/out", (1, units))
        self.nodes.append(Node(name, "FullyConnected", (x,), (wt, bias), (y,), k * units,
                               {"args": (x, wt, bias)}))
        return y

    def add(self, a: str, b: str, name: str | None = None) -> str:
        if self.shape(a) != self.shape(b):
            raise ModelError(f"add: shapes {self.shape(a)} and {self.shape(b)} differ")
        name = name or f"add{len(self.nodes)}"
        y = self._act(f"{name}/out", self.shape(a))
        self.nodes.append(Node(name, "Add", (a, b), (), (y,)))
        return y

    def concat(self, xs: list[str], name: str | None = None) -> str:
        shapes = [self.shape(x) for x in xs]
        if len({s[:3] for s in shapes}) != 1:
            raise ModelError(f"concat: spatial shapes differ: {shapes}")
        name = name or f"concat{len(self.nodes)}"
        y = self._act(f"{name}/out", (*shapes[0][:3], sum(s[3] for s in shapes)))
        self.nodes.append(Node(name, "Concat", tuple(xs), (), (y,), 0,
                               {"rows_axis": False, "axis": 3}))
        return y

    def softmax(self, x: str, name: str = "softmax") -> str:
        y = self._act(f"{name}/out", self.shape(x))
        self.nodes.append(Node(name, "Softmax", (x,), (), (y,)))
        return y

    def build(self, outputs: list[str]) -> Graph:
        g = Graph(self.name, self.tensors, self.nodes, self.inputs, outputs, "builtin")
        return g.validate()


def make_divisible(v: float, divisor: int = 8) -> int:
    """Channel rounding used by the MobileNetV2 reference code (never below 90% of v)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def mobilenet_v1(alpha: float = 1.0, resolution: int = 224, dtype: str = "int8",
                 classes: int = 1000) -> Graph:
    def depth(c: int) -> int:  # TF-slim: max(int(c * multiplier), min_depth=8)
        return max(int(c * alpha), 8)

    b = GraphBuilder(f"mobilenet_v1_{alpha:g}_{resolution}", dtype)
    x = b.conv(b.input(resolution, resolution, 3), depth(32), 3, 2, name="conv0")
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
              (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
    for i, (c, s) in enumerate(blocks, start=1):
        x = b.conv(x, 0, 3, s, depthwise=True, name=f"block{i}/dw")
        x = b.conv(x, depth(c), 1, name=f"block{i}/pw")
    x = b.fc(b.global_pool(x), classes)
    return b.build([b.softmax(x)])


def mobilenet_v2(alpha: float = 1.0, resolution: int = 224, dtype: str = "int8",
                 classes: int = 1000) -> Graph:
    b = GraphBuilder(f"mobilenet_v2_{alpha:g}_{resolution}", dtype)
    x = b.conv(b.input(resolution, resolution, 3), make_divisible(32 * alpha), 3, 2,
               name="conv0")
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]
    block = 0
    for t, c, n, s in settings:
        out_c = make_divisible(c * alpha)
        for i in range(n):
            block += 1
            stride = s if i == 0 else 1
            in_c = b.shape(x)[3]
            y = x
            if t != 1:
                y = b.conv(y, in_c * t, 1, name=f"block{block}/expand")
            y = b.conv(y, 0, 3, stride, depthwise=True, name=f"block{block}/dw")
            y = b.conv(y, out_c, 1, name=f"block{block}/project")
            x = b.add(x, y, name=f"block{block}/add") if stride == 1 and in_c == out_c else y
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = b.conv(x, last, 1, name="conv_last")
    x = b.fc(b.global_pool(x), classes)
    return b.build([b.softmax(x)])


def _basic_block(b: GraphBuilder, x: str, c: int, stride: int, name: str) -> str:
    y = b.conv(x, c, 3, stride, name=f"{name}/conv1")
    y = b.conv(y, c, 3, name=f"{name}/conv2")
    if stride != 1 or b.shape(x)[3] != c:
        x = b.conv(x, c, 1, stride, name=f"{name}/shortcut")
    return b.add(x, y, name=f"{name}/add")


def resnet8(dtype: str = "int8", classes: int = 10) -> Graph:
    """MLPerf Tiny image classification (CIFAR-10, 32x32x3)."""
    b = GraphBuilder("resnet8", dtype)
    x = b.conv(b.input(32, 32, 3), 16, 3, name="conv0")
    for i, (c, s) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        x = _basic_block(b, x, c, s, f"stack{i}")
    x = b.fc(b.global_pool(x), classes)
    return b.build([b.softmax(x)])


def resnet18(resolution: int = 224, dtype: str = "int8", classes: int = 1000) -> Graph:
    b = GraphBuilder(f"resnet18_{resolution}", dtype)
    x = b.conv(b.input(resolution, resolution, 3), 64, 7, 2, name="conv1")
    x = b.pool(x, 3, 2, name="maxpool", pad=1)  # 112 -> 56, as published (He et al. 2016)
    for i, (c, s) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=2):
        x = _basic_block(b, x, c, s, f"layer{i}.0")
        x = _basic_block(b, x, c, 1, f"layer{i}.1")
    x = b.fc(b.global_pool(x), classes)
    return b.build([b.softmax(x)])


def ds_cnn(dtype: str = "int8", classes: int = 12) -> Graph:
    """MLPerf Tiny keyword spotting DS-CNN (49x10 MFCC input, 64 channels)."""
    b = GraphBuilder("ds_cnn", dtype)
    x = b.conv(b.input(49, 10, 1), 64, (10, 4), 2, name="conv0")
    for i in range(1, 5):
        x = b.conv(x, 0, 3, depthwise=True, name=f"block{i}/dw")
        x = b.conv(x, 64, 1, name=f"block{i}/pw")
    x = b.fc(b.global_pool(x), classes)
    return b.build([b.softmax(x)])


@dataclass(frozen=True)
class Builtin:
    """A generator: its parameter names (in name order), defaults and a description."""

    make: Callable[..., Graph]
    params: tuple[str, ...]
    defaults: tuple[float, ...]
    description: str


BUILTINS: dict[str, Builtin] = {
    "mobilenet_v1": Builtin(mobilenet_v1, ("alpha", "resolution"), (1.0, 224),
                            "MobileNetV1, ImageNet; name_ALPHA_RES, e.g. mobilenet_v1_0.25_128"),
    "mobilenet_v2": Builtin(mobilenet_v2, ("alpha", "resolution"), (1.0, 224),
                            "MobileNetV2, ImageNet; name_ALPHA_RES, e.g. mobilenet_v2_0.35_96"),
    "resnet8": Builtin(resnet8, (), (), "ResNet-8, CIFAR-10 32x32 (MLPerf Tiny IC)"),
    "resnet18": Builtin(resnet18, ("resolution",), (224,), "ResNet-18, ImageNet; name_RES"),
    "ds_cnn": Builtin(ds_cnn, (), (), "DS-CNN keyword spotting, 49x10 MFCC (MLPerf Tiny KWS)"),
}


def builtin_graph(spec: str, dtype: str = "int8") -> Graph:
    """The graph for a built-in name such as `mobilenet_v2_0.5_160` (ModelError if unknown)."""
    for base in sorted(BUILTINS, key=len, reverse=True):
        if spec != base and not spec.startswith(base + "_"):
            continue
        gen = BUILTINS[base]
        parts = spec[len(base) + 1:].split("_") if spec != base else []
        if len(parts) > len(gen.params):
            break
        values: list[float] = list(gen.defaults)
        for i, part in enumerate(parts):
            try:
                values[i] = float(part) if gen.params[i] == "alpha" else int(part)
            except ValueError:
                raise ModelError(
                    f"built-in '{spec}': {gen.params[i]} '{part}' is not a number"
                ) from None
        kwargs = dict(zip(gen.params, values, strict=True))
        if kwargs.get("alpha", 1.0) <= 0 or kwargs.get("resolution", 32) < 32:
            raise ModelError(f"built-in '{spec}': alpha must be > 0 and resolution >= 32")
        return gen.make(**kwargs, dtype=dtype)
    names = ", ".join(sorted(BUILTINS))
    raise ModelError(f"unknown built-in model '{spec}' (known: {names})")
