"""Model zoo: ``create_model(name, in_channels=, num_classes=, image_size=)``."""

# Importing a family module registers its entrypoints.
from . import alexnet, lenet, mobilenetv2, resnet, vgg  # noqa: F401
from ._factory import check_input, resolve_model
from ._layers import make_divisible
from ._registry import ModelSpec, create_model, list_models, model_entrypoint, register_model

__all__ = [
    "ModelSpec",
    "check_input",
    "create_model",
    "list_models",
    "make_divisible",
    "model_entrypoint",
    "register_model",
    "resolve_model",
]
