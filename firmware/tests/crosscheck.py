"""Cross-check the C library against the Python model: same operations, same flash bytes.

Drives build/libflashswap.so (make lib) through ctypes on one FlashSim and the Python Store on
another, with random put/trim/trim_range/sync/idle/remount sequences, and compares after every
operation: return values, chunk contents, and after every sync the whole flash image, the
spare area and the page-program and erase counters.

    python3 firmware/tests/crosscheck.py [--seeds N] [--ops N] [--geo nor4k,nand,...]
"""

from __future__ import annotations

import argparse
import ctypes as C
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flashswap import FlashSim, Store  # noqa: E402
from flashswap.errors import (  # noqa: E402
    ChunkTooLargeError,
    CorruptError,
    FlashWearError,
    NoSpaceError,
    NotFoundError,
)

ERR = {"IO": -5, "CORRUPT": -84, "NOSPC": -28, "NOENT": -2, "TOOBIG": -27, "INVAL": -22}
WORN = -71

READ = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_uint32, C.c_void_p, C.c_uint32)
PROG = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_uint32, C.c_void_p, C.c_uint32)
ERASE = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_uint32, C.c_uint32)
SYNC = C.CFUNCTYPE(C.c_int, C.c_void_p)
TRACE = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p)


class Config(C.Structure):
    _fields_ = [
        ("context", C.c_void_p),
        ("read", READ),
        ("prog", PROG),
        ("erase", ERASE),
        ("sync", SYNC),
        ("read_spare", READ),
        ("flash_size", C.c_uint32),
        ("segment_size", C.c_uint32),
        ("prog_size", C.c_uint32),
        ("page_once", C.c_uint8),
        ("ckpt_interval", C.c_uint8),
        ("reserve", C.c_uint8),
        ("wl_threshold", C.c_uint16),
        ("max_keys", C.c_uint16),
        ("prog_buffer", C.c_void_p),
        ("index", C.c_void_p),
        ("segs", C.c_void_p),
        ("rescue_buffer", C.c_void_p),
        ("trace", TRACE),
        ("trace_ctx", C.c_void_p),
        # encryption (SPEC §4a): left unset, a plaintext store; tests/test_store_crypto.py and
        # tests/test_c_engine.py hold the encrypted stores to the model
        ("aead_seal", C.c_void_p),
        ("aead_open", C.c_void_p),
        ("aead_ctx", C.c_void_p),
        ("aead_buffer", C.c_void_p),
        ("aead_buffer_size", C.c_uint32),
    ]


