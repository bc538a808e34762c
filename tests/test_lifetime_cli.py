"""`flashswap lifetime`: tables, verdicts, JSON, plot and one-line errors."""

from __future__ import annotations

import io
import json
import re
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
    "config", "years_first_worn_block_weibull_p1", "years_first_worn_block_weibull_median",
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
    title = " ".join(out.split())  # the title may wrap
    assert "W25N01GV (nand/slc, 2 MiB replayed, endurance 100,000 cycles" in title
    assert "datasheet max, on-die ECC, 1 bit(s) per 512 B" in title


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
    assert lines[2] == ("W25Q128JV (nor, 1 MiB replayed, endurance 100,000 cycles, bus 4-bit at "
                        "133 MHz, Weibull k=2 (assumption))")
    header = "\n".join(ln for ln in lines if ln.startswith("┃"))
    for col in ("years", "Weibull: 1st", "worn block", "store dies", "p1 / median", "ideal",
                "efficiency", "erase", "ampl.", "max/mean", "ms/inf", "mJ/inf", "slowdown",
                "(prefetch)", "rate"):
        assert col in header, col
    assert sum(ln.startswith("┏") for ln in lines) == 1  # 200 columns: one table
    assert any(ln.startswith("│ flashswap") for ln in lines)
    assert any(ln.startswith("│ naive") for ln in lines)
    assert "configurations: flashswap: 64 KiB segments; naive: 4 KiB slots" in lines
    text = " ".join(out.split())  # prose wraps between words
    verdict = text[text.index("W25Q128JV: flashswap lasts "):text.index(" years: until")]
    assert "x as long as naive, with " in verdict and "x less flash time" in verdict
    assert "Its flash work per inference: " in verdict and " ms and " in verdict
    assert "; an inference takes " in verdict and "x as long as with its activations in SRAM (" \
        in verdict and "x with prefetch)." in verdict
    assert "years: until the first block reaches its rated endurance." in text


@pytest.fixture(scope="module")
def wide_run(trace) -> tuple[dict, list[str]]:
    """One analysis of every store on a NOR, a NAND and a managed part, for the renderings."""
    rc, out = cli("lifetime", str(trace), *SMALL, "--json", "--jobs", "1")
    assert rc == 0
    d = json.loads(out)
    return d, [r["part"] for r in d["results"]]


def _render(d: dict, width: int) -> str:
    from analyzer.report import LEGEND, part_tables, verdict

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False)
    for part in dict.fromkeys(r["part"] for r in d["results"]):
        rows = [r for r in d["results"] if r["part"] == part]
        errs = [e for e in d["errors"] if e["part"] == part]
        for item in part_tables(rows[0], rows, errs, width, shape_note=" (assumption)"):
            console.print(item)
        console.print(verdict(part, rows, errs, d["rate_per_s"]))
    console.print(LEGEND)
    return buf.getvalue()


def _whole(d: dict, out: str, width: int) -> None:
    """No line wider than the terminal, nothing cut to an ellipsis, and every figure of every
    store printed whole (a token between spaces or rules)."""
    from analyzer.report import COST, LIFETIME

    assert "…" not in out
    assert max(len(ln) for ln in out.splitlines()) <= width
    tokens = set(re.findall(r"[^\s│┃]+", out))
    for r in d["results"]:
        for col in LIFETIME + COST:
            for piece in col.cell(r).split(" / "):
                assert piece in tokens, (width, r["part"], r["store"], col.key, piece)


@pytest.mark.parametrize("width", [80, 100, 120])
def test_report_keeps_every_figure_whole_at_any_width(wide_run, width) -> None:
    """Rendered by rich at 80, 100 and 120 columns, every figure is whole (see _whole); the
    tables are split in two below the full table's width."""
    d, _ = wide_run
    out = _render(d, width)
    _whole(d, out, width)
    tables = sum(ln.startswith("┏") for ln in out.splitlines())
    assert tables == 6  # three parts, lifetime and cost apart (the full table needs ~140)


def test_long_figures_stack_a_row_per_figure(wide_run) -> None:
    """Figures too long for two tables at 80 columns (a naive layout's life in scientific
    notation, as on the MLC NAND) go into one table with a row per figure."""
    d, _ = wide_run
    d = json.loads(json.dumps(d))
    for r in d["results"]:
        if r["store"] == "naive" and r["part"] == "W25N01GV":
            r.update(years=0.000149, years_weibull_p1=4.11e-05, years_weibull_median=0.000316,
                     years_first_worn_block_weibull_p1=4.11e-05,
                     years_first_worn_block_weibull_median=0.000316, efficiency=5.77e-05)
    out = _render(d, 80)
    _whole(d, out, 80)
    assert "│ Weibull store dies p1    " in out and "│   with prefetch" in out


def test_wide_forces_one_table_per_part(trace) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80)
    rc = main(["lifetime", str(trace), "--part", "W25Q128JV", "--capacity", "1MiB", "--store",
               "flashswap,naive", "--jobs", "1", "--wide"], console=console)
    out = buf.getvalue()
    assert rc == 0 and "…" not in out
    assert sum(ln.startswith("┏") for ln in out.splitlines()) == 1
    assert max(len(ln) for ln in out.splitlines()) > 80  # the terminal folds it, rich does not


