"""The swap store model: the executable form of firmware/SPEC.md.

A log of segments (erase units). Chunks are appended at the head through one program-unit
buffer; whole dead segments are reclaimed without copying; erase counts live in every segment
header; a checkpoint of the index opens every `ckpt_interval`-th segment so mount reads one header
per segment plus the replay window. Section numbers (§) refer to SPEC.md.

The C library in firmware/ implements the same algorithm and must leave the same bytes on flash;
keep every tie-break and every order of operations here exactly as SPEC.md states it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, overload

import numpy as np

from flashswap.errors import (
    ChunkTooLargeError,
    CorruptError,
    DeviceError,
    FlashWearError,
    InputError,
    NoSpaceError,
    NotFoundError,
)
from flashswap.store.aead import SUITE_AES128GCM, SUITE_NONE, TAG_LEN, Aead, assoc, nonce
from flashswap.store.config import (
    BAD,
    FREE,
    FREE_ERASED,
    IN_LOG,
    Geometry,
    cipher_for,
    options,
    probe,
    probe_geometry,
)
from flashswap.store.engine import engine_class
from flashswap.store.layout import (
    ENTRY_SIZE,
    EPOCH_BITS,
    F_CONT,
    F_DAMAGED,
    F_ENC,
    F_MORE,
    HEADER_SIZE,
    HF_COLD,
    HF_PAGE_ONCE,
    HF_TEAR,
    LOST_ADDR,
    MIN_ROOM,
    NO_KEY,
    REC_SIZE,
    T_CHECKPOINT,
    T_DATA,
    T_RESERVE,
    T_SYNC,
    T_TRIM_RANGE,
    SegHeader,
    crc32,
    pack_entries,
    pack_record,
    unpack_rec,
)
from flashswap.store.mount import read_segments, replay_window
from flashswap.store.parse import Rec, parse_segment

if TYPE_CHECKING:
    from flashswap.flash import FlashDevice
    from flashswap.store.engine import StoreEngine

SEQ_BLOCK = 1024  # record seqs one reservation record claims (§4a "Nonces")
# The trace hook's record (traces/README.md), as the C library's `trace` callback emits it.
_TRACE_RECORD = struct.Struct("<BBHIIIQ")
_T_WRITE, _T_READ, _T_TRIM, _T_INVALIDATE, _T_SYNC = 1, 2, 3, 4, 5


class Store:
    """A flashswap store on a flash device (a `FlashSim` or any `FlashDevice`): the Python
    model, registered as the engine "python" (flashswap/store/engine.py)."""

    native: ClassVar[bool] = False  # the model: runs wherever Python does

    # ------------------------------------------------------------------ construction

    def __init__(self, flash: FlashDevice, geo: Geometry, max_keys: int, ckpt_interval: int,
                 reserve: int, wl_threshold: int, aead: Aead | None = None) -> None:
        self.flash = flash
        # Encryption (§4a): every record sealed, its tag after its payload; None: plaintext.
        self.aead = aead
        self.tag = TAG_LEN if aead is not None else 0
        self.suite = SUITE_AES128GCM if aead is not None else SUITE_NONE
        self.kcv = aead.check_value() if aead is not None else b"\xff" * 3
        # Sealed records take seqs below `limit`, the seq of a durable reservation (§4a); 0
        # after format and mount: the first sealed record reserves.
        self.limit = 0
        self.geo = geo
        self.max_keys = max_keys
        self.ckpt_interval = ckpt_interval
        self.reserve = reserve
        self.wl_threshold = wl_threshold
        n = geo.nseg
        # §11: half the segments beyond the reserve and the window, and no more than
        # reserve - 1.5 segments, which the reserve holds beside a recovery's checkpoint (§12:
        # a recovery moves the chunk spanning into the failed segment whole).
        self.max_chunk = min(
            1 << 24,
            geo.data_cap * max(1, min(n - reserve - ckpt_interval - 2, 2 * reserve - 3)) // 2,
        )
        self.erase_count = np.zeros(n, dtype=np.int64)
        self.seq = np.zeros(n, dtype=np.int64)
        self.live = np.zeros(n, dtype=np.int64)
        self.state = np.full(n, FREE_ERASED, dtype=np.int8)
        self.cold = np.zeros(n, dtype=bool)  # segment belongs to the cold log (§8)
        self.retired = 0
        self.seg_by_seq: dict[int, int] = {}
        # index: key -> (addr of first fragment, size, fragments as ((seg, bytes), ...))
        self.index: dict[int, tuple[int, int, tuple[tuple[int, int], ...]]] = {}
        self.lost: set[int] = set()
        # Two log heads share the one program buffer (§6): the active one is open_seg/wp, the
        # other is parked (its partial unit already programmed).
        self.open_seg: int | None = None
        self.wp = 0
        self.active_cold = False
        self.parked: tuple[int | None, int] = (None, 0)
        self.buf = bytearray(b"\xff" * geo.prog_size)
        self.buf_prog = 0  # bytes of the buffered unit already on flash
        self.next_seq = 1
        self.next_rseq = 1
        self.replay_seq = 0
        self.replay_cold = 0
        self.segs_since_ckpt = 0
        self.mounted = True
        self.epoch = 0  # the store's identity (§3, §13)
        self.damaged = False  # keys absent from the index read as corrupt (§9 "Damage")
        self.torn = [False, False]  # per log (hot, cold): its next segment carries HF_TEAR
        # Per head (hot, cold): its open segment holds a put's chunk or a trim that no SYNC,
        # CHECKPOINT or later segment follows yet; the API's sync marks it (§6).
        self.unmarked = [False, False]
        # (unit address, buffer, wp) of the program that failed while its chunks move (§12)
        self.rescue: tuple[int, bytes, int] | None = None
        # Segments a put or trim released a chunk of since the last sync (§12 step 3): their
        # emptiness may rest on records a failed program loses; a recovery opens them last.
        self.held = np.zeros(n, dtype=bool)
        self.recovering = False  # from a failed program until its checkpoint is synced
        # Fewer than `reserve` segments may be free (§10 "Lean"): set at mount and by every
        # retirement, cleared by a put that counts them; while set, a put counts before it
        # writes, so that the heads' room is left to trims.
        self.lean = True
        self.put_done = False  # the put being run has its chunk indexed
        # MCU internal flash programs whole words only: its driver pads a sync's unit with
        # 0xFF (§6); the model is its own driver.
        self.pad_units = getattr(flash, "kind", "") == "internal"
        # Optional trace hook: called after each successful API call with its 24-byte trace
        # record, exactly where the C library calls `fsw_config.trace` (firmware/src/store.c).
        self.trace: Callable[[bytes], None] | None = None

    def _trace(self, op: int, key: int = 0, length: int = 0, value: int = 0) -> None:
        if self.trace is not None:
            self.trace(_TRACE_RECORD.pack(op, 0, 0, key, length, 0, value))

    @classmethod
    def available(cls) -> None:
        """The model runs wherever Python does (the registry asks every engine)."""

    @classmethod
    def _config(cls, flash: FlashDevice, segment_size: int | None, max_keys: int | None,
                ckpt_interval: int | None, reserve: int | None,
                wl_threshold: int | None, key: bytes | None = None) -> Store:
        o = options(flash, segment_size, max_keys, ckpt_interval, reserve, wl_threshold, key)
        return cls(flash, o.geo, o.max_keys, o.ckpt_interval, o.reserve, o.wl_threshold, o.aead)

    @overload
    @classmethod
    def format(cls, flash: FlashDevice, *, segment_size: int | None = None,
               max_keys: int | None = None, ckpt_interval: int | None = None,
               reserve: int | None = None, wl_threshold: int | None = None,
               engine: None = None, key: bytes | None = None) -> Store: ...

    @overload
    @classmethod
    def format(cls, flash: FlashDevice, *, segment_size: int | None = None,
               max_keys: int | None = None, ckpt_interval: int | None = None,
               reserve: int | None = None, wl_threshold: int | None = None,
               engine: str, key: bytes | None = None) -> StoreEngine: ...

    @classmethod
    def format(cls, flash: FlashDevice, *, segment_size: int | None = None,
               max_keys: int | None = None, ckpt_interval: int | None = None,
               reserve: int | None = None, wl_threshold: int | None = None,
               engine: str | None = None, key: bytes | None = None) -> StoreEngine:
        """Erase the flash and create an empty store on it (§13). `engine`: another registered
        engine's format instead (flashswap.store.engine, e.g. "c": the C library).
        `key` (16 bytes): an encrypted store, every record sealed with AES-128-GCM (§4a)."""
        if engine is not None:
            other = engine_class(engine)
            if not (isinstance(other, type) and issubclass(cls, other)):
                return other.format(
                    flash, segment_size=segment_size, max_keys=max_keys,
                    ckpt_interval=ckpt_interval, reserve=reserve, wl_threshold=wl_threshold,
                    key=key)
        st = cls._config(flash, segment_size, max_keys, ckpt_interval, reserve, wl_threshold,
                         key)
        g = st.geo
        epoch = -1
        for s in range(g.nseg):
            old = SegHeader.unpack(flash.read(s * g.seg_size, HEADER_SIZE))
            if old is None and st._factory_bad(s):
                st.state[s] = BAD
                continue
            if old is not None:
                epoch = max(epoch, old.epoch)
            st.erase_count[s] = old.erase_count if old is not None else 0
            try:
                flash.erase(s * g.seg_size, g.seg_size)
            except FlashWearError:
                st._retire(s)
                continue
            st.erase_count[s] += 1
            if not st._blank(s):
                st._retire(s)
                continue
            st.state[s] = FREE_ERASED
        if epoch >= 0xFFFF:
            raise InputError("this flash has held 65,535 store formats: erase it whole first")
        # A new identity, and record seqs above every earlier store's (nonces, §4).
        st.epoch = epoch + 1
        st.next_rseq = (st.epoch << EPOCH_BITS) + 1
        st.segs_since_ckpt = st.ckpt_interval  # the first segment opens with a checkpoint
        st._open_segment(cont_len=0, force_ckpt=True)
        return st

    # ------------------------------------------------------------------ public API

    def put(self, key: int, data: bytes | bytearray | memoryview) -> None:
        """Store `data` under `key`, replacing any chunk the key held (§10)."""
        self._check_mounted()
        self._check_key(key)
        size = len(data)
        if size == 0:
            raise InputError("a chunk holds at least one byte")
        if size + self.tag > self.max_chunk:
            raise ChunkTooLargeError(f"chunk of {size} bytes exceeds the largest chunk "
                                     f"{self.max_chunk - self.tag} of this store")
        if key not in self.index and key not in self.lost and (
                len(self.index) + len(self.lost) >= self.max_keys):
            # Lost chunks keep their entry (they read as corrupt until trimmed): they count.
            raise NoSpaceError(f"index full: {self.max_keys} live chunks")
        self._device_retry(lambda: self._put(key, bytes(data)))
        self._trace(_T_WRITE, key, size)

    def get(self, key: int) -> bytes:
        """The chunk stored under `key`. NotFoundError if none; CorruptError if damaged."""
        self._check_mounted()
        if key in self.lost:
            raise CorruptError(f"chunk {key} was lost (its flash block failed)")
        ent = self.index.get(key)
        if ent is None:
            if self.damaged:
                raise CorruptError(f"chunk {key}: the store was damaged and it may have been "
                                   "written there; write it again")
            raise NotFoundError(f"no chunk under key {key}")
        data = self._read_chunk(key, ent[0], ent[1])
        self._trace(_T_READ, key, ent[1])
        return data

    def __contains__(self, key: int) -> bool:
        return key in self.index

    def keys(self) -> list[int]:
        return sorted(self.index)

    def trim(self, key: int) -> bool:
        """Drop the chunk under `key`. Returns False (and writes nothing) if there was none."""
        self._check_mounted()
        self._check_key(key)
        if key not in self.index and key not in self.lost:
            return False
        self._device_retry(lambda: self._trim_record(key, key))
        self._trace(_T_TRIM, key)  # a TRIM_RANGE [key, key] on flash, a TRIM in the trace
        return True

    def trim_range(self, first: int, last: int) -> int:
        """Bulk invalidation: drop every chunk with first <= key <= last in one record.

        Returns the number of chunks dropped (0: nothing written).
        """
        self._check_mounted()
        self._check_key(first)
        self._check_key(last)
        if first > last:
            raise InputError(f"trim_range: first key {first} > last key {last}")
        n = sum(1 for k in self.index if first <= k <= last)
        n += sum(1 for k in self.lost if first <= k <= last)
        if n:
            self._device_retry(lambda: self._trim_record(first, last))
        self._trace(_T_INVALIDATE, first, 0, last)  # traced even when nothing was dropped
        return n

    def sync(self) -> None:
        """Make everything written so far durable (§6)."""
        self._check_mounted()
        self._device_retry(self._sync_marked)
        self._trace(_T_SYNC)

    def _sync_marked(self) -> None:
        """The API's sync (§6 "Marking a sync"): each head holding records that no sync has
        marked gets a SYNC record after them, so that damage to them is never taken for a tear
        at mount; the parked head's by switching to it (it then stays active)."""
        self._mark()
        if any(self.unmarked):
            self._use(cold=not self.active_cold)
            self._mark()

    def _mark(self) -> None:
        log = int(self.active_cold)
        need = max(MIN_ROOM, REC_SIZE + self.tag)  # placed as a trim is (§4)
        if self.unmarked[log]:
            self.unmarked[log] = False
            # With no room, the head's next segment takes it (a checkpoint segment only if one
            # is due); with none free either (a worn-out device) the records stay unmarked.
            if self._room() >= need or self._free_count():
                try:
                    self._room_for(need)
                except NoSpaceError:  # every free segment failed its erase: worn out
                    pass
                else:
                    # Not sealed: it carries nothing, and removing it is cutting off the log
                    # (§4a).
                    self._append_record(pack_record(T_SYNC, 0, 0, 0, 0, self._take_rseq(),
                                                    b"", self.tag))
        self._sync()

    def idle(self, max_erases: int = 1) -> int:
        """Bounded background work between inferences: static leveling, pre-erase (§8, §10).

        Returns the number of erases and moves done (0 when there is nothing to do).
        """
        self._check_mounted()
        return int(self._device_retry(lambda: self._idle(max_erases)))

    def _idle(self, max_erases: int) -> int:
        work = 0
        if max_erases > 0 and self._static_wl():
            work += 1
        while work < max_erases:
            erased = int(np.count_nonzero(self.state == FREE_ERASED))
            if erased >= self.ckpt_interval:
                break
            s = self._choose(dirty_only=True)
            if s is None:
                break
            # What superseded the segment's chunks may still sit in the buffer: make it durable
            # before the old copies disappear.
            self._sync()
            self._erase(s)
            work += 1
        return work

    def stat(self) -> dict[str, Any]:
        """Space, wear and health figures."""
        self._check_mounted()
        g = self.geo
        good = self.state != BAD
        counts = self.erase_count[good]
        # Dead segments the replay window pins count as free: a checkpoint releases them.
        free_segs = self._free_count() + self._pinned_dead()
        room = self._hot_room()
        hist = np.bincount(counts) if counts.size else np.zeros(0, dtype=np.int64)
        return {
            "segments": g.nseg,
            "segment_size": g.seg_size,
            "prog_size": g.prog_size,
            "page_once": g.page_once,
            "max_keys": self.max_keys,
            "max_chunk": self.max_chunk - self.tag,  # the largest put (a tag follows it)
            "ckpt_interval": self.ckpt_interval,
            "reserve": self.reserve,
            "wl_threshold": self.wl_threshold,
            "live_chunks": len(self.index),
            "live_bytes": int(sum(e[1] for e in self.index.values())),
            "free_bytes": int(room + free_segs * g.data_cap),
            "free_segments": free_segs,
            "window_segments": int(np.count_nonzero(
                (self.state == IN_LOG) & ~self._outside_window())),
            "erase_counts": self.erase_count.copy(),
            "erase_histogram": {int(i): int(c) for i, c in enumerate(hist) if c},
            "erase_min": int(counts.min()) if counts.size else 0,
            "erase_max": int(counts.max()) if counts.size else 0,
            "retired_blocks": self.retired,
            "bad_blocks": int(np.count_nonzero(~good)),
            "lost_chunks": len(self.lost),
            "damaged": self.damaged,
            "encrypted": self.aead is not None,
        }

    def log_position(self) -> int:
        """Bytes of log opened so far: segments opened times their size, less the unused tails
        of the open ones. Advances at the erase rate in steady state (the analyzer uses it)."""
        seg = self.geo.seg_size
        pos = (self.next_seq - 1) * seg
        for s, wp in ((self.open_seg, self.wp), self.parked):
            if s is not None:
                pos -= (s + 1) * seg - wp
        return pos

    def unmount(self) -> None:
        """Sync and detach from the flash."""
        if self.mounted:
            self.sync()
            self.mounted = False

    # ------------------------------------------------------------------ mount (§9)

    @overload
    @classmethod
    def mount(cls, flash: FlashDevice, engine: None = None, key: bytes | None = None
              ) -> Store: ...

    @overload
    @classmethod
    def mount(cls, flash: FlashDevice, engine: str, key: bytes | None = None
              ) -> StoreEngine: ...

    @classmethod
    def mount(cls, flash: FlashDevice, engine: str | None = None, key: bytes | None = None
              ) -> StoreEngine:
        """Attach to the store on `flash`. CorruptError if there is none or it is unusable;
        StoreKeyError if it is encrypted and `key` is missing or wrong, or if a key is given
        for a store that is not encrypted (§4a). Nothing is written either way. `engine`:
        another registered engine's mount instead (flashswap.store.engine)."""
        if engine is not None:
            other = engine_class(engine)
            if not (isinstance(other, type) and issubclass(cls, other)):
                return other.mount(flash, key=key)
        return cls._mount(flash, key)

    @classmethod
    def _mount(cls, flash: FlashDevice, key: bytes | None) -> Store:
        """The store the headers and the replay window on `flash` describe (§9): found by the
        probe every engine uses, then rebuilt by flashswap/store/mount.py's pure steps, whose
        results this class takes over."""
        first, raws = probe(flash)
        return cls._rebuild(flash, first, raws, cipher_for(first, key))

    @classmethod
    def _rebuild(cls, flash: FlashDevice, first: SegHeader, raws: dict[int, bytes],
                 aead: Aead | None) -> Store:
        """The store of _mount, from the probe's results and the cipher."""
        geo = probe_geometry(flash, first)
        st = cls(flash, geo, first.max_keys, first.ckpt_interval, first.reserve,
                 first.wl_threshold, aead)
        st.epoch = first.epoch
        table = read_segments(st, first, raws)
        st.state, st.erase_count, st.seq, st.cold = (table.state, table.erase_count, table.seq,
                                                     table.cold)
        st.seg_by_seq = table.seg_by_seq
        r = replay_window(st, table)
        st.index, st.live, st.lost, st.damaged = r.index, r.live, r.lost, r.damaged
        st.replay_seq, st.replay_cold = r.replay_seq, r.replay_cold
        st.next_seq, st.next_rseq = r.next_seq, r.next_rseq
        st.torn, st.unmarked, st.segs_since_ckpt = r.torn, r.unmarked, r.segs_since_ckpt
        st.active_cold = False
        (st.open_seg, st.wp), st.parked = r.head, r.parked
        if st.open_seg is not None and st.wp % geo.prog_size:
            # The head's partly programmed unit, back in the program buffer (§6).
            off = st.wp % geo.prog_size
            st.buf[:off] = flash.read(st.wp - off, off)
            st.buf_prog = off
        return st

    # ------------------------------------------------------------------ internals: checks

    def _check_mounted(self) -> None:
        if not self.mounted:
            raise InputError("store is unmounted")

    @staticmethod
    def _check_key(key: int) -> None:
        if not isinstance(key, int | np.integer) or not 0 <= key < NO_KEY:
            raise InputError(f"key must be an integer 0..{NO_KEY - 1}, not {key!r}")

    def _factory_bad(self, s: int) -> bool:
        if not self.geo.page_once or getattr(self.flash, "spare_size", 0) == 0:
            return False
        return self.flash.read_spare(s * self.geo.seg_size, 1)[0] != 0xFF

    # ------------------------------------------------------------------ internals: put

    def _put(self, key: int, data: bytes) -> None:
        self._static_wl()
        size = len(data) + self.tag
        need = size + REC_SIZE * (2 + size // self.geo.data_cap)
        self._make_room(need)
        self._use(cold=False)
        self._write_chunk(key, data, own=True)
        # The next sync marks it (§6). A moved chunk needs no mark: damage to the copy leaves
        # the original (the same bytes) or, once that is erased, a lost chunk; never an older one.
        self.unmarked[0] = True

    def _trim_record(self, first: int, last: int) -> None:
        """Append a TRIM_RANGE record [first, last] (a single key: first == last). Never
        garbage-collects: the reserve (§10) holds the records that delete every chunk, each
        segment opened for them a checkpoint segment. When no segment is free (a program
        failure's recovery near full took the reserve, §12), the cold head takes the record if
        it has room: deleting must still work."""
        self._use(cold=not self._free_count() and self._head_room(True) >= MIN_ROOM)
        # Never split: a trim needs its whole record (with its tag when encrypted).
        need = max(MIN_ROOM, REC_SIZE + self.tag)
        for _ in range(2):  # a reservation may use up the room: then open again
            if self._room() < need:
                if not self._free_count():
                    raise NoSpaceError("no free segment left (worn-out device)")
                self._collapse()
            if not self._reserve():
                break
        rseq = self._take_rseq()
        tag = b""
        if self.aead is not None:  # no payload: the tag authenticates the header and address
            tag = self.aead.seal(nonce(rseq, 0),
                                 assoc(T_TRIM_RANGE, F_ENC, first, last, 0, rseq, self.wp), b"")
        self._append_record(pack_record(T_TRIM_RANGE, 0, first, last, 0, rseq, tag, self.tag))
        for k in [k for k in self.index if first <= k <= last]:
            self._drop(k)
        self.lost = {k for k in self.lost if not first <= k <= last}
        self.unmarked[int(self.active_cold)] = True  # the next sync marks it (§6)

    def _drop(self, key: int) -> None:
        ent = self.index.pop(key, None)
        self.lost.discard(key)
        if ent is not None:
            for s, n in ent[2]:
                self.live[s] -= n
                self.held[s] = True

    def _reserve(self, always: bool = False) -> bool:
        """Encrypted store: when the next seq is not below a durable reservation (or `always`,
        before a checkpoint), append a RESERVE record claiming SEQ_BLOCK more and sync it, so
        that no sealed record can reach flash with a seq a later mount could hand out again
        (§4a "Nonces"). True when it wrote one. The caller leaves room for its 32 bytes."""
        if self.aead is None or not (always or self.next_rseq >= self.limit):
            return False
        bound = self.next_rseq + SEQ_BLOCK
        self._append_record(pack_record(T_RESERVE, 0, 0, 0, 0, bound, b"", self.tag))
        self._sync()
        self.limit = bound
        return True

    def _take_rseq(self) -> int:
        r = self.next_rseq
        self.next_rseq += 1
        return r

    def _room_for(self, need: int) -> None:
        """At least `need` bytes on the active head, opening its next segment if not, and a
        seq reservation made where one is due (§4a); a reservation may use up the room, and
        then the next segment is opened once more."""
        for _ in range(2):
            if self._room() < need:
                self._next_segment(force_ckpt=False)
            if not self._reserve():
                break

    def _write_chunk(self, key: int, data: bytes, own: bool = False) -> None:
        """Append a DATA chunk, fragmented across segments as needed (§4), and index it. `own`:
        the chunk of the put being run (not one being moved)."""
        g = self.geo
        size = len(data) + self.tag
        self._room_for(MIN_ROOM)
        # Taken after any checkpoint that opening wrote: replay orders records by seq (§9).
        rseq = self._take_rseq()
        if self.aead is not None:  # one seal per chunk, bound to its first record's address
            data = self.aead.seal(nonce(rseq, 0),
                                  assoc(T_DATA, F_ENC, key, size, 0, rseq, self.wp), data)
        off = 0
        first = -1
        frags: list[tuple[int, int]] = []
        ckpt_after = False
        while off < size:
            room = self._room()
            if room < MIN_ROOM:
                rem = size - off
                cont = REC_SIZE + rem if REC_SIZE + rem <= g.data_cap else None
                ckpt_after = self._open_segment(cont_len=cont, defer_ckpt=True)
                room = self._room()
            n = min(size - off, room - REC_SIZE)
            flags = (F_MORE if off + n < size else 0) | (F_CONT if off else 0)
            addr = self.wp
            self._append_record(
                pack_record(T_DATA, flags, key, size, off, rseq, memoryview(data)[off:off + n],
                            self.tag)
            )
            if first < 0:
                first = addr
            frags.append((addr // g.seg_size, REC_SIZE + n))
            off += n
        self._set_entry(key, first, size, tuple(frags))
        self.put_done = own or self.put_done
        if ckpt_after:
            self._write_checkpoint()

    def _set_entry(self, key: int, addr: int, size: int,
                   frags: tuple[tuple[int, int], ...]) -> None:
        self._drop(key)
        self.index[key] = (addr, size, frags)
        for s, n in frags:
            self.live[s] += n

    # ------------------------------------------------------------------ internals: reading

    def _read(self, addr: int, n: int) -> bytes:
        """Flash bytes, with the bytes still in the program buffer taken from it (§6)."""
        if self.open_seg is not None:
            unit = self.wp - self.wp % self.geo.prog_size
            if addr + n > unit and addr < self.wp:
                # Only the buffered unit can hold bytes not yet programmed.
                head = self.flash.read(addr, unit - addr) if addr < unit else b""
                lo = max(addr, unit)
                mid = bytes(self.buf[lo - unit : min(addr + n, self.wp) - unit])
                end = addr + n
                tail = self.flash.read(self.wp, end - self.wp) if end > self.wp else b""
                return head + mid + tail
        return self.flash.read(addr, n)

    def _fragments(self, addr: int, size: int) -> list[tuple[int, int]]:
        """(record address, payload length) of each fragment of a chunk (§4)."""
        g = self.geo
        out = []
        seg = addr // g.seg_size
        n = min(size, (seg + 1) * g.seg_size - addr - REC_SIZE)
        out.append((addr, n))
        off = n
        while off < size:
            nxt = self._next_in_chain(seg)
            if nxt is None:
                raise CorruptError(f"chunk at 0x{addr:x}: continuation segment missing")
            seg = nxt
            n = min(size - off, g.data_cap - REC_SIZE)
            out.append((seg * g.seg_size + HEADER_SIZE, n))
            off += n
        return out

    def _next_in_chain(self, seg: int) -> int | None:
        """The segment a spilled fragment continues in: the next one opened by the same head,
        i.e. the smallest seq above seg's among segments of the same log (§4)."""
        m = (self.seq > self.seq[seg]) & (self.cold == self.cold[seg]) & (self.state >= IN_LOG)
        if not m.any():
            return None
        # A failed segment whose header never reached flash gives its seq to the next one
        # opened (§12): while its chunks move, the chain still leads to it.
        key = 2 * self.seq + (self.state != BAD)
        return int(np.argmin(np.where(m, key, np.iinfo(np.int64).max)))

    def _read_chunk(self, key: int, addr: int, size: int) -> bytes:
        """A chunk's bytes, every fragment checked (and in an encrypted store, opened). While the
        chunks of a failed segment move, its program buffer (`rescue`) supplies the bytes that
        never reached flash (§12)."""
        parts = []
        seq = flags = 0
        frags = self._fragments(addr, size)
        for i, (a, n) in enumerate(frags):
            raw = self._read(a, REC_SIZE + n)
            if self.rescue is not None:
                unit, buf, wp = self.rescue
                lo, hi = max(a, unit), min(a + REC_SIZE + n, wp)
                if lo < hi:
                    ba = bytearray(raw)
                    ba[lo - a : hi - a] = buf[lo - unit : hi - unit]
                    raw = bytes(ba)
            h = unpack_rec(raw, self.tag)
            if i == 0 and h is not None:
                seq, flags = h.seq, h.flags
            if (h is None or h.rtype != T_DATA or h.seq != seq or h.key != key or h.size != size
                    # above max_chunk a record is unreadable (§4, §11), as the parser has it
                    or size > self.max_chunk
                    or (h.offset == 0) != (i == 0) or crc32(raw[REC_SIZE:]) != h.dcrc
                    # MORE and CONT as the header rule of §6 wants them where it lies (they are
                    # outside the AEAD's associated data, so the tag cannot vouch for them)
                    or bool(h.flags & F_MORE) != (i < len(frags) - 1)
                    or bool(h.flags & F_CONT) != (i > 0)):
                raise CorruptError(f"chunk {key}: fragment {i} at 0x{a:x} failed its check")
            parts.append(raw[REC_SIZE:])
        if self.aead is None:
            return b"".join(parts)
        # The first header's flags as read: a flipped reserved bit fails the tag too.
        plain = self.aead.open(nonce(seq, 0),
                               assoc(T_DATA, flags | F_ENC, key, size, 0, seq, addr),
                               b"".join(parts))
        if plain is None:
            raise CorruptError(f"chunk {key} at 0x{addr:x} failed authentication")
        return plain

    # ------------------------------------------------------------------ internals: the log

    def _room(self) -> int:
        """Bytes left in the active head's segment."""
        if self.open_seg is None:
            return 0
        return (self.open_seg + 1) * self.geo.seg_size - self.wp

    def _hot_room(self) -> int:
        """Bytes left in the hot head's segment, whichever head holds the buffer."""
        return self._head_room(False)

    def _head_room(self, cold: bool) -> int:
        """Bytes left in the hot or the cold head's segment, whichever head holds the buffer."""
        if cold == self.active_cold:
            return self._room()
        seg, wp = self.parked
        return 0 if seg is None else (seg + 1) * self.geo.seg_size - wp

    def _append_record(self, rec: bytes) -> None:
        """Append bytes at wp through the program buffer; programs every unit that fills. As
        in the C library, wp passes a unit only once its program succeeded: after a failure,
        [unit, wp) is exactly what never reached flash (§12 relies on it)."""
        p = self.geo.prog_size
        off = self.wp % p
        unit = self.wp - off
        total = off + len(rec)
        if total < p:
            self.buf[off:total] = rec
            self.wp += len(rec)
            return
        full = total - total % p
        data = bytes(self.buf[:off]) + bytes(rec[: full - off])
        try:
            self._program_units(unit, data)
        except FlashWearError as e:
            done = int(getattr(e, "units_done", 0))
            self.buf[:] = data[done * p : (done + 1) * p]
            if done:
                self.wp = unit + done * p
                self.buf_prog = 0
            raise
        rest = rec[full - off :]
        self.buf[:] = b"\xff" * p
        self.buf[: len(rest)] = rest
        self.buf_prog = 0
        self.wp += len(rec)

    def _program_units(self, unit: int, data: bytes) -> None:
        """Program whole units from `unit` (the first from `buf_prog` on), in calls split
        where the device's smallest erase unit ends (a driver loops page programs; the flash
        counts one operation per page either way). A failure notes on the error how many
        units completed before it (`units_done`)."""
        e = self.flash.erase_size
        p = self.geo.prog_size
        addr, end = unit + self.buf_prog, unit + len(data)
        while addr < end:
            n = min(end, addr - addr % e + e) - addr
            try:
                self.flash.program(addr, data[addr - unit : addr - unit + n])
            except FlashWearError as err:
                err.units_done = (addr - unit) // p + int(  # type: ignore[attr-defined]
                    getattr(err, "pages_done", 0))
                raise
            addr += n

    def _sync(self) -> None:
        if self.open_seg is None:
            return
        p = self.geo.prog_size
        off = self.wp % p
        unit = self.wp - off
        if off > self.buf_prog:
            # Internal flash writes whole words: the unit goes out padded with erased bytes.
            end = p if self.pad_units else off
            self.flash.program(unit + self.buf_prog, bytes(self.buf[self.buf_prog:end]))
            self.buf_prog = off
        if self.geo.page_once and off:
            self.wp = unit + p
            self.buf[:] = b"\xff" * p
            self.buf_prog = 0
        if hasattr(self.flash, "sync"):
            self.flash.sync()
        if not self.recovering:
            self.held[:] = False  # what released them is on flash

    def _use(self, cold: bool) -> None:
        """Give the program buffer to the hot or the cold head (§6): sync the active head, then
        load the other head's partly programmed unit back from flash."""
        if cold == self.active_cold:
            return
        self._sync()
        (self.open_seg, self.wp), self.parked = self.parked, (self.open_seg, self.wp)
        self.active_cold = cold
        p = self.geo.prog_size
        self.buf[:] = b"\xff" * p
        self.buf_prog = 0
        if self.open_seg is not None and self.wp % p:
            off = self.wp % p
            self.buf[:off] = self.flash.read(self.wp - off, off)
            self.buf_prog = off

    def _close_segment(self) -> None:
        if self.open_seg is not None:
            self._sync()
            self.open_seg = None

    # ------------------------------------------------------------------ internals: segments

    def _outside_window(self) -> np.ndarray:
        """IN_LOG segments outside the replay window and not open: the only ones GC, static
        wear leveling and reclaiming may touch (§7)."""
        m = (self.state == IN_LOG) & np.where(
            self.cold, self.seq < self.replay_cold, self.seq < self.replay_seq)
        for s in (self.open_seg, self.parked[0]):
            if s is not None:
                m[s] = False
        return m

    def _reclaimable_mask(self) -> np.ndarray:
        return self._outside_window() & (self.live == 0)

    def _free_count(self) -> int:
        return int(np.count_nonzero((self.state == FREE_ERASED) | (self.state == FREE))
                   + np.count_nonzero(self._reclaimable_mask()))

    def _choose(self, dirty_only: bool = False) -> int | None:
        """Hot head: least effective erase count, lowest index on ties; cold head: most worn,
        lowest index on ties (§8 step 2)."""
        erased = self.state == FREE_ERASED
        dirty = (self.state == FREE) | self._reclaimable_mask()
        cand = dirty | erased
        if dirty_only:
            # The idle step pre-erases what a hot open would take next among the dirty ones.
            if not dirty.any():
                return None
            return int(np.argmin(np.where(dirty, self.erase_count, np.iinfo(np.int64).max)))
        if not cand.any():
            return None
        # A recovery takes a held segment last (§12 step 3): erasing it may lose a synced chunk.
        late = (self.held & self.recovering).astype(np.int64) << 32
        eff = self.erase_count + (~erased)
        if self.active_cold:
            return int(np.argmax(np.where(cand, eff - late, -(1 << 40))))
        return int(np.argmin(np.where(cand, eff + late, np.iinfo(np.int64).max)))

    def _erase(self, s: int) -> bool:
        """Erase segment s into FREE_ERASED. False (and the segment retired) if it failed."""
        g = self.geo
        try:
            self.flash.erase(s * g.seg_size, g.seg_size)
        except FlashWearError:
            self._retire(s)
            return False
        self.erase_count[s] += 1
        if not self._blank(s):
            self._retire(s)
            return False
        self._leave_log(s)
        self.state[s] = FREE_ERASED
        return True

    def _blank(self, s: int) -> bool:
        """Erase verify (§8): a worn block may report success yet keep some bits programmed."""
        g = self.geo
        return self.flash.read(s * g.seg_size, g.seg_size).count(0xFF) == g.seg_size

    def _leave_log(self, s: int) -> None:
        if self.state[s] == IN_LOG:
            self.seg_by_seq.pop(int(self.seq[s]), None)
        self.seq[s] = 0
        self.live[s] = 0

    def _retire(self, s: int) -> None:
        """Mark a failed segment BAD, in RAM only (§12): after a mount it is what its header
        says, and an erase that fails retires it again."""
        # seg_by_seq keeps its entry: chunks being moved out may continue through this segment.
        self.state[s] = BAD
        self.retired += 1
        self.lean = True

    def _acquire(self) -> int:
        """A segment for the active head, erased and verified (§8 steps 1-2), retiring those
        that fail; NoSpaceError when none is left. The caller syncs first (the records that
        made a segment reclaimable must be on flash before it is erased) and changes its heads
        only once it has the segment: a device with no segment left keeps its heads' room."""
        while True:
            s = self._choose()
            if s is None:
                raise NoSpaceError("no free segment left")
            # A segment believed erased is read back first: mount judged it by its header only.
            if (self.state[s] == FREE_ERASED and self._blank(s)) or self._erase(s):
                return s

    def _open_segment(self, cont_len: int | None, force_ckpt: bool = False,
                      defer_ckpt: bool = False, seg: int | None = None) -> bool:
        """Open the next segment (`seg` if acquired already, §8); write its checkpoint unless
        deferred (§7).

        Returns True when the segment is a checkpoint segment whose checkpoint the caller must
        write (defer_ckpt) after the continuation fragment.
        """
        g = self.geo
        s = self._acquire() if seg is None else seg
        seq = self.next_seq
        self.next_seq += 1
        self.state[s] = IN_LOG
        self.seq[s] = seq
        self.live[s] = 0
        self.seg_by_seq[seq] = s
        self.cold[s] = self.active_cold
        # Room for one more entry than now: a spilled chunk joins the index before the checkpoint.
        # An encrypted store's checkpoint carries its tag and follows a reservation (§4a),
        # whose sync gives up the rest of its unit on a page-once device.
        ckpt_len = (REC_SIZE + self.tag + ENTRY_SIZE * (len(self.index) + len(self.lost) + 1)
                    + (REC_SIZE + (g.prog_size if g.page_once else 0) if self.tag else 0))
        due = force_ckpt or self.segs_since_ckpt >= self.ckpt_interval
        # No checkpoint while the chunks of a failed segment move (§12): bytes of some never
        # reached flash.
        is_ckpt = (not self.active_cold and due and cont_len is not None
                   and HEADER_SIZE + cont_len + ckpt_len <= g.seg_size
                   and self.rescue is None)
        self.segs_since_ckpt = 1 if is_ckpt else self.segs_since_ckpt + 1
        log = int(self.active_cold)
        hdr = SegHeader(
            g.seg_shift, g.prog_shift,
            (HF_PAGE_ONCE if g.page_once else 0) | (HF_COLD if self.active_cold else 0)
            | (HF_TEAR if self.torn[log] else 0),
            int(self.erase_count[s]), seq, seq if is_ckpt else self.replay_seq, g.nseg,
            self.max_keys, self.ckpt_interval, self.reserve, self.wl_threshold, self.epoch,
            self.suite, self.kcv,
        )
        self.torn[log] = False
        self.unmarked[log] = False  # once its header is on flash, it follows the records
        self.open_seg = s
        self.wp = s * g.seg_size
        self.buf[:] = b"\xff" * g.prog_size
        self.buf_prog = 0
        self._append_record(hdr.pack())
        if is_ckpt and not defer_ckpt:
            self._write_checkpoint()
        return is_ckpt and defer_ckpt

    def _write_checkpoint(self) -> None:
        entries = [
            (k, self.index[k][0], self.index[k][1]) if k in self.index else (k, LOST_ADDR, 0)
            for k in sorted(set(self.index) | self.lost)
        ]
        payload = pack_entries(entries)
        assert self.open_seg is not None and not self.active_cold
        own = int(self.seq[self.open_seg])
        # Records written to the cold head after this checkpoint must be replayed too: the cold
        # window starts at the cold head open now (offset field, §7).
        cold_from = int(self.seq[self.parked[0]]) if self.parked[0] is not None else own
        flags = F_DAMAGED if self.damaged else 0
        # Each checkpoint segment holds a reservation before its checkpoint: the window a
        # mount replays always shows the newest one (§4a "Nonces").
        self._reserve(always=True)
        rseq = self._take_rseq()
        size = len(payload) + self.tag
        if self.aead is not None:
            payload = self.aead.seal(
                nonce(rseq, cold_from),
                assoc(T_CHECKPOINT, flags | F_ENC, len(entries), size, cold_from, rseq, self.wp),
                payload)
        self._append_record(pack_record(
            T_CHECKPOINT, flags, len(entries), size, cold_from, rseq, payload, self.tag))
        self.recovering = False  # a checkpoint ends a recovery (§12): its sync releases holds
        self._sync()
        self.replay_seq = own
        self.replay_cold = cold_from

    # ------------------------------------------------------------------ internals: GC and WL

    def _pinned_dead(self) -> int:
        """Segments holding nothing live that the replay window (or the cold head) still pins:
        free as soon as a checkpoint moves the window (`_collapse`)."""
        m = (self.state == IN_LOG) & (self.live == 0) & ~self._outside_window()
        hot = self.parked[0] if self.active_cold else self.open_seg
        if hot is not None:
            m[hot] = False
        return int(np.count_nonzero(m))

    def _window_count(self) -> int:
        """Window segments other than the heads' open ones."""
        m = (self.state == IN_LOG) & ~self._outside_window()
        for s in (self.open_seg, self.parked[0]):
            if s is not None:
                m[s] = False
        return int(np.count_nonzero(m))

    def _collapse(self) -> None:
        """Shrink the window to the heads (§10): a forced checkpoint on the hot head, after
        closing the cold head if nothing in it lives."""
        self._next_segment(force_ckpt=True)

    def _next_segment(self, force_ckpt: bool) -> None:
        """Close the active head's segment and open its next (C: fsw_next); forced, on the
        hot head, forgetting an empty parked cold head. The segment is acquired after the sync
        that closes (§8) and before the heads change: with none left both keep their room."""
        if force_ckpt:
            self._use(cold=False)
        self._sync()
        seg = self._acquire()
        if force_ckpt and self.parked[0] is not None and self.live[self.parked[0]] == 0:
            self.parked = (None, 0)  # parked means synced: closing it is forgetting it
        self.open_seg = None
        self._open_segment(cont_len=0, force_ckpt=force_ckpt, seg=seg)

    def _holds(self, e: tuple[int, int, tuple[tuple[int, int], ...]], s: int) -> bool:
        """A fragment of index entry e lies in segment s, or outside the log: in a segment
        retired after a failure interrupted its recovery (§12); outside a recovery, none."""
        return any(f == s or self.state[f] != IN_LOG for f, _ in e[2])

    def _move_cost(self, s: int) -> int:
        """Bytes that relocating segment s appends: every chunk with a fragment there."""
        # Record headers: two, and one more per 512 bytes at most (the smallest segment).
        return sum(e[1] + 2 * REC_SIZE + (e[1] >> 4) for e in self.index.values()
                   if self._holds(e, s))

    def _movable(self, s: int) -> bool:
        """True when relocating segment s to the cold head leaves `reserve` segments free once
        s itself is free (during the move one fewer: still room for a checkpoint)."""
        room = self._room() if self.active_cold else (
            0 if self.parked[0] is None else (self.parked[0] + 1) * self.geo.seg_size
            - self.parked[1])
        room = room if room >= MIN_ROOM else 0
        return self._move_cost(s) <= room + self.geo.data_cap * (
            self._free_count() + 1 - self.reserve)

    def _fits_hot(self, s: int, room: int) -> bool:
        """True when relocating segment s fits in the hot head's `room` with a trim record
        (and a seq reservation) to spare: a move that opens no segment and frees one (§10)."""
        spare = max(MIN_ROOM, REC_SIZE + self.tag)
        if self.aead is not None:  # a due RESERVE record, synced: the rest of its unit
            spare += REC_SIZE + self.geo.prog_size
        return self._move_cost(s) + spare <= room

    def _make_room(self, need: int) -> None:
        """Make `need` bytes fit on the hot head (§10 step 3) keeping `reserve` segments really
        free, or raise NoSpaceError: release the dead segments the window pins with a
        checkpoint, else relocate the emptiest segment outside the window if that keeps the
        reserve, or into the hot head's room if it fits there while a segment is free (a move
        that opens no segment and frees one, revision 2.5), else shrink the window so that its
        segments become victims."""
        g = self.geo
        for _ in range(4 * g.nseg + 4):
            room = self._hot_room()
            room = room if room >= MIN_ROOM else 0
            if room >= need and not self.lean:
                return  # the common case, decided without counting free segments
            free = self._free_count()
            if free >= self.reserve:
                self.lean = False
            # Lean (§10): one segment short at most (what a cut during a move leaves), none
            # once a segment was retired.
            if (free >= self.reserve - (not self.retired)
                    and room + g.data_cap * max(0, free - self.reserve) >= need):
                return
            if self._pinned_dead() and free:
                self._collapse()
                continue
            victim = self._victim()
            if victim is not None and self._movable(victim):
                self._relocate(victim)
                continue
            if victim is not None and free and self._fits_hot(victim, room):
                self._relocate(victim, cold=False)
                continue
            if self._window_count() and free > self.reserve:
                self._collapse()
                continue
            break
        raise NoSpaceError(
            f"no space for {need} bytes: {int(self.live.sum())} bytes live in {g.nseg} "
            f"segments of {g.seg_size}"
        )

    def _victim(self) -> int | None:
        m = self._outside_window() & (self.live > 0) & (self.live < self.geo.data_cap - 64)
        if not m.any():
            return None
        live = np.where(m, self.live, np.iinfo(np.int64).max)
        best = live.min()
        cands = np.flatnonzero(live == best)
        return int(cands[np.argmin(self.seq[cands])])

    def _static_wl(self) -> bool:
        """One static wear-leveling move when live data pins a segment whose erase count lags
        more than the threshold behind the segment the hot head would take next (§10)."""
        good = self.state != BAD
        if int(self.erase_count[good].max() - self.erase_count[good].min()) <= self.wl_threshold:
            return False  # cheap exit: no spread at all
        erased = self.state == FREE_ERASED
        free = erased | (self.state == FREE) | self._reclaimable_mask()
        if not free.any():
            return False
        ref = int((self.erase_count + ~erased)[free].min())
        m = self._outside_window() & (self.live > 0)
        # The cold head's own segment holds long-lived chunks too; left out, it would never
        # wear once relocations stop (it stays open for ever).
        cold_seg = self.open_seg if self.active_cold else self.parked[0]
        if cold_seg is not None and self.live[cold_seg] > 0:
            m[cold_seg] = True
        if not m.any():
            return False
        counts = np.where(m, self.erase_count, np.iinfo(np.int64).max)
        s = int(np.argmin(counts))
        if ref - int(counts[s]) <= self.wl_threshold:
            return False
        if not self._movable(s):
            return False
        if s == cold_seg:
            self._use(cold=True)
            self._close_segment()  # the moved chunks go to a new, more worn cold segment
        self._relocate(s)
        return True

    def _relocate(self, s: int, cold: bool = True) -> None:
        """Copy every chunk with a fragment in segment s to the cold head (or the hot one:
        `_fits_hot`), by address (§10)."""
        moving = sorted((e[0], k) for k, e in self.index.items() if self._holds(e, s))
        self._use(cold=cold)
        for addr, key in moving:
            size = self.index[key][1]
            try:
                data = self._read_chunk(key, addr, size)
            except CorruptError:
                self._drop(key)
                self.lost.add(key)
                continue
            self._write_chunk(key, data)

    # ------------------------------------------------------------------ internals: failures

    def _device_retry(self, op: Any) -> Any:
        """Run a write operation; when a program fails, retire the segment and run it again."""
        start = self.next_seq  # segments with a seq from here on are this operation's
        for _ in range(self.geo.nseg):
            self.put_done = False
            try:
                return op()
            except FlashWearError:
                pass
            for j in range(self.geo.nseg):
                try:
                    # A failure during a recovery (j > 0) is never fresh: that recovery's
                    # moves and checkpoint are not done (§12 step 1); C passes 0xFFFFFFFF.
                    self._recover_failed_program(start if j == 0 else 0xFFFFFFFF)
                except FlashWearError:
                    continue  # the segment the chunks moved to failed too: retire it as well
                except NoSpaceError:
                    self._reload()
                    raise
                if self.put_done:
                    # The put's chunk was indexed when the checkpoint after its spill failed:
                    # it is done, and the recovery's checkpoint stands for that one.
                    return None
                break
        raise DeviceError("too many flash failures in one operation")

    def _reload(self) -> None:
        """A recovery that found no segment left (§12 step 3): the store becomes what a mount
        finds on flash, as after a power cut now. Index entries would otherwise point at
        copies whose bytes never reached flash while the old copies are intact; only what
        no sync made durable is lost."""
        first, raws = probe(self.flash)
        fresh = self._rebuild(self.flash, first, raws, self.aead)
        fresh.trace = self.trace
        vars(self).update(vars(fresh))

    def _recover_failed_program(self, start: int) -> None:
        """The open segment refused a program (§12): it is retired in RAM only, and every chunk
        with a fragment in it is written again on the same head, bytes that never reached
        flash taken from the failed program's buffer. On flash the segment stays as it was,
        valid history, until a later checkpoint leaves it outside the window and an erase finds
        it bad; no checkpoint is written while its chunks move, and one is written (synced)
        once they have moved: a trim among the lost bytes is then on flash too."""
        s = self.open_seg
        g = self.geo
        if s is None:
            return
        unit = self.wp - self.wp % g.prog_size
        empty = not self.live[s]  # no chunk has a fragment in it
        fresh = False
        if unit + self.buf_prog < s * g.seg_size + HEADER_SIZE:
            # Its header never reached flash whole: the segment is not in the log on
            # flash, and its seq goes to the next segment opened (no gap, §9).
            self.next_seq = int(self.seq[s])
            # Fresh: empty too, this operation opened it and no recovery is under way. It
            # held only what the operation, run again, writes anew, and nothing on flash
            # changed but a block gone bad (one a mount took for free, say): nothing to
            # move, no checkpoint (§12).
            fresh = empty and self.next_seq >= start and not self.recovering
        # What the failed program left behind is, to mount, a tear at the end of this log.
        self.torn[int(self.active_cold)] = True
        self.open_seg = None
        self._retire(s)
        if fresh:
            # The SYNC record the failed program held may have been the mark this head's
            # records needed (§6): the operation, run again, marks them.
            self.unmarked[int(self.active_cold)] = True
            return
        if not (empty and self.rescue is not None):
            # An empty segment that fails during a recovery holds nothing to rescue (what it
            # held is moved again): the recovery's rescue copy stays (its chunks' bytes are
            # still moving).
            self.rescue = (unit, bytes(self.buf), self.wp)
        self.recovering = True
        try:
            moving = sorted((e[0], k) for k, e in self.index.items()
                            if self._holds(e, s))
            for addr, key in moving:
                size = self.index[key][1]
                try:
                    data = self._read_chunk(key, addr, size)
                except CorruptError:
                    self._drop(key)
                    self.lost.add(key)
                    continue
                self._write_chunk(key, data)
        except FlashWearError:
            raise  # the next call goes on with this recovery, and with its rescue copy
        except BaseException:
            self.rescue = None
            raise
        self.rescue = None
        # Then a checkpoint: trims among the bytes that never reached flash live only in RAM.
        self._collapse()


__all__ = ["Store", "Rec", "parse_segment"]
