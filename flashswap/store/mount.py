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
    HF_PAGE_ONCE,
    LOST_ADDR,
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


def _find_geometry(flash: Any) -> SegHeader:
    """The first valid header at an erase-unit boundary: it names the segment size."""
    e = flash.erase_size
    for addr in range(0, flash.size, e):
        h = SegHeader.unpack(flash.read(addr, HEADER_SIZE))
        if h is not None and addr % (1 << h.seg_shift) == 0:
            return h
    raise CorruptError("no flashswap store on this flash (no valid segment header)")


def mount_store(cls: type[Store], flash: Any) -> Store:
    from flashswap.store.core import BAD, FREE, FREE_ERASED, IN_LOG, _Geometry

    first = _find_geometry(flash)
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
        raw = flash.read(s * seg_size, HEADER_SIZE)
        h = SegHeader.unpack(raw)
        if h is not None and h.same_store(first):
            headers[s] = h
        else:
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
        st.state[s] = IN_LOG
        st.erase_count[s] = h.erase_count
        st.seq[s] = h.seq
        st.seg_by_seq[h.seq] = s
    for s in unknown:
        st.erase_count[s] = known_max  # §9 step 3: the only place counts can be lost

    head = st.seg_by_seq[newest.seq]
    parsed: dict[int, tuple[list[Rec], int, bytes]] = {}

    def parse(s: int) -> tuple[list[Rec], int, bytes]:
        if s not in parsed:
            data = flash.read(s * seg_size, seg_size)
            recs, end = parse_segment(data, s * seg_size, geo.prog_size, geo.page_once,
                                      st.max_chunk)
            parsed[s] = (recs, end, data)
        return parsed[s]

    r = newest.replay_seq
    if r == newest.seq and _checkpoint_of(parse(head)[0]) is None:
        prev = st.seg_by_seq.get(newest.seq - 1)
        if prev is None:
            raise CorruptError("newest checkpoint incomplete, no earlier segment to fall back to")
        r = headers[prev].replay_seq
    rseg = st.seg_by_seq.get(r)
    if rseg is None or _checkpoint_of(parse(rseg)[0]) is None:
        raise CorruptError(f"checkpoint segment (seq {r}) missing or damaged")

    index: dict[int, tuple[int, int]] = {}
    lost: set[int] = set()
    max_rseq = 0
    started = False
    pending: tuple[int, int, int, int, int, bool] | None = None  # key, size, addr, seq, off, ok
    for seq in range(r, newest.seq + 1):
        s = st.seg_by_seq.get(seq)
        if s is None:
            pending = None
            continue
        recs = parse(s)[0]
        for i, rec in enumerate(recs):
            max_rseq = max(max_rseq, rec.seq)
            if not started:
                if rec.rtype == T_CHECKPOINT and rec.intact:
                    index, lost = _load_checkpoint(rec)
                    started = True
                    pending = None
                continue
            if rec.rtype == T_DATA:
                if rec.flags & F_CONT:
                    if (pending is not None and i == 0 and rec.key == pending[0]
                            and rec.seq == pending[3] and rec.offset == pending[4]):
                        ok = pending[5] and rec.intact
                        if rec.flags & F_MORE:
                            pending = (*pending[:4], rec.offset + rec.payload_len, ok)
                        else:
                            if ok:
                                index[rec.key] = (pending[2], rec.size)
                                lost.discard(rec.key)
                            pending = None
                    else:
                        pending = None
                    continue
                pending = None
                if rec.flags & F_MORE:
                    pending = (rec.key, rec.size, rec.addr, rec.seq, rec.payload_len, rec.intact)
                elif rec.intact:
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
                pending = None

    st.replay_seq = r
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

    # Write position (§9 step 7).
    recs, end, data = parse(head)
    if data[end:] == b"\xff" * (seg_size - end):
        p = geo.prog_size
        base = head * seg_size
        if geo.page_once and end % p:
            end += p - end % p
        st.open_seg = head
        st.wp = base + end
        off = end % p
        st.buf[:] = b"\xff" * p
        st.buf[:off] = data[end - off : end]
        st.buf_prog = off
        if end >= seg_size:
            st.open_seg = None
    return st


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
