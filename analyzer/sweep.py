"""Runs many independent analyses: in this process, on a local process pool, or on a Dask cluster.

A sweep is a list of `Task`s. A task may depend on one earlier task, whose result becomes its
first argument (advise plans a model at a budget once and replays that plan on every part).
Whatever happens to a task, the caller gets a result for it: the function's return value, or a
`Failed` saying why (the function raised, its worker process died, the task it depends on
failed). One bad configuration is a row with a reason, never the end of the sweep.

Tasks are pure functions of their arguments, so every backend gives the same results:
- `Serial`: in this process, in order.
- `LocalPool`: N forked worker processes, each fed one task at a time over its own pipe. Not
  concurrent.futures: its pool breaks as a whole when one worker dies and cannot say which task
  was running there; here the task of each worker is known, so a death fails exactly that task
  and a new worker takes the dead one's place.
- `DaskCluster`: a dask.distributed client, on a scheduler at an address or on a LocalCluster
  started here. Dask rather than Ray: it is a pure-Python pip install (the `cluster` extra) that
  runs on any machine with Python, its futures API is the one this module already uses (submit,
  as_completed, a future as an argument of another task so a plan travels worker to worker),
  `LocalCluster` gives tests real separate worker processes in seconds, and a worker that dies
  is retried elsewhere and then reported as `KilledWorker`, which becomes a `Failed` row. Ray
  would bring a large native runtime (its own object store and raylet daemons) for no feature
  this sweep uses.
"""

from __future__ import annotations

import heapq
import itertools
import multiprocessing
import signal
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from flashswap.errors import FlashswapError, InputError

Done = Callable[[Hashable, Any], None]
Tick = Callable[[], None]
TICK_S = 0.25  # how often a waiting backend lets the caller refresh its progress display


@dataclass(frozen=True)
class Task:
    """One unit of work: `fn(*args)`, or `fn(result_of_after, *args)` when `after` is set."""

    key: Hashable
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    after: Hashable | None = None
    cost: float = 0.0  # larger first: long tasks start early so the workers finish together


@dataclass(frozen=True)
class Failed:
    """Why a task has no result. `transient` failures (a worker died, memory ran out) may not
    happen again, so callers should not cache them."""

    reason: str
    transient: bool = False


def describe(e: BaseException) -> str:
    """One line for an exception: flashswap's own errors are already worded for users."""
    if isinstance(e, FlashswapError):
        return str(e)
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def call(fn: Callable[..., Any], has_dep: bool, dep: Any, *args: Any) -> Any:
    """Runs one task where it lands (a worker or this process); a raise becomes a Failed."""
    if isinstance(dep, Failed):
        return dep  # the task this one needs has no result: neither has this one
    try:
        return fn(dep, *args) if has_dep else fn(*args)
    except MemoryError:
        return Failed("out of memory", transient=True)
    except Exception as e:  # noqa: BLE001 - any failure of one task is that task's row
        return Failed(describe(e))


class Backend(Protocol):
    name: str
    workers: int

    def run(self, tasks: Sequence[Task], done: Done, tick: Tick | None = None) -> None:
        """Runs every task, calling done(key, result) once per task as results arrive."""


