"""Errors the command line turns into one line (no torch import here, so `blockmae --help` stays fast)."""


class ConfigError(ValueError):
    """A config key or value that cannot be used; the message says what to write instead."""


class NonFiniteLoss(RuntimeError):
    """A stage's loss became NaN or infinite; the run stops before anything is saved over."""


class Interrupted(RuntimeError):
    """Ctrl-C during training; the message says where the last checkpoint is and how to resume."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


class CodeInCheckpoint(ValueError):
    """A checkpoint's pickle holds code (classes, functions), not plain tensors: refused, never run."""
