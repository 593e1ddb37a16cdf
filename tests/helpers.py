"""Shared test helpers (a plain module: several test folders have a conftest.py of their own)."""

from blockmae.config import load_config


def small_config(*overrides: str):
    """A model small enough for unit tests; every shape still comes from the config."""
    base = ["model.frames=4", "model.image_size=32", "model.patch=8", "model.width=64", "model.heads=4",
            "model.depth=4", "model.decoder.width=32", "model.decoder.heads=2", "model.decoder.depth=1"]
    return load_config(None, base + list(overrides))
