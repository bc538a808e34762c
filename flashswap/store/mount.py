"""Mount (firmware/SPEC.md §9): rebuild the RAM state from headers and the replay window.

Reads one header per segment (and the bad-block byte of segments without a valid header on
NAND) and the segments of the replay window in full; writes nothing. Damage is reported, never
papered over: a record that cannot be read makes the keys it could have held read as corrupt,
unless it can only be a write torn by a power cut (§9 "Damage").

`Store._mount` (core.py) runs the steps: `config.probe` finds the store, `read_segments` and
`replay_window` here compute the state from flash and return it, and the class takes it over;
these functions read the store they are given and never change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flashswap.errors import CorruptError
from flashswap.store.aead import assoc, nonce
from flashswap.store.config import BAD, FREE, FREE_ERASED, IN_LOG
from flashswap.store.layout import (
    ENTRY_SIZE,
    F_CONT,
    F_DAMAGED,
    F_ENC,
    F_MORE,
    HEADER_SIZE,
    HF_COLD,
    HF_TEAR,
    LOST_ADDR,
    MIN_ROOM,
    REC_SIZE,
    T_CHECKPOINT,
    T_DATA,
    T_RESERVE,
    T_SYNC,
    T_TRIM_RANGE,
    SegHeader,
    unpack_entries,
)
from flashswap.store.parse import T_UNREADABLE, Rec, header_at, parse_segment

if TYPE_CHECKING:
    from flashswap.store.core import Store

_ERASED_HEADER = b"\xff" * HEADER_SIZE

# An index entry as the store keeps it: (addr of first fragment, size, ((seg, bytes), ...)).
Entry = tuple[int, int, tuple[tuple[int, int], ...]]


@dataclass
class SegmentTable:
    """What the headers say of every segment (§9 steps 1-3), for `Store._mount` to take."""

    headers: dict[int, SegHeader]  # segment -> its header, for the segments of this store
    unknown: list[int]  # segments without a header of any store (erased-looking or not)
    newest: int  # the largest segment seq
    state: np.ndarray
    erase_count: np.ndarray
    seq: np.ndarray
    cold: np.ndarray
    seg_by_seq: dict[int, int]


@dataclass
class Replayed:
    """The RAM state the replay window rebuilds (§9 steps 4-7), for `Store._mount` to take."""

    index: dict[int, Entry]
    live: np.ndarray
    lost: set[int]
    damaged: bool
    replay_seq: int
    replay_cold: int
    next_seq: int
    next_rseq: int
    torn: list[bool]  # per log (hot, cold): the log ends in a tear
    unmarked: list[bool]  # per log: a put's chunk or a trim last, for the next sync to mark
    segs_since_ckpt: int
    head: tuple[int | None, int]  # the hot head's (segment, wp), active after mount
    parked: tuple[int | None, int]  # the cold head's


class _Replay:
    """The replay window's records turned into events in record-seq order (§9 steps 5-6)."""

    def __init__(self, st: Store, headers: dict[int, SegHeader], parse: Any) -> None:
        self.st = st
        self.headers = headers
        self.parse = parse
        self.events: list[tuple[int, int, bool, Rec]] = []  # (seq, order, wildcard first, rec)
        self.wild_at_end = False

    def log(self, segs: list[int], cold: bool) -> None:
        """Turn one log's window segments (in seq order) into events."""
        st = self.st
        seg_size = st.geo.seg_size
        pending = False  # unreadable bytes seen: every chunk is lost before the next event
        for i, s in enumerate(segs):
            recs, good = self.parse(s)
            nxt = st._next_in_chain(s)
            last = i == len(segs) - 1
            # A tear can only be the end of a log, or of a segment whose successor says so.
            may_tear = last or (nxt is not None and nxt in self.headers
                                and bool(self.headers[nxt].flags & HF_TEAR))
            for rec in recs:
                if not rec.intact and may_tear and rec.addr - s * seg_size >= good:
                    continue  # a tear
                if rec.rtype == T_UNREADABLE or (rec.rtype == T_CHECKPOINT and not rec.intact):
                    pending = True
                    continue
                if rec.rtype == T_DATA and rec.flags & F_CONT and rec.intact:
                    continue  # gathered with its first fragment
                if rec.rtype in (T_RESERVE, T_SYNC):
                    continue  # only its seq counts (step 8)
                self.events.append((rec.seq, len(self.events), pending, rec))
                pending = False
        self.wild_at_end |= pending


