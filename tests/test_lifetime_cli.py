"""`flashswap lifetime`: tables, verdicts, JSON, plot and one-line errors."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from rich.console import Console

from analyzer.synth import write_chain_trace
from flashswap.cli import main
from flashswap.cli.output import make_console

REQUIRED = {
    "part", "kind", "store", "years", "years_weibull_p1", "years_weibull_median",
    "ideal_years", "efficiency", "waf", "erase_amplification", "wear_max_over_mean",
    "io_seconds_per_inference", "io_energy_mj_per_inference", "slowdown", "max_rate_per_s",
}
SMALL = ["--part", "W25Q128JV", "--part", "W25N01GV,S-46u-2GB", "--capacity", "2MiB"]


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(list(argv), console=make_console(file=buf, width=200))
    return rc, buf.getvalue()


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    return write_chain_trace(
        tmp_path_factory.mktemp("cli") / "chain.bin", (16384, 8192, 4096, 1000), chunk=4096
    )


@pytest.fixture(scope="module")
def json_run(trace) -> dict:
    rc, out = cli("lifetime", str(trace), *SMALL, "--rate", "10/min", "--json", "--jobs", "1")
    assert rc == 0
    return json.loads(out)


def test_json_shape(json_run) -> None:
    d = json_run
    assert d["trace"] == "chain.bin" and d["rate_per_s"] == pytest.approx(10 / 60)
    got = {(r["part"], r["store"]) for r in d["results"]}
    assert got == {
        (p, s) for p in ("W25Q128JV", "W25N01GV") for s in ("flashswap", "littlefs", "naive")
    } | {("S-46u-2GB", "littlefs"), ("S-46u-2GB", "naive")}
    for r in d["results"]:
        assert REQUIRED <= set(r), REQUIRED - set(r)
        assert r["rate_per_s"] == d["rate_per_s"]
    assert d["errors"] == [
        {
            "part": "S-46u-2GB",
            "store": "flashswap",
            "error": "the flashswap store runs on raw flash; on a managed device (SD/eMMC) "
            "the card's own FTL remaps writes",
        }
    ]


def test_the_ecc_assumption_is_reported(trace, json_run) -> None:
    """Raw bit errors are simulated as the part's ECC corrects them: the report says which."""
    ecc = {r["part"]: r["ecc"] for r in json_run["results"]}
    assert ecc == {"W25Q128JV": "no ECC needed", "W25N01GV": "on-die ECC, 1 bit(s) per 512 B",
                   "S-46u-2GB": "no ECC needed"}
    rc, out = cli("lifetime", str(trace), "--part", "W25N01GV", "--capacity", "2MiB",
                  "--store", "naive", "--rate", "1/s", "--jobs", "1")
    assert rc == 0
    assert ("W25N01GV (nand/slc, 2 MiB replayed, endurance 100,000 cycles; on-die ECC, 1 bit(s) "
            "per 512 B)") in " ".join(out.split())  # the title may wrap


def test_json_figures_are_consistent(json_run) -> None:
    by = {(r["part"], r["store"]): r for r in json_run["results"]}
    fs = by[("W25Q128JV", "flashswap")]
    assert fs["efficiency"] == pytest.approx(fs["years"] / fs["ideal_years"])
    assert fs["efficiency"] >= 0.95
    assert fs["wear_max_over_mean"] == pytest.approx(1.0, abs=0.01)
    assert fs["slowdown"] > 1 and fs["max_rate_per_s"] > 0
    # the naive layout erases each 4 KiB slot once per inference: 1 erase of 32 KiB total...
    nv = by[("W25Q128JV", "naive")]
    assert nv["erase_amplification"] == pytest.approx(8 * 4096 / 29672)
    assert nv["years"] < fs["years"] / 10
    sd = by[("S-46u-2GB", "naive")]
    assert sd["years_weibull_p1"] is None and sd["managed"]["internal_waf_assumed"] == 2.0