class CStore:
    """The C library on a FlashSim, with the Python Store's method names and exceptions."""

    def __init__(self, lib: C.CDLL, sim: FlashSim, segment_size: int, **opts: int) -> None:
        self.lib, self.sim = lib, sim
        self.cut = False
        cfg = Config()
        self._cbs = [READ(self._read), PROG(self._prog), ERASE(self._erase),
                     READ(self._read_spare)]
        cfg.read, cfg.prog, cfg.erase, cfg.read_spare = self._cbs
        cfg.flash_size = sim.size
        cfg.segment_size = segment_size
        cfg.prog_size = sim.page_size
        cfg.page_once = int(sim.nop != 0)
        cfg.ckpt_interval = opts.get("ckpt_interval", 0)
        cfg.reserve = opts.get("reserve", 0)
        cfg.wl_threshold = opts.get("wl_threshold", 0)
        cfg.max_keys = opts.get("max_keys", 0) or min(1024, (segment_size // 2 - 72) // 12)
        self.bufs = [C.create_string_buffer(sim.page_size), C.create_string_buffer(sim.page_size),
                     C.create_string_buffer(12 * cfg.max_keys),
                     C.create_string_buffer(12 * (sim.size // segment_size))]
        cfg.prog_buffer, cfg.rescue_buffer, cfg.index, cfg.segs = (
            C.cast(b, C.c_void_p) for b in self.bufs)
        self.cfg = cfg
        self.fs = C.create_string_buffer(256)

    # device callbacks
    def _read(self, _c, addr, buf, n):  # noqa: ANN001
        C.memmove(buf, self.sim.read(addr, n), n)
        return 0

    def _prog(self, _c, addr, buf, n):  # noqa: ANN001
        try:
            self.sim.program(addr, C.string_at(buf, n))
        except FlashWearError:
            return WORN
        except Exception as e:  # noqa: BLE001 - a rule break or a cut: report, fail the op
            self.cut = self.cut or f"{type(e).__name__}: {e}"
            return ERR["IO"]
        return 0

    def _read_spare(self, _c, addr, buf, n):  # noqa: ANN001
        C.memmove(buf, self.sim.read_spare(addr, n), n)
        return 0

    def _erase(self, _c, addr, n):  # noqa: ANN001
        try:
            self.sim.erase(addr, n)
        except FlashWearError:
            return WORN
        except Exception as e:  # noqa: BLE001
            self.cut = self.cut or type(e).__name__
            return ERR["IO"]
        return 0

    def _check(self, rc: int) -> int:
        if self.cut:
            raise RuntimeError(f"flash refused an operation: {self.cut}")
        if rc >= 0:
            return rc
        name = {v: k for k, v in ERR.items()}.get(rc, str(rc))
        raise {"NOSPC": NoSpaceError, "NOENT": NotFoundError, "CORRUPT": CorruptError,
               "TOOBIG": ChunkTooLargeError}.get(name, RuntimeError)(name)

    def format(self) -> CStore:
        self._check(self.lib.fsw_format(self.fs, C.byref(self.cfg)))
        return self

    def mount(self) -> CStore:
        self._check(self.lib.fsw_mount(self.fs, C.byref(self.cfg)))
        return self

    def put(self, key: int, data: bytes) -> None:
        self._check(self.lib.fsw_put(self.fs, C.c_uint32(key), data, len(data)))

    def get(self, key: int) -> bytes:
        size = C.c_uint32()
        n = self.lib.fsw_get(self.fs, C.c_uint32(key), None, 0, C.byref(size))
        n = size.value if n == ERR["TOOBIG"] else n
        self._check(n)
        buf = C.create_string_buffer(n)
        got = C.c_uint32()
        self._check(self.lib.fsw_get(self.fs, C.c_uint32(key), buf, n, C.byref(got)))
        return buf.raw[: got.value]

    def trim(self, key: int) -> bool:
        return bool(self._check(self.lib.fsw_trim(self.fs, C.c_uint32(key))))

    def trim_range(self, a: int, b: int) -> int:
        return self._check(self.lib.fsw_trim_range(self.fs, C.c_uint32(a), C.c_uint32(b)))

    def sync(self) -> None:
        self._check(self.lib.fsw_sync(self.fs))

    def idle(self, n: int) -> int:
        return self._check(self.lib.fsw_idle(self.fs, n))

    def unmount(self) -> None:
        self._check(self.lib.fsw_unmount(self.fs))


stats = {"retired": 0, "nospace": 0}

GEOS = {
    "nor4k": ("W25Q128JV", 64 * 1024, 4096, {"ckpt_interval": 3}),
    "nor4k-wl": ("W25Q128JV", 64 * 1024, 4096, {"ckpt_interval": 3, "wl_threshold": 2}),
    "nor64k": ("MX25R6435F", 1024 * 1024, 65536, {"ckpt_interval": 2}),
    "nand": ("W25N01GV", 8 * 128 * 1024, 131072, {"ckpt_interval": 2}),
    "nand-bad": ("W25N01GV", 12 * 128 * 1024, 131072, {"ckpt_interval": 2}),
    "nor4k-ckpt1": ("W25Q128JV", 32 * 1024, 4096, {"ckpt_interval": 1}),
}


def outcome(fn, *args):  # noqa: ANN001, ANN201
    try:
        return ("ok", fn(*args))
    except (NoSpaceError, NotFoundError, CorruptError, ChunkTooLargeError) as e:
        return ("err", type(e).__name__)


def compare(py: FlashSim, c: FlashSim, where: str) -> None:
    if py.image() != c.image():
        a, b = py.image(), c.image()
        i = next(i for i in range(len(a)) if a[i] != b[i])
        raise AssertionError(f"{where}: images differ first at {i:#x} "
                             f"(py {a[i:i+8].hex()} c {b[i:i+8].hex()})")
    if py.spare_image() != c.spare_image():
        raise AssertionError(f"{where}: spare areas differ")
    for k in ("programs", "erases"):
        if py.ops[k] != c.ops[k]:
            raise AssertionError(f"{where}: {k} py {py.ops[k]} c {c.ops[k]}")


def run(lib: C.CDLL, geo: str, seed: int, nops: int, wear: int | None,
        every: bool = False, mode: str = "error") -> int:
    part, cap, seg, opts = GEOS[geo]
    kw = {"seed": seed}
    if wear:
        kw.update(wear=mode, endurance=wear)
    if geo == "nand-bad":
        kw["factory_bad"] = 2
    sims = [FlashSim.from_part(part, capacity=cap, **kw) for _ in range(2)]
    py = Store.format(sims[0], segment_size=seg, **opts)
    cs = CStore(lib, sims[1], seg, **opts).format()
    compare(*sims, "format")
    rng = random.Random(seed)
    history: list[tuple] = []
    maxn = min(py.max_chunk, 3 * seg)
    keys = 12
    for i in range(nops):
        op = rng.random()
        k = rng.randrange(keys)
        if op < 0.55:
            n = 1 + rng.randrange(rng.choice((64, 600, seg // 2, maxn)))
            data = rng.randbytes(n)
            step = ("put", k, n)
            r = [outcome(s.put, k, data) for s in (py, cs)]
        elif op < 0.65:
            step = ("get", k)
            r = [outcome(s.get, k) for s in (py, cs)]
        elif op < 0.73:
            step = ("trim", k)
            r = [outcome(s.trim, k) for s in (py, cs)]
        elif op < 0.76:
            b = k + rng.randrange(4)
            step = ("trim_range", k, b)
            r = [outcome(s.trim_range, k, b) for s in (py, cs)]
        elif op < 0.88:
            step = ("sync",)
            r = [outcome(s.sync) for s in (py, cs)]
        elif op < 0.95:
            n = rng.randrange(4)
            step = ("idle", n)
            r = [outcome(s.idle, n) for s in (py, cs)]
        else:
            step = ("remount",)
            py.unmount()
            cs.unmount()
            py = Store.mount(sims[0])
            cs = CStore(lib, sims[1], probe_segment(sims[1]), **opts).mount()
            r = [None, None]
        if r[0] and r[0][0] == "err":
            history.append(r[0][1])
        if r[0] != r[1]:
            raise AssertionError(f"{geo} seed {seed} op {i} {step}: py {r[0]} c {r[1]}")
        history.append(step)
        if step[0] in ("sync", "remount") or every:
            try:
                compare(*sims, f"{geo} seed {seed} op {i} {step}")
            except AssertionError:
                print("last operations:", history[-8:])
                raise
    for k in range(keys):
        if outcome(py.get, k) != outcome(cs.get, k):
            raise AssertionError(f"{geo} seed {seed}: final get({k}) differs")
    stats["retired"] += py.retired
    stats["nospace"] += sum(1 for s in history if s == "NoSpaceError")
    return nops


def default_segment(sim: FlashSim) -> int:
    """The segment size Store.format picks when none is given (flashswap/store/core.py)."""
    fits = [s for s in sim.erase_sizes if s <= 64 * 1024] or [sim.erase_size]
    seg = max(fits) if sim.kind == "nor" else sim.erase_size
    while sim.size // seg < 6 and seg > sim.erase_size:
        seg //= 2
    return seg


def probe_segment(sim: FlashSim) -> int:
    """The segment size named by the header that names the store (what a device's config
    would say; flashswap/store/mount.py probe)."""
    from flashswap.errors import CorruptError
    from flashswap.store.mount import probe

    try:
        return 1 << probe(sim)[0].seg_shift
    except CorruptError:
        return default_segment(sim)


def vectors(lib: C.CDLL) -> int:
    """Replay tests/vectors/vectors.json on the C library; compare with the stored images."""
    import gzip
    import json

    vdir = ROOT / "tests" / "vectors"
    sys.path.insert(0, str(vdir.parent.parent))
    from tests.vectors.generate import _load_image, payload

    vecs = json.loads((vdir / "vectors.json").read_text())
    vecs = {n: v for n, v in vecs.items() if "key" not in v}  # plaintext ones (see Config)
    for name, v in vecs.items():
        sim = FlashSim.from_part(v["part"], capacity=v["capacity"], seed=v.get("seed", 0))
        if "from" in v:
            _load_image(sim, gzip.decompress((vdir / f"{v['from']}.img.gz").read_bytes()))
        st: CStore | None = None
        cut = False
        try:
            for op in v["ops"]:
                name_, args = op[0], op[1:]
                if name_ == "format":
                    opts = dict(args[0])
                    seg = opts.pop("segment_size", None) or default_segment(sim)
                    st = CStore(lib, sim, seg, **opts).format()
                elif name_ == "mount":
                    st = CStore(lib, sim, probe_segment(sim)).mount()
                elif name_ == "put":
                    st.put(args[0], payload(args[2], args[1]))
                elif name_ == "cut_after":
                    sim.power_cut_after(args[0])
                else:
                    getattr(st, name_)(*args)
        except RuntimeError as e:
            if "PowerCut" not in str(e) or not v.get("expect_cut"):
                raise
            cut = True
        if bool(v.get("expect_cut")) != cut:
            raise AssertionError(f"vector {name}: cut expected {v.get('expect_cut')}, got {cut}")
        want = gzip.decompress((vdir / f"{name}.img.gz").read_bytes())
        if sim.image() != want:
            a = sim.image()
            i = next(i for i in range(len(a)) if a[i] != want[i])
            raise AssertionError(f"vector {name}: image differs first at {i:#x}")
        print(f"vector {name}: identical")
    return len(vecs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ops", type=int, default=400)
    ap.add_argument("--geo", default=",".join(GEOS))
    ap.add_argument("--wear", type=int, default=0, help="endurance (wear='error'); 0: none")
    ap.add_argument("--every", action="store_true", help="compare images after every op")
    ap.add_argument("--silent", action="store_true", help="worn blocks fail silently")
    ap.add_argument("--lib", default=str(Path(__file__).resolve().parents[1] / "build" /
                                         "libflashswap.so"))
    ap.add_argument("--vectors", action="store_true", help="replay tests/vectors only")
    a = ap.parse_args()
    lib = C.CDLL(a.lib)
    if a.vectors:
        print(f"{vectors(lib)} golden vectors reproduced")
        return
    total = 0
    for geo in a.geo.split(","):
        for seed in range(1, a.seeds + 1):
            total += run(lib, geo, seed, a.ops, a.wear or None, a.every,
                         "silent" if a.silent else "error")
        print(f"{geo}: {a.seeds} seeds x {a.ops} operations: identical")
    print(f"{total} operations, identical images; {stats['retired']} segments retired, "
          f"{stats['nospace']} puts refused for space")


if __name__ == "__main__":
    main()
