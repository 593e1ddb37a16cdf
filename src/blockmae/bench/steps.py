"""What a benchmark configuration runs: models with identical weights, inputs and masks, one step of each kind,
and the probes around it (peak memory, FLOPs, the machine's matmul rate).

Our training step is the engine's (`train/engine.py`): `run_plan` with the memory-lean backward callback,
one backward for what is left, `loss.item()` per stage, AdamW step, `zero_grad(set_to_none=True)`. The
Hugging Face step is what a user of `VideoMAEForPreTraining` writes: forward, `loss.backward()`, the same
optimizer with the same parameter groups, `loss.item()`.
"""

from __future__ import annotations

import ctypes
import os
import resource
import time
from typing import Callable

import torch

from ..config import Config
from ..model import BlockMAE, regime_plan
from ..model.convert import hf_config_from_model, to_hf
from ..train.optim import build_optimizer
from .common import first_losses_match


# ----------------------------------------------------------------------------- models and inputs

def build_ours(cfg: Config, seed: int, device: torch.device) -> BlockMAE:
    torch.manual_seed(seed)
    return BlockMAE(cfg.model).to(device)


def hf_twin(model: BlockMAE) -> torch.nn.Module:
    """Hugging Face `VideoMAEForPreTraining` carrying `model`'s weights (top stage's decoder), on its device."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    hf = VideoMAEForPreTraining(VideoMAEConfig(**hf_config_from_model(model.cfg)))
    hf.load_state_dict(to_hf({k: v.cpu() for k, v in model.state_dict().items()}))
    return hf.to(next(model.parameters()).device)


def make_inputs(model: BlockMAE, cfg: Config, batch: int, count: int, seed: int,
                device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A normalised clip batch (B, C, T, H, W) and `count` masks, the same for every configuration and seed."""
    m = cfg.model
    gen = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, m.channels, m.frames, m.image_size, m.image_size, generator=gen)
    masks = [model.make_mask(batch, torch.Generator().manual_seed(seed * 100_003 + i), cfg.mask.kind, cfg.mask.ratio)
             for i in range(count)]
    return video.to(device), [mask.to(device) for mask in masks]


def make_optimizer(model: torch.nn.Module, kind: str = "engine") -> torch.optim.Optimizer:
    """The engine's AdamW (`build_optimizer`: no decay on norms, biases, mask tokens; the fused kernel where
    PyTorch has one); `unfused`: the same groups with PyTorch's default AdamW implementation."""
    lr, weight_decay, betas = 1e-4, 0.05, (0.9, 0.95)
    if kind not in ("engine", "unfused"):
        raise ValueError(f"optimizer '{kind}' must be 'engine' or 'unfused'")
    return build_optimizer(model, lr, weight_decay, betas, fused=False if kind == "unfused" else None)


# ----------------------------------------------------------------------------- steps

Step = Callable[[int], list[float]]


def ours_train_step(model: BlockMAE, optimizer, video: torch.Tensor, masks: list[torch.Tensor], regime: str,
                    lean: bool, phase_of: Callable[[int], int] = lambda i: 0) -> Step:
    """The engine's step for `regime` on step i's mask; returns the per-stage losses (None: not computed)."""
    model.train()

    def backward_now(k: int, loss: torch.Tensor) -> None:
        loss.backward()

    def step(i: int) -> list[float]:
        plan = regime_plan(regime, model.num_stages, phase_of(i))
        losses = model.run_plan(video, masks[i % len(masks)], plan, backward=backward_now if lean else None)
        pending = [loss for loss in losses if loss is not None and loss.requires_grad]
        if pending:
            sum(pending).backward()
        values = [loss.item() if loss is not None else None for loss in losses]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return values

    return step


def hf_train_step(hf, optimizer, video: torch.Tensor, masks: list[torch.Tensor]) -> Step:
    hf.train()
    pixel_values = video.transpose(1, 2).contiguous()  # Hugging Face takes (B, T, C, H, W)

    def step(i: int) -> list[float]:
        loss = hf(pixel_values, bool_masked_pos=masks[i % len(masks)]).loss
        loss.backward()
        value = loss.item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return [value]

    return step


def ours_extract_step(model: BlockMAE, video: torch.Tensor, inference: bool) -> Step:
    """Analysis features: every layer's tokens of unmasked clips, pooled over tokens (eval/features.py)."""
    model.eval()

    def step(i: int) -> list[float]:
        with torch.inference_mode() if inference else torch.no_grad():
            pooled = [tokens.mean(dim=1) for tokens in model.encode(video, at="layers")]
        return [pooled[-1].float().abs().mean().item()]

    return step


