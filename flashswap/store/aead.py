"""Authenticated encryption of records (firmware/SPEC.md §4a): AES-128-GCM from `cryptography`.

One small object per mounted store. The store decides *what* is sealed (the nonce and the
associated data follow from a record's header and address); this module only seals and opens,
so the suite could change in one place.
"""

from __future__ import annotations

import struct
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flashswap.errors import InputError

SUITE_NONE = 0xFF  # header byte 32 of an unencrypted store: erased, as format 2 always wrote it
SUITE_AES128GCM = 0x01
TAG_LEN = 16
KEY_LEN = 16
KCV_LEN = 3  # bytes of key check value in a segment header (bytes 33..35)

_NONCE = struct.Struct("<QI")
_AD = struct.Struct("<BBHIIIQI")
_KCV_NONCE = bytes(12)  # seq 0: no record ever has it (record seqs start at 1, §13)
_KCV_AD = b"flashswap key check"


def nonce(seq: int, offset: int) -> bytes:
    """The 96-bit nonce of a record: its seq (8 bytes LE), then its offset field (4 bytes LE)."""
    return _NONCE.pack(seq, offset)


def assoc(rtype: int, flags: int, key: int, size: int, offset: int, seq: int, addr: int) -> bytes:
    """Associated data of a record: header bytes 0..23 with flags MORE and CONT cleared (they
    depend on where fragments fall), then the flash address of its (first) record header."""
    return _AD.pack(rtype, flags & ~0x03, TAG_LEN, key, size, offset, seq, addr)


class SealLog(Protocol):
    """Where Aead.log sends (nonce, associated data, plaintext) of each seal: a list will do."""

    def append(self, seal: tuple[bytes, bytes, bytes], /) -> None: ...


class Aead:
    """AES-128-GCM under one key. `log`, when a list, receives (nonce, ad, plaintext) of every
    seal: the nonce-uniqueness tests read it."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_LEN:
            n = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
            raise InputError(f"store key must be {KEY_LEN} bytes (AES-128), not {n}")
        self._gcm = AESGCM(bytes(key))
        self.log: SealLog | None = None

    def seal(self, nonce_: bytes, ad: bytes, plain: bytes) -> bytes:
        """Ciphertext followed by the 16-byte tag."""
        if self.log is not None:
            self.log.append((nonce_, ad, bytes(plain)))
        return self._gcm.encrypt(nonce_, bytes(plain), ad)

    def open(self, nonce_: bytes, ad: bytes, sealed: bytes) -> bytes | None:
        """The plaintext, or None when the tag does not verify."""
        try:
            return self._gcm.decrypt(nonce_, bytes(sealed), ad)
        except Exception:  # noqa: BLE001 - InvalidTag: forged, moved, or another key
            return None

    def check_value(self) -> bytes:
        """Key check value written in every segment header: the first 3 bytes of the tag of an
        empty message under nonce 0. Tells "wrong key" from "tampered" at mount; 24 bits of a
        MAC output say nothing useful about the key."""
        return self._gcm.encrypt(_KCV_NONCE, b"", _KCV_AD)[:KCV_LEN]
