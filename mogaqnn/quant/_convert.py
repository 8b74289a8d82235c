"""Swap every Conv2d / Linear of a float model for its quantized twin, at given bits."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ..errors import ModelError
from ._layers import QuantConv2d, QuantLayer, QuantLinear
from ._multibit import MultiBitConv2d, MultiBitLayer, MultiBitLinear

__all__ = [
    "LayerBits",
    "LayerChoices",
    "calibrate",
    "fix_bits",
    "quantizable_layers",
    "quantize_model",
    "quantize_multibit",
    "set_bits",
    "set_range_mode",
]

LayerBits = Mapping[str, tuple[int, int]]
"""Layer name -> (weight bits, input activation bits)."""

_QUANT_CLASS: dict[type[nn.Module], type] = {nn.Conv2d: QuantConv2d, nn.Linear: QuantLinear}
# Subclasses that compute exactly what their torch base does, so its quantized twin can take
# their place. Other subclasses stay float: their forward may differ (timm's Conv2dSame pads
# at run time). timm's Linear only adds a TorchScript dtype cast (timm models' heads).
_PLAIN_SUBCLASSES: dict[str, type[nn.Module]] = {"timm.layers.linear.Linear": nn.Linear}


def _quant_class(layer: nn.Module) -> type | None:
    kind = type(layer)
    plain = _PLAIN_SUBCLASSES.get(f"{kind.__module__}.{kind.__qualname__}", kind)
    return _QUANT_CLASS.get(plain)


def quantizable_layers(model: nn.Module) -> list[str]:
    """Names of every Conv2d and Linear (and subclass known to compute the same), in module
    order (the genome's layer order)."""
    return [n for n, m in model.named_modules() if _quant_class(m) is not None]


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def quantize_model(model: nn.Module, bits: LayerBits) -> nn.Module:
    """Replace, in place, each named layer by a fake-quantized one at its bits; return model.

    Activation ranges are calibrated on the first forward pass (see :func:`calibrate`).
    """
    for name, (w_bits, a_bits) in bits.items():
        try:
            layer = model.get_submodule(name)
        except AttributeError as exc:
            raise ModelError(f"the model has no layer named {name!r} to quantize") from exc
        cls = _quant_class(layer)
        if cls is None:
            raise ModelError(f"layer {name!r} is a {type(layer).__name__}, not Conv2d or Linear")
        _set_submodule(model, name, cls.from_float(layer, w_bits, a_bits))
    return model


@torch.no_grad()
def calibrate(model: nn.Module, x: torch.Tensor, *, batch_statistics: bool = False) -> None:
    """Set every quantized layer's activation range from one batch, in eval mode (so
    BatchNorm's running statistics are not touched); a multi-bit layer's at every bit width.

    ``batch_statistics``: BatchNorm normalises by the batch's own statistics instead of its
    running ones (which are restored afterwards), for a network whose running statistics
    describe nothing (a supernet's mix every width)."""
    was_training = model.training
    model.eval()
    for m in model.modules():
        if isinstance(m, (QuantLayer, MultiBitLayer)):
            m.set_activation_state(calibrated=False)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [copy.deepcopy(m.state_dict()) for m in norms] if batch_statistics else []
    for m in norms if batch_statistics else []:
        m.train()
    model(x)
    for m, state in zip(norms, saved):
        m.load_state_dict(state)
    model.train(was_training)


def set_range_mode(model: nn.Module, mode: str) -> nn.Module:
    """Let every quantized layer's ranges follow training by ``mode`` (``fixed``, ``ema``
    or ``lsq``; see :mod:`._layers`), starting from the calibrated ones; return model."""
    for m in model.modules():
        if isinstance(m, QuantLayer):
            m.set_range_mode(mode)
    return model


LayerChoices = Mapping[str, tuple[Iterable[int], Iterable[int]]]
"""Layer name -> (weight bit choices, activation bit choices)."""


def quantize_multibit(model: nn.Module, choices: LayerChoices) -> nn.Module:
    """Replace, in place, each named Conv2d / Linear by its multi-bit twin (weight steps
    from its weights; activation steps on the first forward pass, or ``calibrate``)."""
    for name, (w_choices, a_choices) in choices.items():
        layer = model.get_submodule(name)
        plain = _quant_class(layer)
        if plain is None:
            raise ModelError(f"layer {name!r} is a {type(layer).__name__}, not Conv2d or Linear")
        cls = MultiBitConv2d if plain is QuantConv2d else MultiBitLinear
        _set_submodule(model, name, cls.from_float(layer, w_choices, a_choices))
    return model


def set_bits(model: nn.Module, bits: Mapping[str, tuple[int, int]]) -> None:
    """The bits every named multi-bit layer quantizes at from the next forward pass on."""
    for name, (w, a) in bits.items():
        layer = model.get_submodule(name)
        if not isinstance(layer, MultiBitLayer):
            raise ModelError(f"layer {name!r} is not a multi-bit layer")
        layer.set_bits(w, a)


def fix_bits(model: nn.Module, bits: Mapping[str, tuple[int, int]]) -> nn.Module:
    """Replace, in place, each named multi-bit layer by the plain layer at its bits
    (``MultiBitLayer.at_bits``); return model."""
    for name, (w, a) in bits.items():
        layer = model.get_submodule(name)
        if not isinstance(layer, MultiBitLayer):
            raise ModelError(f"layer {name!r} is not a multi-bit layer")
        _set_submodule(model, name, layer.at_bits(w, a))
    return model
