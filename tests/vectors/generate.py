"""Golden flash images of the store, shared by the Python model and the C library.

Each vector is a script of store operations on a small geometry. Running it must leave exactly the
bytes in `<name>.img.gz`. A vector may start from the image of another (`"from"`), which is how
power-cut vectors work: the first stage ends with a torn operation (the simulator's seeded torn
bits), its image is stored, and the second stage mounts that image and goes on — so an
implementation without this simulator's random tearing can still be held to the second stage.

    python tests/vectors/generate.py          # rewrite the images
    python tests/vectors/generate.py --check  # compare, exit 1 on a difference
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

from flashswap import FlashSim, PowerCut, Store

HERE = Path(__file__).resolve().parent


def payload(seed: int, n: int) -> bytes:
    """xorshift32 bytes: easy to reproduce in C (tests/vectors/README.md)."""
    x = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1
    out = bytearray(n)
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x & 0xFF
    return bytes(out)


def run_ops(flash: FlashSim, ops: list[list[Any]], store: Store | None = None,
            key: bytes | None = None) -> Store | None:
    """Apply a vector's operations; returns the store (None after a power cut). `key`: the
    vector's store is encrypted (SPEC §4a)."""
    for op in ops:
        name, args = op[0], op[1:]
        if name == "format":
            store = Store.format(flash, key=key, **args[0])
        elif name == "mount":
            store = Store.mount(flash, key=key)
        elif name == "put":
            key, size, seed = args
            store.put(key, payload(seed, size))
        elif name == "trim":
            store.trim(args[0])
        elif name == "trim_range":
            store.trim_range(args[0], args[1])
        elif name == "sync":
            store.sync()
        elif name == "idle":
            store.idle(args[0])
        elif name == "unmount":
            store.unmount()
        elif name == "cut_after":
            flash.power_cut_after(args[0])
        else:
            raise ValueError(f"unknown vector op {name!r}")
    return store


def vector_key(v: dict[str, Any]) -> bytes | None:
    """The AES-128 key of an encrypted vector (hex in `key`), None for a plaintext one."""
    return bytes.fromhex(v["key"]) if "key" in v else None


def build(name: str, vectors: dict[str, Any], cache: dict[str, bytes]) -> bytes:
    """The image a vector leaves (its `from` vector built first)."""
    if name in cache:
        return cache[name]
    v = vectors[name]
    flash = FlashSim.from_part(v["part"], capacity=v["capacity"], seed=v.get("seed", 0))
    if "from" in v:
        _load_image(flash, build(v["from"], vectors, cache))
    try:
        run_ops(flash, v["ops"], key=vector_key(v))
        if v.get("expect_cut"):
            raise AssertionError(f"vector {name}: the power cut did not happen")
    except PowerCut:
        if not v.get("expect_cut"):
            raise
        flash.power_cut_after(None)
    cache[name] = flash.image()
    return cache[name]


def _load_image(flash: FlashSim, image: bytes) -> None:
    """Start a simulator from an image: program its non-erased pages (a new one is erased)."""
    page = flash.page_size
    for a in range(0, len(image), page):
        chunk = image[a : a + page]
        if chunk != b"\xff" * len(chunk):
            flash.program(a, chunk)
    flash.reset_counters()


def main() -> int:
    vectors = json.loads((HERE / "vectors.json").read_text())
    check = "--check" in sys.argv
    cache: dict[str, bytes] = {}
    bad = 0
    for name in vectors:
        img = build(name, vectors, cache)
        path = HERE / f"{name}.img.gz"
        if check:
            if gzip.decompress(path.read_bytes()) != img:
                print(f"{name}: image differs")
                bad += 1
        else:
            path.write_bytes(gzip.compress(img, compresslevel=9, mtime=0))
            print(f"{name}: {len(img)} bytes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
