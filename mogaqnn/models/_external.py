"""Models from timm and torchvision by name: ``timm:NAME`` and ``torchvision:NAME``.

Both are built with random weights (nothing is downloaded) for the dataset's classes and
input channels: timm takes ``in_chans``; a torchvision model's first 3-channel convolution
is rebuilt for the dataset's channels, and the run's log says so.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from torch import nn

from .._torchvision import import_torchvision
from ..errors import ModelError

__all__ = ["EXTERNAL_PREFIXES", "external_model"]

EXTERNAL_PREFIXES = ("timm", "torchvision")
# torchvision builders whose auxiliary classifiers would change the training output.
_NO_AUX = {"googlenet", "inception_v3"}


def _import(package: str) -> ModuleType:
    try:
        if package in EXTERNAL_PREFIXES:
            import_torchvision()  # timm imports torchvision too
        return importlib.import_module(package)
    except ImportError as exc:
        raise ModelError(
            f"{package}: models need the {package} package: pip install 'mogaqnn[{package}]' "
            f"({exc})"
        ) from exc


def external_model(
    spec: str, *, in_channels: int, num_classes: int, note: Callable[[str], None]
) -> nn.Module:
    """Build ``timm:NAME`` or ``torchvision:NAME`` with random weights."""
    package, _, name = spec.partition(":")
    module = _import(package)
    if package == "timm":
        if not module.is_model(name):
            raise ModelError(f"timm has no model {name!r}; 'timm.list_models()' names them")
        return module.create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=in_channels
        )
    models = module.models
    if name not in models.list_models():
        raise ModelError(
            f"torchvision has no model {name!r}; 'torchvision.models.list_models()' names them"
        )
    kwargs = {"aux_logits": False, "init_weights": True} if name in _NO_AUX else {}
    try:
        model = models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except Exception as exc:  # torchvision raises ValueError, TypeError, ...
        raise ModelError(f"torchvision model {name!r} could not be built: {exc}") from exc
    if in_channels != 3:
        first = _adapt_first_conv(model, in_channels)
        note(
            f"torchvision:{name} takes 3-channel images; its first convolution {first} "
            f"was rebuilt for {in_channels} input channel(s) (random weights)"
        )
    return model


def _adapt_first_conv(model: nn.Module, in_channels: int) -> str:
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d) and mod.in_channels == 3 and mod.groups == 1:
            new = nn.Conv2d(
                in_channels, mod.out_channels, mod.kernel_size, stride=mod.stride,
                padding=mod.padding, dilation=mod.dilation, bias=mod.bias is not None,
                padding_mode=mod.padding_mode,
            )  # fmt: skip
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, new)
            return name
    raise ModelError("no 3-channel first convolution found to adapt to the dataset's channels")
