"""Speed of the store engines: put + get + trim of 4 KiB chunks, payload MB/s.

Runs every available engine on the same workload in one process and prints the ratios, since
these machines are noisy: compare the ratio, not the absolute figure. Engines:
- python: the model (flashswap/store), one Python call per operation;
- c: the C library through ctypes, one call per operation (each call costs microseconds of
  ctypes overhead, as much as the operation);
- c-batch: the C library given the same operations as one array (CStore.run_batch), as the
  analyzer replays inferences; this measures the library itself on the simulated flash.
Every get is checked against the data put (c-batch: the last get of each batch).

    python bench/store_speed.py [--chunks N]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from analyzer.readme import table, update
from flashswap import FlashSim, Store


def engines() -> list[str]:
    out = ["python"]
    try:
        Store.format(FlashSim.from_part("W25Q128JV", capacity=1 << 20), engine="c")
        out += ["c", "c-batch"]
    except Exception:  # noqa: BLE001 - the C engine is optional (no compiler at install)
        pass
    return out


BATCH = 1000  # put+get+trim triples per run_batch call


def run(engine: str, part: str, capacity: int, chunks: int) -> dict[str, float | str]:
    flash = FlashSim.from_part(part, capacity=capacity)
    store = Store.format(flash, engine="python" if engine == "python" else "c")
    data = os.urandom(4096)
    if engine == "c-batch":
        keys = np.arange(BATCH, dtype=np.uint32) % 64
        ops = np.zeros((3 * BATCH, 4), dtype=np.uint32)
        ops[:, 1] = np.repeat(keys, 3)
        ops[:, 0] = np.tile(np.array([1, 2, 3], dtype=np.uint32), BATCH)  # put, get, trim
        ops[0::3, 2] = 4096
        rbuf = ctypes.create_string_buffer(4096)
    t0 = time.perf_counter()
    if engine == "c-batch":
        for _ in range(chunks // BATCH):
            store.run_batch(ops, data, rbuf)
            if rbuf.raw != data:
                raise AssertionError("read back differs")
        chunks = chunks // BATCH * BATCH
    else:
        for i in range(chunks):
            k = i % 64
            store.put(k, data)
            if store.get(k) != data:
                raise AssertionError("read back differs")
            store.trim(k)
    dt = time.perf_counter() - t0
    return {"engine": engine, "part": part, "chunks": chunks, "seconds": dt,
            "mb_per_s": chunks * 4096 / dt / 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--update-readme", action="store_true",
                    help="write the table into README.md between its markers")
    a = ap.parse_args()
    rows = [run(e, p, cap, a.chunks) for p, cap in (("W25Q128JV", 16 << 20),
                                                     ("W25N01GV", 32 << 20),
                                                     ("FNNL41A-8Gb", 1 << 30))
            for e in engines()]
    base = {r["part"]: r["mb_per_s"] for r in rows if r["engine"] == "python"}
    for r in rows:
        r["x_python"] = r["mb_per_s"] / base[r["part"]]
    t = Table(title="store speed: put+get+trim of 4 KiB chunks (python bench/store_speed.py)")
    for c in ("engine", "part", "chunks", "MB/s payload", "x python"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(str(r["engine"]), str(r["part"]), f"{r['chunks']:,}", f"{r['mb_per_s']:.1f}",
                  f"{r['x_python']:.1f}")
    Console().print(t)
    print(json.dumps({"bench": "store_speed", "results": rows}))
    if a.update_readme:
        print(f"updated {update('store-speed', readme_table(rows))}")
    return 0


def readme_table(rows: list[dict]) -> str:
    """README's store-speed table: payload MB/s per part, each engine with its ratio to the
    Python model of the same run."""
    kinds = {"W25Q128JV": "NOR", "W25N01GV": "SLC NAND", "FNNL41A-8Gb": "MLC NAND"}
    names = {"python": "Python model", "c": "C, one ctypes call per operation",
             "c-batch": "C, batch (`CStore.run_batch`)"}
    engines_run = list(dict.fromkeys(str(r["engine"]) for r in rows))
    out = []
    for part in dict.fromkeys(str(r["part"]) for r in rows):
        by = {str(r["engine"]): r for r in rows if r["part"] == part}
        cells: list[object] = [f"{part} ({kinds.get(part, '')})"]
        for e in engines_run:
            r = by[e]
            mbs = f"{r['mb_per_s']:,.0f}"
            cells.append(mbs if e == "python" else f"{mbs} ({r['x_python']:.1f}x)")
        out.append(cells)
    return table(("part", *(names.get(e, e) for e in engines_run)), out)


if __name__ == "__main__":
    sys.exit(main())
