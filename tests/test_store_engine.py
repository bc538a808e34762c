"""The store engine registry (flashswap/store/engine.py) and the boundaries around it: engines
are picked by name in one place, the flash probe is shared, and mount's steps leave the store's
state to the class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flashswap import FlashSim, Store
from flashswap.errors import CorruptError, InputError
from flashswap.store import engine
from flashswap.store.config import probe, probe_geometry
from tests.storeutil import C_ERROR, needs_c

STORE = Path(__file__).resolve().parents[1] / "flashswap" / "store"


def _flash() -> FlashSim:
    return FlashSim.from_part("W25Q128JV", capacity=64 * 1024)


def test_registry_names_and_classes() -> None:
    assert engine.names() == ("python", "c")
    assert engine.engine_class("python") is Store


def test_unknown_engine_is_one_line_naming_the_registered_ones() -> None:
    for call in (lambda: engine.format_store("rust", _flash()),
                 lambda: engine.mount_store("rust", _flash()),
                 lambda: Store.format(_flash(), engine="rust"),
                 lambda: Store.mount(_flash(), engine="rust")):
        with pytest.raises(InputError) as e:
            call()
        assert str(e.value) == "unknown store engine 'rust' (available: python, c)"


def test_default_engine_is_c_when_it_loads() -> None:
    assert engine.default_engine() == ("python" if C_ERROR else "c")


def test_registry_format_and_mount_give_the_models_bytes_and_state() -> None:
    a, b = _flash(), _flash()
    via = engine.format_store("python", a, segment_size=4096, ckpt_interval=3)
    direct = Store.format(b, segment_size=4096, ckpt_interval=3)
    for st in (via, direct):
        for k in range(40):
            st.put(k % 7, bytes([k]) * (300 + 97 * k))
        st.trim_range(2, 3)
        st.sync()
    assert a.image() == b.image()
    m = engine.mount_store("python", a)
    assert isinstance(m, Store) and m.keys() == direct.keys() == [0, 1, 4, 5, 6]
    assert {k: m.get(k) for k in m.keys()} == {k: direct.get(k) for k in direct.keys()}
    assert m.stat()["erase_counts"].tolist() == direct.stat()["erase_counts"].tolist()


@needs_c
def test_registry_runs_the_c_engine_on_the_same_bytes() -> None:
    a, b = _flash(), _flash()
    for name, f in (("python", a), ("c", b)):
        st = engine.format_store(name, f, segment_size=4096)
        st.put(3, b"x" * 5000)
        st.sync()
        assert engine.mount_store(name, f).get(3) == b"x" * 5000
    assert a.image() == b.image()


def test_geometry_probe_names_the_mismatch() -> None:
    f = _flash()
    Store.format(f, segment_size=4096).sync()
    first, _ = probe(f)
    assert probe_geometry(f, first).seg_size == 4096
    small = FlashSim.from_part("W25Q128JV", capacity=32 * 1024)
    small.program(0, f.read(0, 4096))  # one segment of a 16-segment store
    for name in ("python",) if C_ERROR else ("python", "c"):
        with pytest.raises(CorruptError, match="^store has 16 segments, flash holds 8$"):
            engine.mount_store(name, small)


def test_mount_steps_never_assign_store_state() -> None:
    """flashswap/store/mount.py computes; `Store._mount` takes the results. No function there
    assigns an attribute of the store it is given (`st.x = ...`, `st.x[i] = ...`)."""
    tree = ast.parse((STORE / "mount.py").read_text())
    bad = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            for sub in ast.walk(t):
                if (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name)
                        and sub.value.id == "st"):
                    bad.append(f"line {node.lineno}")
    assert bad == []
