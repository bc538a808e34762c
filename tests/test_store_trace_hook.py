"""The store's trace hook: the Python model emits the records the C library's `trace` callback
emits, call for call (traces/README.md record layout)."""

from __future__ import annotations

import numpy as np
import pytest

from flashswap import FlashSim, Store
from flashswap.trace import RECORD_DTYPE, Op


def _session(engine: str) -> list[tuple[int, int, int, int]]:
    flash = FlashSim.from_part("W25Q128JV", capacity=1 << 20)
    st = Store.format(flash, engine=engine)
    got: list[bytes] = []
    st.trace = got.append
    st.put(3, b"x" * 5000)
    assert st.get(3) == b"x" * 5000
    assert st.trim(3) and not st.trim(3)  # a trim of a dead key writes and traces nothing
    st.put(4, b"y")
    assert st.trim_range(0, 10) == 1
    assert st.trim_range(0, 10) == 0  # traced even when nothing is dropped, as in C
    st.sync()
    st.trace = None
    st.sync()  # unhooked: not traced
    assert all(len(r) == 24 for r in got)
    rec = np.frombuffer(b"".join(got), dtype=RECORD_DTYPE)
    assert not rec["flags"].any() and not rec["reserved"].any() and not rec["time_us"].any()
    return [(int(r["op"]), int(r["key"]), int(r["length"]), int(r["value"])) for r in rec]


@pytest.mark.parametrize("engine", ["python", "c"])
def test_trace_hook_records(engine):
    assert _session(engine) == [
        (Op.WRITE, 3, 5000, 0), (Op.READ, 3, 5000, 0), (Op.TRIM, 3, 0, 0),
        (Op.WRITE, 4, 1, 0), (Op.INVALIDATE, 0, 0, 10), (Op.INVALIDATE, 0, 0, 10),
        (Op.SYNC, 0, 0, 0),
    ]


def test_trace_hook_not_called_on_failure():
    flash = FlashSim.from_part("W25Q128JV", capacity=1 << 20)
    for engine in ("python", "c"):
        st = Store.format(flash, engine=engine)
        got: list[bytes] = []
        st.trace = got.append
        with pytest.raises(KeyError):
            st.get(99)
        assert got == []
