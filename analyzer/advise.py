"""The advise sweep: every model at every SRAM budget on every part under every store.

Each (model, budget) is planned once by the planner's default schedule
(`flashswap.planner.plan`); each plan is then replayed and projected on each part and store by
the lifetime analysis `flashswap lifetime` runs (`analyzer.lifetime.run_job`). This module adds
neither a planner nor a replay: it lays the work out as tasks (analyzer/sweep.py: plan tasks,
and replay tasks that take a plan), keeps what they find in a cache keyed by everything that
could change it (analyzer/sweep_cache.py), and returns one result per configuration. Judging
results against a target is analyzer/advise_report.py's job.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from analyzer.lifetime import Options, run_job
from analyzer.sweep import Backend, Failed, Task
from analyzer.sweep_cache import ResultCache
from analyzer.workload import Workload
from flashswap.errors import InputError
from flashswap.model import Graph, load_model
from flashswap.parts import get_part
from flashswap.sizes import format_size, parse_size

MAX_BUDGETS = 64


def parse_budgets(text: str) -> list[int]:
    """SRAM budgets from `A..B` (A, 2A, 4A, ... up to B, and B itself if the doubling misses
    it), `A..B:STEP` (A, A+STEP, ... up to B, and B), a size, or a comma-separated list of
    those; sorted, without repeats."""
    out: set[int] = set()
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise InputError(f"invalid SRAM budgets {text!r}: expected e.g. 32KiB..1MiB or "
                         "64KiB,128KiB")
    for item in items:
        if ".." not in item:
            out.add(_budget(item))
            continue
        ends = item.split("..")
        top, sep, step_text = ends[-1].partition(":")
        if len(ends) != 2 or "..." in item or not ends[0].strip() or not top.strip() or (
                sep and not step_text.strip()):
            raise InputError(f"invalid SRAM range {item!r}: expected A..B or A..B:STEP, "
                             "e.g. 32KiB..1MiB or 64KiB..512KiB:64KiB")
        lo, hi = _budget(ends[0]), _budget(top)
        if lo > hi:
            raise InputError(f"invalid SRAM range {item!r}: {ends[0].strip()} is larger than "
                             f"{top.strip()}")
        step = parse_size(step_text.strip(), "SRAM range step") if sep else None
        if step == 0:
            raise InputError(f"invalid SRAM range {item!r}: the step must not be 0")
        b = lo
        while b < hi and len(out) <= MAX_BUDGETS:
            out.add(b)
            b = b + step if step else b * 2
        out.add(hi)
    if len(out) > MAX_BUDGETS:
        raise InputError(f"too many SRAM budgets in {text!r} (at most {MAX_BUDGETS})")
    return sorted(out)


def _budget(text: str) -> int:
    n = parse_size(text.strip(), "SRAM budget")
    if n == 0:
        raise InputError(f"invalid SRAM budget {text.strip()!r}: must be more than 0 bytes")
    return n


@dataclass(frozen=True)
class Model:
    """A model as the user named it, the graph the planner gets, and a hash for the cache: of
    the graph's structure (shapes, types, ops, attributes) and, for a model file, of the
    file's bytes. The planner reads quantization parameters and shape constants, so the graph
    keeps them; the hash does not go through them (ONNX constants are a lazy object without a
    stable repr), the file's bytes stand for them."""

    spec: str
    graph: Graph
    digest: str

    @classmethod
    def load(cls, spec: str, dtype: str | None = None,
             input_shapes: dict[str, tuple[int, ...]] | None = None) -> Model:
        g = load_model(spec, dtype, input_shapes)
        if not (g.source == "tflite" and g.dtype_override is None):
            # The planner prepares kernels on stand-ins for these graphs' weights and reads
            # only their other constants (shape parameters): ship those, as a plain dict (an
            # ONNX graph's constants are computed lazily, by closures a worker cannot unpickle).
            weights = {w for n in g.nodes for w in n.weights}
            g = replace(g, constants={k: g.constants[k] for k in g.constants if k not in weights})
        planned = (g.name, g.tensors, g.nodes, g.inputs, g.outputs, g.layout, g.dtype_override)
        h = hashlib.sha256(repr(planned).encode())
        path = Path(spec)
        if not spec.startswith("builtin:") and path.is_file():
            h.update(path.read_bytes())
        return cls(spec, g, h.hexdigest())


@dataclass(frozen=True, order=True)
class Config:
    """One point of the sweep."""

    model: str
    sram: int
    part: str
    store: str


@dataclass(frozen=True)
class Sweep:
    """What to sweep, and every setting that shapes a result."""

    models: tuple[Model, ...]
    budgets: tuple[int, ...]
    parts: tuple[str, ...]
    stores: tuple[str, ...]
    options: Options
    chunk: int = 4096
    macs_per_s: float | None = None  # times a plan's MACs (a plan carries no durations)

    def configs(self) -> list[Config]:
        return [Config(m.spec, b, p, s) for m in self.models for b in self.budgets
                for p in self.parts for s in self.stores]


@dataclass
class Outcome:
    """What a sweep found: per configuration the figures, or {"error": reason}."""

    results: dict[Config, dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)


