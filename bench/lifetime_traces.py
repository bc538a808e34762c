"""`flashswap lifetime` over every sample trace: flashswap against littlefs, part by part.

    python bench/lifetime_traces.py [--parts W25Q128JV,W25N01GV,FNNL41A-8Gb] [--only NAME...]

Runs `flashswap lifetime TRACE --json --store flashswap,littlefs` (the CLI itself, in a
subprocess, with its default options: whole parts, rate 1/min, littlefs block_cycles=100) on
each trace in traces/, and prints per trace and part: flashswap's years and efficiency, the
littlefs years and efficiency, the ratio of the two, and the ratio of their Weibull p1 years
(the 1% point under a per-block endurance distribution: where flashswap's large NOR segments,
retired whole, show), all from the same run. Traces that
write nothing to flash (the model fits in the SRAM budget) are listed as such, and so are
traces whose working set does not fit littlefs on a part (one erase block per chunk file).
The table is followed by a summary per part (ranges over the traces that write) and one JSON
line with every figure.

This is what the issue 6 target "on every sample trace, on NOR and SLC NAND parts: flashswap
efficiency >= 0.95 and years >= 2x littlefs" is checked against; it takes about 12 minutes on a
2-core machine (littlefs-python is nearly all of it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("W25Q128JV", "W25N01GV", "FNNL41A-8Gb")


def run_trace(trace: Path, parts: list[str]) -> tuple[dict[str, Any], float]:
    """The CLI's JSON for one trace, and its wall time."""
    cmd = [sys.executable, "-m", "flashswap", "lifetime", str(trace), "--json",
           "--store", "flashswap,littlefs", "--part", ",".join(parts)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout), wall


def rows_of(doc: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """results[part][store] -> result object, or {"error": message} where the store could not
    run (e.g. the working set does not fit littlefs's one-block-per-file layout)."""
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for r in doc["results"]:
        by.setdefault(r["part"], {})[r["store"]] = r
    for e in doc.get("errors", []):
        by.setdefault(e["part"], {})[e["store"]] = {"error": e["error"]}
    return by


def writes(r: dict[str, Any]) -> bool:
    """True when the store ran and wrote to flash (years are finite)."""
    return "error" not in r and r.get("years") is not None and r.get("ideal_years") is not None


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated catalogue parts")
    ap.add_argument("--only", nargs="*", default=None, help="trace names (stem) to run")
    args = ap.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    traces = sorted((ROOT / "traces").glob("*.bin"))
    if args.only:
        traces = [t for t in traces if t.stem in args.only]
    out: list[dict[str, Any]] = []
    print(f"{'trace':<22} {'part':<12} {'flashswap y':>12} {'eff':>6} {'littlefs y':>11} "
          f"{'eff':>6} {'ratio':>7} {'p1 ratio':>7} {'wall s':>7}")
    for trace in traces:
        doc, wall = run_trace(trace, parts)
        by = rows_of(doc)
        for part in parts:
            fs, lf = by[part]["flashswap"], by[part]["littlefs"]
            row: dict[str, Any] = {"trace": trace.stem, "part": part, "kind": fs["kind"],
                                   "wall_s": round(wall, 1)}
            if "error" in fs:
                raise SystemExit(f"{trace.stem} on {part}: flashswap failed: {fs['error']}")
            if not writes(fs):
                row["writes"] = False
                print(f"{trace.stem:<22} {part:<12} {'writes nothing to flash':>44}")
            else:
                lok = writes(lf)
                ratio = fs["years"] / lf["years"] if lok and lf["years"] else None
                p1 = fs["years_weibull_p1"], lf.get("years_weibull_p1") if lok else None
                p1_ratio = p1[0] / p1[1] if p1[0] and p1[1] else None
                row.update(writes=True, flashswap_years=fs["years"],
                           flashswap_efficiency=fs["efficiency"],
                           littlefs_years=lf["years"] if lok else None,
                           littlefs_efficiency=lf["efficiency"] if lok else None, ratio=ratio,
                           flashswap_weibull_p1=p1[0], littlefs_weibull_p1=p1[1],
                           p1_ratio=p1_ratio, littlefs_error=lf.get("error"))
                tail = (f"{fmt(lf['years'], '11.4g')} {fmt(lf['efficiency'], '6.3f')} "
                        f"{fmt(ratio, '6.2f')}x {fmt(p1_ratio, '6.2f')}x" if lok
                        else f"{'does not fit':>34}")
                print(f"{trace.stem:<22} {part:<12} {fmt(fs['years'], '12.4g')} "
                      f"{fmt(fs['efficiency'], '6.3f')} {tail} {wall:7.1f}")
            out.append(row)
        sys.stdout.flush()
    print()
    print(f"{'part':<12} {'traces':>6} {'flashswap eff':>15} {'littlefs eff':>15} "
          f"{'flashswap/littlefs':>20} {'Weibull p1 ratio':>18} {'lfs n/fit':>9}")
    summary = []
    for part in parts:
        w = [r for r in out if r["part"] == part and r["writes"]]
        if not w:
            continue
        fe = [r["flashswap_efficiency"] for r in w]
        le = [r["littlefs_efficiency"] for r in w if r["littlefs_efficiency"] is not None]
        ra = [r["ratio"] for r in w if r["ratio"] is not None]
        pr = [r["p1_ratio"] for r in w if r["p1_ratio"] is not None]
        s = {"part": part, "traces": len(w), "flashswap_efficiency": [min(fe), max(fe)],
             "littlefs_efficiency": [min(le), max(le)] if le else None,
             "ratio": [min(ra), max(ra)] if ra else None,
             "p1_ratio": [min(pr), max(pr)] if pr else None,
             "littlefs_does_not_fit": len(w) - len(ra)}
        summary.append(s)
        lr = f"{min(le):7.3f}-{max(le):.3f}" if le else f"{'-':>13}"
        rr = f"{min(ra):11.2f}x-{max(ra):.2f}x" if ra else f"{'-':>19}"
        pp = f"{min(pr):9.2f}x-{max(pr):.2f}x" if pr else f"{'-':>17}"
        print(f"{part:<12} {len(w):>6} {min(fe):7.3f}-{max(fe):.3f} {lr} {rr} {pp}"
              f" {len(w) - len(ra):>9}")
    print(json.dumps({"rows": out, "summary": summary}))


if __name__ == "__main__":
    main()
