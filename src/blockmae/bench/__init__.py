"""Benchmarks: ours against Hugging Face VideoMAE, every regime, and the levers that make blockwise cheaper.

`blockmae bench ...` (or `python -m blockmae.bench ...`) runs `main`; see `harness` for what is measured
and docs/performance.md for the numbers.
"""

from .harness import PRESETS, add_arguments, configurations, format_report, main, run, run_from_args
from .steps import first_losses_match, hf_loss_check

__all__ = ["PRESETS", "add_arguments", "configurations", "first_losses_match", "format_report", "hf_loss_check",
           "main", "run", "run_from_args"]
