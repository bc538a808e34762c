"""Model import: ONNX, TFLite and built-in generators, all into one internal `Graph`."""

from __future__ import annotations

import os

from flashswap.errors import ModelError
from flashswap.model.builtin import BUILTINS, builtin_graph
from flashswap.model.graph import ACTIVATION_DTYPES, Graph, Node, Tensor

__all__ = ["ACTIVATION_DTYPES", "BUILTINS", "Graph", "Node", "Tensor", "load_model"]


def load_model(spec: str, dtype: str = "int8") -> Graph:
    """`spec` is a .onnx or .tflite path, or `builtin:NAME`; activations are `dtype`."""
    if dtype not in ACTIVATION_DTYPES:
        raise ModelError(f"unsupported activation dtype '{dtype}' "
                         f"(choose {', '.join(ACTIVATION_DTYPES)})")
    if spec.startswith("builtin:"):
        return builtin_graph(spec[len("builtin:"):], dtype)
    ext = os.path.splitext(spec)[1].lower()
    if ext not in (".onnx", ".tflite"):
        raise ModelError(f"model '{spec}': expected a .onnx or .tflite file, or builtin:NAME")
    if not os.path.isfile(spec):
        raise ModelError(f"model '{spec}': no such file")
    if ext == ".onnx":
        from flashswap.model.onnx_import import load_onnx

        return load_onnx(spec, dtype)
    from flashswap.model.tflite_import import load_tflite

    return load_tflite(spec, dtype)
