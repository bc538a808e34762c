"""`flashswap trace info` and `flashswap trace import`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rich.console import Console

from flashswap.blocktrace import import_blocktrace
from flashswap.cli.output import print_json, table
from flashswap.sizes import parse_size
from flashswap.trace import Op, Trace


def _size(what: str) -> Callable[[str], int]:
    """An argparse type: a byte size with optional unit (see flashswap.sizes)."""
    return lambda text: parse_size(text, what)


def _milliseconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid time {text!r} (milliseconds, >= 0)")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `info` and `import` to the `trace` group."""
    info = sub.add_parser("info", help="summarize a trace file: ops, inferences, traffic")
    info.add_argument("file", metavar="FILE", help="flashswap trace (.fst)")
    info.add_argument("--json", action="store_true", help="print JSON instead of tables")
    info.set_defaults(func=_info)

    imp = sub.add_parser(
        "import",
        help="convert a 5-column block trace (time dev lba sectors rw) to a flashswap trace",
    )
    imp.add_argument("file", metavar="FILE", help="block trace text: time_ms dev lba sectors rw")
    imp.add_argument("-o", "--output", required=True, metavar="OUT", help="trace file to write")
    imp.add_argument(
        "--sector-size",
        type=_size("sector size"),
        default=512,
        metavar="SIZE",
        help="bytes per LBA sector (default 512)",
    )
    imp.add_argument(
        "--chunk",
        type=_size("chunk size"),
        default=4096,
        metavar="SIZE",
        help="swap chunk size: one key per chunk (default 4KiB)",
    )
    imp.add_argument(
        "--inference-gap",
        type=_milliseconds,
        default=None,
        metavar="MS",
        help="start a new inference where requests pause longer than MS "
        "(default: the whole file is one inference)",
    )
    imp.add_argument(
        "--device",
        type=int,
        default=None,
        help="import only this device's requests (needed if the file has several)",
    )
    imp.add_argument(
        "--unwritten",
        choices=("preload", "skip"),
        default="preload",
        help="reads of never-written chunks: WRITE them before the first inference "
        "(preload, default) or drop them (skip)",
    )
    imp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    imp.set_defaults(func=_import)


def _info(args: argparse.Namespace, console: Console) -> int:
    trace = Trace.open(args.file)
    trace.validate_semantics()
    s = trace.summary()
    if args.json:
        print_json(console, s)
        return 0
    console.print(table("Trace", ["", "value"], _overview_rows(s)))
    ops = [[o.name, s["ops"][o.name]] for o in Op]
    console.print(table("Records by op", ["op", "records"], ops))
    if s["per_inference"]:
        shown = len(s["per_inference"])
        title = "Per inference" + (
            f" (first {shown} of {s['inferences']})" if shown < s["inferences"] else ""
        )
        rows = [
            [
                d["index"],
                d["records"],
                d["bytes_written"],
                d["bytes_read"],
                d["weight_bytes_read"],
                d["macs"],
            ]
            for d in s["per_inference"]
        ]
        cols = ["inference", "records", "written B", "read B", "weights read B", "MACs"]
        console.print(table(title, cols, rows))
    return 0


def _overview_rows(s: dict[str, Any]) -> list[list[Any]]:
    def mean(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    def opt(v: Any) -> Any:
        return "-" if v is None else v

    return [
        ["file", s["path"]],
        ["model", opt(s["model"])],
        ["generator", opt(s["generator"])],
        ["records", s["records"]],
        ["inferences", s["inferences"]],
        ["distinct keys", s["distinct_keys"]],
        ["chunk size (B)", opt(s["chunk_size"])],
        ["SRAM budget (B)", opt(s["sram_budget"])],
        ["peak SRAM (B)", opt(s["peak_sram"])],
        ["written / inference (B)", mean(s["bytes_written_per_inference"])],
        ["read / inference (B)", mean(s["bytes_read_per_inference"])],
        ["weights read / inference (B)", mean(s["weight_bytes_read_per_inference"])],
        ["MACs / inference", mean(s["macs_per_inference"])],
    ]


def _import(args: argparse.Namespace, console: Console) -> int:
    stats = import_blocktrace(
        args.file,
        args.output,
        sector_size=args.sector_size,
        chunk_size=args.chunk,
        inference_gap_ms=args.inference_gap,
        device=args.device,
        unwritten=args.unwritten,
    )
    result = {"output": args.output, **stats.as_dict()}
    if args.json:
        print_json(console, result)
        return 0
    rows = [
        ["source", args.file],
        ["output", args.output],
        [
            "requests (read / write)",
            f"{stats.requests:,} ({stats.read_requests:,} / {stats.write_requests:,})",
        ],
        ["WRITE records", stats.writes],
        ["READ records", stats.reads],
        ["pre-existing chunks written first", stats.preloaded],
        ["reads of unwritten chunks skipped", stats.skipped_reads],
        ["inferences", stats.inferences],
        ["records", stats.records],
        ["distinct keys", stats.distinct_keys],
        ["duration (ms)", stats.duration_ms],
    ]
    console.print(table("Block trace import", ["", "value"], rows))
    return 0
