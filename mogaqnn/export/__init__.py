"""Exports of a trained individual: a bit-packed file at its own bit widths, and ONNX (QDQ).

>>> from mogaqnn.export import export_packed, load_packed  # doctest: +SKIP
>>> export_packed("runs/x")            # runs/x/model.mogaqnn, its size = the size formula
>>> model = load_packed("runs/x/model.mogaqnn")  # a torch module predicting as trained
"""

from ..run import RunContext, load_run, load_run_data
from ._container import ContainerInfo, container_info
from ._fold import DequantConv2d, DequantLinear
from ._onnx import OnnxExport, export_onnx, onnx_predict, write_onnx
from ._packed import PackedExport, export_packed, load_packed, write_packed
from ._rebuild import RunModel, load_run_model

__all__ = [
    "ContainerInfo",
    "DequantConv2d",
    "DequantLinear",
    "OnnxExport",
    "PackedExport",
    "RunContext",
    "RunModel",
    "container_info",
    "export_onnx",
    "export_packed",
    "load_packed",
    "load_run",
    "load_run_data",
    "load_run_model",
    "onnx_predict",
    "write_onnx",
    "write_packed",
]
