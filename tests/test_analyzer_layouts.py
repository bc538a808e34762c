"""The engine registry, littlefs's file layouts and the tensors they are built on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzer.device import ReplayFlash
from analyzer.engine_base import Engine
from analyzer.engine_littlefs import LittlefsChunkEngine
from analyzer.engine_littlefs_tensor import LittlefsTensorEngine
from analyzer.engines import ENGINES, engine_classes, get_engine, select, stores, variants_of
from analyzer.lifetime import Options, analyze, plan_jobs
from analyzer.replay import Replayer
from analyzer.synth import write_chain_trace
from analyzer.tensors import TensorMap, tensor_map
from analyzer.workload import Workload
from flashswap.errors import InputError
from flashswap.parts import get_part

ROOT = Path(__file__).resolve().parent.parent
NOR, NAND = "W25Q128JV", "W25N01GV"


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Workload:
    return Workload.load(write_chain_trace(tmp_path_factory.mktemp("lay") / "c.bin",
                                           (16384, 8192, 4096, 1000), chunk=4096))


def test_registry_declares_every_engine_once() -> None:
    """One line per engine in ENGINES; each class carries its name, storage layer, variant,
    replay cost and model, and builds itself."""
    classes = engine_classes()
    assert list(classes) == ["flashswap", "littlefs-tensor", "littlefs-chunk",
                             "littlefs-prealloc", "naive"]
    assert len(classes) == len(ENGINES)
    for name, cls in classes.items():
        assert issubclass(cls, Engine) and cls.name == name
        assert cls.store in ("flashswap", "littlefs", "naive")
        assert cls.replay_cost >= 1 and cls.model in ("leveled", "circulating", "periodic")
    assert stores() == ("flashswap", "littlefs", "naive")
    assert variants_of("littlefs") == ("tensor", "chunk", "prealloc")
    assert get_engine("littlefs") is LittlefsTensorEngine  # a layer's default: its first
    assert select("littlefs", ("all",)) == [classes[f"littlefs-{v}"]
                                            for v in ("tensor", "chunk", "prealloc")]
    with pytest.raises(InputError, match="unknown store 'fat'"):
        get_engine("fat")


def test_jobs_try_each_layout_and_the_nor_block() -> None:
    """On NOR littlefs runs with the 4 KiB sector and the 64 KiB block; on NAND with its
    block; one job per selected layout."""
    opt = Options(variants={"littlefs": ("tensor", "prealloc")})
    jobs = plan_jobs([NOR, NAND], ["littlefs"], opt)
    assert jobs == [
        (NOR, "littlefs-tensor", (("block_size", 4096),)),
        (NOR, "littlefs-tensor", (("block_size", 65536),)),
        (NOR, "littlefs-prealloc", (("block_size", 4096),)),
        (NOR, "littlefs-prealloc", (("block_size", 65536),)),
        (NAND, "littlefs-tensor", (("block_size", 131072),)),
        (NAND, "littlefs-prealloc", (("block_size", 131072),)),
    ]


def test_the_analyzer_does_not_import_the_cli() -> None:
    """analyzer/ depends on flashswap's core, never on flashswap.cli (issue 19)."""
    mods = sorted(p.stem for p in (ROOT / "analyzer").glob("*.py") if p.stem != "__init__")
    code = ("import importlib, sys\n"
            f"for m in {mods!r}: importlib.import_module('analyzer.' + m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('flashswap.cli')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       check=True)
    assert r.stdout.strip() == "[]"


def _without_table(wl: Workload) -> Workload:
    md = dict(wl.metadata, tensors=[])
    return Workload(wl.name, md, wl.prologue, wl.inferences, wl.max_chunk, wl.key_sizes,
                    wl.peak_live_bytes, wl.peak_live_chunks, wl.records)


@pytest.mark.parametrize("name", ["mobilenet_v2_128k", "alexnet_256k", "densenet121_256k",
                                  "resnet50_512k"])
def test_inferred_tensors_are_the_tables(name: str) -> None:
    """Without the tensor table, tensors are inferred from the record order; each inferred
    tensor is one of the table's or (two written back to back, the first ending on a whole
    chunk) several consecutive ones: never a part of one."""
    wl = Workload.load(ROOT / "traces" / f"{name}.bin")
    table = wl.tensors
    assert table.source == "table"
    got = _without_table(wl).tensors
    assert got.source == "inferred"
    starts = {k[0] for k in table.keys}
    for keys in got.keys:
        assert keys[0] in starts
        assert keys == list(range(keys[0], keys[-1] + 1))
        assert keys[-1] + 1 in starts or keys[-1] == max(wl.key_sizes)
    merged = len(table.keys) - len(got.keys)
    assert 0 <= merged <= max(1, len(table.keys) // 10)
    if name in ("mobilenet_v2_128k", "alexnet_256k"):
        assert got.keys == table.keys
    assert sum(got.sizes) == sum(table.sizes) == sum(wl.key_sizes.values())


def test_inferred_tensors_of_a_synthetic_chain(chain) -> None:
    """Each layer's chunks are one tensor: its run of keys ends when the next layer reads
    them back."""
    t = chain.tensors
    assert t.source == "inferred"
    assert t.keys == [[0, 1, 2, 3], [4, 5], [6], [7]]
    assert t.sizes == [16384, 8192, 4096, 1000]
    assert t.tensor_of(5) == (1, 4096)
    ops = [(1, 0, 4096), (1, 1, 4096), (1, 2, 100), (1, 3, 4096), (2, 3, 10), (1, 4, 4096)]
    assert tensor_map({}, {0: 4096, 1: 4096, 2: 100, 3: 4096, 4: 4096}, ops).keys == [
        [0, 1, 2], [3], [4]]


def _counters(f: ReplayFlash) -> tuple:
    return (f.erase_counts.tolist(), f.program_bytes.tolist(), f.ops["programs"],
            f.ops["erases"])


@pytest.mark.parametrize("part, cap", [(NOR, 512 * 1024), (NAND, 2 << 20)])
def test_tensors_of_one_chunk_cost_what_files_per_chunk_cost(chain, part, cap) -> None:
    """A file per tensor whose tensors are single chunks writes and erases exactly what a
    file per chunk does (it only reads less: it keeps the file open between write and read)."""
    singles = TensorMap({k: (i, 0) for i, k in enumerate(sorted(chain.key_sizes))},
                        [[k] for k in sorted(chain.key_sizes)],
                        [chain.key_sizes[k] for k in sorted(chain.key_sizes)], "table")
    out = []
    for make in (lambda f: LittlefsChunkEngine(f), lambda f: LittlefsTensorEngine(f, singles)):
        f = ReplayFlash(get_part(part), cap)
        r = Replayer(make(f), chain)
        for _ in range(20):
            r.step()
        out.append((_counters(f), f.ops["reads"]))
    assert out[0][0] == out[1][0]
    assert out[1][1] < out[0][1]


def test_file_per_tensor_beats_file_per_chunk_on_nand(chain) -> None:
    """On NAND a file per chunk spends a 128 KiB block per 4 KiB chunk; a file per tensor
    fills blocks: far less erased per byte written."""
    got = {}
    for engine in ("littlefs-chunk", "littlefs-tensor", "littlefs-prealloc"):
        res = analyze(chain, NAND, engine, Options(capacity=4 << 20))
        got[engine] = res.data
        assert res.data["config"].endswith("128 KiB blocks")
    assert got["littlefs-chunk"]["erase_amplification"] > \
        2 * got["littlefs-tensor"]["erase_amplification"]
    assert got["littlefs-prealloc"]["engine"]["layout"] == "prealloc"


def test_nor_64k_blocks_erase_whole_blocks(chain) -> None:
    """littlefs on 64 KiB NOR blocks erases with the 64 KiB command only: wear is counted per
    block, and the Weibull projection knows each block holds 16 sectors."""
    res = analyze(chain, NOR, "littlefs-tensor", Options(capacity=1 << 20),
                  config={"block_size": 65536})
    f = res.engine.flash
    assert f.erase_sizes == (65536,) and f.num_blocks == 16 and f.sectors_per_unit == 16
    assert res.data["weibull"]["sectors_per_unit"] == 16
    assert res.data["config"] == "file per tensor, 64 KiB blocks"
    assert np.all(f.erase_counts >= 0)


def test_short_window_agrees_with_the_full_window(chain, monkeypatch) -> None:
    """A file per tensor erases about one 128 KiB block per inference here, so a pass of the
    allocator takes hundreds of inferences: the estimator's short window (uniform data share,
    littlefs's rule for the stints) replays a few dozen, and lands within 2% of the full
    window's three half-passes."""
    import analyzer.steady as steady

    opt = Options(capacity=32 << 20, budget_s=600)
    short = analyze(chain, NAND, "littlefs-tensor", opt)
    assert short.data["replay"]["window_mode"].startswith("short")
    monkeypatch.setattr(steady, "MAX_PASS", 10**9)
    full = analyze(chain, NAND, "littlefs-tensor", opt)
    assert "window_mode" not in full.data["replay"]
    assert short.steady.inferences * 10 < full.steady.inferences
    assert short.data["years"] == pytest.approx(full.data["years"], rel=0.02)
