"""Model layer: ViT pieces, decoder, masking, objective, the staged model, and weight adapters."""

from .blockwise import BlockMAE, Plan, regime_plan
from .masking import make_mask

__all__ = ["BlockMAE", "Plan", "regime_plan", "make_mask"]
