"""The two quantizers of the ONNX graph as torch custom ops, with their ONNX translations.

``torch.onnx.export(..., dynamo=True)`` captures the model with ``torch.export``; it has no
ONNX translation for torch's fake-quant ops, so the exported module calls these ops instead
and the exporter's ``custom_translation_table`` turns each into ONNX's own operators:

- ``dequantize_weight(codes, scale)``: int8 codes [out, ...] times a per-output-channel
  scale, ``DequantizeLinear(codes, scale, axis=0)``; the codes become an int8 initializer.
- ``quantize_dequantize(x, scale, signed)``: the 8-bit per-tensor quantizer
  ``DequantizeLinear(QuantizeLinear(x, scale, 0), scale, 0)``, int8 or uint8.

The torch implementations compute what ONNX specifies (``x / scale`` rounded half to even,
saturated), so the module that is exported predicts what onnxruntime does.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["OPSET", "dequantize_weight", "quantize_dequantize", "onnx_translations"]

OPSET = 18  # QuantizeLinear / DequantizeLinear with per-axis scales, as the exporter emits


@torch.library.custom_op("mogaqnn::dequantize_weight", mutates_args=())
def dequantize_weight(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * (codes.dim() - 1)
    return codes.float() * scale.view(shape)


@dequantize_weight.register_fake
def _(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return torch.empty(codes.shape, dtype=torch.float32, device=codes.device)


@torch.library.custom_op("mogaqnn::quantize_dequantize", mutates_args=())
def quantize_dequantize(x: torch.Tensor, scale: torch.Tensor, signed: bool) -> torch.Tensor:
    lo, hi = (-128, 127) if signed else (0, 255)
    return torch.clamp(torch.round(x / scale), lo, hi) * scale  # torch.round: half to even


@quantize_dequantize.register_fake
def _(x: torch.Tensor, scale: torch.Tensor, signed: bool) -> torch.Tensor:
    return torch.empty_like(x)


def onnx_translations() -> dict[Any, Any]:
    """``custom_translation_table`` of ``torch.onnx.export``: each op as ONNX operators."""
    from onnx import TensorProto, helper
    from onnxscript import opset18 as op

    def onnx_dequantize_weight(codes, scale):
        return op.DequantizeLinear(codes, scale, axis=0)

    def onnx_quantize_dequantize(x, scale, signed: bool):
        kind = TensorProto.INT8 if signed else TensorProto.UINT8
        zero = op.Constant(value=helper.make_tensor("zero_point", kind, [], [0]))
        return op.DequantizeLinear(op.QuantizeLinear(x, scale, zero), scale, zero)

    return {
        torch.ops.mogaqnn.dequantize_weight.default: onnx_dequantize_weight,
        torch.ops.mogaqnn.quantize_dequantize.default: onnx_quantize_dequantize,
    }
