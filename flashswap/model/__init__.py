"""Model import: ONNX, TFLite and built-in generators, all into one internal `Graph`."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flashswap.errors import ModelError
from flashswap.model.builtin import BUILTINS, builtin_graph
from flashswap.model.graph import ACTIVATION_DTYPES, Graph, Node, Quant, Tensor

__all__ = ["ACTIVATION_DTYPES", "BUILTINS", "Graph", "Node", "Quant", "Tensor", "load_model",
           "parse_input_shapes"]


def parse_input_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]]:
    """`--input-shape NAME=1x96x96x3` values -> {name: shape} (the name may contain '=')."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or []:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise ModelError(f"invalid input shape '{spec}': expected NAME=DIMS, "
                             "e.g. input=1x96x96x3")
        if name in shapes:
            raise ModelError(f"input '{name}' is given two shapes")
        shapes[name] = shape
    return shapes


def load_model(spec: str, dtype: str | None = None,
               input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Graph:
    """`spec` is a .onnx or .tflite path, or `builtin:NAME`.

    Element types come from the model, tensor by tensor. `dtype` is a what-if for planning
    only: built-in graphs (which state no types) take it for their activations (int8 when
    None); a float ONNX or TFLite model takes it as "deployed with `dtype` activations and
    int8 weights", and the graph then plans but cannot be executed; a model that states
    quantized types refuses it. `input_shapes` ({input name: shape}) pins dynamic input
    dimensions.
    """
    if dtype is not None and dtype not in ACTIVATION_DTYPES:
        raise ModelError(f"unsupported activation dtype '{dtype}' "
                         f"(choose {', '.join(ACTIVATION_DTYPES)})")
    if spec.startswith("builtin:"):
        if input_shapes:
            raise ModelError("built-in models have fixed shapes: choose the resolution in "
                             "the name (e.g. builtin:mobilenet_v2_0.35_96)")
        return builtin_graph(spec[len("builtin:"):], dtype or "int8")
    ext = os.path.splitext(spec)[1].lower()
    if ext not in (".onnx", ".tflite"):
        raise ModelError(f"model '{spec}': expected a .onnx or .tflite file, or builtin:NAME")
    if not os.path.isfile(spec):
        raise ModelError(f"model '{spec}': no such file")
    if os.path.getsize(spec) == 0:
        raise ModelError(f"model '{spec}': the file is empty")
    if ext == ".onnx":
        from flashswap.model.onnx_import import load_onnx

        return load_onnx(spec, dtype, input_shapes)
    from flashswap.model.tflite_import import load_tflite

    return load_tflite(spec, dtype, input_shapes)
