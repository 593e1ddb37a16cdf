"""The one place a device name ("auto", "cpu", "cuda", "cuda:N") becomes a torch device, and the one count of
the CPU cores a process may use."""

from __future__ import annotations

import os

import torch

from .errors import ConfigError


def resolve_device(name: str | torch.device | None = "auto", key: str = "device") -> torch.device:
    """`auto` (or None): the GPU when there is one, else the CPU. Asking for CUDA without one is an error
    naming `key` (the config key or option that asked)."""
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}='{name}' but no CUDA device is available; use {key}=cpu (or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{key}='{name}' is not a device; use auto, cpu, cuda or cuda:N") from None


def usable_cpus() -> int:
    """The cores this process may run on: its CPU affinity where the system reports one (so `taskset` or a
    container's cpuset bounds the threads started), else every core."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity on this platform (macOS, Windows)
        return os.cpu_count() or 1