def test_table_and_verdicts(trace) -> None:
    rc, out = cli("lifetime", str(trace), "--part", "W25Q128JV", "--capacity", "1MiB",
                  "--store", "flashswap,naive", "--rate", "1/s", "--jobs", "1")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "chain.bin: synthetic-chain, 29 KiB swapped out per inference, at 1/s"
    assert lines[1] == "compute: 4.0 ms per inference, from the trace's COMPUTE times"
    assert lines[2].startswith(
        "W25Q128JV (nor, 1 MiB replayed, endurance 100,000 cycles; flashswap segments 64 KiB)")
    header = next(ln for ln in lines if "store" in ln and "years" in ln)
    for col in ("Weibull p1", "ideal years", "efficiency", "erase ampl.", "wear max/mean",
                "I/O ms/inf", "I/O mJ/inf", "slowdown", "max rate"):
        assert col in header
    assert any(ln.startswith("│ flashswap") for ln in lines)
    assert any(ln.startswith("│ naive") for ln in lines)
    verdict = lines[-1]
    assert verdict.startswith("W25Q128JV: flashswap lasts ")
    assert "x naive" in verdict and "ms and" in verdict and "mJ of flash work" in verdict
    assert "; an inference takes " in verdict and "x as long as with its activations in SRAM (" \
        in verdict and "x with prefetch)" in verdict


def test_parallel_jobs_give_the_same_numbers(trace, json_run) -> None:
    rc, out = cli("lifetime", str(trace), *SMALL, "--rate", "10/min", "--json", "--jobs", "2")
    assert rc == 0
    par = json.loads(out)
    strip = [{k: v for k, v in r.items() if k != "replay"} for r in par["results"]]
    seq = [{k: v for k, v in r.items() if k != "replay"} for r in json_run["results"]]
    assert strip == seq


def test_plot(trace, tmp_path) -> None:
    png = tmp_path / "wear.png"
    rc, _ = cli("lifetime", str(trace), "--part", "W25Q128JV", "--capacity", "1MiB",
                "--plot", str(png), "--json", "--jobs", "1")
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--part", "W25Q128"], "flashswap: error: unknown part 'W25Q128' (closest: "),
        (["--rate", "often"], "flashswap: error: bad rate 'often': expected COUNT/UNIT"),
        (["--store", "fat32"], "flashswap: error: unknown store 'fat32' (choose from "),
        (["--capacity", "12 parsecs"], "flashswap: error: invalid capacity '12 parsecs'"),
        (["--block-cycles", "0"], "flashswap: error: --block-cycles must be -1 or positive"),
        (["--part", "W25Q128JV", "--capacity", "16KiB"],
         "flashswap: error: chain.bin: the working set (29672 bytes live at once) exceeds the "
         "16384-byte capacity of W25Q128JV"),
        (["--part", "W25Q128JV", "--capacity", "64MiB"],
         "flashswap: error: --capacity 67108864 exceeds W25Q128JV's 16777216 bytes"),
    ],
)
def test_errors_are_one_line(trace, capsys, argv, message) -> None:
    rc, out = cli("lifetime", str(trace), *argv, "--jobs", "1")
    err = capsys.readouterr().err
    assert rc == 2 and out == ""
    assert err.startswith(message), err
    assert err.count("\n") == 1


def test_corrupt_and_missing_traces(tmp_path, trace, capsys) -> None:
    bad = tmp_path / "bad.bin"
    data = bytearray(trace.read_bytes())
    data[40] ^= 0xFF
    bad.write_bytes(bytes(data))
    rc, _ = cli("lifetime", str(bad))
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"flashswap: error: {bad}: CRC mismatch")
    rc, _ = cli("lifetime", str(tmp_path / "none.bin"))
    assert rc == 2 and "no such trace file" in capsys.readouterr().err


SAMPLE = Path(__file__).resolve().parent.parent / "traces" / "mobilenet_v2_256k.bin"
RESNET8 = SAMPLE.with_name("resnet8_256k.bin")


