"""Analyzer building blocks: rate parsing, workload figures, projection formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analyzer import projection as pj
from analyzer.rates import SECONDS_PER_YEAR, format_rate, parse_rate
from analyzer.synth import write_chain_trace
from analyzer.workload import Workload
from flashswap.errors import InputError, TraceFormatError
from flashswap.trace import RECORD_DTYPE, TraceWriter

# --- rates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, per_s",
    [
        ("1/s", 1.0),
        ("10/min", 10 / 60),
        ("3/h", 3 / 3600),
        ("24/day", 24 / 86400),
        ("0.5/s", 0.5),
        ("2 / hours", 2 / 3600),
        ("1/week", 1 / (7 * 86400)),
        ("1e3/day", 1000 / 86400),
    ],
)
def test_parse_rate(text: str, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s, rel=1e-12)


@pytest.mark.parametrize(
    "text, message",
    [
        ("fast", "bad rate 'fast': expected COUNT/UNIT such as 1/s, 10/min, 3/h or 24/day"),
        ("10/fortnight", "bad rate '10/fortnight': unknown unit 'fortnight' (use one of"),
        ("0/s", "bad rate '0/s': the count must be a positive number"),
        ("-1/s", "bad rate '-1/s': expected COUNT/UNIT"),
        ("/min", "bad rate '/min': expected COUNT/UNIT"),
    ],
)
def test_parse_rate_errors(text: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        parse_rate(text)
    assert str(e.value).startswith(message)


def test_format_rate_picks_a_unit_with_count_at_least_one() -> None:
    assert format_rate(2.0) == "2/s"
    assert format_rate(1 / 60) == "1/min"
    assert format_rate(24 / 86400) == "1/h"
    assert format_rate(1 / 86400 / 7) == "0.143/day"


# --- workload ----------------------------------------------------------------------------


def test_workload_figures(tmp_path) -> None:
    p = write_chain_trace(tmp_path / "t.bin", (8192, 4096, 100), chunk=4096, inferences=2)
    wl = Workload.load(p)
    assert len(wl.inferences) == 2
    assert wl.bytes_written_per_inference == 8192 + 4096 + 100
    # every layer's output is read back once: the last is read at the end of the inference
    assert wl.bytes_read_per_inference == 8192 + 4096 + 100
    assert wl.max_chunk == 4096
    assert wl.distinct_keys == 4
    assert wl.key_sizes == {0: 4096, 1: 4096, 2: 4096, 3: 100}
    # chunks die together at the end of the inference (one INVALIDATE)
    assert wl.peak_live_bytes == 8192 + 4096 + 100
    assert wl.peak_live_chunks == 4
    assert wl.compute_s_per_inference == pytest.approx(3 * 1000e-6)
    # trimmed after their last read: layer i is live only while layer i+1 is written
    trimmed = Workload.load(
        write_chain_trace(tmp_path / "u.bin", (8192, 4096, 100), chunk=4096, bulk=False)
    )
    assert trimmed.peak_live_bytes == 8192 + 4096
    assert trimmed.peak_live_chunks == 3


def test_workload_compute_rate_fills_missing_durations(tmp_path) -> None:
    p = write_chain_trace(tmp_path / "t.bin", (4096,), compute_us=0)
    wl = Workload.load(p)
    assert wl.compute_s_per_inference == 0
    timed = wl.with_compute_rate(1_000_000)  # layer MACs = size * 16 = 65536
    assert timed.compute_s_per_inference == pytest.approx(65536 / 1e6, rel=1e-5)


def test_workload_prologue_and_pinned(tmp_path) -> None:
    p = write_chain_trace(tmp_path / "t.bin", (4096,), pinned=2)
    wl = Workload.load(p)
    assert [op[0] for op in wl.prologue] == [1, 1]  # two pinned WRITEs before inference 0
    assert wl.peak_live_bytes == 2 * 4096 + 4096


def test_traces_without_writes_never_wear(tmp_path) -> None:
    from analyzer.lifetime import Options, analyze

    p = tmp_path / "r.bin"
    with TraceWriter(p) as w:
        w.begin(0)
        w.weight_read(4096)
        w.compute(10, time_us=5)
        w.end()
    wl = Workload.load(p)
    assert wl.bytes_written_per_inference == 0
    d = analyze(wl, "W25Q128JV", "flashswap", Options(capacity=1 << 20)).data
    assert d["years"] == math.inf and d["efficiency"] is None
    assert d["io_seconds_per_inference"] > 0  # the weight read still costs time


def test_workload_rejects_unknown_ops() -> None:
    rec = np.zeros(2, dtype=RECORD_DTYPE)
    rec["op"] = [1, 12]
    rec["length"] = [10, 0]
    with pytest.raises(TraceFormatError, match="t: record 1 has unknown op 12"):
        Workload.from_records(rec, name="t")


def test_missing_trace_file(tmp_path) -> None:
    with pytest.raises(TraceFormatError, match="no such trace file"):
        Workload.load(tmp_path / "nope.bin")
    with pytest.raises(TraceFormatError, match="is a directory, not a trace file"):
        Workload.load(tmp_path)


# --- projection --------------------------------------------------------------------------


def test_rated_life_first_unit_to_reach_endurance() -> None:
    counts = np.array([10.0, 0.0, 5.0])
    rates = np.array([1.0, 2.0, 0.0])
    # unit 0 reaches 100 after 90 more, unit 1 after 50 more: unit 1 first
    assert pj.rated_life(counts, rates, 100, now=7) == 57.0
    assert pj.rated_life(counts, np.zeros(3), 100, now=7) == math.inf
    # already past the endurance: now
    assert pj.rated_life(np.array([120.0]), np.array([1.0]), 100, now=7) == 7.0


def test_rated_life_with_spread_is_the_median_of_the_maximum() -> None:
    n = 64
    counts = np.zeros(n)
    rates = np.full(n, 1.0)
    life = pj.rated_life(counts, rates, 1000.0, now=0, spread=4.0)
    # at that time, P(all n normals below 1000) = 1/2
    z = (1000.0 - life) / math.sqrt(4.0 * life)
    assert stats.norm.cdf(z) ** n == pytest.approx(0.5, abs=1e-6)
    assert life < 1000.0


def test_extreme_z() -> None:
    assert pj.extreme_z(1) == pytest.approx(0.0, abs=1e-12)
    assert stats.norm.cdf(pj.extreme_z(1000)) ** 1000 == pytest.approx(0.5)


def test_weibull_scale_puts_rated_endurance_at_the_quantile() -> None:
    s = pj.weibull_scale(100_000, 2.0, 0.01)
    assert stats.weibull_min.cdf(100_000, 2.0, scale=s) == pytest.approx(0.01)


def test_weibull_life_without_spares_is_the_first_group_death() -> None:
    # g identical groups, no spares: life = min of g Weibull(k, s) / rate, whose median is
    # s * g**(-1/k) * ln(2)**(1/k) / rate
    g, k, s, rate = 50, 2.0, 1000.0, 2.0
    wb = pj.weibull_life(np.zeros(g), np.full(g, rate), now=0, shape=k, scale=s, draws=4000)
    expect = s * g ** (-1 / k) * math.log(2) ** (1 / k) / rate
    assert wb.median == pytest.approx(expect, rel=0.03)
    assert wb.p1 < wb.median


def test_weibull_life_groups_fail_with_their_weakest_unit() -> None:
    # 40 units in groups of 4 = 10 groups; each group's endurance is the minimum of 4 draws
    k, s = 2.0, 1000.0
    one = pj.weibull_life(np.zeros(10), np.ones(10), 0, k, s, group=1, draws=4000)
    four = pj.weibull_life(np.zeros(40), np.ones(40), 0, k, s, group=4, draws=4000)
    assert four.median == pytest.approx(one.median / 2, rel=0.05)  # 4**(-1/2)


def test_weibull_life_spares_and_redistribution() -> None:
    k, s, n = 2.0, 1000.0, 20
    args = (np.zeros(n), np.ones(n), 0, k, s)
    none = pj.weibull_life(*args, spare=0, draws=2000)
    spared = pj.weibull_life(*args, spare=5, redistribute=False, draws=2000)
    shared = pj.weibull_life(*args, spare=5, redistribute=True, draws=2000)
    assert none.median < shared.median < spared.median
    # without redistribution the store dies with its 6th group: that order statistic
    draws = np.sort(s * np.random.default_rng(1).weibull(k, (20000, n)), axis=1)[:, 5]
    assert spared.median == pytest.approx(float(np.median(draws)), rel=0.03)


def test_ideal_life_and_years() -> None:
    assert pj.ideal_life(100_000, 16 << 20, 1 << 20) == 1_600_000
    assert pj.ideal_life(10, 10, 0) == math.inf
    assert pj.years(SECONDS_PER_YEAR, 1.0) == 1.0


def test_perf_slowdowns_and_max_rate() -> None:
    p = pj.perf(
        io_s=0.3, idle_s=0.1, io_max_s=0.5, energy_j=0.01, energy_max_j=0.02,
        compute_s=1.0, weight_s=0.0, latency_overlap_s=1.05, baseline_overlap_s=1.0,
    )
    assert p.serial_slowdown == pytest.approx(1.3)
    assert p.prefetch_slowdown == pytest.approx(1.05)
    assert p.max_rate_per_s == pytest.approx(1 / 1.05)
    flash_bound = pj.perf(2.0, 1.0, 3.0, 0, 0, 1.0, 0.0, 2.2, 1.0)
    assert flash_bound.max_rate_per_s == pytest.approx(1 / 3.0)  # flash busy 3 s per inference
    unknown = pj.perf(0.3, 0.0, 0.3, 0, 0, 0.0, 0.0, 0.3, 0.0)
    assert unknown.serial_slowdown is None and unknown.prefetch_slowdown is None
    assert unknown.max_rate_per_s == pytest.approx(1 / 0.3)
