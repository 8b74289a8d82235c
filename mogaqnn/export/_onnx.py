"""The ONNX export: a QuantizeLinear/DequantizeLinear (QDQ) graph that onnxruntime runs.

Weights are int8 initializers holding the integer codes (inside the narrower range of
their bit width, BatchNorm folded into the per-channel scales), each read through a
per-channel DequantizeLinear. The input of every quantized layer goes through
Clip -> QuantizeLinear -> DequantizeLinear at the calibrated scale: uint8 after a ReLU, int8
when signed. ONNX has 8-bit types only, so the Clip to ``[qmin * s, qmax * s]`` makes a
``b``-bit quantizer of the 8-bit one (``b <= 8``; codes never exceed the 8-bit range).

torch's TorchScript exporter (``dynamo=False``) turns ``torch.fake_quantize_per_*_affine``
into Q/DQ pairs at opset 13; the weight's Q of a constant is then folded here into the
int8 initializer, so the file stores 8 bits per weight, not 32.
"""

from __future__ import annotations

import copy
import io
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
from ._rebuild import RunModel, load_run_model

__all__ = ["OPSET", "OnnxExport", "export_onnx", "onnx_predict", "write_onnx"]

OPSET = 13
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


def _fold_weight_quantizers(model: Any) -> None:
    """Replace each QuantizeLinear of a constant weight by the int8 codes it computes."""
    onnx = _require("onnx")
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    # Scales and zero points arrive as initializers or as Constant nodes.
    consts = {name: numpy_helper.to_array(t) for name, t in inits.items()}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    remove = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in inits:
            continue
        if node.input[1] not in consts or node.input[2] not in consts:
            continue
        w, scale, zero = (consts[name] for name in node.input[:3])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * w.ndim
        shape[axis] = -1
        # ONNX's QuantizeLinear: saturate(round_half_even(x / scale) + zero_point).
        q = np.rint(w / scale.reshape(shape)) + zero.reshape(shape).astype(np.float32)
        info = np.iinfo(zero.dtype)
        codes = np.clip(q, info.min, info.max).astype(zero.dtype)
        new_name = f"{node.input[0]}_quantized"
        graph.initializer.append(numpy_helper.from_array(codes, new_name))
        for user in consumers.get(node.output[0], []):
            for i, name in enumerate(user.input):
                if name == node.output[0]:
                    user.input[i] = new_name
        remove.append(node)
    for node in remove:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.node.remove(node)
    for init in list(graph.initializer):
        if init.name not in used:
            graph.initializer.remove(init)
    onnx.checker.check_model(model)


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
            m.onnx_export = True
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module, (torch.zeros(1, *input_shape),), buf, dynamo=False, opset_version=OPSET,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )  # fmt: skip
    proto = onnx.load_from_string(buf.getvalue())
    _fold_weight_quantizers(proto)
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
