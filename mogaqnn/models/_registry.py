"""Model registry in the style of timm: ``@register_model`` and ``create_model(name, ...)``.

Every entrypoint takes the same three shape arguments so that any dataset fits any model:
``in_channels``, ``num_classes`` and ``image_size`` (the side of a square input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import ModelError

__all__ = ["ModelSpec", "register_model", "create_model", "list_models", "model_entrypoint"]

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: ModelBuilder
    description: str


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, description: str = "") -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``builder(in_channels, num_classes, image_size) -> nn.Module`` under ``name``."""

    def wrap(builder: ModelBuilder) -> ModelBuilder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        doc = description or (builder.__doc__ or "").strip().splitlines()[0:1]
        _MODELS[name] = ModelSpec(name, builder, doc if isinstance(doc, str) else "".join(doc))
        return builder

    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_entrypoint(name: str) -> ModelSpec:
    if name not in _MODELS:
        raise ModelError(
            f"unknown model {name!r}; choose one of {', '.join(list_models())} "
            "or give a factory as 'package.module:function'"
        )
    return _MODELS[name]


def create_model(
    name: str, *, in_channels: int = 1, num_classes: int = 10, image_size: int = 28
) -> nn.Module:
    """Build a zoo model for inputs of ``in_channels`` × ``image_size`` × ``image_size``."""
    spec = model_entrypoint(name)
    return spec.builder(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
