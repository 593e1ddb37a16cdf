"""The correctness check behind every speed comparison: Hugging Face and ours give the same first-step loss."""

from __future__ import annotations

LOSS_TOLERANCE = 1e-4  # |HF - ours| on the first step, same weights, input and mask (tests/model: ~2e-5)
BF16_LOSS_TOLERANCE = 1e-2  # the same under bf16 autocast (the float32 check is tests/gpu, and the loss check above)


def first_losses_match(hf_loss: float, ours_loss: float, tolerance: float = LOSS_TOLERANCE) -> dict:
    """Compare the Hugging Face loss with ours on the same first step (same weights, input, mask)."""
    diff = abs(hf_loss - ours_loss)
    return {"hf": hf_loss, "ours": ours_loss, "abs_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance}
