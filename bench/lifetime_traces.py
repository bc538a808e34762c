"""`flashswap lifetime` on the sample traces: flashswap against littlefs at its best, part by part.

    python bench/lifetime_traces.py [--update-readme] [--only NAME...] [--sections LIST]

Runs the CLI itself (`flashswap lifetime TRACE --json`, in a subprocess, whole parts, 1/min)
and prints, per section, a Markdown table and one JSON line; `--update-readme` writes the
tables into README.md and analyzer/README.md between their markers (analyzer/readme.py).
Sections:

- `traces`: every sample trace on a NOR, an SLC NAND and an MLC NAND part, the flashswap
  store against littlefs in its strongest configuration (the best of a file per tensor and
  preallocated files, and on NOR of the 4 KiB sector and the 64 KiB block as littlefs block):
  efficiency, years, flash time per inference and the Weibull figures of both, per trace
  (analyzer/README.md) and summed up per part (README.md);
- `layouts`: every littlefs layout (file per tensor, per chunk, preallocated) and block on
  mobilenet_v2_256k, beside flashswap (README.md);
- `weibull`: the Weibull figures of both stores on mobilenet_v2_256k for shapes 1.5, 2, 4
  and 8 (analyzer/README.md);
- `segments`: the flashswap store's segment size on NOR against littlefs (analyzer/README.md);
- `encrypt`: what sealing and opening every chunk with AES-128-GCM adds per inference on the
  sample trace, in software and on a hardware AES engine (`--encrypt`; README.md).

`--sample NAME` picks the trace of the single-trace sections (default mobilenet_v2_128k, a
sample that swaps under the fused planner).

Every figure of a section comes from the same run. On an unloaded 2-core machine the
layer-by-layer samples took about an hour; on a loaded one `--parallel N --smallest-first
--start-by SECONDS` bounds the `traces` section (the traces not started in time get a row
saying so), and `--only alexnet_256k` and `--sections traces` make a quick check.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from analyzer.readme import table, update

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("W25Q128JV", "W25N01GV", "FNNL41A-8Gb")
KIND = {"W25Q128JV": "NOR", "W25N01GV": "SLC NAND", "FNNL41A-8Gb": "MLC NAND"}
BEST = ("--littlefs-layout", "tensor,prealloc")  # the chunk layout never wins (`layouts`)
SAMPLE = "mobilenet_v2_128k"
SHAPES = (1.5, 2.0, 4.0, 8.0)
SECTIONS = ("traces", "layouts", "weibull", "segments", "encrypt")
BUDGET = ("--budget", "1200")  # a safety net only: every analysis stops on fixed counts


def lifetime(trace: str, *args: str, may_fail: bool = False) -> tuple[dict[str, Any], float]:
    """The CLI's JSON for one trace, and its wall time; with `may_fail`, a run the CLI
    refuses (a configuration that cannot hold the trace) gives {"error": its message}."""
    cmd = [sys.executable, "-m", "flashswap", "lifetime", str(ROOT / "traces" / f"{trace}.bin"),
           "--json", *BUDGET, *args]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode and may_fail:
        return {"error": out.stderr.strip().removeprefix("flashswap: error: ")}, wall
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout), wall


def swapped(trace: str) -> float:
    """Bytes a trace writes per inference (the order of --smallest-first)."""
    from analyzer.workload import Workload

    return Workload.load(ROOT / "traces" / f"{trace}.bin").bytes_written_per_inference


def by_store(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(part, store) -> result, or {"error": message} where the store could not run."""
    got: dict[tuple[str, str], dict[str, Any]] = {}
    for r in doc["results"]:
        got[r["part"], r["store"]] = r
    for e in doc.get("errors", []):
        got[e["part"], e["store"]] = {"error": e["error"]}
    return got