def test_untimed_compute_takes_the_default_mcus_measured_rate() -> None:
    """The sample traces carry MACs, not times. By default they compute at the MLPerf Tiny
    rate of a Cortex-M4: the ResNet-8 trace (the benchmark's own model, 12,501,632 MACs)
    then takes 1 / 4.407 s per inference, the published throughput."""
    rc, out = cli("lifetime", str(RESNET8), "--part", "W25Q128JV", "--capacity", "1MiB",
                  "--store", "naive", "--json", "--jobs", "1")
    assert rc == 0
    c = json.loads(out)["compute"]
    assert c["from"] == "mcu" and c["mcu"] == "cortex-m4-120mhz-xcube-ai"
    assert c["macs_per_inference"] == 12_501_632
    assert c["macs_per_s"] == pytest.approx(4.407 * 12_501_632)
    assert c["seconds_per_inference"] == pytest.approx(1 / 4.407, rel=1e-4)
    assert "NUCLEO_L4R5ZI" in c["source"]
    rc, out = cli("lifetime", str(RESNET8), "--part", "W25Q128JV", "--capacity", "1MiB",
                  "--store", "naive", "--jobs", "1", "--mcu", "cortex-m7-280mhz-xcube-ai")
    assert rc == 0
    assert ("compute: 12.5 M MACs per inference at 230.0 M MAC/s (Cortex-M7 at 280 MHz, "
            "X-CUBE-AI 7.3.0; MLPerf Tiny v1.0) = 54.3 ms") in out


def test_compute_rate_choices(tmp_path) -> None:
    """--macs-per-s beats --mcu; --mcu none leaves the slowdown n/a; a trace with COMPUTE
    times keeps them whatever the options."""
    untimed = write_chain_trace(tmp_path / "u.bin", (8192, 4096), compute_us=0)
    base = ("lifetime", str(untimed), "--part", "W25Q128JV", "--capacity", "1MiB", "--store",
            "flashswap", "--json", "--jobs", "1")
    got = {}
    for extra in ((), ("--macs-per-s", "1M"), ("--mcu", "none")):
        rc, out = cli(*base, *extra)
        assert rc == 0
        d = json.loads(out)
        got[extra] = (d["compute"], d["results"][0]["slowdown"])
    (mcu, s_mcu), (fixed, s_fixed), (none, s_none) = got.values()
    macs = (8192 + 4096) * 16
    assert mcu["seconds_per_inference"] == pytest.approx(macs / (4.407 * 12_501_632), rel=1e-3)
    assert fixed["from"] == "--macs-per-s" and fixed["seconds_per_inference"] == macs / 1e6
    assert none["from"] is None and none["seconds_per_inference"] == 0 and s_none is None
    assert s_mcu > s_fixed > 1  # the faster the compute, the more swapping weighs
    timed = write_chain_trace(tmp_path / "t.bin", (8192, 4096), compute_us=2500)
    rc, out = cli(*base[:1], str(timed), *base[2:], "--macs-per-s", "1M")
    c = json.loads(out)["compute"]
    assert c["from"] == "trace" and c["seconds_per_inference"] == pytest.approx(5e-3)


def test_unknown_mcu_is_a_one_line_error(trace, capsys) -> None:
    rc, _ = cli("lifetime", str(trace), "--mcu", "cortex-m4", "--jobs", "1")
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("flashswap: error: unknown MCU 'cortex-m4' (closest: cortex-m4-120mhz-")




