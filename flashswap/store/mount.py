"""Mount (firmware/SPEC.md §9): rebuild the RAM state from headers and the replay window.

Reads one header per segment (plus the bad-block byte on NAND) and the segments of the replay
window in full; writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flashswap.errors import CorruptError
from flashswap.store.layout import (
    F_CONT,
    F_MORE,
    HEADER_SIZE,
    HF_COLD,
    HF_PAGE_ONCE,
    LOST_ADDR,
    MIN_ROOM,
    REC_SIZE,
    T_CHECKPOINT,
    T_DATA,
    T_TRIM,
    T_TRIM_RANGE,
    SegHeader,
    unpack_entries,
)
from flashswap.store.parse import Rec, parse_segment

if TYPE_CHECKING:
    from flashswap.store.core import Store


def _find_geometry(flash: Any) -> tuple[SegHeader, int, bytes]:
    """The first valid header at an erase-unit boundary (it names the segment size), its address
    and its bytes (so mount does not read them twice)."""
    e = flash.erase_size
    for addr in range(0, flash.size, e):
        raw = flash.read(addr, HEADER_SIZE)
        h = SegHeader.unpack(raw)
        if h is not None and addr % (1 << h.seg_shift) == 0:
            return h, addr, raw
    raise CorruptError("no flashswap store on this flash (no valid segment header)")


def mount_store(cls: type[Store], flash: Any) -> Store:
    from flashswap.store.core import BAD, FREE, FREE_ERASED, IN_LOG, _Geometry

    first, first_addr, first_raw = _find_geometry(flash)
    seg_size = 1 << first.seg_shift
    try:
        geo = _Geometry(flash, seg_size, 1 << first.prog_shift, bool(first.flags & HF_PAGE_ONCE))
    except Exception as e:  # noqa: BLE001 - any mismatch means the image is not ours
        raise CorruptError(f"store header does not fit this flash: {e}") from None
    if first.segment_count != geo.nseg:
        raise CorruptError(f"store has {first.segment_count} segments, flash holds {geo.nseg}")
    st = cls(flash, geo, first.max_keys, first.ckpt_interval, first.reserve, first.wl_threshold)
    headers: dict[int, SegHeader] = {}
    unknown: list[int] = []
    for s in range(geo.nseg):
        if st._factory_bad(s):
            st.state[s] = BAD
            continue
        addr = s * seg_size
        raw = first_raw if addr == first_addr else flash.read(addr, HEADER_SIZE)
        h = SegHeader.unpack(raw)
        if h is not None and h.same_store(first):
            headers[s] = h
        else:
            # An erased-looking header says nothing about the body (a torn erase): such a
            # segment is blank-checked when opened (§8), not trusted here.
            st.state[s] = FREE_ERASED if raw == b"\xff" * HEADER_SIZE else FREE
            unknown.append(s)
    if not headers:
        raise CorruptError("no flashswap store on this flash (no valid segment header)")
    # Config from the newest header; a header disagreeing with it is stale garbage.
    newest = max(headers.values(), key=lambda h: h.seq)
    if not newest.same_store(first):
        raise CorruptError("segment headers disagree on the store's geometry")
    known_max = max(h.erase_count for h in headers.values())
    for s, h in headers.items():
        st.cold[s] = bool(h.flags & HF_COLD)
        st.state[s] = IN_LOG
        st.erase_count[s] = h.erase_count
        st.seq[s] = h.seq
        st.seg_by_seq[h.seq] = s
    for s in unknown:
        st.erase_count[s] = known_max  # §9 step 3: the only place counts can be lost

    parsed: dict[int, tuple[list[Rec], int, bytes]] = {}

    def parse(s: int) -> tuple[list[Rec], int, bytes]:
        if s not in parsed:
            data = flash.read(s * seg_size, seg_size)
            recs, end = parse_segment(data, s * seg_size, geo.prog_size, geo.page_once,
                                      st.max_chunk)
            parsed[s] = (recs, end, data)
        return parsed[s]

    # §9 step 4: the newest replay start that names a segment holding a complete checkpoint.
    ckpt: Rec | None = None
    r = 0
    for cand in sorted({h.replay_seq for h in headers.values()}, reverse=True):
        s = st.seg_by_seq.get(cand)
        if s is not None and not st.cold[s]:
            ckpt = _checkpoint_of(parse(s)[0])
            if ckpt is not None:
                r = cand
                break
    if ckpt is None:
        raise CorruptError("no complete checkpoint found: the store cannot be rebuilt")
    r_cold = ckpt.offset

    # §9 step 5: replay the window's records in record-seq order from the checkpoint.
    window = sorted(
        (int(st.seq[s]), s) for s in headers
        if st.seq[s] >= (r_cold if st.cold[s] else r)
    )
    events: list[tuple[int, int, Rec]] = []  # (record seq, order, record)
    for _, s in window:
        for rec in parse(s)[0]:
            if rec.rtype == T_DATA and rec.flags & F_CONT:
                continue  # continuations are gathered with their first fragment
            events.append((rec.seq, len(events), rec))
    events.sort()
    index, lost = _load_checkpoint(ckpt)
    max_rseq = ckpt.seq
    for rseq, _, rec in events:
        max_rseq = max(max_rseq, rseq)
        if rseq <= ckpt.seq:
            continue
        if rec.rtype == T_DATA:
            if _chunk_complete(st, rec, parse):
                index[rec.key] = (rec.addr, rec.size)
                lost.discard(rec.key)
        elif rec.rtype == T_TRIM:
            index.pop(rec.key, None)
            lost.discard(rec.key)
        elif rec.rtype == T_TRIM_RANGE:
            for k in [k for k in index if rec.key <= k <= rec.size]:
                del index[k]
            lost = {k for k in lost if not rec.key <= k <= rec.size}
        elif rec.rtype == T_CHECKPOINT and rec.intact:
            index, lost = _load_checkpoint(rec)
    for _, s in window:  # continuation fragments carry sequence numbers too (nonces, §4)
        for rec in parse(s)[0]:
            max_rseq = max(max_rseq, rec.seq)

    st.replay_seq = r
    st.replay_cold = r_cold
    st.next_seq = newest.seq + 1
    st.next_rseq = max_rseq + 2
    st.segs_since_ckpt = newest.seq - r + 1
    st.lost = lost
    for key, (addr, size) in sorted(index.items()):
        seg = addr // seg_size if addr != LOST_ADDR else -1
        if not 0 <= seg < geo.nseg or st.state[seg] != IN_LOG:
            lost.add(key)
            continue
        try:
            frags = st._fragments(addr, size)
        except CorruptError:
            lost.add(key)
            continue
        fr = tuple((a // seg_size, REC_SIZE + n) for a, n in frags)
        st.index[key] = (addr, size, fr)
        for fs, n in fr:
            st.live[fs] += n

    # §9 step 7: each head continues where its log ends, if the rest of the segment is erased.
    heads: dict[bool, tuple[int | None, int]] = {False: (None, 0), True: (None, 0)}
    for cold in (False, True):
        segs = [s for _, s in window if bool(st.cold[s]) == cold]
        if not segs:
            continue
        s = segs[-1]
        _, end, data = parse(s)
        if data[end:] != b"\xff" * (seg_size - end):
            continue
        p = geo.prog_size
        if geo.page_once and end % p:
            end += p - end % p
        if seg_size - end >= MIN_ROOM:
            heads[cold] = (s, s * seg_size + end)
    st.active_cold = False
    st.open_seg, st.wp = heads[False]
    st.parked = heads[True]
    if st.open_seg is not None and st.wp % geo.prog_size:
        off = st.wp % geo.prog_size
        st.buf[:off] = flash.read(st.wp - off, off)
        st.buf_prog = off
    return st


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
        if not recs:
            return False
        rec = recs[0]
        if not (rec.rtype == T_DATA and rec.flags & F_CONT and rec.key == first.key
                and rec.seq == first.seq and rec.offset == off and rec.intact):
            return False
        seg = nxt
    return True


def _checkpoint_of(recs: list[Rec]) -> Rec | None:
    """The checkpoint a checkpoint segment opens with: its first record, or its second after a
    continuation fragment (§7)."""
    for rec in recs[:2]:
        if rec.rtype == T_CHECKPOINT:
            return rec if rec.intact else None
        if not (rec.rtype == T_DATA and rec.flags & F_CONT):
            return None
    return None


def _load_checkpoint(rec: Rec) -> tuple[dict[int, tuple[int, int]], set[int]]:
    index: dict[int, tuple[int, int]] = {}
    lost: set[int] = set()
    for k, a, s in unpack_entries(rec.payload, rec.key):
        if a == LOST_ADDR:
            lost.add(k)
        else:
            index[k] = (a, s)
    return index, lost
