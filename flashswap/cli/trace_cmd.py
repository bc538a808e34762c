"""Subcommand module (being written; see the issue that owns it)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Adds this module's subcommands to the parser (none yet)."""
