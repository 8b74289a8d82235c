"""Resolve the model a search starts from: a zoo name, 'package.module:factory', or a module."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from torch import nn

from ..errors import ModelError
from ._external import EXTERNAL_PREFIXES, external_model
from ._registry import create_model

__all__ = ["resolve_model"]


def resolve_model(
    spec: str | nn.Module,
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    note: Callable[[str], None] | None = None,
) -> nn.Module:
    """Build the FP32 model. A factory is called with the keyword arguments it accepts
    among ``in_channels``, ``num_classes`` and ``image_size``; ``timm:NAME`` and
    ``torchvision:NAME`` build those packages' models (what was adapted goes to ``note``)."""
    if isinstance(spec, nn.Module):
        return spec
    if spec.partition(":")[0] in EXTERNAL_PREFIXES:
        return external_model(
            spec, in_channels=in_channels, num_classes=num_classes,
            note=note or (lambda message: None),
        )  # fmt: skip
    if ":" not in spec:
        return create_model(
            spec, in_channels=in_channels, num_classes=num_classes, image_size=image_size
        )
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"cannot import module {module_name!r} for model {spec!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ModelError(f"module {module_name!r} has no callable {attr!r} for model {spec!r}")
    offered = {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}
    try:
        params = inspect.signature(factory).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in offered.items() if takes_kwargs or k in params}
    except (TypeError, ValueError):  # builtins without a signature
        kwargs = {}
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise ModelError(f"model factory {spec!r} failed: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"model factory {spec!r} returned a {type(model).__name__}, not a Module")
    return model
