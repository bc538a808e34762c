"""The C library's files call each other one way, down the layer order documented at the top
of firmware/src/fsw_priv.h, and only the public header is included outside src/
(firmware/tests/layers.py builds the call graph with gcc -fcallgraph-info=su)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
GCC = shutil.which("gcc")

pytestmark = pytest.mark.skipif(GCC is None, reason="gcc not found: the call graph needs "
                                "gcc's -fcallgraph-info")


def _layers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fsw_layers", FIRMWARE / "tests" / "layers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_calls_and_includes_go_down_the_layers() -> None:
    layers = _layers()
    src = FIRMWARE / "src"
    assert layers.layers(src)[:3] == ["crc32.c", "log.c", "aead.c"]
    assert layers.include_violations(src) + layers.call_violations(src, GCC) == []


def test_the_check_reports_a_call_up_and_a_cycle(tmp_path: Path) -> None:
    """The check can fail: a lower file calling a higher one is reported by name, with the
    cycle it closes; an unlisted file and a private header included by a port are too."""
    layers = _layers()
    src, inc, port = tmp_path / "src", tmp_path / "include", tmp_path / "port"
    for d in (src, inc, port):
        d.mkdir()
    (inc / "flashswap.h").write_text("int fsw_api(void);\n")
    (src / "fsw_priv.h").write_text('/* Layers, lowest first:\n *   low.c  bytes\n *   high.c '
                                    ' the API\n */\n#include "flashswap.h"\nint fsw_low(int n);\n'
                                    'int fsw_high(int n);\n')
    (src / "low.c").write_text('#include "fsw_priv.h"\n'
                               "int fsw_low(int n) { return n ? fsw_high(n - 1) : 0; }\n")
    (src / "high.c").write_text('#include "fsw_priv.h"\n'
                                "int fsw_high(int n) { return fsw_low(n); }\n")
    (src / "extra.c").write_text('#include "fsw_priv.h"\n#include "flashswap.h"\n'
                                 "int fsw_api(void) { return fsw_low(1); }\n")
    (port / "port.c").write_text('#include "fsw_priv.h"\n')
    assert layers.include_violations(src) == [
        "extra.c includes flashswap.h (a source file includes only fsw_priv.h)",
        "port/port.c includes fsw_priv.h (only the public API outside src/)"]
    assert layers.call_violations(src, GCC) == [
        "extra.c: not in the Layers comment of fsw_priv.h",
        "cycle: high.c <-> low.c",
        "low.c -> high.c: fsw_low calls fsw_high (high.c is not below low.c)"]
