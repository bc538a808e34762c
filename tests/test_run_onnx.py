"""Float ONNX models through `flashswap run`'s executor, against ONNX Runtime: grouped,
depthwise and plain convolutions split into channel groups (parameters staged a group at a
time), a fully connected layer split by features, and the weights region on flash.

Tolerance: flashswap.exec.verdict's, |ours - ORT| <= 1e-4 x max(1, max |ORT|) (float sums in
another order; a wrong channel, tap or group gives errors of order 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from flashswap.cli.run_cmd import random_inputs
from flashswap.exec.device import Device
from flashswap.exec.verdict import compare, reference_outputs
from flashswap.model import load_model
from flashswap.planner import plan

pytest.importorskip("onnxruntime")


def grouped_model(tmp_path: Path) -> str:
    """x (1,4,12,12) -> conv 3x3 4->8 -> relu -> conv 3x3 8->8 group 2 -> depthwise 3x3
    stride 2 (group 8) -> global average pool -> flatten -> gemm 8->10."""
    rng = np.random.default_rng(4)
    inits = []

    def w(name: str, shape: tuple[int, ...]) -> str:
        fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        a = rng.normal(0, np.sqrt(2.0 / fan), shape).astype(np.float32)
        inits.append(numpy_helper.from_array(a, name))
        return name

    nodes = [
        helper.make_node("Conv", ["x", w("w1", (8, 4, 3, 3)), w("b1", (8,))], ["c1"],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", w("w2", (8, 4, 3, 3)), w("b2", (8,))], ["c2"],
                         pads=[1, 1, 1, 1], group=2),
        helper.make_node("Conv", ["c2", w("w3", (8, 1, 3, 3)), w("b3", (8,))], ["c3"],
                         pads=[1, 1, 1, 1], strides=[2, 2], group=8),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", w("w4", (10, 8)), w("b4", (10,))], ["y"], transB=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 12, 12])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    model = helper.make_model(helper.make_graph(nodes, "grouped", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "grouped.onnx"
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("engine", ["python", "c"])
def test_grouped_convolutions_split_by_channel_groups(tmp_path, engine):
    path = grouped_model(tmp_path)
    g = load_model(path)
    xs = random_inputs(g, 2)
    name, ref = reference_outputs(path, xs)
    md = plan(g, 1 << 30, 64).metadata
    for budget in (md["no_swap_budget"], md["min_feasible_budget"] + 64,
                   md["min_feasible_budget"]):
        p = plan(g, budget, 64)
        r = Device(p, engine=engine, capacity=1 << 20).infer(xs)
        v = compare(name, r.outputs, ref, floating=True)
        assert v.ok, (budget, v)
        assert r.peak_sram == p.metadata["peak_sram"] <= budget
        for f in ("op", "key", "length"):
            assert np.array_equal(r.records[f], p.records[f])
        if budget < md["no_swap_budget"]:
            # channel groups: the grouped conv within its groups, the others across them
            assert p.metadata["max_channel_groups"] > 1
            assert p.metadata["bytes_written_per_inference"] > 0


def test_channel_cuts_respect_convolution_groups():
    from flashswap.planner.params import Needs

    plain = Needs(0, 0, 10, 10)
    assert plain.cuts(0, 10, 4) == [0, 4, 8, 10]
    grouped = Needs(0, 0, 10, 8, group_channels=4, conv_groups=2)
    assert grouped.cuts(0, 8, 3) == [0, 3, 4, 7, 8]  # parts of one group
    assert grouped.cuts(0, 8, 8) == [0, 8]  # whole groups
    assert grouped.cuts(0, 8, 4) == [0, 4, 8]
