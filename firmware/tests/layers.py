"""The C library's files call each other one way: down the layer order of src/fsw_priv.h.

Usage: layers.py [SRC_DIR]. Compiles every src/*.c with the host gcc and -fcallgraph-info=su
(at -O0, so no call is hidden by inlining; with and without FSW_NO_AEAD), maps each function
to the file that defines it and each file to its rank in the "Layers" comment at the top of
fsw_priv.h, and fails on any call from a file to one at its own rank or above it (two files
that call each other are both reported). It also checks the #includes: a source file includes
only fsw_priv.h of the library's headers, fsw_priv.h only flashswap.h, and nothing outside
src/ (ports, fuzz target, tests) includes fsw_priv.h. Calls through the device and AEAD
callbacks are not calls in the graph: the port is below every layer.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1]
# A defined function: its title, then the location of its definition and its frame size.
NODE = re.compile(r'node: \{ title: "([^"]+)" label: "[^"\\]*\\n[^"\\]+:\d+:\d+\\n\d+ bytes')
EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
LAYER = re.compile(r"^ \*\s+(\w+\.c)\b", re.M)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layers(src: Path) -> list[str]:
    """The source files in the order fsw_priv.h's "Layers" comment lists them, lowest first."""
    text = (src / "fsw_priv.h").read_text()
    m = re.search(r"\bLayers, lowest first:(.*?)\*/", text, re.S)
    return LAYER.findall(m.group(1)) if m else []


def call_graph(src: Path, cc: str) -> list[tuple[str, str, str, str]]:
    """(caller's file, caller, callee's file, callee) for every direct call between two
    functions of the library, in both builds (with encryption and FSW_NO_AEAD)."""
    edges: set[tuple[str, str, str, str]] = set()
    with tempfile.TemporaryDirectory(prefix="fsw-layers-") as tmp:
        for flags in ([], ["-DFSW_NO_AEAD"]):
            where: dict[str, str] = {}
            calls: list[tuple[str, str]] = []
            for c in sorted(src.glob("*.c")):
                ci = Path(tmp) / f"{c.stem}.ci"
                run = subprocess.run([cc, "-std=c99", "-O0", *flags,
                                      f"-I{src.parent / 'include'}", f"-I{src}",
                                      "-fcallgraph-info=su", "-c", str(c), "-o", f"{c.stem}.o"],
                                     capture_output=True, text=True, cwd=tmp)
                if run.returncode:
                    raise RuntimeError(f"{cc} failed on {c.name}: {run.stderr.strip()}")
                text = ci.read_text()
                for title in NODE.findall(text):
                    where[title] = c.name
                calls += EDGE.findall(text)
            edges |= {(where[a], a, where[b], b) for a, b in calls if b in where}
    return sorted(edges)


def cycles(edges: list[tuple[str, str, str, str]]) -> list[list[str]]:
    """Groups of files that reach each other through calls, whatever the documented order."""
    files = sorted({e[0] for e in edges} | {e[2] for e in edges})
    reach = {f: {fb for fa, _, fb, _ in edges if fa == f and fb != f} for f in files}
    for k in files:  # transitive closure (Floyd-Warshall on a dozen files)
        for f in files:
            if k in reach[f]:
                reach[f] |= reach[k]
    groups = {tuple(sorted({f} | {g for g in reach[f] if f in reach[g]}))
              for f in files if f in reach[f]}
    return [list(g) for g in sorted(groups)]


def call_violations(src: Path, cc: str) -> list[str]:
    edges = call_graph(src, cc)
    order = layers(src)
    rank = {f: i for i, f in enumerate(order)}
    files = sorted(p.name for p in src.glob("*.c"))
    out = [f"{f}: not in the Layers comment of fsw_priv.h" for f in files if f not in rank]
    out += [f"{f}: listed in the Layers comment but not in {src}" for f in order
            if f not in files]
    out += [f"cycle: {' <-> '.join(g)}" for g in cycles(edges)]
    for fa, a, fb, b in edges:
        if fa != fb and fa in rank and fb in rank and rank[fb] >= rank[fa]:
            out.append(f"{fa} -> {fb}: {a.split(':')[-1]} calls {b.split(':')[-1]} "
                       f"({fb} is not below {fa})")
    return out


def include_violations(src: Path) -> list[str]:
    out = []
    for c in sorted(src.glob("*.c")):
        out += [f"{c.name} includes {h} (a source file includes only fsw_priv.h)"
                for h in INCLUDE.findall(c.read_text()) if h != "fsw_priv.h"]
    out += [f"fsw_priv.h includes {h} (only flashswap.h)"
            for h in INCLUDE.findall((src / "fsw_priv.h").read_text()) if h != "flashswap.h"]
    outside = [p for d in ("port", "fuzz", "tests") for p in sorted((src.parent / d).rglob("*"))
               if p.suffix in (".c", ".h")]
    out += [f"{p.relative_to(src.parent)} includes fsw_priv.h (only the public API outside "
            f"src/)" for p in outside if "fsw_priv.h" in INCLUDE.findall(p.read_text())]
    return out


def main() -> int:
    src = (Path(sys.argv[1]) if len(sys.argv) > 1 else FIRMWARE / "src").resolve()
    cc = shutil.which("gcc")
    if cc is None:
        print("layers: gcc not found (needed for -fcallgraph-info)")
        return 2
    bad = include_violations(src) + call_violations(src, cc)
    for line in bad:
        print(line)
    if not bad:
        print(f"layers: {' -> '.join(layers(src))}: every call and #include goes down")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
