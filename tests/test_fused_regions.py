"""Patch regions derived back through random runs of spatial ops, against brute force.

Brute force: the input pixels an output patch depends on are found by propagating a boolean
mask back through every op, pixel by pixel (each output pixel marks every input pixel of its
kernel window, dilation and stride included, padding excluded). The derived region must be
exactly the bounding box of that set. With halo caches, a patch-by-patch simulation checks that
every pixel a patch reads was computed earlier and is still in the buffer the cache keeps, and
that a cached axis computes each pixel exactly once.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashswap.planner.fused.regions import (
    Run,
    RunOp,
    Window,
    derive,
    derive_axis,
    patch_bounds,
)


def random_window(rng: random.Random, size: int, holes: bool) -> tuple[Window, int] | None:
    """A window over an axis of `size` and the output size it gives (None if none fits)."""
    k = rng.choice([1, 1, 2, 3, 3, 5])
    s = rng.choice([1, 1, 2, 3])
    d = rng.choice([1, 1, 2]) if k > 1 else 1
    if not holes:
        s, d = min(s, k), 1
    span = (k - 1) * d + 1
    mode = rng.choice(["same", "valid", "odd"])
    if mode == "same":  # TensorFlow SAME: out = ceil(size / s), extra padding at the end
        out = -(-size // s)
        total = max((out - 1) * s + span - size, 0)
        pad, end = total // 2, total - total // 2
    elif mode == "valid":
        pad = end = 0
    else:
        pad, end = rng.randint(0, span - 1), rng.randint(0, span - 1)
    out = (size + pad + end - span) // s + 1
    if out < 1:
        return None
    return Window(k, s, pad, d), out


def random_run(seed: int) -> Run:
    """Ops over 1-3 external inputs: windowed ops, pads, residual adds, concat-like joins.
    Half the seeds draw only gapless windows (see `gapless`)."""
    rng = random.Random(seed)
    holes = seed % 2 == 1
    shapes: dict[int, tuple[int, int]] = {}
    h, w = rng.randint(1, 14), rng.randint(1, 14)
    for t in range(rng.randint(1, 3)):
        shapes[t] = (h, w) if t == 0 or rng.random() < 0.7 else (rng.randint(1, 14),
                                                                   rng.randint(1, 14))
    ops: list[RunOp] = []
    for _ in range(rng.randint(1, 7)):
        t = len(shapes)
        kind = rng.random()
        src = rng.choice(list(shapes))
        if kind < 0.6:
            r = random_window(rng, shapes[src][0], holes)
            c = random_window(rng, shapes[src][1], holes)
            if r is None or c is None:
                continue
            ops.append(RunOp((src,), t, r[0], c[0]))
            shapes[t] = (r[1], c[1])
        elif kind < 0.75:  # Pad: output o reads input o - pad
            pt, pb, pl, pr = (rng.randint(0, 3) for _ in range(4))
            ops.append(RunOp((src,), t, Window(1, 1, pt), Window(1, 1, pl)))
            shapes[t] = (shapes[src][0] + pt + pb, shapes[src][1] + pl + pr)
        else:  # elementwise join of tensors of one shape (residual add, channel concat)
            same = [x for x in shapes if shapes[x] == shapes[src]]
            ins = tuple(dict.fromkeys(rng.sample(same, min(len(same), rng.randint(1, 3)))))
            ops.append(RunOp(ins, t))
            shapes[t] = shapes[src]
    if not ops:
        ops.append(RunOp((0,), len(shapes)))
        shapes[len(shapes)] = shapes[0]
    return Run(tuple(ops), shapes, ops[-1].output)


def back_mask(op_win: tuple[Window, Window], out: np.ndarray, shape: tuple[int, int]
              ) -> np.ndarray:
    """Input pixels that the True pixels of `out` read, pixel by pixel."""
    wr, wc = op_win
    m = np.zeros(shape, dtype=bool)
    for oy, ox in zip(*np.nonzero(out), strict=True):
        for ky in range(wr.kernel):
            y = oy * wr.stride - wr.pad + ky * wr.dilation
            if not 0 <= y < shape[0]:
                continue
            for kx in range(wc.kernel):
                x = ox * wc.stride - wc.pad + kx * wc.dilation
                if 0 <= x < shape[1]:
                    m[y, x] = True
    return m


def dependencies(run: Run, sink_mask: np.ndarray) -> dict[int, np.ndarray]:
    masks = {t: np.zeros(s, dtype=bool) for t, s in run.shapes.items()}
    masks[run.sink] = sink_mask.copy()
    for op in reversed(run.ops):
        for x in op.inputs:
            masks[x] |= back_mask((op.rows, op.cols), masks[op.output], run.shapes[x])
    return masks


def bbox(m: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    if not m.any():
        return (0, 0), (0, 0)
    ys, xs = np.nonzero(m)
    return (int(ys.min()), int(ys.max()) + 1), (int(xs.min()), int(xs.max()) + 1)


def grid_of(rng: random.Random, run: Run) -> tuple[np.ndarray, np.ndarray]:
    h, w = run.shapes[run.sink]
    return patch_bounds(h, rng.randint(1, h)), patch_bounds(w, rng.randint(1, w))


def gapless(run: Run) -> bool:
    """Whether every window reads a contiguous block (no dilation, stride <= kernel). Only
    then is the set of pixels a patch depends on a full rectangle in every tensor; a window
    with gaps (a strided 1x1 shortcut) leaves holes, and an interval carried back past a
    later edge is the bounding box of the holey set, which padding may clip differently."""
    return all(w.dilation == 1 and w.stride <= w.kernel
               for op in run.ops for w in (op.rows, op.cols))


def area(region: tuple[tuple[int, int], tuple[int, int]]) -> tuple:
    (r0, r1), (c0, c1) = region
    return ((0, 0), (0, 0)) if r0 >= r1 or c0 >= c1 else region


@given(st.integers(0, 2**32 - 1))
def test_required_region_is_the_bounding_box_of_the_dependencies(seed):
    """Exact for gapless runs; otherwise a superset of the bounding box."""
    run = random_run(seed)
    rng = random.Random(seed + 1)
    rb, cb = grid_of(rng, run)
    reg = derive(run, rb, cb)
    exact = gapless(run)
    for i in range(rb.size - 1):
        for j in range(cb.size - 1):
            patch = np.zeros(run.shapes[run.sink], dtype=bool)
            patch[rb[i]:rb[i + 1], cb[j]:cb[j + 1]] = True
            deps = dependencies(run, patch)
            for t in run.shapes:
                if t not in reg.rows.required:  # read by nothing in the run
                    assert not deps[t].any()
                    continue
                got, want = area(reg.required(t, i, j)), bbox(deps[t])
                if exact:
                    assert got == want, (t, i, j)
                elif want != ((0, 0), (0, 0)):
                    assert got[0][0] <= want[0][0] and want[0][1] <= got[0][1], (t, i, j)
                    assert got[1][0] <= want[1][0] and want[1][1] <= got[1][1], (t, i, j)


def simulate(run: Run, rb: np.ndarray, cb: np.ndarray, cache_rows: bool, cache_cols: bool
             ) -> None:
    """Runs the grid patch by patch with buffers that hold each tensor's required region;
    a cached axis carries the previous buffer's pixels over (rows across column patches:
    every row computed so far). Checks reads and recomputation."""
    reg = derive(run, rb, cb, cache_rows, cache_cols)
    gh, gw = reg.grid
    count = {t: np.zeros(run.shapes[t], dtype=np.int64) for t in run.produced}
    line = {t: np.zeros(run.shapes[t], dtype=bool) for t in run.produced}  # row cache
    held = {t: np.zeros(run.shapes[t], dtype=bool) for t in run.shapes}
    for i in range(gh):
        for j in range(gw):
            for t in run.external:
                held[t][:] = False
                (r0, r1), (c0, c1) = reg.required(t, i, j)
                held[t][r0:r1, c0:c1] = True
            for op in run.ops:
                t = op.output
                (r0, r1), (c0, c1) = reg.required(t, i, j)
                (n0, n1), (m0, m1) = reg.computed(t, i, j)
                new = np.zeros(run.shapes[t], dtype=bool)
                new[n0:n1, m0:m1] = True
                # The op reads only what its inputs' buffers hold for this patch.
                for x in op.inputs:
                    need = back_mask((op.rows, op.cols), new, run.shapes[x])
                    assert not (need & ~held[x]).any(), (op, i, j)
                count[t] += new
                want = np.zeros(run.shapes[t], dtype=bool)
                want[r0:r1, c0:c1] = True
                # Carried pixels: what this buffer held for the previous patch (a column
                # cache), or, for a row cache, the rows earlier patch rows computed.
                carried = np.zeros_like(want)
                if cache_cols and j > 0:
                    carried |= held[t]  # the buffer's region for the previous patch
                if cache_rows and gw == 1 and i > 0:
                    carried |= held[t]  # a band buffer: the previous band's region
                elif cache_rows:
                    carried |= line[t]  # across column patches: a line buffer
                assert not (want & ~(new | carried)).any(), (t, i, j)
                held[t] = want
                line[t] |= new
    for t in run.produced:
        assert int(count[t].sum()) == reg.computed_pixels(t)
        need = dependencies(run, np.ones(run.shapes[run.sink], dtype=bool))[t]
        assert (count[t][need] >= 1).all()
        if cache_rows and cache_cols or t == run.sink:
            assert count[t].max(initial=0) <= 1
    assert (count[run.sink] == 1).all()


@given(st.integers(0, 2**32 - 1), st.booleans(), st.booleans())
def test_cached_halos_are_computed_once_and_read_only_while_held(seed, rows, cols):
    run = random_run(seed)
    rb, cb = grid_of(random.Random(seed + 2), run)
    simulate(run, rb, cb, rows, cols)


def test_mobilenet_like_chain_exact_intervals():
    # 3x3/2 SAME conv on 9 rows -> 5; 3x3/1 SAME depthwise; 1x1; sink rows in bands of 2.
    run = Run((RunOp((0,), 1, Window(3, 2, 1)), RunOp((1,), 2, Window(3, 1, 1)),
               RunOp((2,), 3)), {0: (9, 1), 1: (5, 1), 2: (5, 1), 3: (5, 1)}, 3)
    ax = derive_axis(run, 0, patch_bounds(5, 2), cache=False)
    assert [ax.required[3][k] for k in range(3)] == [(0, 2), (2, 4), (4, 5)]
    assert [ax.required[1][k] for k in range(3)] == [(0, 3), (1, 5), (3, 5)]
    assert [ax.required[0][k] for k in range(3)] == [(0, 6), (1, 9), (5, 9)]
    cached = derive_axis(run, 0, patch_bounds(5, 2), cache=True)
    assert [cached.computed[1][k] for k in range(3)] == [(0, 3), (3, 5), (0, 0)]
    assert [cached.required[0][k] for k in range(3)] == [(0, 6), (5, 9), (0, 0)]
    # Recomputing the depthwise input's halo costs 3 + 4 + 2 rows instead of 5.
    assert ax.computed[1].total == 9 and cached.computed[1].total == 5


def test_residual_fork_needs_the_hull_of_both_branches():
    # x -> 3x3 SAME conv -> add(x, .): the add needs x at the patch, the conv one more row.
    run = Run((RunOp((0,), 1, Window(3, 1, 1)), RunOp((0, 1), 2)),
              {0: (6, 1), 1: (6, 1), 2: (6, 1)}, 2)
    ax = derive_axis(run, 0, patch_bounds(6, 4), cache=False)
    assert [ax.required[0][k] for k in range(2)] == [(0, 5), (3, 6)]


def test_bad_bounds_and_runs_are_rejected():
    run = Run((RunOp((0,), 1),), {0: (4, 4), 1: (4, 4)}, 1)
    with pytest.raises(ValueError, match="do not cut"):
        derive_axis(run, 0, [0, 2, 2, 4], cache=False)
    with pytest.raises(ValueError, match="do not cut"):
        derive_axis(run, 0, [0, 3], cache=False)
    with pytest.raises(ValueError, match="produced twice"):
        Run((RunOp((0,), 1), RunOp((0,), 1)), {0: (1, 1), 1: (1, 1)}, 1)
    with pytest.raises(ValueError, match="not produced"):
        Run((RunOp((0,), 1),), {0: (1, 1), 1: (1, 1)}, 0)
    with pytest.raises(ValueError, match="patches of 0"):
        patch_bounds(4, 0)
