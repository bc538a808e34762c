"""Shared helpers for the store tests: small geometries, payloads, and the power-cut oracle."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from flashswap import FlashSim, Store
from flashswap.errors import CorruptError, NoSpaceError, NotFoundError
from tests.geometries import pick

# name -> (part, capacity, format options); the table and what each geometry is for:
# tests/geometries.py.
GEOMETRIES: dict[str, tuple[str, int, dict[str, int]]] = pick("nor4k", "nor64k", "nand")


def make_flash(geo: str, **kw: object) -> FlashSim:
    part, cap, _ = GEOMETRIES[geo]
    return FlashSim.from_part(part, capacity=cap, **kw)


def format_store(flash: FlashSim, geo: str, engine: str = "python", **over: int) -> Store:
    opts = dict(GEOMETRIES[geo][2])
    opts.update(over)
    return Store.format(flash, engine=engine, **opts)


def payload(key: int, version: int, size: int) -> bytes:
    """Deterministic, distinct data for each (key, version)."""
    return random.Random(key * 1_000_003 + version).randbytes(size)


def read_all(store: Store, keys: set[int]) -> dict[int, bytes | None]:
    out: dict[int, bytes | None] = {}
    for k in keys:
        try:
            out[k] = store.get(k)
        except NotFoundError:
            out[k] = None
    return out


@dataclass
class Oracle:
    """What a store must hold: the last synced state, and what changed since (the strict
    oracle of issue 16).

    After a power cut, a key untouched since the last sync must read exactly its synced value
    (absent if it had none); a key touched since may read its synced value or any value
    written to it since, and absent only if it was absent at the sync or trimmed since. A
    CorruptError is never acceptable: read_all lets it propagate.
    """

    synced: dict[int, bytes] = field(default_factory=dict)
    current: dict[int, bytes] = field(default_factory=dict)
    since: dict[int, list[bytes | None]] = field(default_factory=dict)

    def put(self, k: int, v: bytes) -> None:
        """Record a put before calling the store: a cut inside it may or may not land it."""
        self.current[k] = v
        self.since.setdefault(k, []).append(v)

    def put_refused(self, k: int, previous: bytes | None) -> None:
        """The store refused the put (no space): it changed nothing."""
        self.since[k].pop()
        if not self.since[k]:
            del self.since[k]
        if previous is None:
            self.current.pop(k, None)
        else:
            self.current[k] = previous

    def trim(self, k: int) -> None:
        self.current.pop(k, None)
        self.since.setdefault(k, []).append(None)

    def trim_range(self, a: int, b: int) -> None:
        for k in [k for k in self.current if a <= k <= b]:
            self.trim(k)

    def sync(self) -> None:
        self.synced = dict(self.current)
        self.since.clear()

    def keys(self) -> set[int]:
        return set(self.synced) | set(self.current) | set(self.since)

    def check_after_cut(self, got: dict[int, bytes | None]) -> None:
        for k in self.keys():
            g = got.get(k)
            old = self.synced.get(k)
            if k not in self.since:
                assert g == old, f"key {k}: synced value not read back intact"
            else:
                allowed = [old, *self.since[k]]  # a trim since appends None
                assert g in allowed, (
                    f"key {k}: read {'absent' if g is None else 'a value'} that is neither "
                    "its synced value nor one written since")
        # The state found is what is on flash now: it becomes the new synced state.
        self.current = {k: v for k, v in got.items() if v is not None}
        self.sync()


def check_only_new_store(new: Store, flash: FlashSim, engine: str, want: dict[int, bytes],
                         rng: random.Random, unmount: bool, rounds: int, top: int) -> None:
    """After a format over blocks the old store left behind: `new` holds `want` (keys 30..34);
    unmounted or cut after a sync, a mount shows exactly those among keys 0..34 (no old key
    revived), and `rounds` more puts of up to `top` bytes survive an unmount."""
    for k, v in want.items():
        new.put(k, v)
    if unmount:
        new.unmount()
    else:
        new.sync()
        flash = flash.copy()
    st = Store.mount(flash, engine=engine)
    assert read_all(st, set(range(35))) == {k: want.get(k) for k in range(35)}
    for i in range(rounds):
        k = 30 + i % 5
        want[k] = bytes([77, i]) * rng.randint(1, top)
        st.put(k, want[k])
    st.unmount()
    assert read_all(Store.mount(flash, engine=engine), set(range(35))) == {
        k: want.get(k) for k in range(35)}


def _c_engine_error() -> str:
    """Why the C engine cannot run here ('' if it can): only a missing compiler (CI installs
    gcc)."""
    from flashswap.errors import InputError
    from flashswap.store.c_engine import library

    try:
        library()
    except InputError as e:
        return str(e)
    return ""


C_ERROR = _c_engine_error()
needs_c = pytest.mark.skipif(bool(C_ERROR), reason=f"C library unavailable: {C_ERROR}")
# Both engines, for parametrize: the Python model and the C library.
ENGINES = ["python", pytest.param("c", marks=needs_c)]


def image_copy(template: FlashSim, image: bytes) -> FlashSim:
    """A fresh simulator of the template's part and size holding `image` and the template's
    spare area (pages programmed in ascending order: a new device is erased)."""
    flash = FlashSim(template.part, capacity=template.size)
    page, ss = flash.page_size, flash.spare_size
    spare = template.spare_image()
    for a in range(0, len(image), page):
        chunk = image[a : a + page]
        sp = spare[a // page * ss : (a // page + 1) * ss] if ss else b""
        keep_sp = sp if sp and sp != b"\xff" * ss else None
        if chunk != b"\xff" * len(chunk) or keep_sp is not None:
            flash.program(a, chunk, spare=keep_sp)
    return flash


def oracle_workload(st: Store, o: Oracle, rng: random.Random, nops: int, maxsz: int,
              keys: int = 10) -> None:
    """Puts (a refused one trims a live key), trims, trim_range, syncs and idle steps, with
    the oracle told of each before the store is."""
    for _ in range(nops):
        r = rng.random()
        k = rng.randrange(keys)
        if r < 0.65:
            d = payload(k, rng.randrange(1 << 30), rng.randint(1, maxsz))
            prev = o.current.get(k)
            o.put(k, d)
            try:
                st.put(k, d)
            except NoSpaceError:
                o.put_refused(k, prev)
                v = rng.choice(sorted(o.current)) if o.current else 0
                o.trim(v)
                st.trim(v)
        elif r < 0.8:
            o.trim(k)
            st.trim(k)
        elif r < 0.83:
            a = rng.randrange(keys)
            b = a + rng.randrange(4)
            o.trim_range(a, b)
            st.trim_range(a, b)
        elif r < 0.95:
            st.sync()
            o.sync()
        else:
            st.idle(rng.randint(1, 4))


def key_outcome(st: Store, k: int) -> tuple[str, bytes | None]:
    """What reading key k gives: ("value", bytes), ("absent", None) or ("corrupt", None)."""
    try:
        return ("value", st.get(k))
    except NotFoundError:
        return ("absent", None)
    except CorruptError:
        return ("corrupt", None)
