"""The flashswap store: a log-structured activation swap store (firmware/SPEC.md)."""

from flashswap.store.core import Store

__all__ = ["Store"]