def test_verdict_says_where_the_advantage_is_io_time() -> None:
    """Years within 10% but flash time 1.5x apart or more: the verdict says the advantage is
    I/O time, not years; otherwise it gives the years ratio and the flash time beside it."""
    from analyzer.report import verdict

    def row(store: str, years: float, io_s: float) -> dict:
        return {"store": store, "years": years, "io_seconds_per_inference": io_s,
                "io_energy_mj_per_inference": 10.0, "slowdown": None, "sustainable": True}

    got = verdict("P", [row("flashswap", 0.79, 15.7), row("littlefs", 0.8, 50.4),
                        row("naive", 0.19, 50.0)], [], 1 / 60)
    assert got == ("P: flashswap lasts 289 days at 1/min; against littlefs its advantage is I/O "
                   "time, not years: it lasts 0.988x as long with 3.21x less flash time per "
                   "inference; 4.16x as long as naive, with 3.18x less flash time. Its flash "
                   "work per inference: 15,700 ms and 10.0 mJ.")
    got = verdict("P", [row("flashswap", 6.3, 1.2), row("littlefs", 5.2, 1.3)], [], 1 / 60)
    assert "; 1.21x as long as littlefs. " in got


def test_json_names_configurations_and_assumptions(json_run) -> None:
    """Every result names its configuration; littlefs's is the best of those tried (on NOR
    the 4 KiB sector and the 64 KiB block); the Weibull shape says it is an assumption, the
    spare capacity is broken down the same way for every store, and the timing names the
    bus and whether tR is a typical or a maximum figure."""
    by = {(r["part"], r["store"]): r for r in json_run["results"]}
    assert by["W25Q128JV", "flashswap"]["config"] == "64 KiB segments"
    lfs = by["W25Q128JV", "littlefs"]
    assert [c["config"] for c in lfs["candidates"]] == [
        "file per tensor, 4 KiB blocks", "file per tensor, 64 KiB blocks"]
    assert lfs["config"] == max(lfs["candidates"], key=lambda c: c["years"])["config"]
    assert by["W25N01GV", "littlefs"]["config"] == "file per tensor, 128 KiB blocks"
    assert "candidates" not in by["W25N01GV", "littlefs"]
    for (part, store), r in by.items():
        if part == "S-46u-2GB":
            assert r["weibull" if "weibull" in r else "managed"] and "weibull" not in r
            continue
        w = r["weibull"]
        assert w["shape"] == 2.0 and w["shape_source"].startswith("assumption")
        sp = w["spare"]
        assert set(sp) == {"good_groups", "working_set_groups", "reserved_groups", "on_wear"}
        remaps = store != "naive"
        assert w["spare_groups"] == (max(0, sp["good_groups"] - sp["working_set_groups"]
                                         - sp["reserved_groups"]) if remaps else 0)
        assert r["years_first_worn_block_weibull_p1"] <= r["years_weibull_p1"]
    t = by["W25N01GV", "flashswap"]["timing"]
    assert t["bus"] == {"mhz": 104.0, "width_bits": 4, "ddr": False, "mb_per_s": 52.0,
                        "from": "the part's maximum clock and widest mode (default)"}
    assert (t["t_read_us"], t["t_read_basis"]) == (60.0, "max")
    assert by["W25Q128JV", "flashswap"]["timing"]["t_read_basis"] is None