def read_segments(st: Store, first: SegHeader, raws: dict[int, bytes]) -> SegmentTable:
    """Every segment's state, erase count, seq and log from its header (§9 steps 1-3) in
    `raws` (as `config.probe` read them), for the store `first` names; `st` is the new store
    (read, not changed: its geometry, and its NAND bad-block check)."""
    geo = st.geo
    seg_size = geo.seg_size
    state, erase_count = st.state.copy(), st.erase_count.copy()
    seq, cold = st.seq.copy(), st.cold.copy()
    seg_by_seq: dict[int, int] = {}
    headers: dict[int, SegHeader] = {}
    unknown: list[int] = []
    for s in range(geo.nseg):
        addr = s * seg_size
        raw = raws[addr]
        h = SegHeader.unpack(raw)
        if h is not None and h.same_store(first):
            headers[s] = h
            continue
        if h is not None:
            # A valid header of another store: format erases every block before it writes a
            # header, so this is a block it could not erase (§13).
            state[s] = BAD
            erase_count[s] = h.erase_count
            continue
        # Only a block without a header of this store is asked whether it is factory-bad: one
        # misread bit of the marker must not condemn a block of the store.
        if st._factory_bad(s):
            state[s] = BAD
            continue
        # An erased-looking header says nothing about the body (a torn erase): such a
        # segment is blank-checked when opened (§8), not trusted here.
        state[s] = FREE_ERASED if raw == _ERASED_HEADER else FREE
        unknown.append(s)
    known_max = max(h.erase_count for h in headers.values())
    newest = max(h.seq for h in headers.values())
    for s, h in headers.items():
        cold[s] = bool(h.flags & HF_COLD)
        state[s] = IN_LOG
        erase_count[s] = h.erase_count
        seq[s] = h.seq
        seg_by_seq[h.seq] = s
    for s in unknown:
        erase_count[s] = known_max  # §9 step 3: the only place counts can be lost
    return SegmentTable(headers, unknown, newest, state, erase_count, seq, cold, seg_by_seq)


