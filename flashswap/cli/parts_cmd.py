"""`flashswap parts`: list the part catalogue (built-in plus user parts files)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from flashswap.cli import COMMANDS
from flashswap.cli.output import print_json, table
from flashswap.parts import Part, load_catalogue

_SOURCE_WIDTH = 40


def register(sub: argparse._SubParsersAction) -> None:
    """Adds `parts` to the top-level command."""
    p = sub.add_parser("parts", help=COMMANDS["parts"][1])
    p.add_argument("--json", action="store_true", help="print every field of every part as JSON")
    p.add_argument(
        "--parts-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="TOML file of extra parts (same schema; a known name overrides); repeatable",
    )
    p.set_defaults(func=_parts)


def _parts(args: argparse.Namespace, console: Console) -> int:
    cat = load_catalogue(args.parts_file)
    if args.json:
        print_json(console, [p.to_dict() for p in cat.values()])
        return 0
    columns = [
        "name",
        "vendor",
        "kind",
        "capacity",
        "erase",
        "page",
        "endurance",
        "retention y",
        "tPROG typ/max",
        "tERASE typ/max",
        "source",
    ]
    t = table("flash parts", columns, [_row(p) for p in cat.values()])
    t.caption = "* class value (typical for the part's class), not a datasheet figure"
    console.print(t)
    return 0


def _row(p: Part) -> list[object]:
    kind = p.kind if p.cell is None else f"{p.kind} {p.cell}"
    page = f"{p.page_size}+{p.spare_size}" if p.spare_size else str(p.page_size)
    source = p.source if len(p.source) <= _SOURCE_WIDTH else p.source[: _SOURCE_WIDTH - 1] + "…"
    return [
        p.name,
        p.vendor,
        kind,
        human_bytes(p.capacity),
        "/".join(human_bytes(s) for s in p.erase_sizes),
        page,
        f"{p.endurance:,}" + _mark(p, "endurance"),
        f"{p.retention_years:g}" + _mark(p, "retention_years"),
        f"{_time(p.t_prog_typ_us)}/{_time(p.t_prog_max_us)}"
        + _mark(p, "t_prog_typ_us", "t_prog_max_us"),
        f"{_time(p.t_erase_typ_us[0])}/{_time(p.t_erase_max_us[0])}"
        + _mark(p, "t_erase_typ_us", "t_erase_max_us"),
        source,
    ]


def _mark(p: Part, *names: str) -> str:
    """'*' when any of the fields is a class value rather than a datasheet figure."""
    return "*" if any(n in p.class_values for n in names) else ""


def human_bytes(n: int) -> str:
    """512, 4K, 64K, 16M, 2G: binary units, exact when they divide."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _time(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:g} s"
    if us >= 1e3:
        return f"{us / 1e3:g} ms"
    return f"{us:g} us"
