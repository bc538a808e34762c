"""Builds the C library (firmware/) into the package at install time, for Store(engine="c").

Metadata lives in pyproject.toml; this file only adds the extension. It is optional: without
a C compiler the install goes on, and the engine is compiled on first use from a source checkout
(flashswap/store/c_engine.py) or reports that it is unavailable. The module is loaded by path
through ctypes; its Python init function exists only so that it is a valid extension module.
"""

from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
LIB = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "firmware" / "src").glob("*.c")
    if p.name != "crc32.c"  # the host build takes the table-driven CRC-32 instead
)
PORT = ["firmware/port/crc32_host.c", "firmware/port/simport.c", "firmware/port/pymodule.c",
        "firmware/port/aead_mbedtls.c"]
# The AEAD port uses Mbed TLS when its headers are installed (Debian libmbedtls-dev).
MBEDTLS = Path("/usr/include/mbedtls/gcm.h").exists()

setup(
    ext_modules=[
        Extension(
            "flashswap.store._flashswap_c",
            sources=LIB + PORT,
            include_dirs=["firmware/include", "firmware/src", "firmware/port"],
            extra_compile_args=["-std=c99", "-O3"] + ([] if MBEDTLS else ["-DFSW_PORT_NO_MBEDTLS"]),
            libraries=["mbedcrypto"] if MBEDTLS else [],
            optional=True,
        )
    ]
)
