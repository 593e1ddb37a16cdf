"""blockmae: blockwise and end-to-end masked-autoencoder pretraining of video transformers,
and depth-wise analysis of the representations they learn."""

from .config import Config, load_config
from .hub import build_model, load

__version__ = "0.1.0"
__all__ = ["Config", "load_config", "build_model", "load", "__version__"]
