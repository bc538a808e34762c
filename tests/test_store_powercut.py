"""Exhaustive power-cut sweeps: scripted scenarios cut at every flash operation index.

Each scenario is run once to count its flash operations, then re-run from the same starting
image with a cut at every index; after each cut the store must mount and hold exactly what the
oracle allows (tests/storeutil.Oracle, the strict oracle). Every sweep runs on both engines: the
Python model and the C library.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flashswap import FlashSim, PowerCut, Store
from tests.storeutil import ENGINES, Oracle, format_store, make_flash, payload, read_all

Scenario = Callable[[Store, Oracle], None]


def _put(st: Store, o: Oracle, k: int, v: int, n: int) -> None:
    d = payload(k, v, n)
    o.put(k, d)
    st.put(k, d)


def fill_and_trim(st: Store, o: Oracle) -> None:
    """Puts crossing segment boundaries, trims, a bulk invalidation, syncs in between."""
    for i in range(10):
        _put(st, o, i % 6, i, 700 + 300 * i)
        if i % 3 == 2:
            st.sync()
            o.sync()
    o.trim(1)
    st.trim(1)
    o.trim_range(2, 4)
    st.trim_range(2, 4)
    st.sync()
    o.sync()


def gc_pressure(st: Store, o: Oracle) -> None:
    """Overwrite a few long-lived keys among churn until garbage collection must copy."""
    for i in range(40):
        _put(st, o, i % 3 if i % 4 else 7 + i % 5, 1000 + i, 900 + (i * 37) % 2000)
        if i % 5 == 4:
            st.sync()
            o.sync()
        if i % 7 == 6:
            st.idle(2)
    st.sync()
    o.sync()


def wl_move(st: Store, o: Oracle) -> None:
    """Cold data plus churn: static wear leveling moves the cold segment (threshold 2)."""
    _put(st, o, 100, 1, 3000)
    st.sync()
    o.sync()
    for i in range(60):
        _put(st, o, i % 2, 2000 + i, 1500)
        o.trim(i % 2)
        st.trim(i % 2)
        if i % 4 == 3:
            st.sync()
            o.sync()
    st.sync()
    o.sync()


SCENARIOS: dict[str, tuple[str, Scenario, dict[str, int]]] = {
    "nor4k-fill": ("nor4k", fill_and_trim, {}),
    "nand-fill": ("nand", fill_and_trim, {}),
    "nor4k-gc": ("nor4k", gc_pressure, {}),
    "nor4k-wl": ("nor4k", wl_move, {"wl_threshold": 2}),
    "nand-gc": ("nand", gc_pressure, {}),
}


def _prepare(geo: str, opts: dict[str, int], engine: str) -> FlashSim:
    flash = make_flash(geo, seed=7)
    format_store(flash, geo, engine, **opts).unmount()
    return flash


def _sweep(name: str, stride: int, engine: str = "python") -> int:
    geo, scenario, opts = SCENARIOS[name]
    base = _prepare(geo, opts, engine)
    probe = base.copy()
    before = probe.ops_count
    scenario(Store.mount(probe, engine=engine), Oracle())
    total = probe.ops_count - before
    assert total > 10
    for cut in range(0, total, stride):
        flash = base.copy()
        oracle = Oracle()
        flash.power_cut_after(cut)
        with pytest.raises(PowerCut):
            scenario(Store.mount(flash, engine=engine), oracle)
        flash.power_cut_after(None)
        store = Store.mount(flash, engine=engine)
        oracle.check_after_cut(read_all(store, oracle.keys() | set(range(12))))
        # And the store keeps working after the cut.
        store.put(11, b"after the cut")
        store.sync()
        assert Store.mount(flash, engine=engine).get(11) == b"after the cut"
    return total


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_power_cut_at_every_operation(name: str, engine: str) -> None:
    _sweep(name, stride=1, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_format_power_cut_at_every_operation(engine: str) -> None:
    """A cut during format leaves either no store (mount refuses) or an empty store."""
    probe = make_flash("nor4k")
    before = probe.ops_count
    format_store(probe, "nor4k", engine=engine)
    total = probe.ops_count - before
    for cut in range(total):
        flash = make_flash("nor4k")
        flash.power_cut_after(cut)
        with pytest.raises(PowerCut):
            format_store(flash, "nor4k", engine=engine)
        flash.power_cut_after(None)
        try:
            store = Store.mount(flash, engine=engine)
        except Exception as e:  # noqa: BLE001
            assert type(e).__name__ == "CorruptError"
        else:
            assert store.keys() == []
