"""Shared output helpers: a rich table on a terminal, JSON with --json, one-line errors."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from flashswap.numfmt import fmt

__all__ = ["fmt", "make_console", "print_json", "table"]


def make_console(file: Any = None, width: int | None = None) -> Console:
    """The one console a command prints to; tests pass a StringIO and a fixed width."""
    return Console(file=file if file is not None else sys.stdout, width=width, soft_wrap=False)


def print_json(console: Console, obj: Any) -> None:
    """Machine-readable output: plain JSON text, no markup, no wrapping."""
    console.file.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    """A rich table with right-aligned numeric columns."""
    t = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], int | float) for r in rows)
        t.add_column(col, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*(fmt(v) for v in r))
    return t

