"""Fake-quantized layers (torch's fused ops, STE), their multi-bit twins (one step per bit
width, for the quantization-aware supernet) and the model conversions."""

from ._convert import (
    LayerBits,
    calibrate,
    fix_bits,
    quantizable_layers,
    quantize_model,
    quantize_multibit,
    set_bits,
    set_range_mode,
)
from ._layers import (
    RANGE_MODES,
    QuantConv2d,
    QuantLayer,
    QuantLinear,
    best_clip_ratio,
    weight_scale_for,
)
from ._multibit import FLOAT_BITS, MultiBitConv2d, MultiBitLayer, MultiBitLinear
from ._ops import (
    binarize,
    fake_quant_per_channel,
    fake_quant_per_tensor,
    int_range,
    lsq_per_channel,
    lsq_per_tensor,
)

__all__ = [
    "FLOAT_BITS",
    "LayerBits",
    "MultiBitConv2d",
    "MultiBitLayer",
    "MultiBitLinear",
    "QuantConv2d",
    "QuantLayer",
    "QuantLinear",
    "RANGE_MODES",
    "best_clip_ratio",
    "binarize",
    "calibrate",
    "fix_bits",
    "fake_quant_per_channel",
    "fake_quant_per_tensor",
    "int_range",
    "lsq_per_channel",
    "lsq_per_tensor",
    "quantizable_layers",
    "quantize_model",
    "quantize_multibit",
    "set_bits",
    "set_range_mode",
    "weight_scale_for",
]
