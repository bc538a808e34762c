"""Stateful fuzzing of the store against the strict oracle (tests/storeutil.Oracle), on both
engines: puts, trims, syncs, idle steps and remounts; power cuts; churn of large chunks near full
where every trim must succeed; a program failure followed by a power cut; a flipped byte in the
log, where every key reads its value or an error, never an older one; and a format over a block
that can no longer be erased or programmed."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from flashswap import FlashSim, PowerCut, Store
from flashswap.errors import CorruptError, NoSpaceError, NotFoundError
from flashswap.store.config import FREE, FREE_ERASED
from flashswap.store.parse import parse_segment
from tests.storeutil import C_ERROR, GEOMETRIES, Oracle, image_copy, payload, read_all
from tests.storeutil import ENGINES as STORE_ENGINES

KEYS = st.integers(0, 11)
SIZES = st.one_of(st.integers(1, 300), st.integers(300, 6000))
ENGINES = ["python"] + ([] if C_ERROR else ["c"])
CRYPTO_ENGINES = ENGINES  # both engines encrypt; the model's seals are logged
TEST_KEY = bytes(range(16))


class StoreMachine(RuleBasedStateMachine):
    @initialize(geo=st.sampled_from(sorted(GEOMETRIES)), seed=st.integers(0, 2**16),
                engine=st.sampled_from(ENGINES), encrypt=st.booleans())
    def setup(self, geo: str, seed: int, engine: str, encrypt: bool = False) -> None:
        self.geo, self.engine = geo, engine
        # Encrypted stores (SPEC §4a): every seal is logged, and no nonce may come twice.
        self.key = TEST_KEY if encrypt and engine in CRYPTO_ENGINES else None
        self.nonces: set[bytes] = set()
        part, cap, _ = GEOMETRIES[geo]
        # Wear on, but no block wears out on its own: the format-over-worn rule wears one.
        self.flash = FlashSim.from_part(part, capacity=cap, seed=seed, wear="error",
                                        weibull=(2.0, 1e12))
        self.worn = 0  # blocks worn under a format
        self.failed = 0  # blocks that failed a program
        self._format()

    def _format(self) -> None:
        self.store = self._logged(Store.format(self.flash, engine=self.engine, key=self.key,
                                               **GEOMETRIES[self.geo][2]))
        # Format forgets the counts of segments it finds erased (firmware/README.md, "Open").
        self.lost = self._lost_counts()
        self.oracle = Oracle()
        self.history: dict[int, list[bytes]] = {}  # every value a key held
        self.version = 0

    def _put(self, key: int, size: int) -> None:
        self.version += 1
        data = payload(key, self.version, size)
        previous = self.oracle.current.get(key)
        self.oracle.put(key, data)
        self.history.setdefault(key, []).append(data)
        try:
            self.store.put(key, data)
        except NoSpaceError:
            self.oracle.put_refused(key, previous)  # a refused put changes nothing

    @rule(key=KEYS, size=SIZES)
    def put(self, key: int, size: int) -> None:
        self._put(key, size)

    @rule(key=KEYS)
    def get(self, key: int) -> None:
        assert read_all(self.store, {key})[key] == self.oracle.current.get(key)

    @rule(key=KEYS)
    def trim(self, key: int) -> None:
        assert self.store.trim(key) == (key in self.oracle.current)
        self.oracle.trim(key)

    @rule(first=KEYS, span=st.integers(0, 5))
    def trim_range(self, first: int, span: int) -> None:
        self.store.trim_range(first, first + span)
        self.oracle.trim_range(first, first + span)

    @rule()
    def sync(self) -> None:
        self.store.sync()
        self.oracle.sync()

    @rule(n=st.integers(1, 4))
    def idle(self, n: int) -> None:
        self.store.idle(n)

    @rule()
    def remount(self) -> None:
        self.store.unmount()
        self.oracle.sync()
        self._mount()
        assert read_all(self.store, self.oracle.keys()) == {
            k: self.oracle.current.get(k) for k in self.oracle.keys()}

    def _mount(self) -> None:
        self.store = self._logged(Store.mount(self.flash, engine=self.engine, key=self.key))
        lost, self.lost = self.lost, self._lost_counts()
        # SPEC.md §9 step 3: counts are lost only for segments without a header of the store,
        # which get the largest count of one with a header (what a segment lost stays lost).
        model = Store.mount(image_copy(self.flash, self.flash.image()), key=self.key)
        counts = self.store.stat()["erase_counts"]
        known = model.state == 2  # IN_LOG
        gained = self.lost > lost
        assert not (gained & known).any(), f"counts of the log lost: {(self.lost - lost)}"
        assert (counts[gained] == counts[known].max()).all(), (
            f"unknown counts not the largest known: {counts.tolist()}")

    def _lost_counts(self) -> np.ndarray:
        stat = self.store.stat()
        true = self.flash.wear_counts[:: stat["segment_size"] // self.flash.erase_size]
        return np.asarray(true - stat["erase_counts"])

    def _ops(self, ops: list[tuple[str, int, int]]) -> None:
        """Run ops, recording each in the oracle before the call (a cut may or may not land
        it); a trim a degraded device refuses changes nothing."""
        for op, key, size in ops:
            if op == "put":
                self._put(key, size)
            elif op in ("trim", "range"):
                last = key if op == "trim" else key + size % 4
                before = dict(self.oracle.current)
                self.oracle.trim_range(key, last)
                try:
                    self.store.trim_range(key, last)
                except NoSpaceError:
                    for k in range(key, last + 1):
                        if k in before:
                            self.oracle.put_refused(k, before[k])
            elif op == "sync":
                self.store.sync()
                self.oracle.sync()
            else:
                self.store.idle(2)

    OPS = st.lists(st.tuples(st.sampled_from(["put", "trim", "sync", "idle", "range"]), KEYS,
                             SIZES), min_size=1, max_size=8)

    @rule(cut=st.integers(0, 30), ops=OPS)
    def power_cut(self, cut: int, ops: list[tuple[str, int, int]]) -> None:
        self.flash.power_cut_after(cut)
        try:
            self._ops(ops)
        except PowerCut:
            pass
        self.flash.power_cut_after(None)
        self._mount()
        self.oracle.check_after_cut(read_all(self.store, self.oracle.keys()))

    # One grown bad block per run: two within one recovery lose the unsynced chunks whose bytes
    # the first one's rescue copy held (SPEC.md §12 step 5: they read as corrupt).
    @precondition(lambda self: self.failed < 1)
    @rule(fail=st.integers(0, 20), cut=st.integers(0, 40), ops=OPS)
    def program_failure_then_cut(self, fail: int, cut: int,
                                 ops: list[tuple[str, int, int]]) -> None:
        """A block fails (for good) during the ops and power is cut during the recovery or
        after: the strict oracle holds at the next mount."""
        self.flash.fail_after(fail)
        self.flash.power_cut_after(cut)
        try:
            self._ops(ops)
        except PowerCut:
            pass
        failed = self.flash._fail is None
        self.flash.power_cut_after(None)
        self.flash.fail_after(None)
        self.failed += failed
        self._mount()
        self.oracle.check_after_cut(read_all(self.store, self.oracle.keys()))

    @rule(seed=st.integers(0, 2**16), n=st.integers(2, 10))
    def churn_near_full(self, seed: int, n: int) -> None:
        """Chunks of half a segment to two segments: when a put is refused, a trim of a live
        key must succeed."""
        rng = random.Random(seed)
        stat = self.store.stat()
        for _ in range(n):
            k = rng.randrange(12)
            size = min(stat["max_chunk"], rng.randint(stat["segment_size"] // 2,
                                                       2 * stat["segment_size"]))
            previous = self.oracle.current.get(k)
            self._put(k, size)
            if self.oracle.current.get(k) == previous and self.oracle.current:
                victim = rng.choice(sorted(self.oracle.current))
                try:
                    assert self.store.trim(victim) is True
                except NoSpaceError:
                    # Only with no segment left to write (a refused trim changes nothing).
                    assert self._nowhere_to_write(), "a trim refused for space"
                    continue
                self.oracle.trim(victim)

    def _nowhere_to_write(self) -> bool:
        """True when every segment a trim could open (erased, free or reclaimable, SPEC.md
        §10) is a block that went bad, and one did: a grown bad block keeps its header, so a
        remount forgets it and the reserve holds one segment fewer than it counts (§12). A
        power cut that then tears the segment a trim opened from the last one leaves none."""
        model = Store.mount(image_copy(self.flash, self.flash.image()), key=self.key)
        per = model.geo.seg_size // self.flash.erase_size
        bad = self.flash._grown.reshape(-1, per).any(axis=1)[: model.geo.nseg]
        cand = (model.state == FREE_ERASED) | (model.state == FREE) | model._reclaimable_mask()
        return bool(bad.any()) and not (cand & ~bad).any()

    @rule(seed=st.integers(0, 2**32 - 1))
    def flipped_byte(self, seed: int) -> None:
        """One byte of the synced log flipped: every key reads its value or an error, the end
        of each log included (a SYNC record follows what a sync made durable, SPEC.md §6). Only
        records that no sync marked, which a mount found before a tear in a segment the window
        still holds, may read as older (SPEC.md §9, "Corrupt, never stale")."""
        self.store.sync()
        self.oracle.sync()
        img = bytearray(self.flash.image())
        used = [i for i, b in enumerate(img) if b != 0xFF]
        if not used:
            return
        pos = random.Random(seed).choice(used)
        tail = self._tail_keys(pos)
        img[pos] ^= 0xFF if img[pos] == 0x00 else 0x5A
        try:
            other = Store.mount(image_copy(self.flash, bytes(img)), engine=self.engine,
                                key=self.key)
        except CorruptError:
            return
        for k in self.oracle.keys():
            try:
                got: bytes | None = other.get(k)
            except CorruptError:
                continue
            except NotFoundError:
                got = None
            ok = [self.oracle.current.get(k)]
            if k in tail:
                ok += [None, *self.history.get(k, [])]
            assert got in ok, f"flip at {pos}: key {k} read a stale or wrong value"

    def _tail_keys(self, pos: int) -> set[int]:
        """Keys of the records after the last SYNC, RESERVE or CHECKPOINT record (none: from
        the segment's start), in each window segment that may end torn (its log's last, or
        followed by a segment with TEAR), if pos lies in one of them: SPEC.md §9, "Corrupt,
        never stale"."""
        from flashswap.store.layout import HF_TEAR, T_CHECKPOINT, T_RESERVE, T_SYNC, SegHeader

        model = Store.mount(image_copy(self.flash, self.flash.image()), key=self.key)
        g = model.geo
        out = set()
        window = [s for s in range(g.nseg) if model.state[s] == 2
                  and model.seq[s] >= (model.replay_cold if model.cold[s] else model.replay_seq)]
        for s in window:
            nxt = model._next_in_chain(s)
            if nxt is not None:
                h = SegHeader.unpack(self.flash.read(nxt * g.seg_size, 40))
                if h is None or not h.flags & HF_TEAR:
                    continue
            data = self.flash.read(s * g.seg_size, g.seg_size)
            recs = parse_segment(data, s * g.seg_size, g.prog_size, g.page_once,
                                 model.max_chunk, model.tag)[0]
            last = max([i + 1 for i, r in enumerate(recs)
                        if r.intact and r.rtype in (T_SYNC, T_RESERVE, T_CHECKPOINT)], default=0)
            for r in recs[last:]:
                if r.addr <= pos < r.addr + 32 + r.payload_len:
                    out.add(r.key)
        return out

    @precondition(lambda self: self.worn < 2)
    @rule(block=st.integers(0, 10**6))
    def format_over_a_worn_block(self, block: int) -> None:
        """A block of the store that can no longer be erased or programmed keeps the old
        store's header: the new format still mounts as the new, empty store (and never counts
        that block as free)."""
        self.store.sync()
        seg = self.store.stat()["segment_size"]
        held = [s for s in range(self.flash.size // seg) if self.flash.read(s * seg, 4) == b"FSWP"]
        self._format_over(held[block % len(held)] * seg // self.flash.erase_size)

    def _format_over(self, b: int) -> None:
        """Format after block b wore out (it can neither be erased nor programmed)."""
        self.flash.block_endurance[b] = self.flash.wear_counts[b]
        self.worn += 1
        old = set(self.oracle.current)
        self._format()
        self.store.put(99, b"new store")
        self.store.unmount()
        self._mount()
        assert self.store.keys() == [99] and self.store.get(99) == b"new store"
        for k in old:
            assert read_all(self.store, {k})[k] is None
        self.store.trim(99)
        self.store.sync()

    def _logged(self, store: Store) -> Store:
        aead = getattr(store, "aead", None)
        if aead is not None:
            aead.log = self
        return store

    def append(self, seal: tuple[bytes, bytes, bytes]) -> None:
        """The log of every seal (Aead.log): a nonce sealed twice fails at once."""
        assert seal[0] not in self.nonces, f"nonce {seal[0].hex()} sealed twice"
        self.nonces.add(seal[0])

    @precondition(lambda self: hasattr(self, "store"))
    @invariant()
    def index_matches(self) -> None:
        assert set(self.store.keys()) == set(self.oracle.current)


# Half the profile's examples (100 by default, 1,500 with HYPOTHESIS_PROFILE=slow): each runs
# both engines' worth of rules, power cuts and remounts.
StoreMachine.TestCase.settings = settings(stateful_step_count=30,
                                          max_examples=settings().max_examples // 2)
TestStoreStateful = StoreMachine.TestCase


# Sequences the machine found, replayed on both engines (each failed before its fix).


def _machine(geo: str, seed: int, engine: str) -> StoreMachine:
    m = StoreMachine()
    m.setup(geo=geo, seed=seed, engine=engine)
    return m


def _worn_format(m: StoreMachine, block: int) -> None:
    m.store.sync()
    m._format_over(block)


@pytest.mark.parametrize("engine", STORE_ENGINES)
def test_found_a_put_refused_after_its_chunk_was_indexed(engine: str) -> None:
    """The checkpoint after a put's spill failed a program: the recovery moved the chunk and
    the retried put was refused for space, yet the first attempt's chunk stayed. A put is now
    done once its chunk is indexed (the recovery's checkpoint stands for the failed one)."""
    m = _machine("nor4k", 0, engine)
    _worn_format(m, 12)
    _worn_format(m, 9)
    m.power_cut(cut=17, ops=[("put", 0, 1), ("put", 0, 1), ("put", 11, 1), ("trim", 0, 1)])
    m.put(key=9, size=2042)
    m.churn_near_full(n=2, seed=17346)
    m.churn_near_full(n=10, seed=32044)
    m.remount()
    m.power_cut(cut=0, ops=[("put", 0, 1)] * 6)
    m.churn_near_full(n=2, seed=255)
    m.index_matches()


@pytest.mark.parametrize("engine", STORE_ENGINES)
def test_found_trims_near_full_over_blocks_format_could_not_erase(engine: str) -> None:
    """Two blocks a format could not erase counted as free at the next mount: the reserve
    kept for trims was blocks that cannot be used, and a trim failed for lack of space."""
    m = _machine("nand", 22362, engine)
    m.remount()
    m.idle(n=1)
    _worn_format(m, 0)
    m.remount()
    m.churn_near_full(n=8, seed=20)
    m.churn_near_full(n=10, seed=9386)
    for _ in range(4):
        m.remount()
    _worn_format(m, 4)
    m.churn_near_full(n=8, seed=3209)
    m.churn_near_full(n=6, seed=753)
    m.remount()
    m.churn_near_full(n=3, seed=6063)
    m.remount()
    m.churn_near_full(n=4, seed=290)
    m.index_matches()


@pytest.mark.parametrize("engine", STORE_ENGINES)
def test_found_a_segment_losing_its_count_at_two_mounts(engine: str) -> None:
    """A segment found erased at two mounts after cuts lost 1 of its erase count at each
    (SPEC.md §9 step 3 now says so; the machine checks each mount's loss)."""
    m = _machine("nor64k", 30436, engine)
    m.trim_range(first=0, span=0)
    m.program_failure_then_cut(cut=21, fail=15, ops=[
        ("put", 11, 4332), ("put", 0, 132), ("put", 0, 1), ("put", 0, 161), ("put", 0, 1)])
    m.trim_range(first=10, span=3)
    m.put(key=3, size=527)
    m.trim_range(first=6, span=0)
    m.trim_range(first=2, span=3)
    m.churn_near_full(n=10, seed=1834)
    m.churn_near_full(n=10, seed=88)
    m.program_failure_then_cut(cut=24, fail=5, ops=[
        ("sync", 2, 236), ("sync", 3, 84), ("idle", 0, 61), ("idle", 0, 486)])
    m.put(key=11, size=50)
    m.power_cut(cut=6, ops=[("idle", 0, 486), ("trim", 6, 38)])
    m.power_cut(cut=30, ops=[("put", 10, 760), ("sync", 0, 168), ("sync", 11, 3856),
                             ("range", 0, 113), ("trim", 6, 245), ("put", 7, 114),
                             ("idle", 1, 689), ("idle", 7, 85)])
    m.churn_near_full(n=8, seed=54802)
    m.idle(n=4)
    m.remount()
    m.index_matches()


@pytest.mark.parametrize("engine", STORE_ENGINES)
def test_found_a_reservation_sync_pushing_a_checkpoint_past_its_segment(engine: str) -> None:
    """Encrypted NAND near full: a spill opened a checkpoint segment that fitted the
    continuation, the reservation and the checkpoint byte for byte, but the reservation's sync
    gave up the rest of its page and the checkpoint ran into the next segment. The fit test now
    counts that unit (SPEC §4a)."""
    m = StoreMachine()
    m.setup(geo="nand", engine=engine, seed=0, encrypt=True)
    m.churn_near_full(n=8, seed=783)
    m.churn_near_full(n=7, seed=1)
    m.index_matches()
    m.remount()


@pytest.mark.parametrize("engine", STORE_ENGINES)
def test_found_a_recovery_erasing_a_segment_an_unsynced_trim_emptied(engine: str) -> None:
    """A program failed on the unit holding a trim no sync had made durable; the recovery
    opened (erased) the segment that trim had emptied, and a power cut came before its
    checkpoint: the mount found the trimmed key's synced chunk there, erased, and read it as
    corrupt. A recovery now opens such held segments last (SPEC §12 step 3)."""
    m = StoreMachine()
    m.setup(geo="nor64k", engine=engine, seed=120, encrypt=True)
    m.format_over_a_worn_block(block=119)
    m.churn_near_full(n=3, seed=326)
    m.format_over_a_worn_block(block=10062)
    m.churn_near_full(n=5, seed=1033)
    m.churn_near_full(n=5, seed=1066)
    m.program_failure_then_cut(cut=19, fail=13, ops=[
        ("put", 2, 228), ("sync", 0, 43), ("idle", 1, 136), ("range", 4, 287)])
    m.program_failure_then_cut(cut=12, fail=7, ops=[
        ("trim", 10, 2253), ("idle", 1, 138), ("trim", 2, 159), ("put", 10, 281),
        ("trim", 5, 566)])
    m.churn_near_full(n=5, seed=2292)
    m.trim(key=11)
    m.put(key=6, size=1)
    m.churn_near_full(n=7, seed=6562)
    m.trim(key=3)
    m.program_failure_then_cut(cut=28, fail=0, ops=[
        ("put", 2, 228), ("sync", 3, 16), ("sync", 8, 1189)])
    m.index_matches()


@pytest.mark.parametrize("engine", STORE_ENGINES)
def test_found_a_trim_with_no_segment_left_after_a_forgotten_bad_block(engine: str) -> None:
    """A block went bad in the log (its header stays); at each remount it counts as free
    again, so the reserve is one short; a cut tore the segment a trim opened from the last
    good one. With the reserve of revision 2.3 the next trim had nowhere to go (the machine
    accepts "no space" only then, SPEC §12); the reserve's segment for a recovery (revision
    2.4, §10) leaves it a good one."""
    m = StoreMachine()
    m.setup(geo="nor64k", engine=engine, seed=113, encrypt=True)
    m.program_failure_then_cut(cut=21, fail=0, ops=[
        ("range", 3, 68), ("put", 8, 670), ("sync", 9, 411)])
    m.trim_range(first=7, span=0)
    m.churn_near_full(n=10, seed=323)
    m.churn_near_full(n=2, seed=1930)
    m.remount()
    m.power_cut(cut=0, ops=[("put", 6, 1)])
    m.power_cut(cut=7, ops=[("range", 5, 231)])
    assert not m._nowhere_to_write()
    key = sorted(m.oracle.current)[0]
    assert m.store.trim(key) is True
    m.oracle.trim(key)
    m.churn_near_full(n=4, seed=3271)
    m.remount()
    m.index_matches()
