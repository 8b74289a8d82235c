"""Model zoo: ``create_model(name, in_channels=, num_classes=, image_size=)``."""

from . import lenet  # noqa: F401  (registers its entrypoints)
from ._registry import ModelSpec, create_model, list_models, model_entrypoint, register_model

__all__ = ["ModelSpec", "create_model", "list_models", "model_entrypoint", "register_model"]
