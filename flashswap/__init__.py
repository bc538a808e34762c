"""flashswap: swap NN activations to external flash on MCUs, and project flash lifetime."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from flashswap.errors import (
    ChunkTooLargeError,
    CorruptError,
    DeviceError,
    FlashError,
    FlashRuleError,
    FlashswapError,
    FlashWearError,
    InputError,
    NoSpaceError,
    NotFoundError,
    PowerCut,
    StoreError,
    TraceFormatError,
)

try:
    __version__ = version("flashswap")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ChunkTooLargeError",
    "CorruptError",
    "DeviceError",
    "FlashError",
    "FlashRuleError",
    "FlashSim",
    "FlashWearError",
    "FlashswapError",
    "InputError",
    "NoSpaceError",
    "NotFoundError",
    "PowerCut",
    "Store",
    "StoreError",
    "TraceFormatError",
    "__version__",
]


def __getattr__(name: str) -> object:
    # Lazy so that `import flashswap` stays cheap for the CLI and so the simulator and the
    # store (separate modules with one job each) load only when used.
    if name == "FlashSim":
        from flashswap.flash import FlashSim

        return FlashSim
    if name == "Store":
        from flashswap.store import Store

        return Store
    raise AttributeError(f"module 'flashswap' has no attribute {name!r}")
