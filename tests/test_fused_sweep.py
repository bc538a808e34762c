"""The bulk profiles of every run and patch grid agree with evaluating each one alone."""

from __future__ import annotations

import random

import pytest

from flashswap.model import load_model
from flashswap.model.builtin import GraphBuilder
from flashswap.planner.fused.runs import Config, candidates, configs, evaluate
from flashswap.planner.fused.sweep import profiles
from flashswap.planner.steps import build_steps


def check(graph, samples: int, seed: int = 0) -> None:
    sg = build_steps(graph)
    blocks = [sum(b for _, b in s.weights) for s in sg.steps]
    profs = list(profiles(graph, sg, blocks, 24))
    cands = {(c.first, c.last): c for c in candidates(graph, sg, 24)}
    assert set(cands) == {(p.first, p.last) for p in profs}
    rng = random.Random(seed)
    for p in rng.sample(profs, min(samples, len(profs))):
        c = cands[(p.first, p.last)]
        assert set(p.external) == set(c.external)
        assert p.base_macs == sum(c.macs.values())
        for k in rng.sample(range(len(p)), min(6, len(p))):
            cfg = p.configs[k]
            rp = evaluate(c, cfg)
            assert rp.macs == p.macs[k], cfg
            assert rp.patches == p.patches[k], cfg
            reads = sum(blocks[c.step_of[t]] * rp.op_patches(t) for t in c.step_of)
            assert reads == p.weight_reads[k], cfg
            persistent = cfg.cache_cols or (cfg.cache_rows and rp.grid[1] == 1)
            if persistent:
                assert rp.workspace == p.workspace[k], cfg
            else:  # evaluate places transient windows; the profile sums them at their peak
                assert rp.workspace >= p.workspace[k], cfg
            for x in c.external:
                rows = rp.ext_rows[x].extent
                assert rows * c.geo[x].row == p.ext_band[x][k], (cfg, x)


@pytest.mark.parametrize("spec", ["builtin:mobilenet_v2_0.35_96", "builtin:resnet8",
                                  "builtin:ds_cnn"])
def test_profiles_match_evaluate(spec):
    check(load_model(spec), 25)


def test_profiles_match_evaluate_on_pads_and_pools():
    b = GraphBuilder("mix")
    x = b.input(23, 17, 4)
    y = b.conv(x, 8, 3, 2, name="c1")
    y = b.pool(y, 3, 2, name="p1")  # VALID: uneven edges
    z = b.conv(y, 8, 5, 1, depthwise=True, name="dw")
    z = b.add(y, z, name="res")
    z = b.conv(z, 6, (1, 3), 1, name="c2")
    g = b.build([z])
    check(g, 100, seed=3)


def test_config_families():
    from flashswap.planner.fused.runs import Geo

    cf = configs(Geo(8, 4, 1, 1))
    assert Config(8, 4, True, True) in cf and Config(1, 4, True, True) in cf
    assert {(c.cache_rows, c.cache_cols) for c in cf if c.patch_w < 4} == {
        (True, True), (True, False), (False, True), (False, False)}
    with pytest.raises(ValueError, match="patches of 0"):
        evaluate(candidates(load_model("builtin:ds_cnn"), build_steps(
            load_model("builtin:ds_cnn")))[0], Config(0, 1, False, False))
