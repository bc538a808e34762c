"""The `flashswap` command: argument parsing and error-to-exit-status mapping.

Each subcommand lives in its own module with a `register(subparsers)` function that adds
its parser and sets `func(args, console) -> int`. `COMMANDS` names them; only the module of the
command being run is imported (the others get a placeholder parser that carries their help
line), so `flashswap parts` does not pay for the analyzer, scipy or the model importers.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rich.console import Console

from flashswap import __version__
from flashswap.cli.output import make_console
from flashswap.errors import FlashswapError, InputError


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() owns every exit status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # main() prefixes "flashswap: error:"; name only the subcommand, if any
        where = self.prog.removeprefix("flashswap").strip()
        raise InputError(f"{where}: {message}" if where else message)


# command -> (modules whose register() adds its parser(s), help line for the command list)
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "parts": (("parts_cmd",), "list the flash parts the simulator and planner know"),
    "trace": (("trace_cmd", "plan_cmd"), "inspect, import and plan swap traces"),
    "lifetime": (("lifetime_cmd",),
                 "replay a trace on flash parts and storage layers; project years to wear-out"),
    "advise": (("advise_cmd",),
               "which flash part and SRAM size make a model last N years (a sweep)"),
    "run": (("run_cmd",), "run a model out of core through the store; check it bit for bit"),
}
GROUPS = {"trace"}  # commands whose modules register subcommands under a group parser


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command`, only that command's modules are imported (see above)."""
    p = _Parser(
        prog="flashswap",
        description="Swap NN activations to external flash on MCUs; project flash lifetime.",
    )
    p.add_argument("--version", action="version", version=f"flashswap {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (modules, help_line) in COMMANDS.items():
        full = command is None or command == name
        if name in GROUPS:
            group = sub.add_parser(name, help=help_line, description=help_line)
            gsub = group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND",
                                        parser_class=_Parser)
            if full:
                for m in modules:
                    importlib.import_module(f"flashswap.cli.{m}").register(gsub)
            group.set_defaults(func=lambda a, c, g=group: _help(g, c))
        elif full:
            for m in modules:
                importlib.import_module(f"flashswap.cli.{m}").register(sub)
        else:
            sub.add_parser(name, help=help_line)
    p.set_defaults(func=lambda a, c: _help(p, c))
    return p


def _command(argv: Sequence[str]) -> str | None:
    """The command named on the command line (the first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
        if word in ("-h", "--help", "--version"):
            return ""  # help or version: no command module is needed
    return ""


def _help(parser: argparse.ArgumentParser, console: Console) -> int:
    console.file.write(parser.format_help())
    return 2


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Entry point. Returns the exit status (0 ok, 1 failure, 2 bad input or usage)."""
    console = console or make_console()
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(_command(words)).parse_args(words)
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
