"""Every exception flashswap raises, in one place.

The CLI maps `InputError` (and subclasses) to a one-line message and exit status 2;
anything else deriving from `FlashswapError` exits 1. Library users catch the
specific classes.
"""

from __future__ import annotations


class FlashswapError(Exception):
    """Base of every error raised on purpose by flashswap."""


class InputError(FlashswapError):
    """Bad user input: a file, an option or a name. The CLI exits 2."""


class TraceFormatError(InputError):
    """A trace file is truncated, corrupt or inconsistent."""


class PartsFileError(InputError):
    """A parts catalogue file is malformed (names the part and the field)."""


class UnknownPartError(InputError):
    """A part name is not in the catalogue (the message lists the closest names)."""


class ModelError(InputError):
    """A model file cannot be read, or uses an unsupported operator."""


class BudgetError(InputError):
    """An SRAM budget is impossible (the message names the minimum and the op)."""


# --- flash simulator -------------------------------------------------------------------


class FlashError(FlashswapError):
    """Base of the flash simulator's errors."""


class FlashRuleError(FlashError):
    """An operation broke a rule of the flash: range, alignment, bit-set, NOP, page order."""


class FlashWearError(FlashError):
    """A program or erase failed because the block is worn out (reported by the device)."""


class PowerCut(FlashError):
    """Raised by the simulator when an injected power cut tears an operation.

    The flash keeps the torn state; mount a store on it again to continue.
    """


# --- store -----------------------------------------------------------------------------


class StoreError(FlashswapError):
    """Base of the store's errors."""


class NoSpaceError(StoreError):
    """The store cannot hold the data (even after garbage collection). From a write whose
    failed-program recovery found no good segment left, the store was rebuilt from flash as a
    mount would: writes since the last sync may be lost (SPEC §12 step 3)."""


class NotFoundError(StoreError, KeyError):
    """The key holds no chunk (never written, trimmed, or invalidated)."""


class CorruptError(StoreError):
    """The flash does not hold a valid store, or a chunk's data failed its check."""


class StoreKeyError(StoreError, InputError):
    """An encrypted store mounted without its key or with another, or a key given for a store
    that is not encrypted. Nothing was written; the CLI exits 2."""


class ChunkTooLargeError(StoreError):
    """A chunk is larger than the store's largest chunk."""


class DeviceError(StoreError):
    """The flash device reported an error the store could not work around."""
