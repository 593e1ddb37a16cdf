"""The analysis figures, drawn from tidy metric rows alone (the rows of `metrics.jsonl`, see `analysis.rows`).

Every `fig_*` function takes the rows and an output folder, writes PNGs (150 dpi) and returns their paths;
it returns `[]` and writes nothing when the rows lack what it needs. A group of runs (same model, regime
and K) is shown as the mean over its seeds with a 95% t-interval (no band for a group of one). Colours
follow the regime in every figure; marker follows K, line style follows the model; the random-initialisation
floor (several random encoders) is dashed grey with its band. Probe panels draw chance dotted, loss panels the
trivial predictors (`references`); depth by block is relative (block k of K at k/K).

style: colours, markers, metric axes, the depth axis and canvas helpers; references: chance, the floor and the
trivial predictors; final_block, curves, heatmaps, reconstructions: the figures; captions: what the report says
about each; registry: all of them by name.
"""

from .captions import CAPTIONS
from .registry import FIGURES, make_all_figures, remove_figures

__all__ = ["CAPTIONS", "FIGURES", "make_all_figures", "remove_figures"]
