"""Small synthetic swap traces for tests, benchmarks and validation runs.

A chain network: layer i writes its output (split into chunks) and reads layer i-1's output
back; at the end of the inference every chunk dies in one INVALIDATE (or one TRIM per chunk).
Optional pinned chunks are written once in a prologue and read every inference (long-lived
data the store must keep). Shapes are parameters: nothing here claims to be a real model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flashswap.trace import TraceWriter


def write_chain_trace(
    path: str | Path,
    layer_bytes: Sequence[int] = (65536, 32768, 16384, 8192, 4096, 2048, 1024),
    chunk: int = 4096,
    inferences: int = 1,
    pinned: int = 0,
    compute_us: int = 1000,
    bulk: bool = True,
    weight_bytes: int = 0,
) -> Path:
    """Writes the trace and returns its path (see module doc)."""
    p = Path(path)
    meta = {"model": "synthetic-chain", "generator": "analyzer.synth", "chunk_size": chunk}
    with TraceWriter(p, meta) as w:
        for k in range(pinned):
            w.put(1_000_000 + k, chunk, pinned=True)
        for n in range(inferences):
            w.begin(n)
            key = 0
            prev: list[tuple[int, int]] = []
            for i, size in enumerate(layer_bytes):
                if weight_bytes:
                    w.weight_read(weight_bytes, tensor_id=i)
                for key_, length in prev:
                    w.get(key_, length)
                for k in range(pinned):
                    w.get(1_000_000 + k, chunk)
                w.compute(size * 16, time_us=compute_us, op_index=i)
                out = []
                for off in range(0, size, chunk):
                    length = min(chunk, size - off)
                    w.put(key, length)
                    out.append((key, length))
                    key += 1
                if not bulk:
                    for key_, _ in prev:
                        w.trim(key_)
                prev = out
            for key_, length in prev:
                w.get(key_, length)
            if bulk:
                w.invalidate(0, key - 1)
            else:
                for key_, _ in prev:
                    w.trim(key_)
            w.sync()
            w.end()
    return p
