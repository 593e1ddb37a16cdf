"""Training layer: the engine (every regime), optimiser and schedule, checkpoints, logs."""
