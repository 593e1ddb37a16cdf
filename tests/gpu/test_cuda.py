"""What only a CUDA GPU can show (deselected elsewhere; `benchmarks/gpu_check.sh` runs them): our VideoMAE matches
Hugging Face's on the GPU, bf16 autocast stays close to float32, and the memory-lean step keeps less alive."""

import pytest
import torch

from blockmae.bench.steps import hf_twin
from blockmae.model import BlockMAE
from blockmae.regimes import regime_plan
from blockmae.train.step import Micro, Stepper
from helpers import small_config

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def model_and_inputs(*overrides, batch=4, seed=0):
    torch.manual_seed(seed)
    model = BlockMAE(small_config(*overrides).model).to(CUDA)
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, 3, 4, 32, 32, generator=g)
    return model, video.to(CUDA), model.make_mask(batch, g).to(CUDA)


def test_loss_matches_hugging_face_on_the_gpu():
    model, video, mask = model_and_inputs("model.partition=1")
    hf = hf_twin(model)
    with torch.no_grad():
        ours = model.run_plan(video, mask, regime_plan("e2e", 1), decoder_masking=False)[-1].item()
        theirs = hf(video.transpose(1, 2).contiguous(), bool_masked_pos=mask).loss.item()
    assert ours == pytest.approx(theirs, abs=1e-4)


def test_bf16_autocast_step_is_finite_and_close_to_float32():
    losses = {}
    for amp in ("none", "bf16"):
        model, video, mask = model_and_inputs("model.partition=2")
        stepper = Stepper(model, torch.optim.AdamW(model.parameters(), lr=1e-4), amp=amp)
        losses[amp] = stepper.step(regime_plan("simultaneous", 2), [Micro(video, mask)], 1, 1e-4)
    assert all(torch.isfinite(torch.tensor(losses["bf16"])))
    assert losses["bf16"] == pytest.approx(losses["none"], rel=3e-2)


def test_memory_lean_step_keeps_less_memory_alive():
    peak = {}
    for lean in (False, True):
        model, video, mask = model_and_inputs("model.partition=4", "model.depth=8", batch=32)
        stepper = Stepper(model, torch.optim.AdamW(model.parameters(), lr=1e-4), lean=lean)
        stepper.step(regime_plan("simultaneous", 4), [Micro(video, mask)], 1, 1e-4)  # optimiser state exists now
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        stepper.step(regime_plan("simultaneous", 4), [Micro(video, mask)], 1, 1e-4)
        torch.cuda.synchronize()
        peak[lean] = torch.cuda.max_memory_allocated() - before
        del model, stepper
        torch.cuda.empty_cache()
    assert peak[True] < peak[False]
