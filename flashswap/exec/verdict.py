"""The reference output of a model and the comparison with the executor's.

- A .tflite model runs in LiteRT (`ai-edge-litert`) with its reference kernels
  (`OpResolverType.BUILTIN_REF`): an integer model's output must be bit-identical (a float
  input or output at its ends, QUANTIZE / DEQUANTIZE, included).
- A model that computes in float (float weights: a float TFLite model, a float ONNX model run
  in ONNX Runtime on the CPU) sums in another order than the reference, which changes the last
  bits, so its output must be within `FLOAT_TOLERANCE` x max(1, max |reference|) of it,
  element by element.
- Neither installed (or a built-in model, which has no weights): no verdict (None).
- Installed but unable to run the model (LiteRT refuses some files TFLite Micro runs, e.g. a
  bias whose quantized dimension is its filter's): `ReferenceUnavailable`, no verdict either,
  with the reference's own reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from flashswap.errors import FlashswapError

FLOAT_TOLERANCE = 1e-4


class ReferenceUnavailable(FlashswapError):
    """The reference runtime is installed but cannot run this model (the message says why)."""


@dataclass(frozen=True)
class Verdict:
    reference: str  # what produced the reference output
    bit_exact: bool  # every output identical, bit for bit
    max_abs_diff: float
    tolerance: float | None  # None: bit-exact required (integer outputs)

    @property
    def ok(self) -> bool:
        if self.tolerance is None:
            return self.bit_exact
        return self.max_abs_diff <= self.tolerance


def reference_outputs(path: str, inputs: list[np.ndarray]) -> tuple[str, list[np.ndarray]] | None:
    """(reference name, outputs) for the model file at `path`, or None if no reference runs."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".tflite":
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:
            return None
        import ai_edge_litert

        name = f"LiteRT {getattr(ai_edge_litert, '__version__', '')} reference kernels"
        name = name.replace("  ", " ")
        try:
            it = Interpreter(model_path=path,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
            it.allocate_tensors()
            for d, x in zip(it.get_input_details(), inputs, strict=True):
                it.set_tensor(d["index"], x)
            it.invoke()
            outs = [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]
        except (ValueError, RuntimeError) as e:  # LiteRT's errors for a model it refuses
            raise ReferenceUnavailable(f"{name} cannot run the model: {_first(e)}") from None
        return name, outs
    if ext == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        name = f"ONNX Runtime {ort.__version__} (CPU)"
        try:
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            feeds = {d.name: x for d, x in zip(sess.get_inputs(), inputs, strict=True)}
            outs = [np.asarray(y) for y in sess.run(None, feeds)]
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ReferenceUnavailable(f"{name} cannot run the model: {_first(e)}") from None
        return name, outs
    return None


def _first(e: BaseException) -> str:
    """The start of a runtime's message on one line: LiteRT runs its messages together
    ("...Was 3.Tensor 33 has...") and repeats them per tensor; the first two say what and
    where."""
    parts = re.split(r"(?<=\.)(?=[A-Za-z])", " ".join(str(e).split()))
    text = " ".join(parts[:2])
    return text if len(text) <= 200 else text[:197] + "..."


def float_compute(graph: object) -> bool:
    """True when the model's weights are float: its sums are float sums."""
    g = graph
    return any(g.tensors[w].dtype.startswith("float")  # type: ignore[attr-defined]
               for n in g.nodes for w in n.weights)  # type: ignore[attr-defined]


def compare(reference: str, outputs: list[np.ndarray], ref: list[np.ndarray],
            floating: bool) -> Verdict:
    """`floating`: the model computes in float (`float_compute`); else bit-exact."""
    exact = all(a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
                for a, b in zip(outputs, ref, strict=True))
    diffs = [float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
             if a.shape == b.shape else float("inf") for a, b in zip(outputs, ref, strict=True)]
    tol = None
    if floating:
        scale = max([1.0, *(float(np.max(np.abs(b), initial=0.0)) for b in ref)])
        tol = FLOAT_TOLERANCE * scale
    return Verdict(reference, exact, max(diffs, default=0.0), tol)
