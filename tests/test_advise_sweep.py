"""The advise sweep: every backend gives the serial run's results exactly, the cache resumes an
interrupted sweep, failures (an impossible budget, a part too small, a dead worker) are rows."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from analyzer.advise import Config, Model, Sweep, parse_budgets, run_sweep
from analyzer.lifetime import Options
from analyzer.mcus import DEFAULT_MCU, get_mcu
from analyzer.sweep import Failed, LocalPool, Serial, Task
from analyzer.sweep_cache import ResultCache, code_fingerprint
from analyzer.workload import Workload
from flashswap.model import load_model
from flashswap.planner import plan
from tests.planutil import budget_error, swap_bytes

RESNET8 = "builtin:resnet8"  # plans in 10 ms; 8 KiB is below its smallest feasible budget
PARTS = ("W25Q128JV", "MX25R6435F", "S-46u-2GB")  # two NOR (0.1 s a replay), one managed
BUDGET_TOO_SMALL = budget_error(RESNET8, 4096)  # the planner's own words
RAW_ONLY = ("the flashswap store runs on raw flash; on a managed device (SD/eMMC) the card's "
            "own FTL remaps writes")


def small_sweep(**kw) -> Sweep:
    args = dict(models=(Model.load(RESNET8),), budgets=(4096, 8192, 16384), parts=PARTS,
                stores=("flashswap",), options=Options(rate_per_s=1 / 60),
                macs_per_s=get_mcu(DEFAULT_MCU).macs_per_s)
    args.update(kw)
    return Sweep(**args)


@pytest.fixture(scope="module")
def serial() -> dict:
    return run_sweep(small_sweep(), Serial(), ResultCache(None)).results


def test_serial_results_are_real(serial) -> None:
    assert list(serial) == small_sweep().configs()
    r = serial[Config(RESNET8, 8192, "W25Q128JV", "flashswap")]
    assert r["kind"] == "nor" and r["swap_bytes_per_inference"] == swap_bytes(RESNET8, 8192)
    assert 100 < r["years"] < 500 and 1 < r["slowdown"] < 2 and r["converged"]
    # the same plan on a slower, smaller NOR part wears out sooner
    assert serial[Config(RESNET8, 8192, "MX25R6435F", "flashswap")]["years"] < r["years"]
    # the plan at 16 KiB swaps less than at 8 KiB: the flash lasts longer
    assert swap_bytes(RESNET8, 16384) < swap_bytes(RESNET8, 8192)
    assert serial[Config(RESNET8, 16384, "W25Q128JV", "flashswap")]["years"] > r["years"]
    for part in PARTS:  # an impossible budget is a row per part, with the planner's reason
        assert serial[Config(RESNET8, 4096, part, "flashswap")] == {"error": BUDGET_TOO_SMALL}
    for b in (8192, 16384):  # a store that cannot run on the part: the analyzer's reason
        assert serial[Config(RESNET8, b, "S-46u-2GB", "flashswap")] == {"error": RAW_ONLY}


def test_local_pool_equals_serial(serial) -> None:
    pool = LocalPool(2)
    out = run_sweep(small_sweep(), pool, ResultCache(None))
    assert out.results == serial
    assert pool.started == 2 and out.stats["plans"] == 3  # one plan per budget, 3 parts each
    assert out.stats["computed"] == 9 and out.stats["from_cache"] == 0


def test_working_set_larger_than_the_part_is_a_row() -> None:
    # resnet8 at 8 KiB keeps more in flash at once than an 8 KiB partition of the part holds
    plan_live = Workload.from_records(plan(load_model(RESNET8), 8192, 4096).records,
                                      name="resnet8").peak_live_bytes
    assert plan_live > 8192
    sweep = small_sweep(budgets=(8192,), parts=("W25Q128JV",),
                        options=Options(capacity=8192))
    got = run_sweep(sweep, LocalPool(2), ResultCache(None)).results
    assert got == {Config(RESNET8, 8192, "W25Q128JV", "flashswap"): {
        "error": f"resnet8 at 8 KiB: the working set ({plan_live} bytes live at once) "
                 "exceeds the 8192-byte capacity of W25Q128JV"}}


def test_cache_resumes_and_second_run_does_no_work(serial, tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    seen: list[int] = []
    pool = LocalPool(2)
    workers: set[int] = set()

    def interrupt(done: int, total: int) -> None:
        seen.append(done)
        workers.update(pool.pids())
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(small_sweep(), pool, cache, interrupt)
    assert seen == [0, 1, 2, 3, 4]
    assert pool.pids() == [] and workers  # the interrupted pool left no worker running
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # the 4 results reported before the interruption are kept; the rest is computed
    again = run_sweep(small_sweep(), LocalPool(2), cache)
    assert again.stats["from_cache"] == 4 and again.stats["computed"] == 5
    assert again.results == serial
    third = run_sweep(small_sweep(), LocalPool(2), cache)
    assert third.stats == {**third.stats, "from_cache": 9, "computed": 0, "plans": 0}
    assert third.results == serial
    files = sorted(p.name for p in tmp_path.rglob("*.json"))
    assert len(files) == 9


def test_cache_key_covers_what_changes_results(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    base = small_sweep(budgets=(16384,), parts=("W25Q128JV",))
    assert run_sweep(base, Serial(), cache).stats["computed"] == 1
    variants = [
        small_sweep(budgets=(16384,), parts=("W25Q128JV",), options=Options(rate_per_s=1 / 6)),
        small_sweep(budgets=(16384,), parts=("W25Q128JV",), chunk=2048),
        small_sweep(budgets=(16384,), parts=("W25Q128JV",), macs_per_s=1e8),
        small_sweep(budgets=(16384,), parts=("MX25R6435F",)),
        small_sweep(budgets=(24576,), parts=("W25Q128JV",)),
        small_sweep(budgets=(16384,), parts=("W25Q128JV",), stores=("naive",)),
        small_sweep(budgets=(16384,), parts=("W25Q128JV",),
                    models=(Model.load(RESNET8, "int16"),)),
    ]
    for v in variants:
        assert run_sweep(v, Serial(), cache).stats["computed"] == 1, v
    assert run_sweep(base, Serial(), cache).stats["computed"] == 0
    # another version of the code computes afresh
    assert run_sweep(base, Serial(), ResultCache(tmp_path, code="0.0.0+other")).stats[
        "computed"] == 1


def test_killed_worker_is_a_row_and_not_cached(tmp_path: Path) -> None:
    # The MLC part replays for seconds; the worker is killed a quarter second in, while busy.
    sweep = small_sweep(budgets=(16384,), parts=("FNNL41A-8Gb",))
    cfg = Config(RESNET8, 16384, "FNNL41A-8Gb", "flashswap")
    killed: list[int] = []
    pool = LocalPool(1)

    def kill_one() -> None:
        if not killed:
            (pid,) = pool.pids()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    cache = ResultCache(tmp_path)
    out = run_sweep(sweep, pool, cache, tick=kill_one)
    assert killed and out.results == {cfg: {
        "error": "worker process died while running it (killed by SIGKILL)"}}
    again = run_sweep(sweep, LocalPool(1), cache)  # not cached: computed again, in full
    assert again.stats["computed"] == 1
    assert again.results == run_sweep(sweep, Serial(), ResultCache(None)).results
    assert "error" not in again.results[cfg]


def test_model_hash_is_stable_and_follows_the_file(tmp_path) -> None:
    import onnx

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    fixture = Path(__file__).parent / "fixtures" / "models" / "ic_resnet8_32.tflite"
    for spec in (str(light / "light_squeezenet.onnx"), str(fixture), RESNET8):
        a, b = Model.load(spec), Model.load(spec)  # ONNX constants: a new lazy object each
        assert a.digest == b.digest
    assert Model.load(RESNET8, "int16").digest != Model.load(RESNET8).digest
    # same structure, other weights (one byte of the file changed): another model to the cache
    data = bytearray(fixture.read_bytes())
    data[-100] ^= 1
    other = tmp_path / fixture.name
    other.write_bytes(bytes(data))
    assert Model.load(str(other)).digest != Model.load(str(fixture)).digest


# ---- the task runner itself -------------------------------------------------------------

def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def exit_if(x: int, bad: int, how: str) -> int:
    if x == bad:
        if how == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def fail_if(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"{x} is bad\nsecond line")
    return x


def _run(backend, tasks) -> dict:
    got: dict = {}

    def done(key, result) -> None:
        assert key not in got
        got[key] = result

    backend.run(tasks, done)
    return got


@pytest.mark.parametrize("how,why", [("exit", "exit status 3"), ("kill", "killed by SIGKILL")])
def test_a_dying_worker_fails_its_task_and_its_dependents_only(how, why) -> None:
    tasks = [Task(i, exit_if, (i, 3, how)) for i in range(6)]
    tasks += [Task(("after", i), add, (100,), after=i) for i in range(6)]
    got = _run(LocalPool(2), tasks)
    died = Failed(f"worker process died while running it ({why})", transient=True)
    assert got == {**{i: i * i for i in range(6) if i != 3},
                   **{("after", i): i * i + 100 for i in range(6) if i != 3},
                   3: died, ("after", 3): died}


def test_a_raising_task_is_a_failed_row_on_every_backend() -> None:
    tasks = [Task(i, fail_if, (i, 2)) for i in range(4)]
    want = {0: 0, 1: 1, 3: 3, 2: Failed("ValueError: 2 is bad")}
    assert _run(Serial(), tasks) == want
    assert _run(LocalPool(2), tasks) == want


def test_tasks_must_name_an_earlier_dependency() -> None:
    with pytest.raises(ValueError, match="depends on 'x', not listed before it"):
        _run(Serial(), [Task("y", square, (1,), after="x")])


# ---- Dask --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_cluster():
    pytest.importorskip("distributed")
    import dask

    from analyzer.sweep import DaskCluster

    # a task whose worker dies fails at once (Dask's default retries it on 3 more workers)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            DaskCluster("local", 2) as cluster:
        yield cluster


def test_cluster_equals_local_pool(serial, dask_cluster) -> None:
    # the workers are separate processes running this checkout's code
    fps = dask_cluster.run_everywhere(code_fingerprint)
    assert len(fps) == 2 and set(fps.values()) == {code_fingerprint()}
    assert {os.getpid()} & set(dask_cluster.run_everywhere(os.getpid).values()) == set()
    out = run_sweep(small_sweep(), dask_cluster, ResultCache(None))
    assert out.results == run_sweep(small_sweep(), LocalPool(2), ResultCache(None)).results
    assert out.results == serial
    assert out.stats["workers"] == 2 and out.stats["backend"] == "dask LocalCluster"


def test_cluster_dying_worker_is_a_row(dask_cluster) -> None:
    tasks = [Task(i, exit_if, (i, 1, "exit")) for i in range(3)]
    tasks.append(Task("after", add, (5,), after=1))
    got = _run(dask_cluster, tasks)
    died = Failed("worker process died while running it (Dask gave up after retrying on "
                  "other workers)", transient=True)
    assert got == {0: 0, 2: 4, 1: died, "after": died}
    assert _run(dask_cluster, [Task("x", fail_if, (2, 2))]) == {
        "x": Failed("ValueError: 2 is bad")}


# ---- budgets -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,kib", [
    ("32KiB..1MiB", [32, 64, 128, 256, 512, 1024]),
    ("48KiB..1MiB", [48, 96, 192, 384, 768, 1024]),  # the top is always tried
    ("64KiB..512KiB:64KiB", [64, 128, 192, 256, 320, 384, 448, 512]),
    ("100KiB..250KiB:100KiB", [100, 200, 250]),
    ("256KiB,64KiB, 128KiB,64KiB", [64, 128, 256]),
    ("16KiB..32KiB,1MiB", [16, 32, 1024]),
    ("256KiB", [256]),
    ("1.5MiB..2MiB", [1536, 2048]),
])
def test_budgets(text, kib) -> None:
    assert parse_budgets(text) == [k * 1024 for k in kib]


@pytest.mark.parametrize("text,msg", [
    ("1MiB..32KiB", "invalid SRAM range '1MiB..32KiB': 1MiB is larger than 32KiB"),
    ("..1MiB", "invalid SRAM range '..1MiB': expected A..B or A..B:STEP, e.g. 32KiB..1MiB or "
               "64KiB..512KiB:64KiB"),
    ("32KiB..64KiB..1MiB", "invalid SRAM range '32KiB..64KiB..1MiB': expected A..B or "
                           "A..B:STEP, e.g. 32KiB..1MiB or 64KiB..512KiB:64KiB"),
    ("0..1MiB", "invalid SRAM budget '0': must be more than 0 bytes"),
    ("32KiB..1MiB:0", "invalid SRAM range '32KiB..1MiB:0': the step must not be 0"),
    ("1KiB..1MiB:1KiB", "too many SRAM budgets in '1KiB..1MiB:1KiB' (at most 64)"),
    (",", "invalid SRAM budgets ',': expected e.g. 32KiB..1MiB or 64KiB,128KiB"),
    ("32kibs", "invalid SRAM budget '32kibs': expected a number with an optional unit (B, k, KiB, "
             "M, MiB, G, GiB), e.g. 256KiB"),
])
def test_bad_budgets(text, msg) -> None:
    from flashswap.errors import InputError

    with pytest.raises(InputError) as e:
        parse_budgets(text)
    assert str(e.value) == msg


def test_unreadable_cache_entries_are_misses(tmp_path: Path) -> None:
    sweep = small_sweep(budgets=(16384,), parts=("W25Q128JV",))
    first = run_sweep(sweep, Serial(), ResultCache(tmp_path))
    (entry,) = tmp_path.rglob("*.json")
    entry.write_text("{truncated")
    again = run_sweep(sweep, Serial(), ResultCache(tmp_path))
    assert again.stats["computed"] == 1 and again.results == first.results
    assert run_sweep(sweep, Serial(), ResultCache(tmp_path)).stats["computed"] == 0
