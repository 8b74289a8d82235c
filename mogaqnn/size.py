"""Model size, defined once (DESIGN.md). The objective, the report and the export call this.

size_bits = Σ over quantized layers (weight count × weight bits)
          + per-output-channel scales at 32 bits
          + biases and folded BatchNorm parameters at 32 bits
          + one 32-bit activation scale and its 1-bit signedness per quantized layer
          + any layer left in float at 32 bits per parameter.

A BatchNorm that directly follows a quantized layer folds into that layer's per-channel
scale and bias, so it adds one 32-bit bias per channel (none when the layer already has a
bias, which absorbs it). The FP32 reference is every parameter at 32 bits with BatchNorm
folded the same way, as a deployed float model stores it: a BatchNorm after a conv or
linear layer becomes that layer's bias (a new one when it had none).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .quant import QuantLayer

__all__ = [
    "SizeBreakdown",
    "model_size",
    "fp32_size_bits",
    "KIB_BITS",
    "ACT_SCALE_BITS",
    "layer_macs",
    "bit_operations",
    "bit_operations_at",
]

KIB_BITS = 8 * 1024
FLOAT_BITS = 32
ACT_SCALE_BITS = FLOAT_BITS + 1  # one float32 scale and one signedness bit


@dataclass(frozen=True)
class SizeBreakdown:
    weight_bits: int  # quantized weights at their bit widths
    scale_bits: int  # one 32-bit scale per output channel of each quantized layer
    bias_bits: int  # biases and folded BatchNorm, 32 bits per output channel
    float_bits: int  # everything left in float, 32 bits per parameter
    act_scale_bits: int = 0  # per quantized layer: its input's 32-bit scale and 1-bit sign

    @property
    def total_bits(self) -> int:
        return (self.weight_bits + self.scale_bits + self.bias_bits + self.float_bits
                + self.act_scale_bits)  # fmt: skip

    @property
    def kib(self) -> float:
        return self.total_bits / KIB_BITS


def fp32_size_bits(model: nn.Module, bn_fold: Mapping[str, str] | None = None) -> int:
    """The 32-bit float reference: every parameter at 32 bits, each BatchNorm of ``bn_fold``
    (BatchNorm name -> the conv or linear layer it follows) folded into that layer's
    weights and bias, as a deployed float model stores it."""
    modules = dict(model.named_modules())
    dropped = 0
    for bn, layer in (bn_fold or {}).items():
        if bn not in modules or layer not in modules:
            continue
        dropped += sum(p.numel() for p in modules[bn].parameters(recurse=False))
        if getattr(modules[layer], "bias", None) is None:
            dropped -= modules[layer].weight.shape[0]  # the fold adds a bias
    return FLOAT_BITS * (sum(p.numel() for p in model.parameters()) - dropped)


def model_size(model: nn.Module, bn_fold: Mapping[str, str] | None = None) -> SizeBreakdown:
    """Size of ``model`` whose quantized layers are :class:`QuantLayer` modules.

    ``bn_fold`` maps a BatchNorm's name to the layer it follows (from the graph analysis);
    a BatchNorm not in it, or following a float layer, stays in float.
    """
    modules = dict(model.named_modules())
    quantized = {n for n, m in modules.items() if isinstance(m, QuantLayer)}
    folded_into: dict[str, str] = {
        bn: layer for bn, layer in (bn_fold or {}).items() if layer in quantized and bn in modules
    }
    layers_with_folded_bn = set(folded_into.values())
    weight = scale = bias = 0
    counted: set[int] = set()
    for name in quantized:
        m = modules[name]
        out_channels = m.weight.shape[0]
        weight += m.weight.numel() * m.weight_bits
        scale += out_channels * FLOAT_BITS
        if m.bias is not None or name in layers_with_folded_bn:
            bias += out_channels * FLOAT_BITS
        counted.update(id(p) for p in m.parameters(recurse=False))
    for bn in folded_into:
        counted.update(id(p) for p in modules[bn].parameters(recurse=False))
    float_bits = FLOAT_BITS * sum(p.numel() for p in model.parameters() if id(p) not in counted)
    return SizeBreakdown(weight, scale, bias, float_bits, ACT_SCALE_BITS * len(quantized))


# -- bit operations: the cost of inference ------------------------------------------------------
def layer_macs(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates per sample of every Conv2d and Linear (quantized or not), from
    one forward pass of ``example`` (a batch of one, at the dataset's input shape)."""
    macs: dict[str, int] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            per_output = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            per_output = m.in_features
        else:
            continue

        def count(module, inputs, output, name=name, per_output=per_output):
            macs[name] = macs.get(name, 0) + output[0].numel() * per_output

        hooks.append(m.register_forward_hook(count))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example[:1])
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return macs


def bit_operations(model: nn.Module, macs: Mapping[str, int]) -> int:
    """BOPs = Σ over quantized layers of MACs × weight bits × activation bits (``macs`` from
    :func:`layer_macs`); a layer left in float counts at 32 × 32 bits."""
    bits = {name: (m.weight_bits, m.act_bits) for name, m in model.named_modules()
            if isinstance(m, QuantLayer)}  # fmt: skip
    return bit_operations_at(macs, bits)


def bit_operations_at(macs: Mapping[str, int], bits: Mapping[str, tuple[int, int]]) -> int:
    """The same count from the layers' (weight bits, activation bits) alone, without a
    quantized model: a layer of ``macs`` missing from ``bits`` is float (32 × 32)."""
    return sum(n * math.prod(bits.get(name, (FLOAT_BITS, FLOAT_BITS))) for name, n in macs.items())
