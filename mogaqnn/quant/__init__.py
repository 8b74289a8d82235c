"""Fake-quantized layers (torch's fused ops, STE) and the model conversion."""

from ._convert import LayerBits, calibrate, quantizable_layers, quantize_model
from ._layers import QuantConv2d, QuantLayer, QuantLinear, init_weight_scale
from ._ops import binarize, fake_quant_per_channel, fake_quant_per_tensor, int_range

__all__ = [
    "LayerBits",
    "QuantConv2d",
    "QuantLayer",
    "QuantLinear",
    "binarize",
    "calibrate",
    "fake_quant_per_channel",
    "fake_quant_per_tensor",
    "init_weight_scale",
    "int_range",
    "quantizable_layers",
    "quantize_model",
]
