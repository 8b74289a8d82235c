"""Fake-quantized layers (torch's fused ops, STE) and the model conversion."""

from ._convert import LayerBits, calibrate, quantizable_layers, quantize_model, set_range_mode
from ._layers import (
    RANGE_MODES,
    QuantConv2d,
    QuantLayer,
    QuantLinear,
    best_clip_ratio,
    weight_scale_for,
)
from ._ops import (
    binarize,
    fake_quant_per_channel,
    fake_quant_per_tensor,
    int_range,
    lsq_per_channel,
    lsq_per_tensor,
)

__all__ = [
    "LayerBits",
    "QuantConv2d",
    "QuantLayer",
    "QuantLinear",
    "RANGE_MODES",
    "best_clip_ratio",
    "binarize",
    "calibrate",
    "fake_quant_per_channel",
    "fake_quant_per_tensor",
    "int_range",
    "lsq_per_channel",
    "lsq_per_tensor",
    "quantizable_layers",
    "quantize_model",
    "set_range_mode",
    "weight_scale_for",
]
