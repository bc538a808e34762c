"""The contract every store engine keeps, and the registry that names them.

An engine is an implementation of the on-flash format (firmware/SPEC.md) behind one API: the
Python model (`flashswap.store.core.Store`) and the C library (`flashswap.store.c_engine.CStore`)
today. Both are held to the same bytes on flash by the golden vectors and the differential tests
(tests/test_c_engine.py). Callers that take an engine by name (the CLI's `--engine`, the
executor's `Device`, the analyzer) go through `format_store` and `mount_store` here.

Adding an engine takes one class with the `EngineClass` constructors returning a `StoreEngine`,
and one line in `ENGINES`. Modules are imported on first use only, so that naming the engines
(`names`) loads none of them, and the model's module can use this one without a cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from flashswap.errors import InputError

if TYPE_CHECKING:
    from flashswap.flash import FlashDevice
    from flashswap.store.c_engine import CStore
    from flashswap.store.core import Store

# name -> "module:class", in the order `--engine` lists them.
ENGINES: dict[str, str] = {
    "python": "flashswap.store.core:Store",
    "c": "flashswap.store.c_engine:CStore",
}


class StoreEngine(Protocol):
    """A mounted store: the operations callers use (put/get/trim/trim_range/sync/idle/stat,
    the trace hook), with the model's errors (flashswap.errors) for the same conditions."""

    flash: FlashDevice
    mounted: bool

    @property
    def trace(self) -> Callable[[bytes], None] | None:
        """Called after each successful API call with its 24-byte trace record (or None)."""

    @trace.setter
    def trace(self, fn: Callable[[bytes], None] | None) -> None: ...

    @property
    def max_keys(self) -> int: ...

    @property
    def max_chunk(self) -> int:
        """The largest record payload, an encrypted store's tag included."""

    @property
    def retired(self) -> int: ...

    def put(self, key: int, data: bytes | bytearray | memoryview) -> None: ...

    def get(self, key: int) -> bytes: ...

    def __contains__(self, key: int) -> bool: ...

    def keys(self) -> list[int]: ...

    def trim(self, key: int) -> bool: ...

    def trim_range(self, first: int, last: int) -> int: ...

    def sync(self) -> None: ...

    def idle(self, max_erases: int = 1) -> int: ...

    def stat(self) -> dict[str, Any]: ...

    def log_position(self) -> int: ...

    def unmount(self) -> None: ...


class EngineClass(Protocol):
    """An engine's constructors (classmethods of its class) and what the registry asks of it."""

    # True for compiled engines: preferred when no engine is named and it loads.
    native: bool

    def available(self) -> None:
        """Nothing if the engine can run on this machine, else InputError saying why."""

    def format(self, flash: FlashDevice, *, segment_size: int | None = None,
               max_keys: int | None = None, ckpt_interval: int | None = None,
               reserve: int | None = None, wl_threshold: int | None = None,
               key: bytes | None = None) -> StoreEngine:
        """Erase the flash and create an empty store on it (SPEC §13); options checked by
        `flashswap.store.config.options`."""

    def mount(self, flash: FlashDevice, *, key: bytes | None = None) -> StoreEngine:
        """Attach to the store on `flash` (SPEC §9); writes nothing."""


if TYPE_CHECKING:  # mypy holds each registered class to the contract
    _model: EngineClass = Store
    _c: EngineClass = CStore
    _model_store: type[StoreEngine] = Store
    _c_store: type[StoreEngine] = CStore


def names() -> tuple[str, ...]:
    """The registered engine names, in registry order."""
    return tuple(ENGINES)


@cache
def engine_class(name: str) -> EngineClass:
    """The engine registered as `name`; InputError naming the registered ones if none is."""
    entry = ENGINES.get(name)
    if entry is None:
        raise InputError(f"unknown store engine {name!r} (available: {', '.join(ENGINES)})")
    module, cls = entry.split(":")
    engine: EngineClass = getattr(importlib.import_module(module), cls)
    return engine


def default_engine() -> str:
    """The engine used when none is named: the first native one that loads, else the first
    registered (the model, which always runs)."""
    for name in ENGINES:
        eng = engine_class(name)
        if eng.native:
            try:
                eng.available()
            except InputError:
                continue
            return name
    return next(iter(ENGINES))


def format_store(engine: str, flash: FlashDevice, *, segment_size: int | None = None,
           max_keys: int | None = None, ckpt_interval: int | None = None,
           reserve: int | None = None, wl_threshold: int | None = None,
           key: bytes | None = None) -> StoreEngine:
    """A new, empty store on `flash`, run by the engine registered as `engine`."""
    return engine_class(engine).format(
        flash, segment_size=segment_size, max_keys=max_keys, ckpt_interval=ckpt_interval,
        reserve=reserve, wl_threshold=wl_threshold, key=key)


def mount_store(engine: str, flash: FlashDevice, key: bytes | None = None) -> StoreEngine:
    """The store on `flash`, run by the engine registered as `engine`."""
    return engine_class(engine).mount(flash, key=key)


__all__ = ["ENGINES", "EngineClass", "StoreEngine", "default_engine", "engine_class",
           "format_store", "mount_store", "names"]
