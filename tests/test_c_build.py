"""The one build recipe of the C engine's library (flashswap/store/c_build.py): its sources are
derived from firmware/, so a new library file is compiled in without an edit, and a change to any
source or header names a new cached library."""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

import pytest

from flashswap.store import c_build

pytestmark = pytest.mark.skipif(c_build.compiler() is None, reason="no C compiler")


def _copy_firmware(dest: Path) -> Path:
    fw = dest / "firmware"
    for d in ("include", "src", "port"):
        shutil.copytree(c_build.FIRMWARE / d, fw / d)
    return fw


def test_a_new_source_file_is_built_in_without_edits(tmp_path: Path) -> None:
    fw = _copy_firmware(tmp_path)
    before = c_build.fingerprint(fw)
    (fw / "src" / "zz_probe.c").write_text(
        '#include "flashswap.h"\nint fsw_zz_probe(int x);\n'
        "int fsw_zz_probe(int x) { return 3 * x + FSW_ERR_NOENT; }\n")
    assert fw / "src" / "zz_probe.c" in c_build.sources(fw)
    assert fw / "src" / "crc32.c" not in c_build.sources(fw)  # the host port's stands in
    assert c_build.fingerprint(fw) != before
    lib = ctypes.CDLL(str(c_build.build(tmp_path / "lib.so", firmware=fw)))
    assert lib.fsw_zz_probe(5) == 15 - 2
    assert lib.fsw_format and lib.fswsim_run and lib.fsw_mbedtls_ctx_size


def test_a_header_change_names_a_new_library(tmp_path: Path) -> None:
    fw = _copy_firmware(tmp_path)
    before = c_build.fingerprint(fw)
    h = fw / "src" / "fsw_priv.h"
    h.write_text(h.read_text() + "\n/* edited */\n")
    assert c_build.fingerprint(fw) != before


def test_a_compiler_error_names_the_compiler_and_the_error(tmp_path: Path) -> None:
    fw = _copy_firmware(tmp_path)
    (fw / "src" / "zz_broken.c").write_text("int fsw_zz_broken(void) { return }\n")
    cc = c_build.compiler()
    with pytest.raises(c_build.BuildError, match=rf"^{cc} failed: .*zz_broken\.c:1:\d+: error"):
        c_build.build(tmp_path / "lib.so", firmware=fw)
    assert not list(tmp_path.glob("*.so"))  # no partial library left behind