def writes(r: dict[str, Any]) -> bool:
    return "error" not in r and r.get("years") is not None and r.get("ideal_years") is not None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def f3(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def fx(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def fy(v: float | None) -> str:
    """Years, three significant digits."""
    return "-" if v is None else f"{v:.3g}"


def rng(vals: list[float], fmt: Any) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


# --- sections ------------------------------------------------------------------------------


def run_traces(traces: list[str], parts: list[str], parallel: int = 1,
               start_by: float = float("inf")) -> tuple[list[dict], list[dict]]:
    """Every trace on every part; runs not started `start_by` seconds after the first are
    skipped and given a row saying so (the smallest traces go first)."""
    rows: list[dict] = []
    t0 = time.perf_counter()

    def one(trace: str) -> tuple[dict[str, Any], float] | None:
        if time.perf_counter() - t0 > start_by:
            return None
        got = lifetime(trace, "--store", "flashswap,littlefs", *BEST, "--part", ",".join(parts))
        print(json.dumps({"done": trace, "wall_s": round(got[1], 1)}), file=sys.stderr,
              flush=True)
        return got

    with ThreadPoolExecutor(parallel) as pool:  # each run is a CLI subprocess
        done = list(zip(traces, pool.map(one, traces), strict=True))
    for trace, run in done:
        if run is None:
            rows += [{"trace": trace, "part": part, "skipped": True, "writes": False}
                     for part in parts]
            continue
        doc, wall = run
        got = by_store(doc)
        for part in parts:
            fs, lf = got[part, "flashswap"], got[part, "littlefs"]
            if "error" in fs:
                raise SystemExit(f"{trace} on {part}: flashswap failed: {fs['error']}")
            row: dict[str, Any] = {"trace": trace, "part": part, "wall_s": round(wall, 1),
                                   "writes": writes(fs)}
            if row["writes"]:
                ok = writes(lf)
                row.update(
                    flashswap_years=fs["years"], flashswap_efficiency=fs["efficiency"],
                    flashswap_io_s=fs["io_seconds_per_inference"],
                    flashswap_first_p1=fs["years_first_worn_block_weibull_p1"],
                    flashswap_death_p1=fs["years_weibull_p1"],
                    littlefs_config=lf.get("config") if ok else None,
                    littlefs_years=lf["years"] if ok else None,
                    littlefs_efficiency=lf["efficiency"] if ok else None,
                    littlefs_io_s=lf["io_seconds_per_inference"] if ok else None,
                    littlefs_first_p1=lf["years_first_worn_block_weibull_p1"] if ok else None,
                    littlefs_death_p1=lf["years_weibull_p1"] if ok else None,
                    littlefs_error=lf.get("error"),
                    converged=fs["replay"]["converged"] and (not ok or
                                                             lf["replay"]["converged"]),
                )
                row["ratio"] = ratio(fs["years"], row["littlefs_years"])
                row["io_ratio"] = ratio(row["littlefs_io_s"], fs["io_seconds_per_inference"])
                row["first_p1_ratio"] = ratio(row["flashswap_first_p1"], row["littlefs_first_p1"])
                row["death_p1_ratio"] = ratio(row["flashswap_death_p1"], row["littlefs_death_p1"])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    summary = []
    for part in parts:
        w = [r for r in rows if r["part"] == part and r["writes"]]
        if not w:
            continue
        configs = sorted({r["littlefs_config"] for r in w if r["littlefs_config"]})
        summary.append({
            "part": part, "traces": len(w),
            "flashswap_efficiency": [min(r["flashswap_efficiency"] for r in w),
                                     max(r["flashswap_efficiency"] for r in w)],
            "littlefs_efficiency": _mm([r["littlefs_efficiency"] for r in w]),
            "ratio": _mm([r["ratio"] for r in w]), "io_ratio": _mm([r["io_ratio"] for r in w]),
            "first_p1_ratio": _mm([r["first_p1_ratio"] for r in w]),
            "death_p1_ratio": _mm([r["death_p1_ratio"] for r in w]),
            "littlefs_does_not_fit": sum(r["littlefs_years"] is None for r in w),
            "littlefs_configs": configs,
        })
    return rows, summary


def _mm(vals: list[float | None]) -> list[float] | None:
    v = [x for x in vals if x is not None]
    return [min(v), max(v)] if v else None


def traces_tables(rows: list[dict], summary: list[dict], parts: list[str]) -> tuple[str, str]:
    head = ["trace"]
    for p in parts:
        k = KIND.get(p, p)
        head += [f"{k} eff", f"{k} littlefs eff", f"{k} years vs littlefs",
                 f"{k} flash time, littlefs / flashswap"]
    head.append("run s")
    body = []
    for trace in sorted(dict.fromkeys(r["trace"] for r in rows)):
        line: list[Any] = [trace]
        for p in parts:
            r = next(x for x in rows if x["trace"] == trace and x["part"] == p)
            if r.get("skipped"):
                line += ["not run (time limit)", "-", "-", "-"]
            elif not r["writes"]:
                line += ["no writes", "-", "-", "-"]
            elif r["littlefs_years"] is None:
                line += [f3(r["flashswap_efficiency"]), "does not fit", "-", "-"]
            else:
                line += [f3(r["flashswap_efficiency"]), f3(r["littlefs_efficiency"]),
                         fx(r["ratio"]), fx(r["io_ratio"])]
        line.append("-" if r.get("skipped") else f"{r['wall_s']:.0f}")
        body.append(line)
    per_trace = table(head, body)
    srows = []
    for s in summary:
        srows.append([
            f"{s['part']} ({KIND.get(s['part'], '')})",
            rng(s["flashswap_efficiency"], lambda v: f"{v:.3f}"),
            rng(s["littlefs_efficiency"] or [], lambda v: f"{v:.3f}"),
            rng(s["ratio"] or [], lambda v: f"{v:.2f}x"),
            rng(s["io_ratio"] or [], lambda v: f"{v:.2f}x"),
            rng(s["first_p1_ratio"] or [], lambda v: f"{v:.2f}x"),
            rng(s["death_p1_ratio"] or [], lambda v: f"{v:.2f}x"),
            "; ".join(s["littlefs_configs"]) + (
                f" ({s['littlefs_does_not_fit']} traces do not fit)"
                if s["littlefs_does_not_fit"] else ""),
        ])
    summary_md = table(
        ["part", "flashswap efficiency", "littlefs efficiency", "years, flashswap / littlefs",
         "flash time per inference, littlefs / flashswap",
         "Weibull p1 first worn block, flashswap / littlefs",
         "Weibull p1 store dies, flashswap / littlefs", "littlefs configurations chosen"],
        srows)
    return per_trace, summary_md


def run_layouts(parts: list[str], sample: str) -> tuple[list[dict], str]:
    doc, wall = lifetime(sample, "--store", "flashswap,littlefs", "--littlefs-layout", "all",
                         "--part", ",".join(parts))
    got = by_store(doc)
    rows, body = [], []
    for part in parts:
        fs, lf = got[part, "flashswap"], got[part, "littlefs"]
        body.append([part, "flashswap", fs["config"], f3(fs["efficiency"]), fy(fs["years"]),
                     f"{fs['io_seconds_per_inference'] * 1e3:,.0f}", "1.00x"])
        cands = lf.get("candidates") or [{"config": lf["config"], "years": lf["years"],
                                          "efficiency": lf["efficiency"],
                                          "io_seconds_per_inference":
                                          lf["io_seconds_per_inference"]}]
        for c in cands:
            rows.append({"part": part, **c, "flashswap_years": fs["years"]})
            if "error" in c:
                body.append([part, "littlefs", f"{c['config']}: does not fit", "-", "-", "-",
                             "-"])
                continue
            best = " (best)" if c["config"] == lf["config"] else ""
            body.append([part, "littlefs", c["config"] + best, f3(c["efficiency"]),
                         fy(c["years"]), f"{c['io_seconds_per_inference'] * 1e3:,.0f}",
                         fx(ratio(fs["years"], c["years"]))])
    md = table(["part", "store", "configuration", "efficiency", "years",
                "flash ms per inference", "flashswap years / these"], body)
    print(f"layouts: {wall:.0f} s", file=sys.stderr)
    return rows, md


def run_weibull(parts: list[str], sample: str) -> tuple[list[dict], str]:
    rows, body = [], []
    for k in SHAPES:
        doc, _ = lifetime(sample, "--store", "flashswap,littlefs", *BEST, "--part",
                          ",".join(parts), "--weibull-shape", str(k))
        for r in doc["results"]:
            rows.append({"shape": k, "part": r["part"], "store": r["store"],
                         "config": r["config"], "years": r["years"],
                         "first_p1": r["years_first_worn_block_weibull_p1"],
                         "first_median": r["years_first_worn_block_weibull_median"],
                         "death_p1": r["years_weibull_p1"],
                         "death_median": r["years_weibull_median"]})
    for part in parts:
        for store in ("flashswap", "littlefs"):
            sel = [r for r in rows if r["part"] == part and r["store"] == store]
            if not sel:
                continue
            line = [part, store, fy(sel[0]["years"])]
            for r in sel:
                line.append(f"{fy(r['first_p1'])} / {fy(r['first_median'])} · "
                            f"{fy(r['death_p1'])} / {fy(r['death_median'])}")
            body.append(line)
    md = table(["part", "store", "rated years"] + [f"k = {k:g}" for k in SHAPES], body)
    return rows, md


def run_segments(sample: str) -> tuple[list[dict], str]:
    part = "W25Q128JV"
    rows, body = [], []
    plan = [("alexnet_256k", ("4KiB", "32KiB", "64KiB")), (sample, ("32KiB", "64KiB"))]
    for trace, sizes in plan:
        runs = [(f"--segment-size {s}", ("--store", "flashswap", "--segment-size", s))
                for s in sizes]
        runs.append(("littlefs", ("--store", "littlefs", *BEST)))
        for label, args in runs:
            doc, _ = lifetime(trace, "--part", part, *args, may_fail=True)
            if "error" in doc:
                rows.append({"trace": trace, "run": label, "error": doc["error"]})
                body.append([trace, args[1], f"{label.split()[-1]} segments: "
                             f"{doc['error']}", *["-"] * 7])
                continue
            (r,) = doc["results"]
            rows.append({"trace": trace, "run": label, **{k: r[k] for k in (
                "store", "config", "years", "years_weibull_p1", "years_weibull_median",
                "years_first_worn_block_weibull_p1", "efficiency",
                "io_seconds_per_inference", "io_energy_mj_per_inference", "slowdown")}})
            body.append([trace, r["store"], r["config"], fy(r["years"]),
                         fy(r["years_first_worn_block_weibull_p1"]),
                         f"{fy(r['years_weibull_p1'])} / {fy(r['years_weibull_median'])}",
                         f3(r["efficiency"]), f"{r['io_seconds_per_inference']:.3g}",
                         f"{r['io_energy_mj_per_inference']:,.0f}",
                         "-" if r["slowdown"] is None else f"{r['slowdown']:.3g}x"])
    md = table(["trace", "store", "configuration", "years", "Weibull p1, first worn block",
                "Weibull p1 / median, store dies", "efficiency", "I/O s per inference", "mJ",
                "slowdown"], body)
    return rows, md


def run_encrypt(parts: list[str], sample: str) -> tuple[list[dict], str]:
    """The flashswap store with each cipher of --encrypt: flash work, crypto work, slowdown."""
    ciphers = (("aes-gcm-sw", "software AES-128-GCM"), ("aes-gcm-hw", "hardware AES engine"))
    got = {}
    for cipher, _ in ciphers:
        doc, _wall = lifetime(sample, "--store", "flashswap", "--part", ",".join(parts),
                              "--encrypt", cipher)
        got[cipher] = {r["part"]: r for r in doc["results"]}
    rows, body = [], []
    for part in parts:
        first = got[ciphers[0][0]][part]
        c0 = first["crypto"]
        line = [part, f"{c0['flash_seconds_per_inference'] * 1e3:,.0f} ms, "
                f"{c0['flash_energy_mj_per_inference']:,.1f} mJ"]
        row: dict[str, Any] = {"part": part,
                               "flash_s": c0["flash_seconds_per_inference"],
                               "flash_mj": c0["flash_energy_mj_per_inference"]}
        for cipher, _ in ciphers:
            r = got[cipher][part]
            c = r["crypto"]
            share = c["seconds_per_inference"] / r["io_seconds_per_inference"]
            line.append(f"{c['seconds_per_inference'] * 1e3:,.1f} ms, "
                        f"{c['energy_mj_per_inference']:,.2f} mJ ({share:.1%} of I/O time); "
                        f"slowdown {r['slowdown']:.3g}x")
            row[cipher] = {k: c[k] for k in ("seconds_per_inference",
                                             "energy_mj_per_inference", "cycles_per_inference",
                                             "sealed_bytes_per_inference",
                                             "opened_bytes_per_inference")}
            row[cipher]["slowdown"] = r["slowdown"]
        rows.append(row)
        body.append(line)
    md = table(["part", "flash work per inference"]
               + [f"+ {label}: crypto per inference; slowdown" for _, label in ciphers], body)
    return rows, md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated catalogue parts")
    ap.add_argument("--only", nargs="*", default=None, help="trace names (stem) to run")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated, of {', '.join(SECTIONS)}")
    ap.add_argument("--parallel", type=int, default=1,
                    help="traces analysed at once (`traces` section; each CLI run also "
                    "uses its own worker processes)")
    ap.add_argument("--start-by", type=float, default=float("inf"), metavar="SECONDS",
                    help="`traces`: start no trace run later than this after the first "
                    "(the others get a row saying so)")
    ap.add_argument("--smallest-first", action="store_true",
                    help="`traces`: run the traces that swap the least first")
    ap.add_argument("--sample", default=SAMPLE,
                    help=f"trace (stem) of the single-trace sections (default {SAMPLE})")
    ap.add_argument("--update-readme", action="store_true",
                    help="write the tables into README.md and analyzer/README.md")
    args = ap.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    sections = [s for s in args.sections.split(",") if s]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise SystemExit(f"unknown section {bad[0]!r} (choose from {', '.join(SECTIONS)})")
    traces = sorted(p.stem for p in (ROOT / "traces").glob("*.bin"))
    if args.only:
        traces = [t for t in traces if t in args.only]
    out: dict[str, Any] = {"bench": "lifetime_traces", "parts": parts, "sample": args.sample}
    t0 = time.perf_counter()
    tables: dict[str, str] = {}
    if "traces" in sections:
        if args.smallest_first:
            traces.sort(key=lambda t: (swapped(t), t))
        rows, summary = run_traces(traces, parts, args.parallel, args.start_by)
        per_trace, summary_md = traces_tables(rows, summary, parts)
        tables |= {"lifetime-traces": per_trace, "lifetime-summary": summary_md}
        out |= {"rows": rows, "summary": summary}
    if "layouts" in sections:
        out["layouts"], tables["lifetime-layouts"] = run_layouts(parts, args.sample)
    if "weibull" in sections:
        out["weibull"], tables["lifetime-weibull"] = run_weibull(parts, args.sample)
    if "segments" in sections:
        out["segments"], tables["lifetime-segments"] = run_segments(args.sample)
    if "encrypt" in sections:
        out["encrypt"], tables["lifetime-encrypt"] = run_encrypt(parts, args.sample)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    for name, md in tables.items():
        print(f"\n{name}:\n{md}")
        if args.update_readme:
            update(name, md)
    print(f"\n{out['wall_s']:.0f} s in all")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