def test_assumption_options_move_their_figures(trace, json_run) -> None:
    """--weibull-shape changes the Weibull figures only and is named as the shape's source;
    a slower, narrower bus costs flash time (reads and programs) but no wear."""
    base = ("lifetime", str(trace), "--part", "W25N01GV", "--capacity", "2MiB", "--store",
            "flashswap", "--rate", "10/min", "--json", "--jobs", "1")
    ref = next(r for r in json_run["results"] if (r["part"], r["store"]) ==
               ("W25N01GV", "flashswap"))
    rc, out = cli(*base, "--weibull-shape", "8")
    (k8,) = json.loads(out)["results"]
    assert k8["weibull"]["shape"] == 8 and k8["weibull"]["shape_source"] == "--weibull-shape"
    assert k8["years"] == ref["years"]
    # the rating stays the 1% point: a narrower spread (k=8) puts the median endurance at
    # 1.7x the rating instead of 8.3x, so the store dies sooner
    assert k8["years_weibull_median"] < ref["years_weibull_median"]
    rc, out = cli(*base, "--bus-mhz", "50", "--bus-width", "1")
    (slow,) = json.loads(out)["results"]
    assert slow["timing"]["bus"]["mb_per_s"] == 6.25
    assert slow["timing"]["bus"]["from"] == "board (--bus-mhz / --bus-width)"
    assert slow["years"] == ref["years"]
    t = ref["traffic"]
    bus = (t["programmed_bytes_per_inference"] + t["read_bytes_per_inference"])
    assert slow["io_seconds_per_inference"] - ref["io_seconds_per_inference"] == \
        pytest.approx(bus / 6.25e6 - bus / 52e6, rel=0.02)


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
        (["--littlefs-layout", "fat"], "flashswap: error: unknown littlefs layout 'fat' "
                                       "(choose from tensor, chunk, prealloc, or all)"),
        (["--weibull-shape", "0"], "flashswap: error: --weibull-shape must be a positive "
                                   "number up to 100, not 0"),
        (["--bus-width", "3"], "flashswap: error: --bus-width must be 1, 2, 4 or 8 data "
                               "lines, not 3"),
        (["--family", "gpt"], "flashswap: error: unknown model family 'gpt' (choose from "
                              "auto, ic, vww, kws, ad)"),
        (["--part", "W25Q128JV", "--capacity", "16KiB"],
         "flashswap: error: chain.bin: the working set (29672 bytes live at once) exceeds the "
         "16384-byte capacity of W25Q128JV"),
        (["--part", "W25Q128JV", "--capacity", "64MiB"],
         "flashswap: error: --capacity 67108864 exceeds W25Q128JV's 16777216 bytes"),
        # a 16 GiB part whole: the store's addresses are 32-bit (SPEC §2), on either engine
        (["--part", "TLC-NAND-128Gb-class", "--store", "flashswap"],
         "flashswap: error: flash of 17179869184 bytes: the store addresses less than 4 GiB"),
        (["--part", "TLC-NAND-128Gb-class", "--store", "flashswap", "--engine", "python"],
         "flashswap: error: flash of 17179869184 bytes: the store addresses less than 4 GiB"),
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
SWAPPING = SAMPLE.with_name("mobilenet_v2_128k.bin")  # README's main job (256k swaps nothing)
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
            "X-CUBE-AI 7.3.0; MLPerf Tiny v1.0 image classification, ResNet-8) = 54.3 ms; "
            "family: resnet8: no depthwise-separable or fully connected model recognised: "
            "standard convolutions") in " ".join(out.split())


def test_compute_rate_follows_the_model_family() -> None:
    """MobileNetV2 computes at the rate MLPerf Tiny measured for the nearest family,
    MobileNetV1 (visual wake words: 4.339 inferences/s x 7.490 M MACs on the same board),
    not ResNet-8's; --family picks another."""
    base = ("lifetime", str(SAMPLE), "--part", "W25Q128JV", "--capacity", "4MiB", "--store",
            "naive", "--json", "--jobs", "1")
    rc, out = cli(*base)
    assert rc == 0
    c = json.loads(out)["compute"]
    assert (c["family"], c["family_macs"]) == ("vww", 7_490_000)
    assert c["macs_per_s"] == pytest.approx(4.339 * 7_490_000)
    assert c["source"].endswith("NUCLEO_L4R5ZI/vww/performance")
    assert "mobilenet_v2_1_224" in c["family_reason"]
    rc, out = cli(*base, "--family", "ic")
    c = json.loads(out)["compute"]
    assert c["family"] == "ic" and c["macs_per_s"] == pytest.approx(4.407 * 12_501_632)


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
    rc, _ = cli("lifetime", str(SWAPPING), "--store", "flashswap")
    assert rc == 0 and time.perf_counter() - t <= 10
    t = time.perf_counter()
    rc, _ = cli("lifetime", str(SWAPPING))
    assert rc == 0 and time.perf_counter() - t <= 60


@pytest.mark.slow
def test_main_job_names_littlefs_layouts_and_reads_in_80_columns() -> None:
    """README's main job: the JSON names littlefs's configuration on every raw part, its SLC
    NAND efficiency is its best layout's (file per tensor: above 0.5), and at 80 columns
    every figure is whole."""
    rc, out = cli("lifetime", str(SWAPPING), "--json")
    assert rc == 0
    d = json.loads(out)
    lfs = {r["part"]: r for r in d["results"] if r["store"] == "littlefs"}
    for part in ("W25Q128JV", "W25N01GV", "FNNL41A-8Gb"):
        assert lfs[part]["config"].startswith("file per tensor, "), part
    assert lfs["W25N01GV"]["efficiency"] >= 0.5
    _whole(d, _render(d, 80), 80)


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


def test_a_spent_budget_still_measures_a_window(trace) -> None:
    """A budget spent before the estimator measured anything (a huge part's burn-in on a
    loaded machine) still replays one whole cycle past the warm-up: a window without
    erases would read as a store that never wears."""
    rc, out = cli("lifetime", str(trace), "--part", "W25N01GV", "--capacity", "2MiB",
                  "--store", "flashswap", "--json", "--jobs", "1", "--budget", "1e-9")
    r = json.loads(out)["results"][0]
    assert rc == 0 and r["replay"]["converged"] is False
    assert r["replay"]["window"][1] > r["replay"]["window"][0]
    assert 0 < r["years"] < float("inf") and r["erase_amplification"] > 0
