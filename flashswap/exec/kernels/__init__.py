"""Numpy kernels for every op the planner accepts: int8 bit-exact with LiteRT's reference
kernels (TFLite models), float32 for ONNX models.

API (stable; the executor and the reference interpreter are its two callers)
============================================================================

    from flashswap.exec.kernels import prepare, to_storage, from_storage

    k = prepare(graph, step.node_index, step.fused, step.units)  # a planner step

`StepKernel` runs the step's host node and the elementwise nodes fused into it
(`Step.fused`, in order; `k.chain_indices` gives their graph node indices). Its `mode` says
what the step's units are, matching the planner (planner/steps.py):

- "rows": units are output rows (spatial, row-wise and pad steps, FC over batches).
  `k.run_rows(inputs, weights, out, u0, u1, scratch=None)` computes output rows
  k.span(u0, u1).
- "features": FC with a one-row output; units are output features.
  `k.run_features(inputs, weights, out, f0, f1, scratch=None)` computes features [f0, f1)
  from the whole input, with the host's weights cut to the tile's share: filter rows
  [f0, f1) (contiguous in the filter) and bias entries [f0, f1); the requantization
  parameters of those features are the kernel's own.
- "reduce": global average/max pool, MEAN, or a pool whose output is one row; units are
  input rows. `acc = np.empty(k.acc_shape(), k.acc_dtype)`; `k.reduce_start(acc)`; for each
  band `k.reduce_rows(inputs, acc, u0, u1)` folds input rows k.span(u0, u1); then
  `k.reduce_finish(acc, weights, out, scratch=None)` writes the whole (small) output. The
  result equals the unsplit computation exactly for any split.

`k.units` equals `Step.units` (the kernel derives it as the planner does; passing
`step.units` to `prepare` makes a step the planner could not band - one unit - compute every
row in unit [0, 1)). `k.span(u0, u1)` gives the rows units [u0, u1) stand for (output rows;
input rows in reduce mode; identity except in such one-unit steps).

Arguments:
- `inputs`: {tensor name: band} for each name in `k.in_names` (the host node's activation
  inputs; a view's name is the view's, its bytes are its storage's). A band is `(array,
  first_row)`: the array holds rows [first_row, first_row + n) of the tensor in storage
  layout - raw uint8 bytes or typed, any shape - and must cover
  `k.input_rows(name, u0, u1)`; a bare array means first_row 0. Rows outside the tensor are
  padding, supplied by the kernel with the op's semantics (convolution: the input zero
  point; max pool: ignored; average pool: left out of the divisor; pad: the pad value).
- `weights`: {weight name: array} for `k.weight_names` (the step's weights: host's, then
  fused ops'), raw bytes (uint8) or typed, as `graph.constants[name].tobytes()` holds them
  - the caller reads them from flash into its staging buffer.
- `out`: the caller's buffer for the band of the step's final output tensor (`k.out`), in
  storage layout: exactly the band's bytes, contiguous (a view into the SRAM arena; uint8 or
  typed). The kernel writes it and nothing else of the caller's.
- `scratch`: an optional uint8 buffer of `k.scratch_bytes(u0, u1)` bytes. The kernels keep
  intermediate bands of fused ops there (when their type differs from the output's; same-
  type intermediates reuse `out`). Numpy's own temporaries are host memory, not modelled.

Sizes a device needs (the planner's budget):
- `k.scratch_bytes(u0, u1)`: the host kernel's scratch, modelled on CMSIS-NN's s8 kernels -
  CONV_2D 4*k_h*k_w*C_in bytes (an im2col of two int16 patches), 0 for 1x1 without padding;
  DEPTHWISE_CONV_2D 0 for 3x3, 1x1 or depth multiplier > 1, else 2*k_h*k_w*C; pools, FC,
  elementwise, softmax, pad, concat 0; float convolution 4*k_h*k_w*C_in/groups (one float
  patch), 0 for 1x1 - plus fused intermediates that cannot live in `out` (above).
- `k.acc_bytes`: reduce mode's accumulator, 4 bytes per entry (int32 on a device).
- `k.param_bytes`: per-channel requantization parameters (int32 multiplier + int32 shift =
  8 bytes per output channel of an int8 conv/depthwise/FC).

Layout helpers (layout.py): `storage_shape`, `band_shape`, `to_storage(graph, name, a)` and
`from_storage(graph, name, a)` convert whole tensors between the model's layout (NCHW for
ONNX) and storage (channels last), e.g. the model input before it is written to the arena and
the output after it is read.

Errors: `ModelError` (exit 2) names the op when there is no kernel for it (`make_op`), and a
band, weight or buffer of the wrong size.

Bit-exactness: int8 ops reproduce LiteRT's BUILTIN_REF kernels (tests/test_reference.py
compares every fixture model); see each module's docstring for the arithmetic.
"""

from __future__ import annotations

from flashswap.exec.kernels.layout import (
    band_shape,
    from_storage,
    storage_shape,
    to_storage,
)
from flashswap.exec.kernels.step import Band, StepKernel, fused_chain, make_op, prepare

__all__ = ["Band", "StepKernel", "band_shape", "from_storage", "fused_chain", "make_op",
           "prepare", "storage_shape", "to_storage"]
