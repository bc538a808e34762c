"""The registry of replay engines: one line per engine, in the order reports list them.

Adding an engine takes one new module (a subclass of `analyzer.engine_base.Engine` declaring
`name`, `store`, `variant`, `replay_cost`, `model` and `build`) and one line here. Engines of
the same `store` are the ways of using one storage layer (littlefs's file layouts): the CLI
runs the variants a user selects (`Options.variants`, the first registered by default) and
reports the best. Modules are imported on first use only: each pulls in its own library.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import TYPE_CHECKING

from flashswap.errors import InputError

if TYPE_CHECKING:
    from analyzer.engine_base import Engine

ENGINES: tuple[str, ...] = (
    "analyzer.engine_flashswap:FlashswapEngine",
    "analyzer.engine_littlefs_tensor:LittlefsTensorEngine",
    "analyzer.engine_littlefs:LittlefsChunkEngine",
    "analyzer.engine_littlefs_prealloc:LittlefsPreallocEngine",
    "analyzer.engine_naive:NaiveEngine",
)


@lru_cache(maxsize=1)
def engine_classes() -> dict[str, type[Engine]]:
    """Every registered engine class by name (cached: the registry is fixed at import)."""
    out: dict[str, type[Engine]] = {}
    for entry in ENGINES:
        module, cls = entry.split(":")
        engine = getattr(importlib.import_module(module), cls)
        if engine.name in out:
            raise ValueError(f"engine name {engine.name!r} registered twice")
        out[engine.name] = engine
    return out


def stores() -> tuple[str, ...]:
    """The storage layers, in registry order."""
    return tuple(dict.fromkeys(e.store for e in engine_classes().values()))


def variants_of(store: str) -> tuple[str, ...]:
    """The variants a storage layer is registered with (empty names for single-variant
    layers), in registry order: the first is its default."""
    return tuple(e.variant for e in engine_classes().values() if e.store == store)


def get_engine(name: str) -> type[Engine]:
    """An engine by registry name, or a storage layer's default (first) variant."""
    classes = engine_classes()
    if name in classes:
        return classes[name]
    for e in classes.values():
        if e.store == name:
            return e
    raise InputError(f"unknown store {name!r} (choose from {', '.join(stores())})")


def select(store: str, variants: tuple[str, ...] = ()) -> list[type[Engine]]:
    """The engines of `store` for the chosen variants ("all": every one; none: the
    default). Unknown variants raise InputError listing the valid ones."""
    mine = [e for e in engine_classes().values() if e.store == store]
    if not mine:
        raise InputError(f"unknown store {store!r} (choose from {', '.join(stores())})")
    if not variants:
        return mine[:1]
    if "all" in variants:
        return mine
    by = {e.variant: e for e in mine}
    bad = [v for v in variants if v not in by]
    if bad:
        raise InputError(f"unknown {store} layout {bad[0]!r} (choose from "
                         f"{', '.join(by)}, or all)")
    return [by[v] for v in dict.fromkeys(variants)]
