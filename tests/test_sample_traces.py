"""The sample traces in traces/ are current, small, valid, and their README table matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashswap.planner.samples import (
    BUDGETS_KIB,
    TABLE_BEGIN,
    TABLE_END,
    file_name,
    generate,
    repo_traces_dir,
    samples,
    table,
)
from flashswap.trace import Trace

TRACES = repo_traces_dir()


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("samples")
    return out, generate(out)


def test_at_least_ten_real_models_at_both_budgets():
    names = [s.name for s in samples()]
    assert len(names) >= 10
    for s in samples():
        for kib in BUDGETS_KIB:
            path = TRACES / file_name(s, kib)
            assert path.exists(), f"{path} missing: run python -m flashswap.planner.samples"
            # Fused plans of wide networks re-read their parameters patch by patch in channel
            # groups, one WEIGHT_READ and one COMPUTE record each (VGG-19 at 256 KiB: 3.6 MiB).
            assert path.stat().st_size <= 4 << 20


def test_samples_are_current(regenerated):
    out, _ = regenerated
    for p in sorted(out.glob("*.bin")):
        assert p.read_bytes() == (TRACES / p.name).read_bytes(), (
            f"{p.name} is stale: run python -m flashswap.planner.samples")


def test_readme_table_is_current(regenerated):
    _, rows = regenerated
    text = (TRACES / "README.md").read_text()
    block = text[text.index(TABLE_BEGIN) + len(TABLE_BEGIN):text.index(TABLE_END)]
    assert block.strip() == table(rows)


@pytest.mark.parametrize("path", sorted(TRACES.glob("*.bin")), ids=lambda p: p.name)
def test_sample_is_valid(path):
    t = Trace.open(path)
    t.validate_semantics()
    md = t.metadata
    assert md["peak_sram"] <= md["sram_budget"] in (256 * 1024, 512 * 1024)
    assert md["chunk_size"] == 4096 and md["generator"].startswith("flashswap")
    s = t.summary()
    assert s["inferences"] == 1
    assert s["bytes_written_per_inference"] == md["bytes_written_per_inference"]
    assert s["bytes_read_per_inference"] == md["bytes_read_per_inference"]
    assert s["weight_bytes_read_per_inference"] == md["weight_bytes_read_per_inference"]
    if md["sram_budget"] >= md["no_swap_budget"]:
        assert s["ops"]["WRITE"] == 0
