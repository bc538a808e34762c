"""The C library (firmware/) behind the Store API: `Store.format(flash, engine="c")`.

The library runs through ctypes on the same FlashSim as the Python model, so counters, time,
energy, power cuts and wear-out all apply and the images stay comparable. Flash operations
that break no rule are done in C on the FlashSim's numpy arrays (firmware/port/simport.c);
everything else calls back into FlashSim, which stays the referee.

The shared library is found in this order: $FLASHSWAP_CLIB; in a source checkout, firmware/
compiled on first use into a cache directory (named by a hash of the sources, so edits rebuild
it); else the copy setup.py built next to this module at install time.
"""

from __future__ import annotations

import ctypes as C
import functools
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

import flashswap.store.c_build as c_build
from flashswap.errors import (
    ChunkTooLargeError,
    CorruptError,
    DeviceError,
    FlashWearError,
    InputError,
    NoSpaceError,
    NotFoundError,
    StoreKeyError,
)
from flashswap.store.aead import Aead
from flashswap.store.config import (
    check_raw,
    cipher_for,
    index_limit,
    options,
    probe,
    probe_geometry,
)
from flashswap.store.layout import NO_KEY

if TYPE_CHECKING:
    from flashswap.flash import FlashDevice

FIRMWARE = c_build.FIRMWARE
# The library's error codes (firmware/include/flashswap.h).
E_IO, E_CORRUPT, E_NOSPC, E_NOENT, E_TOOBIG, E_INVAL, E_WORN = -5, -84, -28, -2, -27, -22, -71
E_KEY = -126

_IO = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_uint32, C.c_void_p, C.c_uint32)
_ERASE = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_uint32, C.c_uint32)
_TRACE = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p)  # void (*trace)(void *ctx, const uint8_t[24])
_P = C.c_void_p


class _Config(C.Structure):
    """struct fsw_config (firmware/include/flashswap.h); callbacks set by fswsim_install."""

    _fields_ = [
        ("context", _P), ("read", _P), ("prog", _P), ("erase", _P), ("sync", _P),
        ("read_spare", _P),
        ("flash_size", C.c_uint32), ("segment_size", C.c_uint32), ("prog_size", C.c_uint32),
        ("page_once", C.c_uint8), ("ckpt_interval", C.c_uint8), ("reserve", C.c_uint8),
        ("wl_threshold", C.c_uint16), ("max_keys", C.c_uint16),
        ("prog_buffer", _P), ("index", _P), ("segs", _P), ("rescue_buffer", _P),
        ("trace", _P), ("trace_ctx", _P),
        ("aead_seal", _P), ("aead_open", _P), ("aead_ctx", _P), ("aead_buffer", _P),
        ("aead_buffer_size", C.c_uint32),
    ]


class _Sim(C.Structure):
    """struct fswsim (firmware/port/simport.c)."""

    _fields_ = (
        [(n, _P) for n in ("inv", "spare_inv", "page_writes", "next_page", "wear",
                            "erase_counts", "program_bytes", "read_bytes", "bad", "fresh",
                            "consumed")]
        + [("py_read", _IO), ("py_prog", _IO), ("py_erase", _ERASE), ("py_read_spare", _IO)]
        + [(n, C.c_uint32) for n in ("size", "erase_size", "page_size", "ppb", "spare_size",
                                     "nop", "seg_size", "nand", "fast")]
        + [(n, C.c_double) for n in ("tp", "tp_max", "ep", "ep_max", "te", "te_max",
                                     "w_erase", "t_page_read", "bw", "w_read")]
        + [(n, C.c_uint64) for n in ("reads", "programs", "erases", "ops_count")]
        + [(n, C.c_double) for n in ("time_s", "time_max_s", "energy_j", "energy_max_j")]
        + [(n, C.c_uint32) for n in ("es_shift", "ps_shift")]
        + [("reg", _P)]
    )


class _Stat(C.Structure):
    _fields_ = [(n, C.c_uint32) for n in (
        "free_bytes", "live_bytes", "live_chunks", "segments", "free_segments", "bad_segments",
        "retired", "erase_min", "erase_max", "max_chunk")]


