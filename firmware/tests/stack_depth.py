"""Deepest stack path of the library from gcc's -fcallgraph-info=su output (.ci files).

Usage: stack_depth.py BUILD_DIR. Sums the static frame sizes along every call chain starting
at a public fsw_* function and prints the deepest chain. Calls through the device callbacks
(read/prog/erase/...) count as 0 bytes: add the port's own usage. Fails on recursion or on a
frame that is not static (dynamic stack allocation).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

NODE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
FRAME = re.compile(r"(\d+) bytes \((\w+)\)")


def load(build: Path) -> tuple[dict[str, int], dict[str, set[str]]]:
    frames: dict[str, int] = {}
    calls: dict[str, set[str]] = {}
    for ci in sorted(build.glob("*.ci")):
        text = ci.read_text()
        for title, label in NODE.findall(text):
            m = FRAME.search(label)
            if m:
                if m.group(2) != "static":
                    sys.exit(f"{title}: {m.group(2)} stack frame")
                frames[title] = int(m.group(1))
        for src, dst in EDGE.findall(text):
            calls.setdefault(src, set()).add(dst)
    return frames, calls


def deepest(fn: str, frames: dict[str, int], calls: dict[str, set[str]],
            memo: dict[str, tuple[int, list[str]]], active: set[str]) -> tuple[int, list[str]]:
    if fn in memo:
        return memo[fn]
    if fn in active:
        sys.exit(f"recursion through {fn}")
    active.add(fn)
    best: tuple[int, list[str]] = (0, [])
    for callee in calls.get(fn, ()):
        depth, path = deepest(callee, frames, calls, memo, active)
        if depth > best[0]:
            best = (depth, path)
    active.discard(fn)
    out = (frames.get(fn, 0) + best[0], [fn, *best[1]])
    memo[fn] = out
    return out


def main() -> None:
    frames, calls = load(Path(sys.argv[1]))
    memo: dict[str, tuple[int, list[str]]] = {}
    roots = sorted(f for f in frames if f.startswith("fsw_") and ":" not in f)
    results = [(deepest(r, frames, calls, memo, set()), r) for r in roots]
    (depth, path), _ = max(results)
    api = [(d, r) for (d, _), r in results if r in PUBLIC]
    for d, r in sorted(api, reverse=True):
        print(f"stack {r:16s} {d:4d} bytes")
    chain = " -> ".join(f"{p.split(':')[-1]}({frames.get(p, 0)})" for p in path)
    print(f"deepest stack path: {depth} bytes (+ the device callback): {chain}")


PUBLIC = {
    "fsw_format", "fsw_mount", "fsw_unmount", "fsw_put", "fsw_get", "fsw_size", "fsw_trim",
    "fsw_trim_range", "fsw_sync", "fsw_stat", "fsw_idle", "fsw_crc32", "fsw_info",
    "fsw_seg_info", "fsw_traverse",
}

if __name__ == "__main__":
    main()
