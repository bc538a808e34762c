"""`flashswap trace info`: exact table and JSON on a small trace, one-line errors."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest

from flashswap.cli import main
from flashswap.cli.output import make_console
from flashswap.trace import TraceWriter

META = {
    "model": "tiny-cnn",
    "sram_budget": 65536,
    "peak_sram": 61440,
    "chunk_size": 4096,
    "generator": "test",
}


def make_trace(path: Path, inferences: int = 2) -> Path:
    with TraceWriter(path, META) as w:
        for i in range(inferences):
            w.begin(i)
            w.weight_read(3000, tensor_id=1)
            w.compute(120000, time_us=800, op_index=0)
            w.put(0, 4096)
            w.put(1, 4096)
            w.put(2, 2048, pinned=True)
            w.get(0, 4096)
            w.trim(0)
            w.compute(90000, op_index=1)
            w.get(1, 4096 if i == 0 else 2048)
            w.get(2, 2048)
            w.invalidate(0, 2)
            w.end()
    return path


def run(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(argv, console=make_console(file=buf, width=200))
    return rc, buf.getvalue()


EXPECTED_TABLE = """\
Trace
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━┓
┃                              ┃ value     ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━┩
│ file                         │ small.fst │
│ model                        │ tiny-cnn  │
│ generator                    │ test      │
│ records                      │ 26        │
│ inferences                   │ 2         │
│ distinct keys                │ 3         │
│ chunk size (B)               │ 4,096     │
│ SRAM budget (B)              │ 65,536    │
│ peak SRAM (B)                │ 61,440    │
│ written / inference (B)      │ 10,240    │
│ read / inference (B)         │ 9,216     │
│ weights read / inference (B) │ 3,000     │
│ MACs / inference             │ 210,000   │
└──────────────────────────────┴───────────┘
Records by op
┏━━━━━━━━━━━━━━━━━┳━━━━━━━━━┓
┃ op              ┃ records ┃
┡━━━━━━━━━━━━━━━━━╇━━━━━━━━━┩
│ WRITE           │       6 │
│ READ            │       6 │
│ TRIM            │       2 │
│ INVALIDATE      │       2 │
│ SYNC            │       0 │
│ INFERENCE_BEGIN │       2 │
│ INFERENCE_END   │       2 │
│ COMPUTE         │       4 │
│ WEIGHT_READ     │       2 │
└─────────────────┴─────────┘
Per inference
┏━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━┳━━━━━━━━━━━━━━━━┳━━━━━━━━━┓
┃ inference ┃ records ┃ written B ┃ read B ┃ weights read B ┃    MACs ┃
┡━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━╇━━━━━━━━━━━━━━━━╇━━━━━━━━━┩
│         0 │      13 │    10,240 │ 10,240 │          3,000 │ 210,000 │
│         1 │      13 │    10,240 │  8,192 │          3,000 │ 210,000 │
└───────────┴─────────┴───────────┴────────┴────────────────┴─────────┘
"""


def test_info_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_trace(tmp_path / "small.fst")
    rc, text = run(["trace", "info", "small.fst"])
    assert rc == 0
    assert [line.rstrip() for line in text.splitlines()] == EXPECTED_TABLE.splitlines()


def test_info_json(tmp_path):
    p = make_trace(tmp_path / "small.fst")
    rc, text = run(["trace", "info", str(p), "--json"])
    assert rc == 0
    per = {"records": 13, "bytes_written": 10240, "weight_bytes_read": 3000, "macs": 210000}
    assert json.loads(text) == {
        "path": str(p),
        "model": "tiny-cnn",
        "generator": "test",
        "records": 26,
        "inferences": 2,
        "ops": {
            "WRITE": 6,
            "READ": 6,
            "TRIM": 2,
            "INVALIDATE": 2,
            "SYNC": 0,
            "INFERENCE_BEGIN": 2,
            "INFERENCE_END": 2,
            "COMPUTE": 4,
            "WEIGHT_READ": 2,
        },
        "distinct_keys": 3,
        "chunk_size": 4096,
        "sram_budget": 65536,
        "peak_sram": 61440,
        "bytes_written": 20480,
        "bytes_read": 18432,
        "weight_bytes_read": 6000,
        "macs": 420000,
        "bytes_written_per_inference": 10240.0,
        "bytes_read_per_inference": 9216.0,
        "weight_bytes_read_per_inference": 3000.0,
        "macs_per_inference": 210000.0,
        "per_inference": [
            {"index": 0, "first_record": 0, "bytes_read": 10240, **per},
            {"index": 1, "first_record": 13, "bytes_read": 8192, **per},
        ],
        "metadata": {**META, "tensors": []},
    }


def test_info_many_inferences_shows_the_first_ten(tmp_path):
    p = make_trace(tmp_path / "many.fst", inferences=12)
    rc, text = run(["trace", "info", str(p)])
    assert rc == 0
    assert "Per inference (first 10 of 12)" in text
    assert "│         9 │      13 │" in text and "│        10 │" not in text
    rc, text = run(["trace", "info", str(p), "--json"])
    assert len(json.loads(text)["per_inference"]) == 10


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda b: b[:-7],
            "truncated: file is {size} bytes but its header describes {full} "
            "(26 records, 108 bytes of metadata, CRC)",
        ),
        (lambda b: b"NOTATRACE" + b[9:], "byte 0: bad magic b'NOTATRAC' (not a flashswap trace)"),
        (
            lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:],
            "CRC mismatch: stored 0x{stored}, computed 0x{computed}",
        ),
    ],
)
def test_info_corrupt_file_is_one_line_exit_2(tmp_path, capsys, damage, message):
    good = make_trace(tmp_path / "small.fst").read_bytes()
    bad = damage(good)
    p = tmp_path / "bad.fst"
    p.write_bytes(bad)
    rc, text = run(["trace", "info", str(p)])
    err = capsys.readouterr().err
    assert rc == 2 and text == ""
    expected = message.format(
        size=len(bad),
        full=len(good),
        stored=f"{struct.unpack('<I', bad[-4:])[0]:08x}",
        computed=f"{zlib.crc32(bad[:-4]):08x}",
    )
    assert err == f"flashswap: error: {p}: {expected}\n"


def test_info_semantic_error_and_missing_file(tmp_path, capsys):
    p = tmp_path / "sem.fst"
    with TraceWriter(p) as w:
        w.begin(0)
        w.put(1, 64)
        w.trim(1)
        w.get(1, 64)
        w.end()
    assert run(["trace", "info", str(p)])[0] == 2
    assert capsys.readouterr().err == (
        f"flashswap: error: {p}: record 3: READ of key 1 that was trimmed at record 2\n"
    )
    assert run(["trace", "info", str(tmp_path / "none.fst"), "--json"]) == (2, "")
    assert capsys.readouterr().err == (
        f"flashswap: error: {tmp_path / 'none.fst'}: cannot open: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bogus"], "argument COMMAND: invalid choice: "),  # the rest varies by Python
        (["parts", "--kind", "nor"], "unrecognized arguments: --kind nor"),
        (["trace", "plan", "builtin:resnet8", "-o", "x.bin"],
         "trace plan: the following arguments are required: --sram"),
        (["lifetime"], "lifetime: the following arguments are required: TRACE"),
    ],
)
def test_usage_errors_are_one_line_naming_the_subcommand(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = run(argv)
    err = capsys.readouterr().err
    assert rc == 2 and out == ""
    assert err.startswith(f"flashswap: error: {expected}") and err.count("\n") == 1, err
