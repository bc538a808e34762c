"""What authenticated encryption of swapped chunks costs the MCU per inference (`--encrypt`).

An encrypting store seals every chunk it writes and opens every chunk it reads with
AES-128-GCM (issue 17; the store's format is not modelled here, only the cost). The cost is
CPU (or crypto engine) time, the same for every storage layer, because it follows the
trace's logical operations, not the flash operations a store turns them into:

    cycles = (bytes sealed + bytes opened) x cycles_per_byte
             + (chunks sealed + chunks opened) x cycles_per_record

The per-record part is GCM's fixed work per message: the counter block J0 encrypted for the
tag, the record header hashed as associated data, and the length block hashed. A store's
garbage collector that moves a record with the address in its associated data must open and
seal it again; that relocation (a few percent of the bytes on flashswap, its erase
amplification minus one) is not counted.

Time is cycles / the MCU's clock; energy is that time at the core's run power. Every figure
names its source below, or says "assumption".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyzer.workload import READ, Workload
from flashswap.errors import InputError

BLOCK = 16  # AES block, bytes

# Cortex-M4 software AES-128 (T-table, CTR mode), STM32F407: 537.9 cycles per 16-byte block
# over 4096-byte messages; a single block costs 644.7 cycles. P. Schwabe, K. Stoffelen, "All
# the AES You Need on Cortex-M3 and M4", SAC 2016 (github.com/Ko-/aes-armcortexm, README).
SW_CTR_CYCLES_PER_BLOCK = 537.9
SW_SINGLE_BLOCK_CYCLES = 644.7
# GHASH, one 16-byte multiply in GF(2^128) with 4-bit tables (Shoup's method, as Mbed TLS):
# 640 cycles per block. Assumption: our estimate (32 nibble steps of about 20 Cortex-M4
# cycles); no published Cortex-M4 GHASH figure was found to cite.
SW_GHASH_CYCLES_PER_BLOCK = 640.0

# Hardware AES engine: 51 cycles per 128-bit block for AES-128 (ST RM0456, STM32U5 reference
# manual, table "AES/SAES features": "AES 128-bit ECB encryption in cycles: 51"). GCM's
# payload phase is taken at the same 51 cycles a block, the GHASH multiply running beside the
# cipher, and each phase of a record's fixed work (init, header, tag) at one block's 51:
# assumption. The CPU is taken to feed the engine by DMA at no cycle cost: assumption.
HW_CYCLES_PER_BLOCK = 51.0

# Core run power while encrypting: 110 uA/MHz at 3.3 V. Assumption: the run current in the
# order of the STM32L4+ (the MLPerf Tiny board's MCU) datasheet's headline figure, not
# re-checked against its tables; the engine's own current is not added.
RUN_UA_PER_MHZ = 110.0
RUN_VOLTS = 3.3


@dataclass(frozen=True)
class Cipher:
    """Cycles an AEAD costs per byte sealed or opened and per record, and their sources."""

    name: str
    describe: str
    cycles_per_byte: float
    cycles_per_record: float
    source: str


CIPHERS: dict[str, Cipher] = {c.name: c for c in (
    Cipher(
        "aes-gcm-sw", "AES-128-GCM in software",
        (SW_CTR_CYCLES_PER_BLOCK + SW_GHASH_CYCLES_PER_BLOCK) / BLOCK,
        SW_SINGLE_BLOCK_CYCLES + 2 * SW_GHASH_CYCLES_PER_BLOCK,
        "AES-128-CTR: Schwabe & Stoffelen, SAC 2016, 537.9 cycles/block on Cortex-M4 "
        "(STM32F407); GHASH 640 cycles/block: assumption (4-bit tables)",
    ),
    Cipher(
        "aes-gcm-hw", "AES-128-GCM on a hardware AES engine",
        HW_CYCLES_PER_BLOCK / BLOCK,
        4 * HW_CYCLES_PER_BLOCK,
        "ST RM0456 (STM32U5) AES engine: 51 cycles per 128-bit block; GCM phases at the "
        "same rate and DMA feeding at no CPU cost: assumption",
    ),
)}
DEFAULT_CIPHER = "aes-gcm-sw"


def get_cipher(name: str) -> Cipher:
    try:
        return CIPHERS[name.lower()]
    except KeyError:
        raise InputError(f"unknown cipher {name!r} (choose from {', '.join(CIPHERS)})") from None


@dataclass(frozen=True)
class Encryption:
    """A cipher on an MCU clocked at `mhz`: what `--encrypt` adds per inference."""

    cipher: Cipher
    mhz: float
    mcu: str  # the MCU the clock comes from, for the report

    def cost(self, wl: Workload) -> dict[str, Any]:
        """Crypto work of one inference of `wl` (means over the trace's inferences)."""
        n = len(wl.inferences)
        sealed = wl.bytes_written_per_inference
        opened = wl.bytes_read_per_inference
        seals = sum(i.writes for i in wl.inferences) / n
        opens = sum(1 for i in wl.inferences for op in i.ops if op[0] == READ) / n
        c = self.cipher
        cycles = (sealed + opened) * c.cycles_per_byte + (seals + opens) * c.cycles_per_record
        seconds = cycles / (self.mhz * 1e6)
        watts = RUN_UA_PER_MHZ * 1e-6 * self.mhz * RUN_VOLTS
        return {
            "cipher": c.name,
            "describe": c.describe,
            "mcu": self.mcu,
            "mhz": self.mhz,
            "cycles_per_byte": c.cycles_per_byte,
            "cycles_per_record": c.cycles_per_record,
            "sealed_bytes_per_inference": sealed,
            "opened_bytes_per_inference": opened,
            "seals_per_inference": seals,
            "opens_per_inference": opens,
            "cycles_per_inference": cycles,
            "seconds_per_inference": seconds,
            "energy_mj_per_inference": seconds * watts * 1e3,
            "run_power_mw": watts * 1e3,
            "source": c.source,
            "power_source": f"{RUN_UA_PER_MHZ:g} uA/MHz at {RUN_VOLTS:g} V: assumption",
        }
