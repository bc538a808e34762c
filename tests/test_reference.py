"""The reference interpreter against LiteRT's reference kernels: every int8 fixture model,
several random inputs, every output byte-identical; for one input, every intermediate tensor
too. The two float32 fixtures (`*_float`) agree within a stated tolerance.

LiteRT (`ai-edge-litert`, in the `test` extra) is required: without it these tests fail, they
do not skip - bit-exactness against it is the point of the kernels.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from flashswap.errors import InputError
from flashswap.exec.reference import run_reference
from flashswap.model import load_model

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MODELS = sorted(p.stem for p in FIXTURES.glob("*.tflite") if not p.stem.endswith("_float"))
FLOAT_MODELS = sorted(p.stem for p in FIXTURES.glob("*_float.tflite"))


def random_input(graph, seed: int) -> np.ndarray:
    t = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(seed)
    if t.dtype == "int8":
        return rng.integers(-128, 128, t.shape, dtype=np.int8)
    return rng.uniform(-4.0, 4.0, t.shape).astype(np.float32)


def litert(path: Path, x: np.ndarray, all_tensors: bool = False) -> Interpreter:
    it = Interpreter(model_path=str(path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=all_tensors)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it


def test_fixtures_are_present_and_small():
    assert set(MODELS) >= {"vww_mobilenet_v1_025_96", "mobilenet_v2_035_96", "ic_resnet8_32",
                           "kws_ds_cnn_49x10", "ad_autoencoder_640", "kws_ds_cnn_float_io",
                           "op_zoo", "op_zoo_act"}
    assert FLOAT_MODELS == ["op_zoo_act_float", "op_zoo_float"]
    total = sum(p.stat().st_size for p in FIXTURES.glob("*.tflite"))
    assert total < 1_700_000


def test_fixtures_cover_every_required_op():
    """What LiteRT finds in the files (the fixtures README lists the same)."""
    ops: Counter = Counter()
    for m in MODELS:
        it = Interpreter(model_path=str(FIXTURES / f"{m}.tflite"))
        ops.update(op["op_name"] for op in it._get_ops_details())
    required = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
                "MAX_POOL_2D", "ADD", "MUL", "CONCATENATION", "RESHAPE", "PAD", "MEAN",
                "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "SHAPE", "STRIDED_SLICE", "PACK",
                # the planner's other int8 ops
                "SUB", "DIV", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "LEAKY_RELU", "LOGISTIC",
                "TANH", "HARD_SWISH", "TRANSPOSE", "L2_NORMALIZATION"}
    assert required <= set(ops), required - set(ops)


@pytest.mark.parametrize("name", MODELS)
def test_outputs_bit_identical_to_litert(name):
    path = FIXTURES / f"{name}.tflite"
    g = load_model(str(path))
    for seed in range(4):
        x = random_input(g, seed)
        out = run_reference(g, {g.inputs[0]: x})[g.outputs[0]]
        it = litert(path, x)
        ref = it.get_tensor(it.get_output_details()[0]["index"])
        assert out.dtype == ref.dtype and out.shape == ref.shape
        np.testing.assert_array_equal(out, ref, err_msg=f"{name}, seed {seed}")


@pytest.mark.parametrize("name", MODELS)
def test_every_intermediate_tensor_bit_identical(name):
    """Not only the output: every activation LiteRT computes, by name (an output saturated by
    softmax could hide a wrong layer)."""
    path = FIXTURES / f"{name}.tflite"
    g = load_model(str(path))
    x = random_input(g, 99)
    store: dict[str, np.ndarray] = {}
    run_reference(g, {g.inputs[0]: x}, tensors=store)
    it = litert(path, x, all_tensors=True)
    index = {d["name"]: d["index"] for d in it.get_tensor_details()}
    compared = 0
    for node in g.nodes:
        out = node.outputs[0]
        ref = it.get_tensor(index[out])
        from flashswap.exec.kernels import from_storage

        mine = from_storage(g, out, store[out])
        np.testing.assert_array_equal(mine.reshape(ref.shape), ref, err_msg=f"{name}: {out}")
        if node.op_type != "Reshape":
            compared += 1
            if ref.size > 64:  # the comparison means something: values spread
                assert len(np.unique(ref)) > 8, f"{name}: {out} is nearly constant"
    assert compared >= 2


@pytest.mark.parametrize("name", FLOAT_MODELS)
def test_float_models_match_litert(name):
    """Float32 TFLite models: every tensor within 1e-5 of the tensor's largest magnitude
    (plus 1e-6). LiteRT's reference kernels sum in float32 in their loop order, ours in
    float64 rounded once: a K-term dot product differs by about sqrt(K) * 2**-24 relative
    (K <= 300 here, ~1e-6); a wrong tap or layout is off by order 1."""
    path = FIXTURES / f"{name}.tflite"
    g = load_model(str(path))
    from flashswap.exec.kernels import from_storage

    for seed in range(3):
        x = np.random.default_rng(seed).uniform(-2, 2, g.tensors[g.inputs[0]].shape)
        x = x.astype(np.float32)
        store: dict[str, np.ndarray] = {}
        run_reference(g, {g.inputs[0]: x}, tensors=store)
        it = litert(path, x, all_tensors=True)
        index = {d["name"]: d["index"] for d in it.get_tensor_details()}
        for node in g.nodes:
            out = node.outputs[0]
            ref = it.get_tensor(index[out])
            mine = from_storage(g, out, store[out]).reshape(ref.shape)
            assert mine.dtype == ref.dtype == np.float32
            np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-5 * np.abs(ref).max() + 1e-6,
                                       err_msg=f"{name}: {out}")


def test_input_type_and_shape_are_checked():
    g = load_model(str(FIXTURES / "kws_ds_cnn_float_io.tflite"))
    x = random_input(g, 0)
    with pytest.raises(InputError, match="has dtype int8; the model takes float32"):
        run_reference(g, {g.inputs[0]: x.astype(np.int8)})
    with pytest.raises(InputError, match=r"has shape \[49, 10\]; the model takes \[1, 49, 10, 1\]"):
        run_reference(g, {g.inputs[0]: x.reshape(49, 10)})
    with pytest.raises(InputError, match="missing model input"):
        run_reference(g, {})
