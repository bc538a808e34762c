"""Running models: numpy kernels (`kernels`), a whole-graph reference interpreter
(`reference`), and the executor that runs plans through the store:

- arena.py: the one SRAM arena (a byte buffer the budget's size) and its measured peak;
- weights.py: the weights region on flash (parameter blocks, read back by WEIGHT_READ);
- ops.py: one `Compute` instruction of a step, through the kernels;
- executor.py: follows a plan's program instruction by instruction through a `Store`;
- device.py: a simulated device (store partition, weights partition, executor);
- verdict.py: the reference output (LiteRT's reference kernels, ONNX Runtime) and the
  comparison.
"""
