"""The probes around a benchmark step: its peak memory (resident set or CUDA allocated, and live tensor bytes),
its FLOPs, the machine's fp32 matmul rate, and the glibc malloc settings that keep CPU timings honest."""

from __future__ import annotations

import ctypes
import resource
import time
from typing import Callable

import torch


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
    includes). From the PyTorch profiler's allocator records, every allocation and free in time order, read raw:
    building its per-op event tree costs ~1 s per step and would move each record to its op's start."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    host = (DeviceType.CPU, DeviceType.MKLDNN, DeviceType.IDEEP)
    records = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]" and e.device_type() in host)
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
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
    """Wait for the GPU's queued work, so a clock read after it sees the work done (nothing to wait for on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
