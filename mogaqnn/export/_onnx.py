"""The ONNX export: a QuantizeLinear/DequantizeLinear (QDQ) graph that onnxruntime runs.

Weights are int8 initializers holding the integer codes (inside the narrower range of
their bit width, BatchNorm folded into the per-channel scales), each read through a
per-channel DequantizeLinear. The input of every quantized layer goes through
Clip -> QuantizeLinear -> DequantizeLinear at the calibrated scale: uint8 after a ReLU, int8
when signed. ONNX has 8-bit types only, so the Clip to ``[qmin * s, qmax * s]`` makes a
``b``-bit quantizer of the 8-bit one (``b <= 8``; codes never exceed the 8-bit range).

The graph comes from torch's ``torch.export``-based exporter (``dynamo=True``): the module
calls the two custom ops of ``_onnx_ops``, which its ``custom_translation_table`` writes as
QuantizeLinear/DequantizeLinear, so the file stores the int8 codes, 8 bits per weight.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ExportError
from ..size import model_size
from ._fold import _DequantLayer, build_dequantized, fold_model
from ._onnx_ops import OPSET, onnx_translations
from ._rebuild import RunModel, load_run_model

__all__ = ["OPSET", "OnnxExport", "export_onnx", "onnx_predict", "write_onnx"]

MAX_ONNX_BITS = 8


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    file_nbytes: int
    size_bits: int  # mogaqnn.size.model_size of the exported model (for comparison)


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ExportError(f"the ONNX export needs the {module} package: "
                          "pip install 'mogaqnn[onnx]'") from None  # fmt: skip


def write_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    skeleton: nn.Module,
    input_shape: tuple[int, int, int],
    bn_fold: Mapping[str, str] | None = None,
    meta: dict[str, Any] | None = None,
) -> OnnxExport:
    """Write a fake-quantized ``model`` as a QDQ ONNX graph (input ``input`` [N, C, H, W]
    with a dynamic batch, output ``logits``). ``skeleton`` is its FP32 architecture (any
    weights), ``input_shape`` is (C, H, W); ``meta`` goes into the model's metadata.

    Needs the ``onnx`` package; bit widths above 8 have no ONNX type at this opset and are
    refused (the packed format takes them).
    """
    onnx = _require("onnx")
    _require("onnxscript")  # the exporter writes the graph with it
    folded = fold_model(model, bn_fold or {})
    widest = max((b for f in folded.layers for b in (f.weight_bits, f.act_bits)), default=0)
    if widest > MAX_ONNX_BITS:
        raise ExportError(
            f"the ONNX export supports at most {MAX_ONNX_BITS} bits, this model has {widest}; "
            "export it with --format packed"
        )
    module = build_dequantized(copy.deepcopy(skeleton), folded)
    for m in module.modules():
        if isinstance(m, _DequantLayer):
            m.enable_onnx_export()
    module.eval()
    with warnings.catch_warnings():
        # torch 2.13's exporter trips over torch's own deprecated pytree check (a
        # FutureWarning from inside torch, on every model); nothing else is silenced.
        warnings.filterwarnings(
            "ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning
        )
        program = torch.onnx.export(
            module, (torch.zeros(2, *input_shape),), dynamo=True, opset_version=OPSET,
            input_names=["input"], output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            custom_translation_table=onnx_translations(), verbose=False,
        )  # fmt: skip
    proto = program.model_proto
    onnx.checker.check_model(proto)
    size = model_size(model, bn_fold)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "mogaqnn", json.dumps({**(meta or {}), "size_bits": size.total_bits})
    target = Path(path)
    target.write_bytes(proto.SerializeToString())
    return OnnxExport(target, target.stat().st_size, size.total_bits)


def export_onnx(
    source: RunModel | str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    individual: str | int = "chosen",
) -> OnnxExport:
    """Write a run's individual (``source``: a run directory or a loaded :class:`RunModel`)
    as a QDQ ONNX graph, see :func:`write_onnx`; ``path`` defaults to ``RUN/model.onnx``
    (``model-trialN.onnx`` for a trial). Needs ``pip install 'mogaqnn[onnx]'``."""
    _require("onnx")
    run_model = source if isinstance(source, RunModel) else load_run_model(source, individual)
    run = run_model.run
    if path is None:
        stem = "model" if run_model.individual == "chosen" else f"model-trial{run_model.individual}"
        path = run.root / f"{stem}.onnx"
    g = run_model.genome
    meta = {"model": run.config.model, "individual": run_model.individual,
            "weight_bits": list(g.weight_bits), "act_bits": list(g.act_bits),
            "ratios": list(g.ratios)}  # fmt: skip
    return write_onnx(
        run_model.model, path, skeleton=run.base, bn_fold=run.graph.bn_fold,
        input_shape=(run.in_channels, run.image_size, run.image_size), meta=meta,
    )  # fmt: skip


def onnx_predict(
    path: str | os.PathLike[str],
    x: torch.Tensor | np.ndarray,
    batch_size: int = 512,
    *,
    optimize: bool = True,
) -> np.ndarray:
    """Logits of an exported ONNX model on ``x`` [N, C, H, W], run by onnxruntime on the CPU.

    ``optimize=False`` turns off onnxruntime's graph rewrites, which run the graph as
    written (it then matches torch to float rounding); with them on, fused kernels may
    move a value across a rounding boundary of the next quantizer now and then.
    """
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1  # small models; do not fight other processes for cores
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    arr = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = arr.astype(np.float32, copy=False)
    outs = [session.run(None, {"input": arr[i : i + batch_size]})[0]
            for i in range(0, len(arr), batch_size)]  # fmt: skip
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)
