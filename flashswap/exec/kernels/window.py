"""Sliding windows over a band of rows, shared by convolutions and pools.

A spatial op with kernel k, stride s, dilation d and top/left padding p computes output row r
from input rows [r*s - p, r*s - p + (k-1)*d + 1). Given a band of input rows starting at
`first`, `padded_window` returns exactly the rows an output band needs, with rows and columns
outside the tensor filled with the op's padding value, so every tap is a plain strided slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashswap.errors import ModelError


@dataclass(frozen=True)
class Geometry:
    """Kernel, stride, dilation and padding of a 2-D spatial op, in storage (H, W) order."""

    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    top: int
    left: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int

    def input_rows(self, r0: int, r1: int) -> tuple[int, int]:
        """Input rows output rows [r0, r1) read, clipped to the tensor."""
        a = r0 * self.sh - self.top
        b = (r1 - 1) * self.sh - self.top + (self.kh - 1) * self.dh + 1
        a, b = max(0, a), min(self.in_h, b)
        return a, max(a, b)

    def row_counts(self, r0: int, r1: int) -> np.ndarray:
        """Taps of each output row [r0, r1) that fall inside the input (for averages)."""
        return _counts(np.arange(r0, r1), self.sh, self.top, self.kh, self.dh, self.in_h)

    def col_counts(self) -> np.ndarray:
        return _counts(np.arange(self.out_w), self.sw, self.left, self.kw, self.dw, self.in_w)

    def taps(self) -> list[tuple[int, int]]:
        return [(ky, kx) for ky in range(self.kh) for kx in range(self.kw)]


def _counts(out_idx: np.ndarray, s: int, p: int, k: int, d: int, n: int) -> np.ndarray:
    taps = out_idx[:, None] * s - p + np.arange(k)[None, :] * d
    return ((taps >= 0) & (taps < n)).sum(axis=1)


def padded_window(x: np.ndarray, first: int, g: Geometry, r0: int, r1: int,
                  fill: float | int) -> np.ndarray:
    """Input rows for output rows [r0, r1) as (rows, cols, C...), padding filled with `fill`.

    `x` is a storage band (1, h, W, C...) of input rows [first, first + h).
    """
    lo = r0 * g.sh - g.top
    hi = (r1 - 1) * g.sh - g.top + (g.kh - 1) * g.dh + 1
    a, b = max(0, lo), min(g.in_h, hi)
    if a < first or b > first + x.shape[1]:
        raise ModelError(f"input band rows [{first}, {first + x.shape[1]}) do not cover "
                         f"rows [{a}, {b}) needed for output rows [{r0}, {r1})")
    cols = (g.out_w - 1) * g.sw + (g.kw - 1) * g.dw + 1
    right = max(0, cols - g.left - g.in_w)
    win = np.full((hi - lo, g.left + g.in_w + right, *x.shape[3:]), fill, dtype=x.dtype)
    if b > a:
        win[a - lo:b - lo, g.left:g.left + g.in_w] = x[0, a - first:b - first]
    return win


def tap(win: np.ndarray, g: Geometry, ky: int, kx: int, rows: int) -> np.ndarray:
    """The input values under tap (ky, kx) for `rows` output rows: (rows, out_w, C...)."""
    y0, x0 = ky * g.dh, kx * g.dw
    return win[y0:y0 + (rows - 1) * g.sh + 1:g.sh, x0:x0 + (g.out_w - 1) * g.sw + 1:g.sw]


def im2col(win: np.ndarray, g: Geometry, rows: int) -> np.ndarray:
    """(rows, out_w, kh*kw, C) patches, taps in (ky, kx) order as TFLite's OHWI filters."""
    return np.stack([tap(win, g, ky, kx, rows) for ky, kx in g.taps()], axis=2)
