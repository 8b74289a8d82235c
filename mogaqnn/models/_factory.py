"""Resolve the model a search starts from: a zoo name, 'package.module:factory', or a module."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ModelError
from ._external import EXTERNAL_PREFIXES, external_model
from ._registry import create_model

__all__ = ["check_input", "resolve_model"]


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
    model = _build(spec, in_channels=in_channels, num_classes=num_classes,
                   image_size=image_size, note=note)  # fmt: skip
    check_input(model, spec if isinstance(spec, str) else type(model).__name__,
                in_channels=in_channels, image_size=image_size)  # fmt: skip
    return model


def _build(
    spec: str | nn.Module,
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    note: Callable[[str], None] | None,
) -> nn.Module:
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


# Larger sides tried when a model fails at the dataset's, to say which size it needs.
_SIDES = (32, 64, 96, 128, 224, 299)


@torch.no_grad()
def check_input(model: nn.Module, name: str, *, in_channels: int, image_size: int) -> None:
    """One forward pass (eval mode) on a zero image of the dataset's shape, so that a model
    that cannot take it stops before any training, with one sentence: which side it needs
    when a larger image runs (the input is too small for its pooling), else the error."""
    was_training = model.training
    model.eval()
    try:
        error = _forward_error(model, in_channels, image_size)
        if error is None:
            return
        needed = next((s for s in _SIDES if s > image_size
                       and _forward_error(model, in_channels, s) is None), None)  # fmt: skip
    finally:
        model.train(was_training)
    if needed is not None:
        raise ModelError(
            f"the dataset's {image_size}x{image_size} images are too small for {name}, which "
            f"runs on {needed}x{needed} ones ({error}); choose a model for smaller images or "
            "a dataset of larger ones"
        )
    raise ModelError(
        f"{name} fails on an input of shape ({in_channels}, {image_size}, {image_size}): {error}"
    )


def _forward_error(model: nn.Module, channels: int, side: int) -> str | None:
    """The first line of what a forward pass at ``side`` pixels raises, None if it runs."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        model(torch.zeros(2, channels, side, side, device=device))
    except Exception as exc:  # torch raises RuntimeError, ValueError, IndexError, ...
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return None
