"""The flashswap store (flashswap.store, or its C engine) as a replay engine.

`implementation` picks the store's engine: "c" (the C library, firmware/), "python" (the
model), or "auto": C when it is built, else the model. Both write the same bytes to the same
blocks (tests/test_c_engine.py), so the projection does not depend on the choice; the C engine
also replays whole inferences in one call (`run_batch`), which is what makes it fast here.

Its steady-state model is "leveled": the store allocates the least-worn free segment first and
moves cold data when the erase-count spread passes its threshold (firmware/SPEC.md §8, §10), so
in the long run every good segment takes the same share of erases.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.device import ReplayFlash
from analyzer.engine_base import Engine, Spare
from flashswap.errors import InputError
from flashswap.sizes import format_size
from flashswap.store.config import MAX_KEYS_CAP, index_limit
from flashswap.store.engine import default_engine, format_store, names

if TYPE_CHECKING:
    from analyzer.lifetime import Options
    from analyzer.workload import Workload

REC_OVERHEAD = 32  # bytes of record header per chunk (SPEC.md §4)


class FlashswapEngine(Engine):
    name = "flashswap"
    store = "flashswap"
    replay_cost = 1
    model = "leveled"

    def __init__(
        self, flash: ReplayFlash, peak_live: int = 0, peak_chunks: int = 0,
        implementation: str = "auto", **config: Any
    ) -> None:
        super().__init__(flash)
        if flash.kind == "managed":
            raise InputError(
                "the flashswap store runs on raw flash; on a managed device (SD/eMMC) the "
                "card's own FTL remaps writes"
            )
        self.implementation = resolve_implementation(implementation)
        # the model or the C engine (CStore, which adds run_batch)
        self.swap: Any = format_store(self.implementation, flash, **config)
        self._rbuf: Any = None
        st = self.swap.stat()
        self.segment_size = int(st["segment_size"])
        self.group = self.segment_size // flash.erase_size
        self._peak = peak_live + REC_OVERHEAD * peak_chunks
        self._config = config

    @classmethod
    def build(
        cls, flash: ReplayFlash, wl: Workload, opt: Options, config: dict[str, Any]
    ) -> FlashswapEngine:
        """The store with `opt.store_config` (segment size), its index sized for the
        working set when that is larger than the default (1,024 chunks, 12 KiB of MCU RAM;
        the store allows up to half a segment)."""
        cfg = dict(opt.store_config)
        need = wl.peak_live_chunks + 1  # + 1: the burn-in filler
        seg = cfg.get("segment_size")
        if seg and need > index_limit(seg):
            raise InputError(
                f"the working set's {wl.peak_live_chunks} chunks do not fit the index of "
                f"{seg:,}-byte segments (at most {index_limit(seg)} chunks: a checkpoint "
                "fills at most half a segment); choose a larger segment size"
            )
        if need > MAX_KEYS_CAP:
            cfg.setdefault("max_keys", need)
        return cls(flash, wl.peak_live_bytes, wl.peak_live_chunks,
                   implementation=opt.implementation, **cfg)

    def burn_in(self, free_key: int) -> None:
        """Write and trim filler chunks until every erase unit has been programmed once.

        Format leaves every segment erased, so on a fresh device the first pass opens segments
        without erasing them; from the second pass on every open costs an erase (in the idle
        step or inline). Burning the first pass in makes the replayed inferences show the
        steady-state mix of erases, programs and idle work from the start. The filler uses the
        erased segments (on a tiny device the log may reuse a few before the last fresh one
        is reached) and is outside every measurement window."""
        f = self.flash
        size = max(1, min(self.swap.max_chunk, 1 << 20))
        filler = bytes(size)
        good = np.ones(f.num_blocks, dtype=bool)
        good[f.factory_bad_blocks] = False
        for _ in range(4 * (f.size // size + 8)):
            if f.consumed[good].all():
                break
            self.swap.put(free_key, filler)
            self.swap.trim(free_key)

    def log_units(self) -> float | None:
        """Segments opened so far minus the unused tails of the open ones (hot and cold log
        heads), in erase units. In steady state every segment opened costs one erase, so this
        advances at the erase rate, without rounding to whole units."""
        return self.swap.log_position() / self.flash.erase_size

    def put(self, key: int, data: bytes | memoryview) -> None:
        self.swap.put(key, data)

    def get(self, key: int, length: int) -> bytes:
        return self.swap.get(key)[:length]

    def trim(self, key: int) -> None:
        self.swap.trim(key)

    def invalidate(self, first: int, last: int) -> None:
        self.swap.trim_range(first, last)

    def sync(self) -> None:
        self.swap.sync()

    def idle(self) -> int:
        return int(self.swap.idle(1))

    def can_batch(self) -> bool:
        """True if `run_batch` may be used now: the C engine, no fault model armed."""
        f = self.flash
        return (self.implementation == "c" and f._cut is None and f.wear is None
                and not f.bit_errors)

    def run_batch(self, ops: np.ndarray, zeros: bytes) -> np.ndarray:
        """Replays a whole inference's store operations in one C call (CStore.run_batch):
        the flash seconds at each COMPUTE op, then the total."""
        if self._rbuf is None:
            self._rbuf = ctypes.create_string_buffer(max(1, self.swap.max_chunk))
        return self.swap.run_batch(ops, zeros, self._rbuf)

    def spare(self) -> Spare:
        """The good segments, the segments the working set needs at its peak (payload and
        record headers), and those the store keeps back: the reserve, the checkpoint replay
        window and the open hot and cold heads (SPEC.md §10-11). A segment that fails a
        program or erase is retired (marked bad) and its data moved."""
        st = self.swap.stat()
        data_cap = self.segment_size - 40
        return Spare(
            total=st["segments"] - st["bad_blocks"],
            working_set=-(-self._peak // data_cap),
            reserved=st["reserve"] + st["ckpt_interval"] + 2,
            remaps=True,
            on_wear="retires the segment (bad-segment mark) and moves its data",
        )

    def config(self) -> dict[str, Any]:
        st = self.swap.stat()
        keys = ("segment_size", "segments", "max_keys", "ckpt_interval", "reserve", "wl_threshold")
        return {"implementation": self.implementation} | {k: st[k] for k in keys}

    def describe(self) -> str:
        return f"{format_size(self.segment_size)} segments"


def resolve_implementation(name: str) -> str:
    """A registered store engine (flashswap/store/engine.py), or for "auto" the C engine if it
    can be loaded (built at install, or compiled from a source checkout), else the model."""
    if name == "auto":
        return default_engine()
    if name not in names():
        raise InputError(f"unknown store implementation {name!r} (choose from auto, "
                         f"{', '.join(sorted(names()))})")
    return name
