"""`blockmae screen`: does depth pay in a pretraining setting? `run`: the runs, the held-out loss rule, the page
and the curves; `probes`: the probe rule."""

from .run import held_out_curve, run_screen, screen_markdown, screen_result, screen_runs

__all__ = ["held_out_curve", "run_screen", "screen_markdown", "screen_result", "screen_runs"]
