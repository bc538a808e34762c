"""The `flashswap` command: argument parsing and error-to-exit-status mapping.

Each subcommand lives in its own module with a `register(subparsers)` function that adds
its parser and sets `func(args, console) -> int`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from flashswap import __version__
from flashswap.cli import lifetime_cmd, parts_cmd, plan_cmd, trace_cmd
from flashswap.cli.output import make_console
from flashswap.errors import FlashswapError, InputError


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() owns every exit status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # main() prefixes "flashswap: error:"; name only the subcommand, if any
        where = self.prog.removeprefix("flashswap").strip()
        raise InputError(f"{where}: {message}" if where else message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="flashswap",
        description="Swap NN activations to external flash on MCUs; project flash lifetime.",
    )
    p.add_argument("--version", action="version", version=f"flashswap {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parts_cmd.register(sub)
    trace = sub.add_parser("trace", help="inspect, import and plan swap traces")
    tsub = trace.add_subparsers(dest="trace_command", metavar="SUBCOMMAND", parser_class=_Parser)
    trace_cmd.register(tsub)
    plan_cmd.register(tsub)
    trace.set_defaults(func=lambda a, c: _help(trace, c))
    lifetime_cmd.register(sub)
    p.set_defaults(func=lambda a, c: _help(p, c))
    return p


def _help(parser: argparse.ArgumentParser, console: Console) -> int:
    console.file.write(parser.format_help())
    return 2


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Entry point. Returns the exit status (0 ok, 1 failure, 2 bad input or usage)."""
    console = console or make_console()
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args, console))
    except InputError as e:
        print(f"flashswap: error: {e}", file=sys.stderr)
        return 2
    except FlashswapError as e:
        print(f"flashswap: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("flashswap: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
