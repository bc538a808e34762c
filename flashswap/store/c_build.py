"""The one recipe for the C engine's shared library: sources, flags and the compiler command.

Used by setup.py (at install), flashswap/store/c_engine.py (compiled on first use in a source
checkout) and `make -C firmware lib`, so all three build the same library with the same flags.
The sources are derived, not listed: every firmware/src/*.c (a new file is picked up without an
edit) except the portable CRC-32, for which the host port's faster table-driven one stands in,
and the FlashSim and Mbed TLS ports.

Standard library only: setup.py loads this file by path, before the package's dependencies are
installed. As a script it builds the library (`python flashswap/store/c_build.py OUT.so`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
# The shared library is a consumer build: warnings are shown, not fatal (clang's -Wcast-align
# flags the SSE loads of port/crc32_host.c). `make -C firmware test`, `test-m4` and `size` hold
# every firmware/src file to -Werror.
# FSW_TRACE: the engine serves Store.trace through the library's trace hook, which firmware
# builds leave out by default (firmware/README.md).
CFLAGS = ["-std=c99", "-O3", "-Wall", "-Wextra", "-pedantic", "-fPIC", "-DFSW_TRACE"]
INCLUDE = ["include", "src", "port"]  # under firmware/
# Ports: the table-driven CRC-32 (same function, 10x faster), the FlashSim port that runs
# flash operations on the simulator's arrays, the AEAD callbacks over Mbed TLS.
PORTS = ["crc32_host.c", "simport.c", "aead_mbedtls.c"]
REPLACED = {"crc32.c"}  # src files a port replaces on the host
# The AEAD port uses Mbed TLS when its headers are installed (Debian libmbedtls-dev); without
# them it builds a port that refuses keys (the engine then cannot encrypt).
MBEDTLS_HEADER = Path("/usr/include/mbedtls/gcm.h")


class BuildError(Exception):
    """The library could not be compiled: no compiler, or the compiler failed (the message
    names which, with the compiler's first line of errors)."""


def sources(firmware: Path = FIRMWARE) -> list[Path]:
    """The library's .c files and the host ports, in a fixed order."""
    lib = [p for p in sorted((firmware / "src").glob("*.c")) if p.name not in REPLACED]
    return lib + [firmware / "port" / n for n in PORTS]


def headers(firmware: Path = FIRMWARE) -> list[Path]:
    """Every header the sources may include (what a rebuild must notice)."""
    return [p for d in INCLUDE for p in sorted((firmware / d).glob("*.h"))]


def flags(firmware: Path = FIRMWARE) -> tuple[list[str], list[str]]:
    """(compile flags with include directories, link flags)."""
    inc = [f"-I{firmware / d}" for d in INCLUDE]
    if MBEDTLS_HEADER.exists():
        return CFLAGS + inc, ["-lmbedcrypto"]
    return CFLAGS + inc + ["-DFSW_PORT_NO_MBEDTLS"], []


def compiler() -> str | None:
    """$CC, else cc or gcc on PATH; None if there is none."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def command(cc: str, out: Path, extra: tuple[Path, ...] = (), include: tuple[Path, ...] = (),
            firmware: Path = FIRMWARE) -> list[str]:
    """The compiler command that builds the shared library `out` (plus `extra` sources and
    `include` directories)."""
    cflags, ldflags = flags(firmware)
    srcs = [str(p) for p in [*sources(firmware), *extra]]
    return [cc, *cflags, *(f"-I{d}" for d in include), "-shared", *srcs, "-o", str(out),
            *ldflags]


def fingerprint(firmware: Path = FIRMWARE) -> str:
    """A hash of the flags and of every source and header: it changes when a rebuild is due."""
    h = hashlib.sha256(" ".join(sum(flags(firmware), [])).encode())
    for p in sources(firmware) + headers(firmware):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def build(out: Path, cc: str | None = None, extra: tuple[Path, ...] = (),
          include: tuple[Path, ...] = (), firmware: Path = FIRMWARE) -> Path:
    """Compile the library into `out`, atomically (concurrent builders do not clash)."""
    cc = cc or compiler()
    if cc is None:
        raise BuildError("no C compiler (cc or gcc) found")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        r = subprocess.run(command(cc, Path(tmp), extra, include, firmware),
                           capture_output=True, text=True, check=False)
        lines = r.stderr.strip().splitlines()
        # the first error, not gcc's "In function ..." context line before it
        why = next((x for x in lines if " error:" in x), lines[0] if lines else "?") \
            if r.returncode else ""
    except OSError as e:
        why = e.strerror or str(e)
    if why:
        os.unlink(tmp)
        raise BuildError(f"{cc} failed: {why}")
    os.replace(tmp, out)
    return out


def build_cached(dest_dir: Path, cc: str | None = None) -> Path:
    """The library in dest_dir under a name made of the fingerprint: built if absent."""
    out = dest_dir / f"libflashswap-{fingerprint()}.so"
    return out if out.exists() else build(out, cc)


def build_extension(out: Path, cc: str | None = None, firmware: Path = FIRMWARE) -> Path:
    """The library as the package's extension module (setup.py): the same build, plus an
    empty Python init function (firmware/port/pymodule.c) so that it is a valid module."""
    include = Path(sysconfig.get_paths()["include"])
    return build(out, cc, (firmware / "port" / "pymodule.c",), (include,), firmware)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the C engine's shared library.")
    ap.add_argument("out", type=Path, help="the .so to write")
    ap.add_argument("--cc", help="compiler (default: $CC, cc or gcc)")
    a = ap.parse_args(argv)
    print(" ".join(command(a.cc or compiler() or "cc", a.out)))
    try:
        build(a.out, a.cc)
    except BuildError as e:
        print(f"c_build: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
