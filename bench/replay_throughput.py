"""Replay throughput per engine, and `flashswap lifetime` analysis time per part and engine.

    python bench/replay_throughput.py [TRACE] [--inferences N] [--update-readme]

Part 1 replays N inferences of TRACE (default traces/mobilenet_v2_128k.bin) through each
registered engine (analyzer/engines.py; the flashswap store twice, on its C engine, whole
inferences per call, and on the Python model) on whole default parts and reports trace records
per second and payload MB/s (format and burn-in excluded). Part 2 times each analysis the
default `flashswap lifetime TRACE` runs (one process, one after the other: the steady-state
shortcut, the inferences it replayed). Both are printed as Markdown tables and one JSON line;
`--update-readme` writes them into analyzer/README.md, and the summary into README.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from analyzer.device import ReplayFlash
from analyzer.engines import engine_classes, get_engine
from analyzer.lifetime import Options, analyze, free_key, plan_jobs, replay_capacity
from analyzer.readme import table, update
from analyzer.replay import Replayer
from analyzer.workload import Workload
from flashswap.parts import get_part

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("W25Q128JV", "W25N01GV", "FNNL41A-8Gb", "S-46u-2GB")


def throughput(wl: Workload, part: str, engine: str, impl: str, n: int
               ) -> tuple[float, float] | None:
    p = get_part(part)
    cls = get_engine(engine)
    opt = Options(implementation=impl or "auto")
    config = cls.configs(p, replay_capacity(p, None), opt)[0]
    f = ReplayFlash(cls.flash_part(p, config), replay_capacity(p, None))
    try:
        e = cls.build(f, wl, opt, config)
    except Exception:  # noqa: BLE001 - e.g. the flashswap store refuses managed devices
        return None
    e.burn_in(free_key(wl))
    rep = Replayer(e, wl)
    rep.step()  # first inference: file creation, first touches
    t = time.perf_counter()
    for _ in range(n):
        rep.step()
    dt = time.perf_counter() - t
    return n * wl.records_per_inference / dt, n * wl.bytes_written_per_inference / dt / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", nargs="?", default=str(ROOT / "traces/mobilenet_v2_128k.bin"))
    ap.add_argument("--inferences", type=int, default=3)
    ap.add_argument("--update-readme", action="store_true")
    args = ap.parse_args()
    wl = Workload.load(args.trace)
    print(f"{wl.name}: {wl.records_per_inference:,.0f} records and "
          f"{wl.bytes_written_per_inference / 1e6:.2f} MB written per inference\n")
    out: dict[str, Any] = {"bench": "replay_throughput", "trace": wl.name, "replay": [],
                           "analysis": []}
    runs = [("flashswap", "c"), ("flashswap", "python")] + [
        (name, "") for name in engine_classes() if name != "flashswap"]
    body = []
    for part in PARTS:
        got = {run: throughput(wl, part, run[0], run[1], args.inferences) for run in runs}
        py = got["flashswap", "python"]
        for (engine, impl), g in got.items():
            name = f"{engine} ({'C engine' if impl == 'c' else 'Python model'})" if impl \
                else engine
            if g is None:
                body.append([part, name, "n/a", "n/a", ""])
                continue
            r = f"{g[0] / py[0]:.1f}x" if impl == "c" and py else ""
            body.append([part, name, f"{g[0]:,.0f}", f"{g[1]:,.1f}", r])
            out["replay"].append({"part": part, "engine": engine, "implementation": impl or None,
                                  "records_per_s": g[0], "payload_mb_per_s": g[1]})
    replay_md = table(["part", "engine", "records/s", "payload MB/s", "C / Python"], body)
    print(replay_md)
    body, totals = [], {}
    opt = Options()
    for part, engine, config in plan_jobs(list(PARTS), ["flashswap", "littlefs", "naive"], opt):
        t = time.perf_counter()
        try:
            res = analyze(wl, part, engine, opt, config=dict(config))
        except Exception:  # noqa: BLE001 - the flashswap store on a managed device
            body.append([part, engine, "n/a", "", "", ""])
            continue
        dt = time.perf_counter() - t
        totals[engine] = totals.get(engine, 0.0) + dt
        r = res.data["replay"]
        mode = r["method"] + (" (short window)" if r.get("window_mode") else "")
        body.append([part, engine, res.data["config"], f"{dt:.2f}", r["inferences"], mode])
        out["analysis"].append({"part": part, "engine": engine, "config": res.data["config"],
                                "seconds": dt, "inferences": r["inferences"], "method": mode})
    analysis_md = table(["part", "engine", "configuration", "analysis s",
                         "inferences replayed", "method"], body)
    print("\n" + analysis_md)
    spent = ", ".join(f"{s}: {t:.1f} s" for s, t in totals.items())
    print(f"\n{spent} (all parts, one process)")
    out["totals_s"] = totals
    speed = {(r["part"], r["engine"], r["implementation"]): r["records_per_s"]
             for r in out["replay"]}
    summary = []
    for part in PARTS[:3]:
        c, py = speed.get((part, "flashswap", "c")), speed.get((part, "flashswap", "python"))
        row = [part, f"{c:,.0f}" if c else "n/a", f"{py:,.0f}" if py else "n/a",
               f"{c / py:.1f}x" if c and py else "-"]
        row += [f"{speed[(part, e, None)]:,.0f}" if (part, e, None) in speed else "n/a"
                for e in ("littlefs-tensor", "littlefs-prealloc", "littlefs-chunk", "naive")]
        summary.append(row)
    speed_md = table(["part", "flashswap, C engine", "flashswap, Python model", "C / Python",
                      "littlefs, file per tensor", "littlefs, preallocated",
                      "littlefs, file per chunk", "naive"], summary)
    print("\nrecords/s:\n" + speed_md)
    if args.update_readme:
        update("replay-throughput", replay_md)
        update("replay-analysis", analysis_md)
        update("replay-speed", speed_md)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
