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

`k.units` is the number of rows (features in features mode) the step's output has (input
rows in reduce mode). The planner gives a step it cannot band (Concat/Transpose/Softmax
across rows, a view read whole) one unit: call `run_rows(..., 0, k.units)` for it, or pass
`units=step.units` to `prepare`, which makes `k.units == step.units` and unit [0, 1) every
row. `k.span(u0, u1)` gives the rows units [u0, u1) stand for (the identity unless
units=1 was passed for a multi-row step).

Internals the executor may rely on: an int8 convolution's or FC's `k.host.mult` and
`k.host.shift` (int64 arrays, one per output channel) are TFLite's per-channel multipliers
and shifts (QuantizeMultiplier); convolutions apply them, and may be handed staged copies.
LiteRT's reference FULLY_CONNECTED requantizes in double precision from the scales
(`k.host.scale`), so its result does not depend on them.

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
band, weight or buffer of the wrong size. `check_executable(graph)` refuses a graph with int16
activations (TFLite's 16x8 quantization, whose arithmetic the int8 kernels do not follow);
`make_op` still prepares such ops, for their scratch sizes.

Coverage and exactness:
- int8 (TFLite): CONV_2D (groups, dilation), DEPTHWISE_CONV_2D (any depth multiplier),
  FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN (H, W), ADD, SUB, MUL, DIV, MAXIMUM,
  MINIMUM, RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH,
  L2_NORMALIZATION, SOFTMAX, QUANTIZE, DEQUANTIZE, CONCATENATION, PAD, PADV2, TRANSPOSE,
  RESHAPE/SQUEEZE/EXPAND_DIMS, fused RELU, RELU6, RELU_N1_TO_1: byte-identical to LiteRT's
  BUILTIN_REF kernels (tests/test_reference.py; each module's docstring gives the arithmetic).
  No kernel: fused TANH/SIGN_BIT activations, and hybrid ops (int8 weights, float
  activations), which quantize their whole input at run time.
- float32 (ONNX, and float TFLite): Conv (groups, dilation, asymmetric pads), Gemm, MatMul,
  MaxPool, AveragePool (count_include_pad), GlobalAveragePool, GlobalMaxPool, Relu, Clip,
  LeakyRelu, Sigmoid, Tanh, HardSwish, BatchNormalization, LRN, Softmax, Add, Sub, Mul, Div,
  Max, Min, Sum, Concat, Transpose, Pad (constant), QuantizeLinear, DequantizeLinear, and
  the views: within 1e-5 of the output's largest magnitude of ONNX Runtime / LiteRT
  (tests/test_onnx_exec.py states why), and banded == whole byte for byte.
"""

from __future__ import annotations

from flashswap.exec.kernels.layout import (
    band_shape,
    from_storage,
    storage_shape,
    to_storage,
)
from flashswap.exec.kernels.step import (
    Band,
    StepKernel,
    check_executable,
    fused_chain,
    make_op,
    prepare,
)

__all__ = ["Band", "StepKernel", "band_shape", "check_executable", "from_storage", "fused_chain",
           "make_op", "prepare", "storage_shape", "to_storage"]
