"""`python -m flashswap` runs the CLI."""

from flashswap.cli import run

run()
