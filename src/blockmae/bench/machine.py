"""What the bench ran on: CPU, cores, versions, GPU, load; and the one-line description every report starts with."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine(device: str) -> dict:
    """The machine and software behind a result; `device` is the device type measured ("cpu" or "cuda")."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch  # here, not at the top: the CLI imports the bench to build its parser, which needs no torch

    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "device": device, "torch_threads_default": torch.get_num_threads()}
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_start"] = os.getloadavg()[0]
    return info


def note_load_at_end(info: dict) -> None:
    """Add the load average at the end to `info`: a busy shared machine shows up in the results."""
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_end"] = os.getloadavg()[0]


def describe_machine(info: dict, threads: int | None = None) -> str:
    dev = info.get("gpu") or info["cpu"]
    return (f"machine: {info['cpu']}, {info['cores']} cores; device {info['device']}"
            + (f" ({dev})" if info.get("gpu") else "")
            + f"; torch {info['torch']}, transformers {info.get('transformers')}, Python {info['python']}; "
            + f"torch threads {threads or info['torch_threads_default']}"
            + (f"; load average {info['load_average_1min_at_start']:.1f} at start" if "load_average_1min_at_start" in info else ""))
