"""Running models: numpy kernels (`kernels`) and a whole-graph reference interpreter
(`reference`); the executor that runs plans through the store lives beside them."""