def hf_extract_step(hf, video: torch.Tensor, inference: bool) -> Step:
    hf.eval()
    pixel_values = video.transpose(1, 2).contiguous()

    def step(i: int) -> list[float]:
        with torch.inference_mode() if inference else torch.no_grad():
            hidden = hf.videomae(pixel_values, output_hidden_states=True).hidden_states[1:]
            pooled = [tokens.mean(dim=1) for tokens in hidden]
        return [pooled[-1].float().abs().mean().item()]

    return step


# ----------------------------------------------------------------------------- the loss check

def hf_loss_check(cfg: Config, batch: int = 2, seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Build ours (E2E, one stage) and its Hugging Face twin with the same weights; compare their losses
    on the same input and mask, in training mode, before any update."""
    device = torch.device(device)
    if cfg.model.partition not in (1, [cfg.model.depth]):
        raise ValueError(f"the Hugging Face check needs model.partition=1 (one decoder), got {cfg.model.partition}")
    ours = build_ours(cfg, seed, device)
    hf = hf_twin(ours)
    video, masks = make_inputs(ours, cfg, batch, 1, seed, device)
    ours.train()
    hf.train()
    with torch.no_grad():
        (loss,) = ours.run_plan(video, masks[0], regime_plan("e2e", 1), decoder_masking=False)
        theirs = hf(video.transpose(1, 2), bool_masked_pos=masks[0]).loss
    return first_losses_match(theirs.item(), loss.item())


# ----------------------------------------------------------------------------- probes

class PeakMemory:
    """Peak memory of what runs after `rest()`: CUDA allocated bytes, or the process's resident set on CPU.

    On Linux the RSS high-water mark is reset at `rest()` (/proc/self/clear_refs), so `peak()` is the peak of
    the timed steps alone; elsewhere it falls back to the peak since the process started.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.resting = 0
        self.method = "cuda.max_memory_allocated" if device.type == "cuda" else "VmHWM (peak RSS)"

    @staticmethod
    def _status(key: str) -> int | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def rest(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.resting = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        rss = self._status("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
        except OSError:
            self.method = "ru_maxrss (peak since start)"
        self.resting = rss or 0

    def peak(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device)
        hwm = self._status("VmHWM") if self.method.startswith("VmHWM") else None
        return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_flash_mapping() -> dict:
    """FLOP formulas for PyTorch's CPU flash-attention kernels, which FlopCounterMode does not list."""
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten
    mapping = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = \
            lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v)
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = \
            lambda g, q, k, v, *args, out_shape=None, **kwargs: sdpa_backward_flop_count(g, q, k, v)
    return mapping


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matmuls, convolutions and attention `fn` runs (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_cpu_flash_mapping()) as counter:
        fn()
    return int(counter.get_total_flops())


def live_tensor_peak(fn: Callable[[], object]) -> int:
    """Peak bytes of live tensors while `fn` runs, above what was alive before it (CPU; the analogue of
    `torch.cuda.max_memory_allocated`, free of the heap's fragmentation and retention that the resident set
    includes). From the PyTorch profiler's allocator records: every allocation and free, in time order."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    live = peak = 0
    for e in events:  # each allocation counted once: an op's own (not its children's), or a bare [memory] record
        live += e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def matmul_flops(device: torch.device, n: int | None = None, repeats: int = 3, timer: str = "wall") -> dict:
    """The machine's fp32 matmul rate: the best of `repeats` timed n x n products (after one warm-up).

    `timer="cpu"` times the process's CPU time, as the training steps are timed with `--timer cpu` (CPU only).
    """
    n = n or (8192 if device.type == "cuda" else 4096)
    clock = time.process_time if timer == "cpu" and device.type == "cpu" else time.perf_counter
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for i in range(repeats + 1):
        sync(device)
        start = clock()
        a @ b
        sync(device)
        if i:
            best = min(best, clock() - start)
    return {"n": n, "seconds": best, "flop_per_s": 2 * n ** 3 / best, "timer": timer}


def tune_glibc_malloc() -> bool:
    """Keep freed heap memory for reuse instead of handing it back to the OS after every large tensor.

    With glibc's defaults a CPU step allocates and frees tensors of several MB; the freed top of the heap is
    trimmed and the next allocation page-faults it back in (measured: 3x more minor faults and ~20% slower
    feature extraction, depending on what else the process holds). Raising the trim and mmap thresholds
    (what jemalloc/tcmalloc do by design) removes that. Linux/glibc only; returns whether it applied.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = libc.mallopt(m_trim_threshold, 2 ** 30) and libc.mallopt(m_mmap_threshold, 32 * 2 ** 20) \
            and libc.mallopt(m_top_pad, 64 * 2 ** 20)
        return bool(ok)
    except (OSError, AttributeError):
        return False


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so the resident set is what is alive."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def threads_note() -> str:
    return f"{torch.get_num_threads()} torch threads" + (
        f", OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in os.environ else "")
