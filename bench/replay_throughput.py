"""Replay throughput per engine, and `flashswap lifetime` wall time per store.

    python bench/replay_throughput.py [TRACE] [--inferences N]

Part 1 replays N inferences of TRACE (default traces/mobilenet_v2_256k.bin) through each
engine on whole default parts and reports trace records per second and payload MB/s
(setup - format, burn-in - excluded); the flashswap store runs twice, on its C engine (whole
inferences per call) and on the Python model, and the ratio is printed. Part 2 times the
analysis `flashswap lifetime` runs for each part and store (one process, steady-state
shortcut, the flashswap store on its default engine), with the inferences it replayed. Both
tables are followed by one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.device import ReplayFlash  # noqa: E402
from analyzer.lifetime import Options, analyze, free_key, make_engine  # noqa: E402
from analyzer.replay import Replayer  # noqa: E402
from analyzer.workload import Workload  # noqa: E402
from flashswap.parts import get_part  # noqa: E402

PARTS = ("W25Q128JV", "W25N01GV", "FNNL41A-8Gb", "S-46u-2GB")
STORES = ("flashswap", "littlefs", "naive")
# (store, flashswap engine) replayed in part 1
ENGINES = (("flashswap", "c"), ("flashswap", "python"), ("littlefs", ""), ("naive", ""))
MANAGED_PARTITION = 64 << 20


def throughput(
    wl: Workload, part: str, store: str, impl: str, n: int
) -> tuple[float, float] | None:
    p = get_part(part)
    cap = MANAGED_PARTITION if p.kind == "managed" else None
    f = ReplayFlash(p, cap)
    try:
        engine = make_engine(store, f, wl, Options(implementation=impl or "auto"))
    except Exception:  # noqa: BLE001 - e.g. the flashswap store refuses managed devices
        return None
    engine.burn_in(free_key(wl))
    rep = Replayer(engine, wl)
    rep.step()  # first inference: directory creation, first touches
    t = time.perf_counter()
    for _ in range(n):
        rep.step()
    dt = time.perf_counter() - t
    records = n * wl.records_per_inference
    return records / dt, n * wl.bytes_written_per_inference / dt / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", nargs="?", default=str(ROOT / "traces/mobilenet_v2_256k.bin"))
    ap.add_argument("--inferences", type=int, default=3)
    args = ap.parse_args()
    wl = Workload.load(args.trace)
    print(f"{wl.name}: {wl.records_per_inference:.0f} records and "
          f"{wl.bytes_written_per_inference / 1e6:.2f} MB written per inference\n")
    print("| part | store | records/s | payload MB/s | C / Python |")
    print("|---|---|---|---|---|")
    out: dict = {"bench": "replay_throughput", "trace": wl.name, "replay": [], "analysis": []}
    for part in PARTS:
        got = {(st, im): throughput(wl, part, st, im, args.inferences) for st, im in ENGINES}
        for (store, impl), g in got.items():
            name = f"{store} ({impl})" if impl else store
            if g is None:
                print(f"| {part} | {name} | n/a | n/a | |")
                continue
            py = got["flashswap", "python"] if impl == "c" else None
            ratio = f"{g[0] / py[0]:.1f}x" if py else ""
            print(f"| {part} | {name} | {g[0]:,.0f} | {g[1]:,.1f} | {ratio} |")
            out["replay"].append({"part": part, "store": store, "engine": impl or None,
                                  "records_per_s": g[0], "payload_mb_per_s": g[1]})
    print("\n| part | store | analysis s | inferences replayed | method |")
    print("|---|---|---|---|---|")
    totals = dict.fromkeys(STORES, 0.0)
    for part in PARTS:
        for store in STORES:
            t = time.perf_counter()
            try:
                res = analyze(wl, part, store, Options())
            except Exception:  # noqa: BLE001
                print(f"| {part} | {store} | n/a | | |")
                continue
            dt = time.perf_counter() - t
            totals[store] += dt
            r = res.data["replay"]
            print(f"| {part} | {store} | {dt:.2f} | {r['inferences']} | {r['method']} |")
            out["analysis"].append({"part": part, "store": store, "seconds": dt,
                                    "inferences": r["inferences"], "method": r["method"]})
    spent = ", ".join(f"{s}: {t:.1f} s" for s, t in totals.items())
    print(f"\n{spent} (all parts, one process)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