@pytest.mark.slow
def test_sample_trace_time_targets() -> None:
    """Default parts at whole-part capacity: <= 10 s with the flashswap store alone and
    <= 60 s with all three stores (2-core machine)."""
    t = time.perf_counter()
    rc, _ = cli("lifetime", str(SAMPLE), "--store", "flashswap")
    assert rc == 0 and time.perf_counter() - t <= 10
    t = time.perf_counter()
    rc, _ = cli("lifetime", str(SAMPLE))
    assert rc == 0 and time.perf_counter() - t <= 60


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_progress_bar_on_a_terminal(trace, jobs) -> None:
    """On a terminal the run shows a progress bar (transient) and still prints the tables."""
    buf = io.StringIO()
    console = Console(file=buf, width=200, force_terminal=True, force_interactive=True)
    rc = main(["lifetime", str(trace), "--part", "W25Q128JV", "--capacity", "1MiB",
               "--store", "flashswap,naive", "--jobs", jobs], console=console)
    out = buf.getvalue()
    assert rc == 0
    assert "W25Q128JV × flashswap" in out and "inferences" in out  # the bar
    assert "W25Q128JV: flashswap lasts" in out


def test_engine_choice_changes_speed_not_wear(trace) -> None:
    """--engine python and --engine c write the same blocks: the same years and wear; the
    JSON names the engine that ran."""
    from analyzer.engine_flashswap import resolve_implementation

    if resolve_implementation("auto") != "c":
        pytest.skip("C engine not built (no compiler)")
    got = {}
    for engine in ("python", "c"):
        rc, out = cli("lifetime", str(trace), "--part", "W25Q128JV", "--capacity", "1MiB",
                      "--store", "flashswap", "--engine", engine, "--json", "--jobs", "1")
        assert rc == 0
        (r,) = json.loads(out)["results"]
        assert r["engine"]["implementation"] == engine
        got[engine] = r
    for k in ("years", "years_weibull_p1", "ideal_years", "erase_amplification",
              "wear_max_over_mean", "waf"):
        assert got["python"][k] == got["c"][k], k
    rc, out = cli("lifetime", str(trace), "--engine", "rust")
    assert rc == 2


def test_segment_size_trades_erase_time_for_weibull_life(trace) -> None:
    """On NOR the store's default segment is the 64 KiB block: one erase command per segment,
    but a segment retires with the weakest of its 16 sectors. 4 KiB segments retire one
    sector at a time (a longer Weibull p1) and take 16 erase commands for the same bytes."""
    got = {}
    for seg in ("4KiB", "64KiB"):
        rc, out = cli("lifetime", str(trace), "--part", "W25Q128JV", "--capacity", "2MiB",
                      "--store", "flashswap", "--segment-size", seg, "--json", "--jobs", "1")
        assert rc == 0
        got[seg] = json.loads(out)["results"][0]
    assert got["4KiB"]["engine"]["segment_size"] == 4096
    assert got["64KiB"]["engine"]["segment_size"] == 65536
    assert got["4KiB"]["years_weibull_p1"] > 1.5 * got["64KiB"]["years_weibull_p1"]
    assert got["4KiB"]["io_seconds_per_inference"] > got["64KiB"]["io_seconds_per_inference"]


def test_segment_size_errors(trace, capsys) -> None:
    rc, _ = cli("lifetime", str(trace), "--part", "W25N01GV", "--store", "flashswap",
                "--segment-size", "32KiB", "--jobs", "1")
    assert (rc, capsys.readouterr().err) == (2, "flashswap: error: segment size 32768 is not "
                                                "an erase size of this flash (131072)\n")
    # MobileNetV2 at 256 KiB layer by layer (the fused sample trace swaps nothing).
    layers = trace.with_name("mobilenet_v2_256k_layers.bin")
    assert cli("trace", "plan", "builtin:mobilenet_v2", "--sram", "256KiB", "--schedule",
               "layers", "-o", str(layers))[0] == 0
    capsys.readouterr()
    rc, _ = cli("lifetime", str(layers), "--part", "W25Q128JV", "--store", "flashswap",
                "--segment-size", "4KiB", "--jobs", "1")
    assert (rc, capsys.readouterr().err) == (
        2, "flashswap: error: the working set's 368 chunks do not fit the index of 4,096-byte "
        "segments (at most 164 chunks: a checkpoint fills at most half a segment); choose a "
        "larger segment size\n")