def replay_window(st: Store, table: SegmentTable) -> Replayed:
    """The index, lost chunks, damage and log heads the replay window gives (§9 steps 4-7).
    `st` is the store being mounted, with `table` already taken (read, not changed)."""
    flash, geo = st.flash, st.geo
    seg_size = geo.seg_size
    headers, unknown, newest = table.headers, table.unknown, table.newest
    parsed: dict[int, tuple[list[Rec], int, bytes]] = {}

    def parse(s: int) -> tuple[list[Rec], int]:
        if s not in parsed:
            base = s * seg_size
            data = flash.read(base, seg_size)
            recs, good = parse_segment(data, base, geo.prog_size, geo.page_once, st.max_chunk,
                                       st.tag)
            parsed[s] = (recs, good, data)
        return parsed[s][:2]

    # §9 step 4: the newest hot segment that opens with an intact checkpoint.
    ckpt: Rec | None = None
    r = 0
    hot: dict[int, int] = {}
    for s in sorted(headers):  # one segment per seq, the lowest-numbered (as C's search)
        if not st.cold[s]:
            hot.setdefault(int(st.seq[s]), s)
    for seq in sorted(hot, reverse=True):
        ckpt = _checkpoint_of(parse(hot[seq])[0])
        if ckpt is not None:
            r = seq
            break
    if ckpt is None:
        raise CorruptError("no complete checkpoint found: the store cannot be rebuilt")
    # A checkpoint whose CRCs hold but whose tag fails was forged: falling back to an older
    # one would serve older data (§4a).
    if _opened(st, ckpt) is None:
        raise CorruptError(f"checkpoint at 0x{ckpt.addr:x} failed authentication")
    r_cold = ckpt.offset

    # §9 step 5: the window's records as events, damage classified, in record-seq order.
    window = sorted(
        (int(st.seq[s]), s) for s in headers
        if st.seq[s] >= (r_cold if st.cold[s] else r)
    )
    replay = _Replay(st, headers, parse)
    for cold in (False, True):
        replay.log([s for _, s in window if bool(st.cold[s]) == cold], cold)
    index, lost, damaged = _load_checkpoint(ckpt, st.max_keys, _opened(st, ckpt))
    max_rseq = ckpt.seq
    forged = False  # an intact record of the window whose tag fails (§4a)
    for rseq, _, wild, rec in sorted(replay.events, key=lambda e: e[:2]):
        max_rseq = max(max_rseq, rseq)
        # Every record of the window is checked, those the checkpoint covers too (an older
        # record copied over a newer one would otherwise just be skipped). A forged record's
        # seq is the forger's: its damage cannot be placed in the history, so it takes all.
        if not _authentic(st, rec, parse, parsed):
            forged = True
            continue
        if rseq <= ckpt.seq:
            continue
        if wild:
            index, lost, damaged = {}, lost | set(index), True
        if rec.rtype == T_DATA:
            if not rec.intact:
                index.pop(rec.key, None)  # a damaged fragment: the chunk it held is lost
                lost.add(rec.key)
            elif _chunk_complete(st, rec, parse):
                index[rec.key] = (rec.addr, rec.size)
                lost.discard(rec.key)
        elif rec.rtype == T_TRIM_RANGE:
            for k in [k for k in index if rec.key <= k <= rec.size]:
                del index[k]
            lost = {k for k in lost if not rec.key <= k <= rec.size}
        else:
            index, lost, damaged = _load_checkpoint(rec, st.max_keys, _opened(st, rec))
        if len(index) + len(lost) > st.max_keys:
            raise CorruptError(f"the log holds more than {st.max_keys} chunks")
    for _, s in window:  # continuation fragments carry sequence numbers too (nonces, §4)
        for rec in parse(s)[0]:
            # A damaged checkpoint is unreadable bytes (step 5), its seq with them: before a
            # sealed one lies its synced reservation, whose seq field counts (§4a).
            if rec.intact or rec.rtype != T_CHECKPOINT:
                max_rseq = max(max_rseq, rec.seq)
    if replay.wild_at_end or forged or _segment_missing(st, headers, unknown, r, r_cold, newest,
                                              ckpt.seq):
        index, lost, damaged = {}, lost | set(index), True

    # One seq is skipped so that a record torn at the cut never shares a nonce with a later
    # one; an encrypted store's records all lie below its newest reservation, whose seq field
    # counts here (§4a "Nonces"). Its next sealed record reserves again (limit 0).
    next_rseq = max_rseq + 2
    entries: dict[int, Entry] = {}
    live = np.zeros_like(st.live)
    for ckey, (addr, size) in sorted(index.items()):
        seg, off = divmod(addr, seg_size)
        if (addr == LOST_ADDR or not 0 <= seg < geo.nseg or st.state[seg] != IN_LOG
                or not HEADER_SIZE <= off < seg_size - REC_SIZE):
            lost.add(ckey)
            continue
        try:
            frags = st._fragments(addr, size)
        except CorruptError:
            lost.add(ckey)
            continue
        fr = tuple((a // seg_size, REC_SIZE + n) for a, n in frags)
        entries[ckey] = (addr, size, fr)
        for fs, n in fr:
            live[fs] += n

    # §9 step 7: each head continues past its log's last intact record if the rest is erased.
    heads: dict[bool, tuple[int | None, int]] = {False: (None, 0), True: (None, 0)}
    torn = [False, False]
    unmarked = [False, False]
    for cold in (False, True):
        segs = [s for _, s in window if bool(st.cold[s]) == cold]
        if not segs:
            continue
        s = segs[-1]
        recs, end = parse(s)
        # A put's chunk or a trim last (a moved chunk needs none): the next sync marks it (§6).
        last = [r.rtype for r in recs if r.intact][-1:]
        unmarked[int(cold)] = last == [T_TRIM_RANGE] or last == [T_DATA] and not cold
        if parsed[s][2][end:] != b"\xff" * (seg_size - end):
            torn[int(cold)] = True  # the log ends in a tear: its next segment says so
            continue
        p = geo.prog_size
        if geo.page_once and end % p:
            end += p - end % p
        if seg_size - end >= MIN_ROOM:
            heads[cold] = (s, s * seg_size + end)
    # After a tear the next hot segment is a checkpoint segment: it leaves the tear outside the
    # window, so that later damage before it reads as damage (§9).
    segs_since_ckpt = st.ckpt_interval if any(torn) else newest - r + 1
    return Replayed(entries, live, lost, damaged, r, r_cold, newest + 1, next_rseq, torn,
                    unmarked, segs_since_ckpt, heads[False], heads[True])


def _segment_missing(st: Store, headers: dict[int, SegHeader], unknown: list[int], r: int,
                     r_cold: int, newest: int, base: int) -> bool:
    """True when a segment of the window is not there (§9 "Damage"): every seq from the replay
    start to the newest must have a header, the cold window's first segment too, none of them
    two headers in its log, and no segment without a readable header may hold a readable record
    newer than the checkpoint (the header of the newest segment was damaged)."""
    present = {h.seq for h in headers.values()}
    if any(q not in present for q in range(r, newest + 1)):
        return True
    # A window segment whose seq has two headers in its log: a segment copied over another,
    # whose history cannot be told from the original's.
    win = [(h.seq, bool(h.flags & HF_COLD)) for h in headers.values()
           if h.seq >= r or (h.flags & HF_COLD and h.seq == r_cold)]
    if len(set(win)) != len(win):
        return True
    if r_cold != r and not (r_cold in st.seg_by_seq and st.cold[st.seg_by_seq[r_cold]]):
        return True

    g = st.geo
    for s in unknown:
        if st.state[s] != FREE:  # neither erased-looking nor factory-bad
            continue
        raw = st.flash.read(s * g.seg_size + HEADER_SIZE, REC_SIZE)
        h = header_at(memoryview(raw), 0, st.max_chunk, g.seg_size - HEADER_SIZE, st.tag)
        if h is not None and h[0].seq > base:
            return True
    return False


def _chunk_complete(st: Store, first: Rec, parse: Any) -> bool:
    """True when a chunk's first fragment and every continuation are present and intact."""
    if not first.intact or first.offset != 0:
        return False
    rec = first
    seg = first.addr // st.geo.seg_size
    while rec.flags & F_MORE:
        nxt = st._next_in_chain(seg)
        if nxt is None:
            return False
        recs = parse(nxt)[0]
        off = rec.offset + rec.payload_len
        if not recs or recs[0].addr != nxt * st.geo.seg_size + HEADER_SIZE:
            return False
        rec = recs[0]
        if not (rec.rtype == T_DATA and rec.flags & F_CONT and rec.key == first.key
                and rec.seq == first.seq and rec.offset == off and rec.intact):
            return False
        seg = nxt
    return True


def _checkpoint_of(recs: list[Rec]) -> Rec | None:
    """The checkpoint a checkpoint segment opens with: its first record, or its second after a
    continuation fragment (§7); in an encrypted store a reservation comes just before it."""
    for rec in recs[:3]:
        if rec.rtype == T_CHECKPOINT:
            return rec if rec.intact else None
        if not (rec.rtype == T_DATA and rec.flags & F_CONT or rec.rtype == T_RESERVE):
            return None
    return None


def _opened(st: Store, rec: Rec) -> bytes | None:
    """The plaintext payload of a CHECKPOINT or TRIM_RANGE record (None: its tag fails)."""
    if st.aead is None:
        return rec.payload
    return st.aead.open(nonce(rec.seq, rec.offset), assoc(
        rec.rtype, rec.flags | F_ENC, rec.key, rec.size, rec.offset, rec.seq, rec.addr),
        rec.payload)


def _authentic(st: Store, rec: Rec, parse: Any, parsed: dict[int, Any]) -> bool:
    """An event's record verifies under the store's key (always true for a plaintext store, or
    for records the replay ignores anyway: damaged ones, incomplete chunks)."""
    if st.aead is None or not rec.intact:
        return True
    if rec.rtype != T_DATA:
        return _opened(st, rec) is not None
    if not _chunk_complete(st, rec, parse):
        return True
    seg_size = st.geo.seg_size
    parts = []
    for a, n in st._fragments(rec.addr, rec.size):
        data = parsed[a // seg_size][2]
        off = a % seg_size + REC_SIZE
        parts.append(data[off : off + n])
    return st.aead.open(nonce(rec.seq, 0), assoc(T_DATA, rec.flags | F_ENC, rec.key, rec.size,
                                                  0, rec.seq, rec.addr),
                        b"".join(parts)) is not None


def _load_checkpoint(rec: Rec, max_keys: int, plain: bytes | None
                     ) -> tuple[dict[int, tuple[int, int]], set[int], bool]:
    """The index a CHECKPOINT record holds (`plain`: its payload, opened), its lost chunks and
    whether the store is damaged. A count its payload cannot hold, or more chunks than the
    index can, is corruption."""
    if plain is None:
        raise CorruptError(f"checkpoint at 0x{rec.addr:x} failed authentication")
    if rec.key > len(plain) // ENTRY_SIZE:
        raise CorruptError(f"checkpoint at 0x{rec.addr:x} claims {rec.key} entries")
    index: dict[int, tuple[int, int]] = {}
    lost: set[int] = set()
    for k, a, s in unpack_entries(plain, rec.key):
        index.pop(k, None)
        lost.discard(k)
        if a == LOST_ADDR:
            lost.add(k)
        else:
            index[k] = (a, s)
        if len(index) + len(lost) > max_keys:
            raise CorruptError(f"checkpoint at 0x{rec.addr:x} holds more than {max_keys} chunks")
    return index, lost, bool(rec.flags & F_DAMAGED)
