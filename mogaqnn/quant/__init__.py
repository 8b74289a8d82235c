"""Fake-quantized layers (torch's fused ops, STE) and the model conversion."""

from ._convert import LayerBits, calibrate, quantizable_layers, quantize_model
from ._layers import QuantConv2d, QuantLayer, QuantLinear, best_clip_ratio, weight_scale_for
from ._ops import binarize, fake_quant_per_channel, fake_quant_per_tensor, int_range

__all__ = [
    "LayerBits",
    "QuantConv2d",
    "QuantLayer",
    "QuantLinear",
    "best_clip_ratio",
    "binarize",
    "calibrate",
    "fake_quant_per_channel",
    "fake_quant_per_tensor",
    "int_range",
    "quantizable_layers",
    "quantize_model",
    "weight_scale_for",
]
