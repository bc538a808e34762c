"""Running a plan: out-of-core inference through the swap store, bit-exact against LiteRT.

- arena.py: the one SRAM arena (a byte buffer the budget's size) and its measured peak;
- weights.py: the weights region on flash (parameter blocks, read back by WEIGHT_READ);
- views.py: tensors as numpy views of arena bytes (channels-last rows);
- ops.py: one `Compute` instruction of a step, through the kernels (kernels/);
- executor.py: follows a plan's program instruction by instruction through a `Store`;
- verdict.py: the reference output (LiteRT's reference kernels, ONNX Runtime) and the
  comparison;
- reference.py: a whole-graph interpreter on the same kernels (no tiling, no flash).
"""
