"""Model layer: ViT pieces, decoder, masking, objective, the staged model, and weight adapters."""

from .blockwise import BlockMAE, MaskedBatch
from .masking import make_mask

__all__ = ["BlockMAE", "MaskedBatch", "make_mask"]
