"""A result cache on disk, so a sweep that was interrupted (or re-run with another target)
redoes only the configurations it has no result for.

One JSON file per result, named by the SHA-256 of everything that could change it: the caller's
fields (model hash, budget, part, store, analysis options) plus `code_fingerprint()`: the
flashswap version and a hash of the planner's, analyzer's and store's sources (a development
checkout changes them without changing the version; a stale projection is worse than a
recomputed one). Files are written whole and renamed into place, so an interruption leaves
either the old state or the new result, never half a file; an unreadable file is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import analyzer
import flashswap

CACHE_FORMAT = 1  # bump when the stored layout changes


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/flashswap/advise or ~/.cache/flashswap/advise; under the temp dir if
    neither is writable (the convention of flashswap/store/c_engine.py)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flashswap"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base / "advise"
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"flashswap-{os.getuid()}" / "advise"


def code_fingerprint() -> str:
    """flashswap's version and a hash of every source file that computes a result: the Python
    packages (planner, models, store, parts catalogue, analyzer) and, in a source checkout, the
    C library the store's fast engine is built from."""
    h = hashlib.sha256(flashswap.__version__.encode())
    roots = [Path(flashswap.__file__).parent, Path(analyzer.__file__).parent]
    firmware = roots[0].parent / "firmware"
    files: list[Path] = []
    for root in roots:
        files += [p for p in root.rglob("*") if p.suffix in (".py", ".toml")]
    for sub in ("src", "include", "port"):
        files += [p for p in (firmware / sub).glob("*") if p.suffix in (".c", ".h")]
    for p in sorted(files):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return f"{flashswap.__version__}+{h.hexdigest()[:16]}"


class ResultCache:
    """get/put JSON-ready dicts by a key made of fields; `root=None` disables caching."""

    def __init__(self, root: Path | None, code: str | None = None) -> None:
        self.root = root
        self.code = code if code is not None else code_fingerprint()

    def key(self, fields: dict[str, Any]) -> str:
        text = json.dumps({"format": CACHE_FORMAT, "code": self.code, **fields},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.root is None:
            return None
        try:
            got = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return got if isinstance(got, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.root is None:
            return
        path = self._path(key)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(value, f)
            os.replace(tmp, path)
        except OSError:  # a cache that cannot be written only costs a recomputation later
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
