import os

import pytest
import torch

from blockmae import devices
from blockmae.devices import resolve_device, usable_cpus
from blockmae.errors import ConfigError


def test_usable_cpus_follows_the_affinity_mask(monkeypatch):
    """A run pinned with taskset (or a container's cpuset) starts threads for its own cores, not the machine's."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert usable_cpus() == 1
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # platforms without affinity
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert devices.usable_cpus() == 6


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="train.device='tpu' is not a device"):
        resolve_device("tpu", "train.device")
