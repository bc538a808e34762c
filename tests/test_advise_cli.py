"""`flashswap advise`: the ranked answer, margins, per-part minimum, what fell short, the
recommendation, JSON, CSV and plot, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from flashswap.cli import main
from flashswap.cli.output import make_console
from tests.planutil import budget_error

SMALL = ["builtin:resnet8", "--sram", "4KiB..16KiB", "--part", "W25Q128JV,MX25R6435F",
         "--part", "S-46u-2GB", "--rate", "1/min"]
JSON_FIELDS = {"model", "sram", "part", "store", "years", "slowdown",
               "io_energy_mj_per_inference", "meets", "reason"}
TOO_SMALL = budget_error("builtin:resnet8", 4096)  # the planner's own words


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(list(argv), console=make_console(file=buf, width=200))
    return rc, buf.getvalue()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("advise-cache"))


@pytest.fixture(scope="module")
def run200(cache) -> dict:
    rc, out = cli("advise", *SMALL, "--years", "200", "--json", "--workers", "1",
                  "--cache-dir", cache)
    assert rc == 0
    return json.loads(out)


def test_json_lists_every_configuration(run200) -> None:
    rows = run200["configurations"]
    assert [(r["sram"] // 1024, r["part"]) for r in rows] == [
        (k, p) for k in (4, 8, 16) for p in ("W25Q128JV", "MX25R6435F", "S-46u-2GB")]
    for r in rows:
        assert JSON_FIELDS <= set(r) and r["model"] == "builtin:resnet8"
        assert r["store"] == "flashswap" and isinstance(r["meets"], bool)
        assert (r["reason"] is None) == r["meets"]
    by = {(r["sram"] // 1024, r["part"]): r for r in rows}
    ok = by[(16, "W25Q128JV")]
    assert ok["meets"] and ok["years"] > 200 and ok["margin_years"] == ok["years"] - 200
    assert ok["kind"] == "NOR" and ok["slowdown"] > 1 and ok["io_energy_mj_per_inference"] > 0
    short = by[(16, "MX25R6435F")]
    assert not short["meets"] and not short["failed"] and short["years"] < 200
    assert short["reason"] == (f"lasts {short['years']:.3g} years, "
                               f"{200 - short['years']:.3g} short of 200")
    bad = by[(4, "MX25R6435F")]
    assert (bad["meets"], bad["failed"], bad["reason"], bad["years"]) == (False, True,
                                                                          TOO_SMALL, None)
    assert by[(8, "S-46u-2GB")]["reason"].startswith("the flashswap store runs on raw flash")
    assert run200["ranked"] == [["builtin:resnet8", 16384, "W25Q128JV", "flashswap"]]
    assert run200["target"] == {"years": 200.0, "rate_per_s": 1 / 60, "rate": "1/min",
                               "max_slowdown": None}
    assert run200["sweep"]["configurations"] == 9


def test_smallest_sram_per_part_and_recommendation(run200) -> None:
    small = {s["part"]: s for s in run200["smallest_sram"]}
    assert small["W25Q128JV"]["sram"] == 16384 and small["W25Q128JV"]["reason"] is None
    mx = next(r for r in run200["configurations"]
              if r["part"] == "MX25R6435F" and r["sram"] == 16384)
    assert small["MX25R6435F"] == {
        "model": "builtin:resnet8", "part": "MX25R6435F", "store": "flashswap", "kind": "NOR",
        "sram": None, "years": None, "slowdown": None, "io_energy_mj_per_inference": None,
        "reason": f"lasts {mx['years']:.3g} years at most (at 16 KiB), "
                  f"{200 - mx['years']:.3g} short of 200 at 1/min"}
    assert small["S-46u-2GB"]["reason"].startswith("no configuration ran: the flashswap store")
    ok = next(r for r in run200["configurations"] if r["meets"])
    assert run200["recommendation"] == {"builtin:resnet8": (
        f"builtin:resnet8: W25Q128JV (NOR) with 16 KiB of SRAM: {ok['years']:.3g} years "
        f"({ok['years'] / 200:.3g}x the target) at 1/min, {ok['slowdown']:.3g}x slowdown, "
        f"{ok['io_energy_mj_per_inference']:.3g} mJ of flash I/O per inference")}


def test_text_answer(run200, cache) -> None:
    rc, out = cli("advise", *SMALL, "--years", "200", "--cache-dir", cache, "--workers", "2")
    assert rc == 0
    lines = out.splitlines()
    # every configuration came from the cache the JSON run filled
    assert lines[0].startswith(
        "target: 200 years at 1/min; 3 SRAM budgets (4 KiB, 8 KiB, 16 KiB) × 3 parts × "
        "flashswap: 9 configurations, 9 from the cache, 0 computed (local pool, 2 workers, ")
    assert lines[0].endswith(" s), 5 failed")
    assert "meeting the target (smallest SRAM first, then most years)" in out
    assert f"failed: 4 KiB, every part: {TOO_SMALL}" in lines
    assert ("failed: S-46u-2GB at 8 KiB, 16 KiB: the flashswap store runs on raw flash; on a "
            "managed device (SD/eMMC) the card's own FTL remaps writes") in lines
    assert f"recommendation: {run200['recommendation']['builtin:resnet8']}" in lines
    w16 = next(r for r in run200["configurations"]
               if r["part"] == "W25Q128JV" and r["sram"] == 8192)
    assert (f"NOR: from 16 KiB (W25Q128JV, {run200['smallest_sram'][0]['years']:.3g} years); "
            f"at 1/min no NOR part lasts 200 years below 16 KiB (closest: W25Q128JV at 8 KiB, "
            f"{w16['years']:.3g} years, {200 - w16['years']:.3g} short)") in lines


def test_nothing_meets_says_which_constraint_and_by_how_much(run200, cache) -> None:
    rows = {(r["sram"] // 1024, r["part"]): r for r in run200["configurations"]}
    best = rows[(16, "W25Q128JV")]
    rc, out = cli("advise", *SMALL, "--years", "500", "--cache-dir", cache)
    assert rc == 0
    assert "no configuration meets the target" in out
    assert (f"at 1/min no NOR part lasts 500 years up to 16 KiB (closest: W25Q128JV at 16 KiB, "
            f"{best['years']:.3g} years, {500 - best['years']:.3g} short)") in out.splitlines()
    # years are met but the slowdown is not: the slowdown is named, with its excess
    rc, out = cli("advise", *SMALL, "--years", "1", "--max-slowdown", "1.01x", "--json",
                  "--cache-dir", cache)
    d = json.loads(out)
    fast = min((r for r in run200["configurations"] if r["slowdown"] is not None),
               key=lambda r: r["slowdown"])
    over = fast["slowdown"] - 1.01
    assert over > 0
    where = f"{fast['part']} at {fast['sram'] // 1024} KiB"
    assert d["recommendation"]["builtin:resnet8"] == (
        "builtin:resnet8: nothing up to 16 KiB meets the target (1 year at 1/min, at most 1.01x "
        f"slowdown): slowdown {fast['slowdown']:.3g}x at least ({where}), "
        f"{over:.3g}x over 1.01x")
    r = next(r for r in d["configurations"]
             if r["part"] == fast["part"] and r["sram"] == fast["sram"])
    assert not r["meets"] and r["margin_slowdown"] == pytest.approx(-over)
    assert r["reason"] == f"slowdown {fast['slowdown']:.3g}x, {over:.3g}x over 1.01x"
    assert d["sweep"]["computed"] == 0  # a new target reuses every cached result


def test_rate_the_flash_cannot_keep_up_with(cache) -> None:
    rc, out = cli("advise", "builtin:resnet8", "--sram", "16KiB", "--part", "MX25R6435F",
                  "--years", "0.001", "--rate", "10/s", "--json", "--cache-dir", cache)
    r = json.loads(out)["configurations"][0]
    assert not r["meets"] and r["reason"].startswith("cannot run 10/s: at most ")


def test_csv_and_plot(run200, cache, tmp_path: Path) -> None:
    c, png = tmp_path / "a.csv", tmp_path / "a.png"
    rc, _ = cli("advise", *SMALL, "--years", "200", "--cache-dir", cache, "--csv", str(c),
                "--plot", str(png), "--json")
    assert rc == 0
    with open(c, newline="") as f:
        got = list(csv.DictReader(f))
    assert len(got) == 9 and set(JSON_FIELDS) <= set(got[0])
    for row, want in zip(got, run200["configurations"], strict=True):
        assert row["part"] == want["part"] and int(row["sram"]) == want["sram"]
        assert row["meets"] == str(want["meets"]) and row["reason"] == (want["reason"] or "")
        if want["years"] is not None:
            assert float(row["years"]) == want["years"]  # exact: repr round-trips
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_same_figures_as_flashswap_lifetime(run200, tmp_path: Path) -> None:
    """advise plans and replays with the planner and the lifetime analysis themselves: its row
    is what `trace plan` + `lifetime` print for that configuration."""
    trace = tmp_path / "r8.bin"
    assert cli("trace", "plan", "builtin:resnet8", "--sram", "16KiB", "-o", str(trace))[0] == 0
    rc, out = cli("lifetime", str(trace), "--part", "W25Q128JV", "--store", "flashswap",
                  "--json", "--jobs", "1")
    life = json.loads(out)["results"][0]
    row = next(r for r in run200["configurations"]
               if r["part"] == "W25Q128JV" and r["sram"] == 16384)
    for k in ("years", "years_weibull_p1", "slowdown", "slowdown_prefetch",
              "io_energy_mj_per_inference", "max_rate_per_s"):
        assert row[k] == life[k], k


def test_default_parts_are_the_nor_and_nand_catalogue(cache) -> None:
    rc, out = cli("advise", "builtin:ds_cnn", "--sram", "64KiB", "--kind", "nor",
                  "--years", "5", "--rate", "1/h", "--json", "--cache-dir", cache)
    d = json.loads(out)
    assert d["parts"] == ["W25Q128JV", "IS25LX128", "MX25R6435F"]
    # DS-CNN fits 64 KiB: nothing is swapped, nothing wears (years null: unbounded)
    for r in d["configurations"]:
        assert r["meets"] and r["years"] is None and r["swap_bytes_per_inference"] == 0


def test_model_file_and_its_cache(tmp_path) -> None:
    """A TFLite model (its own int8 types): planned, replayed, cached across loads."""
    tflite = str(Path(__file__).parent / "fixtures" / "models" / "ic_resnet8_32.tflite")
    argv = ["advise", tflite, "--sram", "16KiB", "--part", "W25Q128JV", "--years", "10",
            "--rate", "1/min", "--json", "--cache-dir", str(tmp_path)]
    rc, out = cli(*argv)
    d = json.loads(out)
    (row,) = d["configurations"]
    assert rc == 0 and row["meets"] and row["years"] > 10 and d["sweep"]["computed"] == 1
    rc, out = cli(*argv)
    assert json.loads(out)["sweep"]["computed"] == 0
    assert json.loads(out)["configurations"] == [row]


@pytest.mark.parametrize("argv,msg", [
    (["--sram", "1MiB..32KiB"], "invalid SRAM range '1MiB..32KiB': 1MiB is larger than 32KiB"),
    (["--sram", "32KiB...1MiB"], "invalid SRAM range '32KiB...1MiB': expected A..B or "
                                 "A..B:STEP, e.g. 32KiB..1MiB or 64KiB..512KiB:64KiB"),
    (["--part", "W25Q128"], "unknown part 'W25Q128' (closest: W25Q128JV, IS25LX128, W25N01GV; "
                            "`flashswap parts` lists all)"),
    (["--kind", "nor,tape"], "unknown part kind 'tape' (choose from nor, nand, managed, "
                             "internal)"),
    (["--rate", "often"], "bad rate 'often': expected COUNT/UNIT such as 1/s, 10/min, 3/h or "
                          "24/day"),
    (["--years", "0"], "--years must be a positive number of years, not 0"),
    (["--years", "-3"], "--years must be a positive number of years, not -3"),
    (["--years", "nan"], "--years must be a positive number of years, not nan"),
    (["--years", "ten"], "advise: argument --years: invalid float value: 'ten'"),
    (["--max-slowdown", "0.5"], "--max-slowdown must be at least 1 (no slowdown), not 0.5"),
    (["--max-slowdown", "fast"], "--max-slowdown must be a number such as 1.5, not 'fast'"),
    (["--max-slowdown", "2", "--mcu", "none"], "--max-slowdown needs a compute time: give "
                                               "--mcu or --macs-per-s"),
    (["--workers", "0"], "--workers must be at least 1, not 0"),
    (["--store", "fat"], "unknown store 'fat' (choose from flashswap, littlefs, naive)"),
    (["--part", "W25Q128JV", "--kind", "nor"], "advise: argument --kind: not allowed with "
                                               "argument --part"),
    (["--mcu", "z80"], "unknown MCU 'z80' (choose from: cortex-m4-120mhz-xcube-ai, "
                       "cortex-m4-120mhz-cmsis-nn, cortex-m4-120mhz-tflm, "
                       "cortex-m7-280mhz-xcube-ai)"),
    (["--csv", "/no/such/dir/a.csv"], "cannot write /no/such/dir/a.csv: no such directory"),
    (["--input-shape", "input=1x32x32x3"], "built-in models have fixed shapes: choose the "
                                           "resolution in the name (e.g. "
                                           "builtin:mobilenet_v2_0.35_96)"),
])
def test_errors_are_one_line_exit_2(argv, msg, capsys, tmp_path) -> None:
    base = {"--years": "5", "--rate": "1/min", "--sram": "64KiB"}
    for i in range(0, len(argv), 2):
        base.pop(argv[i], None)
    words = [w for kv in base.items() for w in kv]
    rc = main(["advise", "builtin:resnet8", *words, *argv, "--cache-dir", str(tmp_path)],
              console=make_console(file=io.StringIO()))
    err = capsys.readouterr().err
    assert rc == 2 and err == f"flashswap: error: {msg}\n"


def test_missing_model_and_target_are_usage_errors(capsys) -> None:
    assert main(["advise", "builtin:resnet8", "--rate", "1/min"]) == 2
    assert capsys.readouterr().err == (
        "flashswap: error: advise: the following arguments are required: --years\n")
    assert main(["advise", "nosuch.onnx", "--years", "1", "--rate", "1/min"]) == 2
    assert capsys.readouterr().err == "flashswap: error: model 'nosuch.onnx': no such file\n"


def test_bad_cluster_address_is_one_line(capsys) -> None:
    pytest.importorskip("distributed")
    rc = main(["advise", "builtin:resnet8", "--years", "1", "--rate", "1/min", "--sram",
               "16KiB", "--no-cache", "--cluster", "nonsense"])
    assert rc == 2 and capsys.readouterr().err == (
        "flashswap: error: invalid Dask scheduler address 'nonsense': missing port number in "
        "address 'nonsense'\n")


@pytest.mark.slow  # the client tries to connect for its whole timeout (20 s)
def test_unreachable_cluster_is_one_line(capsys) -> None:
    pytest.importorskip("distributed")
    rc = main(["advise", "builtin:resnet8", "--years", "1", "--rate", "1/min", "--sram",
               "16KiB", "--no-cache", "--cluster", "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("flashswap: error: cannot reach the Dask scheduler at "
                                      "tcp://127.0.0.1:1: ") and err.count("\n") == 1


@pytest.mark.slow  # starts a LocalCluster of 2 spawned worker processes
def test_cli_on_a_local_dask_cluster_equals_the_local_pool(run200, tmp_path) -> None:
    pytest.importorskip("distributed")
    rc, out = cli("advise", *SMALL, "--years", "200", "--json", "--cluster", "local",
                  "--workers", "2", "--cache-dir", str(tmp_path))
    d = json.loads(out)
    assert rc == 0 and d["sweep"]["backend"] == "dask LocalCluster"
    assert d["sweep"]["computed"] == 9 and d["configurations"] == run200["configurations"]
