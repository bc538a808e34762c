"""The C suite's geometries (firmware/tests/geometries.h) are generated from tests/geometries.py,
the table the Python store tests use: the committed header must be the current rendering."""

from __future__ import annotations

from tests.geometries import HEADER, main, render


def test_c_fixture_header_is_generated_from_the_table() -> None:
    assert HEADER.read_text() == render(), "run: python -m tests.geometries"
    assert main(["--check"]) == 0