class _Info(C.Structure):
    """struct fsw_info (flashswap.h, introspection)."""

    _fields_ = [("log_bytes", C.c_uint64)] + [(n, C.c_uint32) for n in (
        "max_keys", "ckpt_interval", "reserve", "wl_threshold", "max_chunk", "tag_len", "epoch",
        "entries", "retired", "window_segments", "hot_segment", "cold_segment")] + [
        ("mounted", C.c_uint8), ("damaged", C.c_uint8)]


class _SegInfo(C.Structure):
    """struct fsw_seg_info (flashswap.h); read into numpy arrays of np.dtype(_SegInfo)."""

    _fields_ = [(n, C.c_uint32) for n in ("erase_count", "seq", "live_bytes")] + [
        (n, C.c_uint8) for n in ("state", "cold", "open", "window")]


class _ChunkInfo(C.Structure):
    """struct fsw_chunk_info (flashswap.h); read into numpy arrays of np.dtype(_ChunkInfo)."""

    _fields_ = [(n, C.c_uint32) for n in ("key", "size", "addr", "lost")]


SEG_BAD = 3  # enum fsw_seg_state (flashswap.h): FSW_SEG_BAD


# ------------------------------------------------------------------ finding the library


def _build(dest_dir: Path) -> Path:
    """firmware/ compiled into dest_dir by the one build recipe (flashswap/store/c_build.py),
    under a name made of a hash of the sources and flags: rebuilt on change."""
    try:
        return c_build.build_cached(dest_dir)
    except c_build.BuildError as e:
        raise InputError(f"C engine not built: {e}") from None


