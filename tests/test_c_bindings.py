"""The ctypes bindings in flashswap/store/c_engine.py agree with the C declarations.

ctypes cannot read a header, so the structures and error codes exist twice. Instead of trusting
the copy, this test writes every offset, size and value the bindings assume as a C11
`_Static_assert` and has the host compiler check it against flashswap.h (and simport.c's
simulator state): a field added, moved or retyped on one side only fails here, by name.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from flashswap.store import c_engine
from flashswap.store.c_build import CFLAGS
from flashswap.store.layout import VERSION

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
HEADER = FIRMWARE / "include" / "flashswap.h"
CC = shutil.which("cc") or shutil.which("gcc")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")

# ctypes structure -> the C type it mirrors
STRUCTS = {"_Config": "struct fsw_config", "_Stat": "struct fsw_stat", "_Sim": "struct fswsim",
           "_Info": "struct fsw_info", "_SegInfo": "struct fsw_seg_info",
           "_ChunkInfo": "struct fsw_chunk_info"}


def _asserts() -> list[str]:
    lines = []
    for cls_name, ctype in STRUCTS.items():
        cls = getattr(c_engine, cls_name)
        for name, *_ in cls._fields_:
            off = getattr(cls, name).offset
            lines.append(f'_Static_assert(offsetof({ctype}, {name}) == {off}, '
                         f'"{cls_name}.{name} offset");')
        lines.append(f'_Static_assert(sizeof({ctype}) == {ctypes.sizeof(cls)}, '
                     f'"{cls_name} size");')
    for name, value in _binding_errors().items():
        lines.append(f'_Static_assert(FSW_ERR_{name} == {value}, "E_{name}");')
    lines.append(f'_Static_assert(FSW_SEG_BAD == {c_engine.SEG_BAD}, "SEG_BAD");')
    # the format version of the C library is the Python model's
    lines.append(f'_Static_assert(FSW_DISK_VERSION == {VERSION}, "layout.VERSION");')
    return lines


def _binding_errors() -> dict[str, int]:
    return {n[2:]: v for n, v in vars(c_engine).items()
            if re.fullmatch(r"E_[A-Z]+", n) and isinstance(v, int)}


def _header_errors() -> set[str]:
    return set(re.findall(r"\bFSW_ERR_([A-Z]+)\s*=", HEADER.read_text()))


def test_every_error_code_is_bound() -> None:
    assert set(_binding_errors()) == _header_errors()


def test_structures_and_codes_match_the_c_declarations(tmp_path: Path) -> None:
    probe = tmp_path / "probe.c"
    probe.write_text('#include <stddef.h>\n#include "simport.c"\n' + "\n".join(_asserts()) + "\n")
    run = subprocess.run(
        # the engine's defines (FSW_TRACE: the binding's struct has the trace hook)
        [str(CC), "-std=c11", "-fsyntax-only", *[f for f in CFLAGS if f.startswith("-D")],
         f"-I{FIRMWARE / 'include'}",
         f"-I{FIRMWARE / 'src'}", f"-I{FIRMWARE / 'port'}", str(probe)],
        capture_output=True, text=True)
    failed = re.findall(r'static assertion failed: "([^"]+)"', run.stderr)
    assert run.returncode == 0 and not failed, failed or run.stderr


def test_the_probe_catches_a_wrong_offset(tmp_path: Path) -> None:
    """The check can fail: one wrong offset is reported by name."""
    probe = tmp_path / "probe.c"
    probe.write_text('#include <stddef.h>\n#include "flashswap.h"\n'
                     '_Static_assert(offsetof(struct fsw_config, flash_size) == 1, '
                     '"_Config.flash_size offset");\n')
    run = subprocess.run([str(CC), "-std=c11", "-fsyntax-only", f"-I{FIRMWARE / 'include'}",
                          str(probe)], capture_output=True, text=True)
    assert run.returncode != 0
    assert re.findall(r'static assertion failed: "([^"]+)"', run.stderr) == [
        "_Config.flash_size offset"]