def plan_workload(graph: Graph, sram: int, chunk: int, macs_per_s: float | None) -> Workload:
    """A plan task: the planner's default schedule of `graph` in `sram`, as a replayable
    workload with its compute timed (as `flashswap lifetime` times an untimed trace)."""
    from flashswap.planner import plan  # the planner loads only where plans are made

    p = plan(graph, sram, chunk)
    meta = {k: v for k, v in p.metadata.items() if k != "tensors"}  # per-tensor detail: unused
    wl = Workload.from_records(p.records, meta, name=f"{graph.name} at {format_size(sram)}")
    if macs_per_s and wl.untimed_compute:
        wl = wl.with_compute_rate(macs_per_s)
    return wl


def replay_figures(wl: Workload, part: str, store: str, options: Options) -> dict[str, Any]:
    """A replay task: one lifetime analysis (the one `flashswap lifetime` runs), reduced to
    the figures advise reports. Only plain floats, ints, strings and None, so a result read
    back from the cache equals the one computed."""
    data, _curves = run_job(wl, part, store, options)

    def num(key: str) -> float | None:
        v = data.get(key)
        return None if v is None else float(v)

    return {
        "kind": data["kind"],
        "cell": data["cell"],
        "years": num("years"),
        "years_weibull_p1": num("years_weibull_p1"),
        "slowdown": num("slowdown"),
        "slowdown_prefetch": num("slowdown_prefetch"),
        "io_ms_per_inference": float(data["io_seconds_per_inference"]) * 1e3,
        "io_energy_mj_per_inference": num("io_energy_mj_per_inference"),
        "max_rate_per_s": num("max_rate_per_s"),
        "swap_bytes_per_inference": float(wl.bytes_written_per_inference),
        "peak_sram": int(wl.metadata.get("peak_sram", 0)),
        "capacity": int(data["capacity"]),
        "converged": bool(data["replay"]["converged"]),
    }


def cache_fields(sweep: Sweep, model: Model, cfg: Config) -> dict[str, Any]:
    """Everything besides the code that decides one configuration's result."""
    return {
        "model": model.digest,
        "sram": cfg.sram,
        "chunk": sweep.chunk,
        "part": asdict(get_part(cfg.part)),  # the catalogue entry itself, not just its name
        "store": cfg.store,
        "macs_per_s": sweep.macs_per_s,
        "options": asdict(sweep.options),
    }


def run_sweep(
    sweep: Sweep,
    backend: Backend,
    cache: ResultCache,
    progress: Callable[[int, int], None] | None = None,
    tick: Callable[[], None] | None = None,
) -> Outcome:
    """Every configuration's result: from the cache, or planned and replayed on `backend`.
    `progress(done, total)` counts the configurations that had to be computed."""
    t0 = time.perf_counter()
    configs = sweep.configs()
    models = {m.spec: m for m in sweep.models}
    keys = {c: cache.key(cache_fields(sweep, models[c.model], c)) for c in configs}
    results: dict[Config, dict[str, Any]] = {}
    for c in configs:
        hit = cache.get(keys[c])
        if hit is not None:
            results[c] = hit
    todo = [c for c in configs if c not in results]
    tasks: list[Task] = []
    for m in sweep.models:
        for b in sweep.budgets:
            mine = [c for c in todo if c.model == m.spec and c.sram == b]
            if not mine:
                continue
            plan_key = ("plan", m.spec, b)
            # plans first: every replay waits for one
            tasks.append(Task(plan_key, plan_workload, (m.graph, b, sweep.chunk,
                                                         sweep.macs_per_s), cost=1e9))
            tasks += [Task(c, replay_figures, (c.part, c.store, sweep.options), after=plan_key,
                           cost=get_part(c.part).capacity / (1 << 20)) for c in mine]
    done_count = [0, 0]  # configurations, plans

    def done(key: Hashable, result: Any) -> None:
        if not isinstance(key, Config):
            done_count[1] += 1
            return
        if isinstance(result, Failed):
            value: dict[str, Any] = {"error": result.reason}
            if not result.transient:  # a dead worker may not die next time: not cached
                cache.put(keys[key], value)
        else:
            value = result
            cache.put(keys[key], value)
        results[key] = value
        done_count[0] += 1
        if progress is not None:
            progress(done_count[0], len(todo))

    if progress is not None:
        progress(0, len(todo))
    if tasks:
        backend.run(tasks, done, tick)
    return Outcome(
        results={c: results[c] for c in configs},
        stats={
            "configurations": len(configs),
            "from_cache": len(configs) - len(todo),
            "computed": done_count[0],
            "plans": done_count[1],
            "backend": backend.name,
            "workers": backend.workers,
            "wall_s": round(time.perf_counter() - t0, 3),
        },
    )


def sweep_parts(names: Sequence[str] | None, kinds: Sequence[str] | None) -> list[str]:
    """Catalogue names for --part (checked, canonical spelling) or --kind (every part of those
    kinds, in catalogue order)."""
    from flashswap.parts import KINDS, load_catalogue

    if names:
        return list(dict.fromkeys(get_part(n).name for n in names))
    wanted = list(kinds or ())
    bad = [k for k in wanted if k not in KINDS]
    if bad:
        raise InputError(f"unknown part kind {bad[0]!r} (choose from {', '.join(KINDS)})")
    return [p.name for p in load_catalogue().values() if p.kind in wanted]