def _cache_dir() -> Path:
    """$XDG_CACHE_HOME/flashswap or ~/.cache/flashswap; the temp dir if neither is writable."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flashswap"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"flashswap-{os.getuid()}"


def _find() -> Path:
    """$FLASHSWAP_CLIB; else, in a source checkout with a compiler, the current sources
    compiled (a copy built at install time may be stale); else the copy built at install."""
    env = os.environ.get("FLASHSWAP_CLIB")
    if env:
        return Path(env)
    installed = sorted(Path(__file__).parent.glob("_flashswap_c*.so"))
    # Sources that fail to compile are an error, not a reason to run a stale copy.
    if (FIRMWARE / "src").is_dir() and (c_build.compiler() or not installed):
        return _build(_cache_dir())
    if installed:
        return installed[0]
    raise InputError("C engine not built: no compiled library and no firmware sources")


@functools.cache
def library() -> C.CDLL:
    """The loaded C library (built on first use if needed); InputError if it cannot be."""
    path = _find()
    try:
        lib = C.CDLL(str(path))
    except OSError as e:
        raise InputError(f"C engine not built: cannot load {path}: {e}") from None
    u32, vp = C.c_uint32, C.c_void_p
    for name, args in (("fsw_put", [vp, u32, C.c_char_p, u32]),
                       ("fsw_get", [vp, u32, vp, u32, vp]), ("fsw_trim", [vp, u32]),
                       ("fsw_trim_range", [vp, u32, u32]), ("fsw_sync", [vp]),
                       ("fsw_idle", [vp, C.c_uint]), ("fsw_unmount", [vp])):
        getattr(lib, name).argtypes = args
    lib.fsw_trim_range.restype = C.c_int32
    lib.fswsim_run.argtypes = [vp, vp, vp, u32, C.c_char_p, vp, u32, vp, vp]
    lib.fswsim_run.restype = u32
    lib.fsw_info.argtypes = [vp, vp]
    lib.fswsim_chunks.argtypes = [vp, vp, u32]
    lib.fswsim_chunks.restype = u32
    lib.fswsim_segs.argtypes = [vp, vp, u32]
    lib.fswsim_sizes.restype = C.c_size_t
    lib.fswsim_seg_size.restype = C.c_size_t
    lib.fsw_mbedtls_ctx_size.restype = C.c_size_t
    lib.fsw_mbedtls_install.argtypes = [vp, vp, C.c_char_p]
    return lib


# ------------------------------------------------------------------ the engine


def _ptr(a: np.ndarray) -> int | None:
    return a.ctypes.data if a.size else None


class CStore:
    """A store run by the C library, with the Python Store's API, errors and flash bytes:
    registered as the engine "c" (flashswap/store/engine.py)."""

    native: ClassVar[bool] = True  # compiled: preferred when no engine is named and it loads

    @classmethod
    def available(cls) -> None:
        """Nothing if the library loads (building it if needed), else InputError saying why."""
        library()

    def __init__(self, flash: FlashDevice, seg_size: int, *, max_keys: int, ckpt_interval: int = 0,
                 reserve: int = 0, wl_threshold: int = 0, key: bytes | None = None) -> None:
        self.lib = lib = library()
        self.flash = flash
        self._exc: BaseException | None = None
        self._seg = seg_size
        sim_size = C.c_size_t()
        ctx_size = lib.fswsim_sizes(C.byref(sim_size))
        if C.sizeof(_Sim) != sim_size.value:
            raise InputError("C engine not built: struct fswsim does not match c_engine.py")
        self.fs = C.create_string_buffer(ctx_size)
        page = flash.page_size
        nseg = flash.size // seg_size
        self._bufs = [C.create_string_buffer(page), C.create_string_buffer(page)]
        self._nseg = nseg
        self._index = np.zeros(3 * max_keys, dtype=np.uint32)
        # RAM the library keeps per segment: its layout is the library's own (fsw_seg_info)
        self._segs = np.zeros(nseg * lib.fswsim_seg_size(), dtype=np.uint8)
        cfg = self.cfg = _Config()
        cfg.flash_size, cfg.segment_size, cfg.prog_size = flash.size, seg_size, page
        cfg.page_once = int(getattr(flash, "nop", 0) != 0)
        # MCU internal flash writes whole words: this port pads a sync's partial unit (§6).
        self._pad = page if getattr(flash, "kind", "") == "internal" else 0
        cfg.ckpt_interval, cfg.reserve = ckpt_interval, reserve
        cfg.wl_threshold, cfg.max_keys = wl_threshold, max_keys
        cfg.prog_buffer = C.addressof(self._bufs[0])
        cfg.rescue_buffer = C.addressof(self._bufs[1])
        cfg.index, cfg.segs = self._index.ctypes.data, self._segs.ctypes.data
        self._sim = self._make_sim(flash, seg_size)
        lib.fswsim_install(C.byref(cfg), C.byref(self._sim))
        self._gcm: Any = None
        self._tag = 0 if key is None else 16
        if key is not None:
            self._encrypt(key)
        self.mounted = False
        self._trace_fn: Any = None
        self._trace_cb: Any = None  # the ctypes callback must outlive every call that may use it

    # --- the trace hook ---------------------------------------------------------------
    @property
    def trace(self) -> Any:
        """Called after each successful API call with its 24-byte trace record (bytes): the
        library's own `fsw_config.trace` hook, as the Python model's `Store.trace`."""
        return self._trace_fn

    @trace.setter
    def trace(self, fn: Any) -> None:
        self._trace_fn = fn
        if fn is None:
            self._trace_cb = None
            self.cfg.trace = None
            return
        self._trace_cb = _TRACE(lambda _ctx, rec: fn(C.string_at(rec, 24)))
        self.cfg.trace = C.cast(self._trace_cb, C.c_void_p)

    def _encrypt(self, key: bytes) -> None:
        """AES-128-GCM through the Mbed TLS port (firmware/port/aead_mbedtls.c), and a buffer
        for the largest chunk this flash can hold (SPEC §11) and a tag."""
        Aead(key)  # the model's checks and messages for the key itself
        size = self.lib.fsw_mbedtls_ctx_size()
        if not size:
            raise InputError("C engine built without Mbed TLS (libmbedtls-dev): cannot encrypt")
        self._gcm = C.create_string_buffer(size)
        n = min(1 << 24, self.flash.size // 2) + 16
        self._aead_buf = C.create_string_buffer(n)
        self.cfg.aead_buffer, self.cfg.aead_buffer_size = C.addressof(self._aead_buf), n
        if self.lib.fsw_mbedtls_install(C.byref(self.cfg), self._gcm, bytes(key)):
            raise InputError("Mbed TLS refused the key")

    def __del__(self) -> None:
        if getattr(self, "_gcm", None) is not None:
            self.lib.fsw_mbedtls_free(self._gcm)
            self._gcm = None

    # --- the port ---------------------------------------------------------------------
    def _make_sim(self, flash: Any, seg_size: int) -> _Sim:
        m = _Sim()
        self._cbs = (_IO(self._py_read), _IO(self._py_prog), _ERASE(self._py_erase),
                     _IO(self._py_read_spare))
        m.py_read, m.py_prog, m.py_erase, m.py_read_spare = self._cbs
        m.size, m.page_size, m.seg_size = flash.size, flash.page_size, seg_size
        m.erase_size = getattr(flash, "erase_size", seg_size)
        m.nand = int(getattr(flash, "kind", "") == "nand")
        # Only a FlashSim of raw flash can take the fast path (its arrays and rates are known).
        self._fast_ok = (getattr(flash, "kind", None) in ("nor", "nand")
                         and hasattr(flash, "_inv") and seg_size in getattr(flash, "_te", {}))
        if self._fast_ok:
            m.ppb, m.spare_size, m.nop = flash.pages_per_block, flash.spare_size, flash.nop
            m.tp, m.tp_max, m.ep, m.ep_max = flash._tp, flash._tp_max, flash._ep, flash._ep_max
            m.te, m.te_max = flash._te[seg_size]
            m.w_erase, m.t_page_read, m.bw, m.w_read = (
                flash._w_erase, flash._t_page_read, flash._bw, flash._w_read)
        self._arrays: tuple = ()
        return m

    def _enter(self) -> None:
        """Before a call: pick the path and point the port at the FlashSim's current arrays."""
        # The fast path reads a FlashSim's own arrays, which no FlashDevice promises: it runs
        # only on a FlashSim (_fast_ok), and ReplayFlash's extras are looked up by name.
        f: Any = self.flash
        m = self._sim
        self._exc = None
        fast = (self._fast_ok and f._cut is None and f._fail is None and f.wear is None
                and not f.bit_errors)
        m.fast = fast
        if not fast:
            return
        if getattr(f, "_pending_addr", None):
            f.flush_reads()  # ReplayFlash: book deferred reads first (their order counts)
        old = self._arrays
        # reset_counters() replaces these three; the others live as long as the FlashSim.
        if (not old or f.erase_counts is not old[5] or f.program_bytes is not old[6]
                or f.read_bytes is not old[7]):
            arrays = (f._inv, f._spare_inv, f._page_writes, f._next_page, f._wear,
                      f.erase_counts, f.program_bytes, f.read_bytes, f._bad, f._reg)
            # analyzer.device.ReplayFlash counts consumptions in its program/erase overrides,
            # which the fast path bypasses: the port keeps them instead.
            fresh, consumed = getattr(f, "fresh", None), getattr(f, "consumed", None)
            track: tuple[np.ndarray, ...] = ()
            if fresh is not None and consumed is not None:
                if fresh.dtype != np.bool_ or consumed.dtype != np.int64:
                    m.fast = False
                    return
                track = (fresh, consumed)
            for a in arrays + track:
                if not a.flags.c_contiguous or not a.flags.writeable:
                    m.fast = False
                    return
            (m.inv, m.spare_inv, m.page_writes, m.next_page, m.wear, m.erase_counts,
             m.program_bytes, m.read_bytes, m.bad, m.reg) = map(_ptr, arrays)
            m.fresh, m.consumed = (_ptr(track[0]), _ptr(track[1])) if track else (None, None)
            self._arrays = arrays

    def _leave(self) -> None:
        """After a call: fold what the fast path counted into the FlashSim."""
        m = self._sim
        if m.ops_count or m.reads:
            f: Any = self.flash  # a FlashSim: only the fast path counts here
            f.ops["reads"] += m.reads
            f.ops["programs"] += m.programs
            f.ops["erases"] += m.erases
            f.ops_count += m.ops_count
            f.time_s += m.time_s
            f.time_max_s += m.time_max_s
            f.energy_j += m.energy_j
            f.energy_max_j += m.energy_max_j
            m.reads = m.programs = m.erases = m.ops_count = 0
            m.time_s = m.time_max_s = m.energy_j = m.energy_max_j = 0.0

    def _call(self, fn: Any, *args: Any) -> int:
        self._enter()
        try:
            rc = fn(self.fs, *args)
        finally:
            self._leave()
        if self._exc is not None:
            exc, self._exc = self._exc, None
            raise exc
        return rc

    def _device(self, op: Any) -> int:
        """Run a device operation for C: 0, E_WORN, or E_IO with the exception kept."""
        if self._exc is not None:  # the Python model would have stopped at the first one
            return E_IO
        try:
            op()
        except FlashWearError:
            return E_WORN
        except Exception as e:  # noqa: BLE001 - re-raised by _call once C has returned
            self._exc = e
            return E_IO
        return 0

    def _py_read(self, _c: Any, addr: int, buf: int, n: int) -> int:
        def op() -> None:
            C.memmove(buf, self.flash.read(addr, n), n)
        return self._device(op)

    def _py_prog(self, _c: Any, addr: int, buf: int, n: int) -> int:
        data = C.string_at(buf, n)
        if self._pad and n % self._pad:
            data += b"\xff" * (self._pad - n % self._pad)
        return self._device(lambda: self.flash.program(addr, data))

    def _py_erase(self, _c: Any, addr: int, n: int) -> int:
        return self._device(lambda: self.flash.erase(addr, n))

    def _py_read_spare(self, _c: Any, addr: int, buf: int, n: int) -> int:
        def op() -> None:
            C.memmove(buf, self.flash.read_spare(addr, n), n)
        return self._device(op)

    # --- errors -----------------------------------------------------------------------
    def _check(self, rc: int, what: str) -> int:
        if rc >= 0:
            return rc
        if rc == E_NOSPC:
            raise NoSpaceError(f"{what}: no space left (or the index is full)")
        if rc == E_NOENT:
            raise NotFoundError(what)
        if rc == E_CORRUPT:
            raise CorruptError(f"{what}: no valid store, or the chunk is damaged or lost")
        if rc == E_TOOBIG:
            raise ChunkTooLargeError(f"{what}: chunk exceeds the largest chunk of this store")
        if rc == E_INVAL:
            raise InputError(f"{what}: invalid argument or configuration")
        if rc == E_KEY:
            raise StoreKeyError(f"{what}: the store's key check does not match the key given")
        raise DeviceError("too many flash failures in one operation")

    def _check_mounted(self) -> None:
        if not self.mounted:
            raise InputError("store is unmounted")

    @staticmethod
    def _check_key(key: Any) -> None:
        if not isinstance(key, int | np.integer) or not 0 <= key < NO_KEY:
            raise InputError(f"key must be an integer 0..{NO_KEY - 1}, not {key!r}")

    # --- construction -----------------------------------------------------------------
    @classmethod
    def format(cls, flash: FlashDevice, *, segment_size: int | None = None,
               max_keys: int | None = None, ckpt_interval: int | None = None,
               reserve: int | None = None, wl_threshold: int | None = None,
               key: bytes | None = None) -> CStore:
        """Erase the flash and create an empty store (options checked as the model does)."""
        ref = options(flash, segment_size, max_keys, ckpt_interval, reserve, wl_threshold,
                            key)
        st = cls(flash, ref.geo.seg_size, max_keys=ref.max_keys,
                 ckpt_interval=ref.ckpt_interval, reserve=ref.reserve,
                 wl_threshold=ref.wl_threshold, key=key)
        st._check(st._call(st.lib.fsw_format, C.byref(st.cfg)), "format")
        st.mounted = True
        return st

    @classmethod
    def mount(cls, flash: FlashDevice, key: bytes | None = None) -> CStore:
        """Attach to the store on `flash`; CorruptError if there is none, StoreKeyError as
        the model says it when the key does not fit the store (SPEC §4a)."""
        check_raw(flash)
        seg = _probe_segment(flash)
        limit = index_limit(seg)
        st = cls(flash, seg, max_keys=max(1, min(65535, limit)), key=key)
        rc = st._call(st.lib.fsw_mount, C.byref(st.cfg))
        if rc == E_KEY:  # the model's words for the same refusal (it must refuse too)
            cipher_for(probe(flash)[0], key)
        st._check(rc, "mount")
        st.mounted = True
        return st

    # --- the Store API ----------------------------------------------------------------
    def put(self, key: int, data: bytes | bytearray | memoryview) -> None:
        """Store `data` under `key`, replacing any chunk the key held."""
        self._check_mounted()
        self._check_key(key)
        data = bytes(data)
        if not data:
            raise InputError("a chunk holds at least one byte")
        rc = self._call(self.lib.fsw_put, int(key), data, len(data))
        if rc < 0:
            self._put_error(int(key), len(data), rc)

    def _put_error(self, key: int, size: int, rc: int) -> None:
        """Raises what a failed put of `size` bytes under `key` means (as the model does)."""
        if rc == E_TOOBIG:
            raise ChunkTooLargeError(f"chunk of {size} bytes exceeds the largest chunk "
                                     f"{self.max_chunk - self._tag} of this store")
        if rc == E_NOSPC and key not in self._all_keys() and len(self._entries()) >= \
                self.max_keys:
            raise NoSpaceError(f"index full: {self.max_keys} live chunks")
        self._check(rc, f"put({key})")

    def get(self, key: int) -> bytes:
        """The chunk under `key`. NotFoundError if none; CorruptError if damaged or lost."""
        self._check_mounted()
        if not isinstance(key, int | np.integer) or not 0 <= key < NO_KEY:
            raise NotFoundError(f"no chunk under key {key}")
        k = int(key)
        n = self._size(k)
        if n == E_NOENT:
            raise NotFoundError(f"no chunk under key {key}")
        if n == E_CORRUPT:
            raise CorruptError(f"chunk {key} was lost (its flash block failed)")
        self._check(n, f"get({key})")
        buf = C.create_string_buffer(n)
        rc = self._call(self.lib.fsw_get, k, buf, n, None)
        if rc == E_CORRUPT:
            raise CorruptError(f"chunk {key} is damaged (crc mismatch)")
        self._check(rc, f"get({key})")
        return buf.raw

    def __contains__(self, key: int) -> bool:
        if not isinstance(key, int | np.integer) or not 0 <= key < NO_KEY:
            return False
        return self._size(int(key)) > 0

    def _size(self, key: int) -> int:
        """fsw_size (an inline function of flashswap.h): the size, or the error."""
        n = C.c_uint32()
        rc = self.lib.fsw_get(self.fs, key, None, 0, C.byref(n))
        return n.value if rc == E_TOOBIG else rc

    def keys(self) -> list[int]:
        e = self._entries()
        return [int(k) for k in e["key"][e["lost"] == 0]]

    def trim(self, key: int) -> bool:
        """Drop the chunk under `key`; False (nothing written) if there was none."""
        self._check_mounted()
        self._check_key(key)
        return bool(self._check(self._call(self.lib.fsw_trim, int(key)), "trim"))

    def trim_range(self, first: int, last: int) -> int:
        """Drop every chunk with first <= key <= last in one record; the number dropped."""
        self._check_mounted()
        self._check_key(first)
        self._check_key(last)
        if first > last:
            raise InputError(f"trim_range: first key {first} > last key {last}")
        rc = self._call(self.lib.fsw_trim_range, int(first), int(last))
        return self._check(rc, "trim_range")

    def sync(self) -> None:
        self._check_mounted()
        self._check(self._call(self.lib.fsw_sync), "sync")

    def idle(self, max_erases: int = 1) -> int:
        self._check_mounted()
        n = min(max(int(max_erases), 0), 0xFFFFFFFF)
        return self._check(self._call(self.lib.fsw_idle, n), "idle")

    def unmount(self) -> None:
        if self.mounted:
            self._check(self._call(self.lib.fsw_unmount), "unmount")
            self.mounted = False

    def run_batch(self, ops: np.ndarray, wbuf: bytes, rbuf: Any) -> np.ndarray:
        """Runs a batch of trace operations in one C call (fswsim_run in
        firmware/port/simport.c): `ops` is a C-contiguous (n, 4) uint32 array of op, key, len,
        value; every WRITE puts the first len bytes of `wbuf`; READs fill `rbuf` (a ctypes
        buffer at least max_chunk long). Returns the flash seconds accumulated at each COMPUTE
        op and, last, the batch's total. An error is raised as the single call raises it,
        after the operations before it have taken effect. Needs the fast path (no power cut,
        wear or bit-error model armed): replay with faults calls one by one."""
        self._check_mounted()
        if ops.dtype != np.uint32 or ops.ndim != 2 or ops.shape[1] != 4 \
                or not ops.flags.c_contiguous:
            raise InputError("run_batch: ops must be a C-contiguous (n, 4) uint32 array")
        computes = int(np.count_nonzero(ops[:, 0] == 8))
        marks = np.zeros(computes + 1, dtype=np.float64)
        rc = C.c_int32()
        self._enter()
        try:
            if not self._sim.fast:
                raise InputError("run_batch: the flash has a fault model armed")
            done = self.lib.fswsim_run(self.fs, C.byref(self._sim), _ptr(ops), len(ops), wbuf,
                                       C.addressof(rbuf), len(rbuf), marks.ctypes.data,
                                       C.byref(rc))
            marks[computes] = self._sim.time_s
        finally:
            self._leave()
        if self._exc is not None:
            exc, self._exc = self._exc, None
            raise exc
        if rc.value:
            op, key, length, value = (int(x) for x in ops[done])
            if op == 1:
                self._put_error(key, length, rc.value)
            elif op == 2 and rc.value == E_CORRUPT:
                raise CorruptError(f"chunk {key} is damaged or lost")
            elif op == 2 and rc.value == E_NOENT:
                raise NotFoundError(f"no chunk under key {key}")
            what = {2: f"get({key})", 3: "trim", 4: "trim_range", 5: "sync"}.get(op, "batch")
            self._check(rc.value, what)
        return marks

    def log_position(self) -> int:
        return int(self._info().log_bytes)

    # --- state (the introspection API of flashswap.h) -------------------------------------
    def _info(self) -> _Info:
        out = _Info()
        self.lib.fsw_info(self.fs, C.byref(out))
        return out

    @property
    def max_keys(self) -> int:
        return int(self._info().max_keys)

    @property
    def max_chunk(self) -> int:
        """The largest chunk record payload, tag included (as the model's max_chunk)."""
        info = self._info()
        return int(info.max_chunk + info.tag_len)

    @property
    def retired(self) -> int:
        return int(self._info().retired)

    def _entries(self) -> np.ndarray:
        """Every index entry (lost chunks included) in key order: fields of fsw_chunk_info."""
        n = self._info().entries
        out = np.zeros(n, dtype=np.dtype(_ChunkInfo))
        self.lib.fswsim_chunks(self.fs, _ptr(out), n)
        return out

    def _seg_info(self) -> np.ndarray:
        out = np.zeros(self._nseg, dtype=np.dtype(_SegInfo))
        self._check(self.lib.fswsim_segs(self.fs, _ptr(out), self._nseg), "stat")
        return out

    def _all_keys(self) -> set[int]:
        return {int(k) for k in self._entries()["key"]}

    def stat(self) -> dict[str, Any]:
        """Space, wear and health figures, as Store.stat() gives them."""
        self._check_mounted()
        st = _Stat()
        self._check(self.lib.fsw_stat(self.fs, C.byref(st)), "stat")
        info = self._info()
        seg = self.cfg.segment_size
        segs = self._seg_info()
        good = segs["state"] != SEG_BAD
        counts = segs["erase_count"][good].astype(np.int64)
        hist = np.bincount(counts) if counts.size else np.zeros(0, dtype=np.int64)
        e = self._entries()
        live = e["lost"] == 0
        return {
            "segments": st.segments,
            "segment_size": seg,
            "prog_size": self.cfg.prog_size,
            "page_once": bool(self.cfg.page_once),
            "max_keys": info.max_keys,
            "max_chunk": info.max_chunk,  # the largest put (a tag follows it)
            "ckpt_interval": info.ckpt_interval,
            "reserve": info.reserve,
            "wl_threshold": info.wl_threshold,
            "live_chunks": int(live.sum()),
            # bytes in the chunks' records: a tag follows each (SPEC §4a)
            "live_bytes": int((e["size"][live].astype(np.int64) + info.tag_len).sum()),
            "free_bytes": st.free_bytes,
            "free_segments": st.free_segments,
            "window_segments": info.window_segments,
            "erase_counts": segs["erase_count"].astype(np.int64),
            "erase_histogram": {int(i): int(c) for i, c in enumerate(hist) if c},
            "erase_min": st.erase_min,
            "erase_max": st.erase_max,
            "retired_blocks": info.retired,
            "bad_blocks": int(np.count_nonzero(~good)),
            "lost_chunks": int(len(e) - live.sum()),
            "damaged": bool(info.damaged),
            "encrypted": self._gcm is not None,
        }


def _probe_segment(flash: FlashDevice) -> int:
    """The segment size named by the header that names the store (the probe both engines use,
    SPEC §9), CorruptError in the model's words if that header does not fit this flash; the
    format default when there is none (the library's mount then reports no store)."""
    try:
        first = probe(flash)[0]
    except CorruptError:
        try:
            return options(flash, None, None, None, None, None).geo.seg_size
        except InputError:
            return getattr(flash, "erase_size", 512)
    return probe_geometry(flash, first).seg_size


__all__ = ["CStore", "library"]
