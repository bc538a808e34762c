"""Block-trace import: exact op counts on the sample, the mapping rules, and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from flashswap.blocktrace import (
    blocktrace_records,
    import_blocktrace,
    parse_blocktrace,
)
from flashswap.cli import main
from flashswap.cli.output import make_console
from flashswap.errors import TraceFormatError
from flashswap.trace import RECORD_DTYPE, Op, Trace

SAMPLE = Path(__file__).parent / "data" / "blocktrace_sample.txt"


def reference_records(
    path: Path, sector: int, chunk: int, gap: float | None, unwritten: str
) -> np.ndarray:
    """The documented mapping as a plain loop over requests, to check the vectorized one."""
    reqs = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        t, _dev, lba, size, rw = line.split()
        start, end = int(lba) * sector, (int(lba) + int(size)) * sector
        reqs.append(
            (float(t), rw in ("1", "R", "r"), range(start // chunk, (end - 1) // chunk + 1))
        )
    written: set[int] = set()
    preload: set[int] = set()
    body: list[tuple[int, int, int]] = []
    n_inf, prev_t = 0, None
    body.append((Op.INFERENCE_BEGIN, 0, 0))
    for t, is_read, keys in reqs:
        if gap is not None and prev_t is not None and t - prev_t > gap:
            n_inf += 1
            body += [(Op.INFERENCE_END, 0, 0), (Op.INFERENCE_BEGIN, 0, n_inf)]
        prev_t = t
        for k in keys:
            if not is_read:
                written.add(k)
                body.append((Op.WRITE, k, 0))
            elif k in written:
                body.append((Op.READ, k, 0))
            elif unwritten == "preload":
                preload.add(k)
                body.append((Op.READ, k, 0))
    body.append((Op.INFERENCE_END, 0, 0))
    rows = [(Op.WRITE, k, 0) for k in sorted(preload)] + body
    out = np.zeros(len(rows), dtype=RECORD_DTYPE)
    for i, (op, key, value) in enumerate(rows):
        has_length = op in (Op.WRITE, Op.READ)
        out[i] = (op, 0, 0, key, chunk if has_length else 0, 0, value)
    return out


def test_sample_exact_counts(tmp_path):
    out = tmp_path / "s.fst"
    stats = import_blocktrace(SAMPLE, out)
    assert stats.as_dict() == {
        "requests": 22,
        "read_requests": 13,
        "write_requests": 9,
        "writes": 87,
        "reads": 60,
        "preloaded": 12,  # 10240..10247, 513, 0, 7, 8: read before any write
        "skipped_reads": 0,
        "inferences": 1,
        "records": 161,
        "distinct_keys": 96,
        "duration_ms": 259.0,
    }
    t = Trace.open(out)
    t.validate_semantics()
    s = t.summary()
    assert s["ops"]["WRITE"] == 99 and s["ops"]["READ"] == 60
    assert t.inferences() == [(12, 161)]
    assert s["bytes_written_per_inference"] == 87 * 4096
    assert t.metadata["chunk_size"] == 4096
    assert t.metadata["source"] == {
        "format": "blocktrace-5col",
        "file": "blocktrace_sample.txt",
        "device": 0,
        "sector_size": 512,
        "inference_gap_ms": None,
        "unwritten_reads": "preload",
    }


def test_sample_with_gap_and_skip(tmp_path):
    out = tmp_path / "s.fst"
    stats = import_blocktrace(SAMPLE, out, inference_gap_ms=50, unwritten="skip")
    assert (stats.reads, stats.skipped_reads, stats.preloaded, stats.inferences) == (40, 20, 0, 3)
    assert (stats.records, stats.distinct_keys) == (133, 85)
    t = Trace.open(out)
    t.validate_semantics()
    per = [(d["index"], d["bytes_written"], d["bytes_read"]) for d in t.summary()["per_inference"]]
    assert per == [(0, 36 * 4096, 18 * 4096), (1, 34 * 4096, 3 * 4096), (2, 17 * 4096, 19 * 4096)]


@pytest.mark.parametrize("gap", [None, 0.0, 1.0, 50.0])
@pytest.mark.parametrize("unwritten", ["preload", "skip"])
@pytest.mark.parametrize(("sector", "chunk"), [(512, 4096), (512, 512), (4096, 1000), (512, 65536)])
def test_mapping_matches_reference(gap, unwritten, sector, chunk):
    records, stats = blocktrace_records(
        parse_blocktrace(SAMPLE), SAMPLE, sector, chunk, gap, unwritten
    )
    expected = reference_records(SAMPLE, sector, chunk, gap, unwritten)
    assert records.tobytes() == expected.tobytes()
    assert stats.records == expected.size


def test_rw_letters_devices_and_comments(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text("# header\n\n0.5 3 0 8 W\n0.6 7 0 8 w\n1.0 3 0 8 R\n2 3 8 1 r\n")
    with pytest.raises(TraceFormatError) as e:
        import_blocktrace(src, tmp_path / "o.fst")
    assert str(e.value) == (
        f"{src}: line 4: device 7 differs from device 3 of line 3; choose one with --device"
    )
    stats = import_blocktrace(src, tmp_path / "o.fst", device=3)
    assert (stats.requests, stats.writes, stats.reads, stats.preloaded) == (3, 1, 2, 1)
    stats = import_blocktrace(src, tmp_path / "o.fst", device=7)
    assert (stats.requests, stats.writes, stats.reads) == (1, 1, 0)
    with pytest.raises(TraceFormatError) as e:
        import_blocktrace(src, tmp_path / "o.fst", device=1)
    assert str(e.value) == f"{src}: no request for device 1 (devices: 3, 7)"


def test_empty_trace(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text("# nothing\n")
    stats = import_blocktrace(src, tmp_path / "o.fst")
    assert (stats.requests, stats.records, stats.inferences) == (0, 0, 0)
    assert len(Trace.open(tmp_path / "o.fst")) == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1.0 0 8 8", "line 2: expected 5 fields (time device lba sectors rw), found 4"),
        ("1.0 0 8 8 0 9", "line 2: expected 5 fields (time device lba sectors rw), found 6"),
        ("x 0 8 8 0", "line 2: time 'x' is not a number"),
        ("nan 0 8 8 0", "line 2: time 'nan' is not a time in ms"),
        ("-1 0 8 8 0", "line 2: time '-1' is not a time in ms"),
        ("0.5 0 8 8 0", "line 2: time 0.5 ms is before the previous request's 1 ms"),
        ("1.0 a 8 8 0", "line 2: device 'a' is not a number"),
        ("1.0 0 8.5 8 0", "line 2: lba '8.5' is not a number"),
        ("1.0 0 -8 8 0", "line 2: lba -8 is out of range"),
        ("1.0 0 8 0 0", "line 2: size 0 sectors is out of range"),
        ("1.0 0 8 8 2", "line 2: rw flag '2' is not 1/R (read) or 0/W (write)"),
        (
            "1.0 0 281474976710655 8 0",
            "line 2: chunk 35184372088832 does not fit a u32 key; use a larger --chunk",
        ),
    ],
)
def test_bad_lines(tmp_path, line, message):
    src = tmp_path / "bad.txt"
    src.write_text(f"1.0 0 0 8 0\n{line}\n")
    with pytest.raises(TraceFormatError) as e:
        import_blocktrace(src, tmp_path / "o.fst")
    assert str(e.value) == f"{src}: {message}"
    assert not (tmp_path / "o.fst").exists()


def run(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(argv, console=make_console(file=buf, width=200))
    return rc, buf.getvalue()


def test_cli_import(tmp_path):
    out = tmp_path / "o.fst"
    rc, text = run(
        [
            "trace",
            "import",
            str(SAMPLE),
            "-o",
            str(out),
            "--chunk",
            "8KiB",
            "--inference-gap",
            "50",
            "--json",
        ]
    )
    assert rc == 0
    result = json.loads(text)
    assert result["output"] == str(out)
    assert (result["writes"], result["reads"], result["preloaded"], result["inferences"]) == (
        47,
        35,
        7,  # 5120..5123, 0, 3, 4 with 16-sector chunks
        3,
    )
    assert Trace.open(out).metadata["chunk_size"] == 8192
    rc, text = run(["trace", "import", str(SAMPLE), "-o", str(out)])
    assert rc == 0
    assert "│ WRITE records                     │ 87 " in text
    assert "│ pre-existing chunks written first │ 12 " in text


def test_cli_import_bad_input(tmp_path, capsys):
    src = tmp_path / "bad.txt"
    src.write_text("0 0 0 8 0\n1 0 0 8 X\n")
    rc, text = run(["trace", "import", str(src), "-o", str(tmp_path / "o.fst")])
    assert rc == 2 and text == ""
    assert capsys.readouterr().err == (
        f"flashswap: error: {src}: line 2: rw flag 'X' is not 1/R (read) or 0/W (write)\n"
    )
    rc, _ = run(["trace", "import", str(tmp_path / "none.txt"), "-o", str(tmp_path / "o.fst")])
    assert rc == 2
    assert capsys.readouterr().err == (
        f"flashswap: error: {tmp_path / 'none.txt'}: cannot read: No such file or directory\n"
    )
