"""The CLI imports only what the command being run needs (flashswap/cli/__init__.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Runs a command in a fresh interpreter and prints which heavy packages it loaded.
PROBE = """
import contextlib, io, sys
from flashswap.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main({argv!r})
    except SystemExit:
        pass
print(sorted(m for m in ("analyzer", "scipy", "onnx", "tflite", "littlefs") if m in sys.modules))
"""


def _loaded(argv: list[str]) -> str:
    r = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [["parts"], ["--version"], ["--help"], []])
def test_light_commands_do_not_import_the_analyzer_or_scipy(argv):
    assert _loaded(argv) == "[]"


def test_lifetime_imports_the_analyzer():
    # the probe must be able to see an import, or the test above proves nothing
    assert "analyzer" in _loaded(["lifetime", "--help"])


def test_planning_does_not_import_the_analyzer(tmp_path):
    """The planner prices compute at the default MCU's rate, a table in flashswap core
    (flashswap/mcus.py): `trace plan` and `run` plan without the analyzer."""
    out = tmp_path / "kws.bin"
    loaded = _loaded(["trace", "plan", "builtin:ds_cnn", "--sram", "64KiB", "-o", str(out)])
    assert out.exists() and "analyzer" not in loaded
