"""The README tables the bench scripts write (analyzer/readme.py): markers and parsing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analyzer.readme import ROOT, TABLES, markers, read, table, update

NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?(x|%)?$")


@pytest.mark.parametrize("name", list(TABLES))
def test_every_bench_table_is_in_its_readme_and_parses(name: str) -> None:
    """Each table sits between its markers once, in the file its script writes, names the
    script in its begin marker, and parses: one header, a separator, rows of the header's
    width, each with a figure (a number, a ratio, a range), an n/a or "not run"."""
    path, script = TABLES[name]
    assert (ROOT / script).is_file()
    assert script in markers(name)[0]
    rows = read(name)
    assert len(rows) >= 2
    for r in rows[1:]:
        tokens = [t for c in r for t in re.split(r"[\s–/·()]+", c) if t]
        # a figure, or a row saying why it has none (a trace the run did not reach)
        assert (any(NUMBER.match(t) for t in tokens) or "n/a" in r
                or "not run (time limit)" in r), (name, r)


def test_update_replaces_only_the_block(tmp_path: Path) -> None:
    (tmp_path / "analyzer").mkdir()
    begin, end = markers("lifetime-weibull")
    doc = f"intro\n{begin}\nold\n{end}\noutro\n"
    (tmp_path / "analyzer" / "README.md").write_text(doc)
    md = table(["a", "b"], [[1, "2.5x"]])
    update("lifetime-weibull", md, root=tmp_path)
    got = (tmp_path / "analyzer" / "README.md").read_text()
    assert got == f"intro\n{begin}\n| a | b |\n|---|---|\n| 1 | 2.5x |\n{end}\noutro\n"
    assert read("lifetime-weibull", root=tmp_path) == [["a", "b"], ["1", "2.5x"]]
    (tmp_path / "analyzer" / "README.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="markers of table 'lifetime-weibull' are missing"):
        update("lifetime-weibull", md, root=tmp_path)
