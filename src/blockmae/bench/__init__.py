"""Benchmarks: ours against Hugging Face VideoMAE, every regime, and the levers that make blockwise cheaper.

`blockmae bench ...` (or `python -m blockmae.bench ...`) runs `main`; `harness` says what is measured,
`worker` measures one configuration in a fresh process, `steps` holds the steps and probes;
`accuracy` trains the levers and probes them (`--accuracy`), `pipeline` times the blockwise pipeline (`--pipeline`).
Importing this package does not import torch (the CLI builds its parser from `add_arguments`).
"""

from .common import first_losses_match
from .harness import PRESETS, add_arguments, configurations, format_report, main, run, run_from_args

__all__ = ["PRESETS", "add_arguments", "configurations", "first_losses_match", "format_report", "main", "run",
           "run_from_args"]