class _Graph:
    """Dependency bookkeeping shared by the in-process backends: which tasks are ready, and
    the results later tasks still need (dropped once their last dependent has started)."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        seen: set[Hashable] = set()
        self.dependents: dict[Hashable, list[Task]] = {}
        self.ready: list[tuple[float, int, Task, bool, Any]] = []
        self.order = itertools.count()
        for t in tasks:
            if t.key in seen:
                raise ValueError(f"duplicate task key {t.key!r}")
            if t.after is not None:
                if t.after not in seen:
                    raise ValueError(f"task {t.key!r} depends on {t.after!r}, not listed before it")
                self.dependents.setdefault(t.after, []).append(t)
            else:
                self.push(t, False, None)
            seen.add(t.key)

    def push(self, t: Task, has_dep: bool, dep: Any) -> None:
        heapq.heappush(self.ready, (-t.cost, next(self.order), t, has_dep, dep))

    def pop(self) -> tuple[Task, bool, Any]:
        _, _, t, has_dep, dep = heapq.heappop(self.ready)
        return t, has_dep, dep

    def finished(self, t: Task, result: Any, done: Done) -> None:
        """Reports `result` and releases the tasks waiting for it (a failure fails them too)."""
        done(t.key, result)
        for d in self.dependents.pop(t.key, []):
            if isinstance(result, Failed):
                self.finished(d, result, done)
            else:
                self.push(d, True, result)


@dataclass
class Serial:
    """Every task in this process, one after the other."""

    name: str = "serial"
    workers: int = 1

    def run(self, tasks: Sequence[Task], done: Done, tick: Tick | None = None) -> None:
        g = _Graph(tasks)
        while g.ready:
            t, has_dep, dep = g.pop()
            g.finished(t, call(t.fn, has_dep, dep, *t.args), done)


def _serve(conn: Connection) -> None:
    """A pool worker: run what arrives on the pipe until it closes or says stop."""
    # Ctrl-C reaches the whole process group: the parent stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        key, fn, has_dep, dep, args = msg
        result = call(fn, has_dep, dep, *args)
        try:
            conn.send((key, result))
        except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be pickled
            conn.send((key, Failed(f"result not transferable: {describe(e)}")))


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    task: Task | None = None


def _death(exitcode: int | None) -> Failed:
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    else:
        how = f"exit status {exitcode}"
    return Failed(f"worker process died while running it ({how})", transient=True)


@dataclass
class LocalPool:
    """`workers` forked processes on this machine (see the module doc).

    Fork, not spawn or forkserver: a forked worker starts with flashswap, numpy and the C
    engine already loaded (0.04 s for two workers on the 2-core machine, against 3 s for a
    forkserver and 5 s for spawn). The parent runs no threads of its own while it forks (the
    progress display is refreshed from the loop, not from a thread).
    """

    workers: int
    name: str = "local pool"
    started: int = field(default=0, init=False)  # worker processes started by the last run
    _pool: list[_Worker] = field(default_factory=list, init=False, repr=False)

    def pids(self) -> list[int]:
        """Process ids of the live workers of the run under way (none between runs)."""
        return [w.proc.pid for w in self._pool if w.proc.is_alive()]

    def run(self, tasks: Sequence[Task], done: Done, tick: Tick | None = None) -> None:
        g = _Graph(tasks)
        ctx = multiprocessing.get_context("fork")
        pool: list[_Worker] = self._pool
        pool.clear()
        self.started = 0

        def spawn() -> _Worker:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child,), daemon=True)
            proc.start()
            child.close()  # only the worker holds its end: its death closes the pipe
            self.started += 1
            return _Worker(proc, parent)

        try:
            pool += [spawn() for _ in range(max(1, min(self.workers, len(tasks))))]
            last = time.monotonic()
            while g.ready or any(w.task for w in pool):
                for i, w in enumerate(pool):
                    if w.task is not None or not g.ready:
                        continue
                    t, has_dep, dep = g.pop()
                    try:
                        w.conn.send((t.key, t.fn, has_dep, dep, t.args))
                    except OSError:  # the worker died while idle (killed from outside)
                        w.proc.join()
                        w.conn.close()
                        pool[i] = spawn()
                        g.push(t, has_dep, dep)  # no fault of the task: it goes again
                        continue
                    except Exception as e:  # noqa: BLE001 - unpicklable arguments
                        g.finished(t, Failed(f"cannot send to a worker: {describe(e)}"), done)
                        continue
                    w.task = t
                busy = [w for w in pool if w.task is not None]
                if not busy:
                    continue
                woke = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                                timeout=TICK_S))
                for i, w in enumerate(pool):
                    if w.task is None or not (w.conn in woke or w.proc.sentinel in woke):
                        continue
                    t, w.task = w.task, None
                    try:
                        key, result = w.conn.recv()
                        assert key == t.key, (key, t.key)
                    except (EOFError, OSError):
                        w.proc.join()
                        w.conn.close()
                        pool[i] = spawn()
                        result = _death(w.proc.exitcode)
                    g.finished(t, result, done)
                if tick is not None and time.monotonic() - last >= TICK_S:
                    last = time.monotonic()
                    tick()
        finally:
            for w in pool:
                if w.task is None:
                    try:
                        w.conn.send(None)
                    except OSError:
                        pass
                else:
                    w.proc.kill()  # interrupted mid-task: nothing of it is kept
            for w in pool:
                w.proc.join(timeout=5)
                if w.proc.is_alive():
                    w.proc.kill()
                    w.proc.join()
                w.conn.close()
            pool.clear()


class DaskCluster:
    """Tasks on a dask.distributed cluster (see the module doc); a context manager that closes
    what it opened. `address` is a scheduler address (tcp://host:8786) or "local" for a
    LocalCluster of `workers` single-threaded worker processes on this machine."""

    def __init__(self, address: str, workers: int) -> None:
        try:
            import distributed
        except ImportError:
            raise InputError(
                "--cluster needs Dask: pip install 'flashswap[cluster]' (dask[distributed])"
            ) from None
        self.cluster: Any = None
        try:
            if address == "local":
                import logging

                self.cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR,
                )
                self.client = distributed.Client(self.cluster)
            else:
                self.client = distributed.Client(address, timeout="20s")
        except ValueError as e:  # the address itself is malformed
            self.close()
            raise InputError(f"invalid Dask scheduler address {address!r}: {e}") from None
        except (OSError, TimeoutError) as e:
            self.close()
            raise FlashswapError(f"cannot reach the Dask scheduler at {address}: "
                                 f"{describe(e)}") from None
        self.address = address
        self.name = "dask LocalCluster" if address == "local" else f"dask {address}"
        self.workers = len(self.client.scheduler_info().get("workers", {}))

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.cluster is not None:
            self.cluster.close()

    def run_everywhere(self, fn: Callable[[], Any]) -> dict[str, Any]:
        """fn() on every worker, by worker address (to check they run the same code)."""
        return dict(self.client.run(fn))

    def run(self, tasks: Sequence[Task], done: Done, tick: Tick | None = None) -> None:
        import uuid

        from distributed import as_completed

        run_id = uuid.uuid4().hex[:8]
        futures: dict[Hashable, Any] = {}
        keys: dict[str, Hashable] = {}
        for i, t in enumerate(tasks):
            dep = futures.get(t.after) if t.after is not None else None
            if t.after is not None and dep is None:
                raise ValueError(f"task {t.key!r} depends on {t.after!r}, not listed before it")
            name = f"flashswap-{run_id}-{i}"
            futures[t.key] = self.client.submit(
                call, t.fn, t.after is not None, dep, *t.args,
                key=name, pure=False, priority=round(t.cost * 1000),
            )
            keys[name] = t.key
        pending = as_completed(list(futures.values()))
        try:
            while not pending.is_empty():
                batch = pending.next_batch(block=False) if pending.has_ready() else []
                if not batch:
                    if tick is not None:
                        tick()
                    time.sleep(0.02)
                    continue
                for f in batch:
                    done(keys[f.key], _dask_result(f))
        finally:
            self.client.cancel([f for f in futures.values() if not f.done()])


def _dask_result(future: Any) -> Any:
    """A finished future's result; a task that raised on the cluster itself (not inside
    `call`) lost its worker or was cancelled."""
    if future.status == "finished":
        return future.result()
    e = future.exception()
    if type(e).__name__ == "KilledWorker":
        return Failed("worker process died while running it (Dask gave up after "
                      "retrying on other workers)", transient=True)
    return Failed(f"cluster error: {describe(e)}", transient=True)
