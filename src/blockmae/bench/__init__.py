"""Benchmarks: ours against Hugging Face VideoMAE, every regime, and the levers that make blockwise cheaper.

`blockmae bench ...` (or `python -m blockmae.bench ...`) runs `main` (`arguments`). The throughput bench:
`presets` and `configurations` say what is measured, `harness` runs each configuration through `launch` in a
fresh `worker` process (`steps` and `probes` inside it), `summary` derives the ratios and verdicts, `report`
prints the table. `accuracy` trains the levers and probes them (`--accuracy`), `pipeline` times the blockwise
pipeline (`--pipeline`). Importing this package does not import torch (the CLI builds its parser from
`add_arguments`).
"""

from .arguments import add_arguments, main, run_from_args
from .configurations import configurations
from .harness import run
from .losscheck import first_losses_match
from .presets import PRESETS
from .report import format_report

__all__ = ["PRESETS", "add_arguments", "configurations", "first_losses_match", "format_report", "main", "run",
           "run_from_args"]
