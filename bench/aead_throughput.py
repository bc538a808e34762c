"""Seal and open throughput of the store's AEAD (AES-128-GCM, firmware/SPEC.md §4a): the C
library's port (Mbed TLS 2.28, firmware/port/aead_mbedtls.c) against the Python model's
(`cryptography`, OpenSSL), in one run, and what encryption adds to a put and a get in each engine.

    python bench/aead_throughput.py [--seconds S]

Primitives: chunks of 256 B, 4 KiB and 64 KiB sealed and opened in place of a store's buffer;
C runs its loop in one call (firmware/port/simport.c fswsim_aead_loop), Python calls
`Aead.seal`/`Aead.open` per chunk. Store: 4 KiB puts then gets on a 1 MiB NOR FlashSim with and
without a key, in each engine (flash time is simulated, so the wall time is the CPU's). Both
are host-CPU figures (this machine's AES-NI, no MCU): they compare the engines and show the
overhead, they do not predict a Cortex-M4 (analyzer's cost model does that). Prints a table and
one JSON line.
"""

from __future__ import annotations

import argparse
import ctypes as C
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flashswap import FlashSim, Store  # noqa: E402
from flashswap.store.aead import Aead, assoc, nonce  # noqa: E402
from flashswap.store.c_engine import CStore, library  # noqa: E402

KEY = bytes(range(16))
SIZES = (256, 4096, 65536)


def _rate(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def python_rate(size: int, seal: bool, budget: float) -> float:
    """MB/s of Aead.seal or Aead.open on `size`-byte chunks."""
    a = Aead(KEY)
    n, ad, data = nonce(7, 0), assoc(1, 4, 1, size + 16, 0, 7, 0x40), bytes(size)
    sealed = a.seal(n, ad, data)
    reps, t = 0, 0.0
    while t < budget:
        batch = max(1, reps)
        t0 = time.perf_counter()
        for _ in range(batch):
            if seal:
                a.seal(n, ad, data)
            else:
                a.open(n, ad, sealed)
        t += time.perf_counter() - t0
        reps += batch
    return _rate(size * reps, t)


def c_rate(size: int, seal: bool, budget: float) -> float:
    """MB/s of the Mbed TLS port's seal or open, looped in C."""
    lib = library()
    lib.fswsim_aead_loop.argtypes = [C.c_void_p, C.c_int, C.c_void_p, C.c_void_p, C.c_uint32,
                                     C.c_uint32]
    st = CStore(FlashSim.from_part("W25Q128JV", capacity=1 << 20), 4096, max_keys=16, key=KEY)
    buf, out = C.create_string_buffer(size), C.create_string_buffer(size + 16)
    reps, t = 1, 0.0
    while t < budget:
        t0 = time.perf_counter()
        rc = lib.fswsim_aead_loop(C.byref(st.cfg), int(seal), buf, out, size, reps)
        t = time.perf_counter() - t0
        if rc:
            raise RuntimeError(f"AEAD callback failed: {rc}")
        reps *= 2
    return _rate(size * (reps // 2), t)


def store_rate(engine: str, key: bytes | None, n: int = 200) -> tuple[float, float]:
    """MB/s of 4 KiB puts and of gets on a 1 MiB NOR store (wall time: the CPU's)."""
    flash = FlashSim.from_part("W25Q128JV", capacity=1 << 20)
    st = Store.format(flash, engine=engine, key=key, segment_size=4096)
    data = bytes(range(256)) * 16
    t0 = time.perf_counter()
    for i in range(n):
        st.put(i % 32, data)
    t1 = time.perf_counter()
    for i in range(n):
        st.get(i % 32)
    t2 = time.perf_counter()
    return _rate(4096 * n, t1 - t0), _rate(4096 * n, t2 - t1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.2, help="time per figure (default 0.2)")
    a = ap.parse_args()
    rows = []
    print(f"{'op':<6} {'chunk':>7} {'C MB/s':>9} {'Python MB/s':>12} {'C/Python':>9}")
    for size in SIZES:
        for seal in (True, False):
            c, p = c_rate(size, seal, a.seconds), python_rate(size, seal, a.seconds)
            op = "seal" if seal else "open"
            rows.append({"op": op, "chunk": size, "c_mbps": round(c, 1),
                         "python_mbps": round(p, 1), "c_over_python": round(c / p, 3)})
            print(f"{op:<6} {size:>7} {c:>9.1f} {p:>12.1f} {c / p:>9.2f}")
    store = {}
    print(f"\n{'engine':<7} {'put MB/s':>9} {'enc put':>8} {'ratio':>6} {'get MB/s':>9} "
          f"{'enc get':>8} {'ratio':>6}")
    for engine in ("c", "python"):
        (pp, pg), (ep, eg) = store_rate(engine, None), store_rate(engine, KEY)
        store[engine] = {"put_mbps": round(pp, 2), "put_enc_mbps": round(ep, 2),
                         "get_mbps": round(pg, 2), "get_enc_mbps": round(eg, 2)}
        print(f"{engine:<7} {pp:>9.2f} {ep:>8.2f} {ep / pp:>6.2f} {pg:>9.2f} {eg:>8.2f} "
              f"{eg / pg:>6.2f}")
    print(json.dumps({"bench": "aead_throughput", "suite": "AES-128-GCM",
                      "c": "Mbed TLS 2.28 port", "python": "cryptography",
                      "primitives": rows, "store_4k": store}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
