"""Builds the C library (firmware/) into the package at install time, for Store(engine="c").

Metadata lives in pyproject.toml; this file only adds the extension. The build is the one
recipe in flashswap/store/c_build.py (also used by the on-demand build and the firmware
Makefile), loaded by path: the package's dependencies need not be installed yet. The extension
is optional: without a C compiler the install goes on, and the engine is compiled on first use
from a source checkout (flashswap/store/c_engine.py) or reports that it is unavailable. The
module is loaded by path through ctypes; its Python init function exists only so that it is a
valid extension module.
"""

import importlib.util
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("c_build", ROOT / "flashswap/store/c_build.py")
assert _spec is not None and _spec.loader is not None
c_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(c_build)


class BuildLibrary(build_ext):
    """Compiles the extension with c_build's command instead of setuptools' own flags."""

    def build_extension(self, ext: Extension) -> None:
        try:
            c_build.build_extension(Path(self.get_ext_fullpath(ext.name)))
        except c_build.BuildError as e:
            raise CompileError(str(e)) from None  # optional: setuptools warns and goes on


setup(
    ext_modules=[
        Extension(
            "flashswap.store._flashswap_c",
            # for setuptools' bookkeeping (sdist, up-to-date checks); BuildLibrary compiles
            sources=[p.relative_to(ROOT).as_posix() for p in c_build.sources()]
            + ["firmware/port/pymodule.c"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildLibrary},
)
