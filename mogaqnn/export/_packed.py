"""The packed export: every quantized weight at its own bit width, in a CRC-checked file.

What the file holds (see :mod:`._container` for the byte layout), per quantized layer:
``NAME.codes`` (the integer codes at the layer's weight bits; 1-bit weights as one bit,
1 for +1 and 0 for -1), ``NAME.scale`` (float32 per output channel, BatchNorm folded in),
``NAME.bias`` (float32, when the layer has a bias or a folded BatchNorm),
``NAME.act_scale`` (float32, the input's scale) and ``NAME.act_signed`` (one bit, 1 for
signed input codes); then every
parameter left in float, as float32 under its own name (a BatchNorm that does not fold is
stored as its eval-mode affine map, two values per channel). The JSON header holds the
architecture (model name, input shape, classes, genome, per-layer bits, widths, groups)
and the model size that :func:`mogaqnn.size.model_size`
gives; the payload is exactly that many bits, each tensor padded to a whole byte.

Float buffers of the model outside quantized layers and BatchNorms (rare: most CNNs have
none) are stored too and are not counted by the size formula.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .._version import __version__
from ..errors import ExportError
from ..models._factory import resolve_model
from ..size import model_size
from ._container import (
    PackedTensor,
    container_info,
    payload_bits,
    read_container,
    write_container,
)
from ._fold import FoldedLayer, FoldedModel, build_dequantized, fold_model
from ._rebuild import RunModel, load_run_model

__all__ = ["FORMAT", "PackedExport", "export_packed", "load_packed", "write_packed"]

FORMAT = "mogaqnn-packed-model"
BUFFER_PREFIX = "buffer:"


@dataclass(frozen=True)
class PackedExport:
    """Where a packed model went and how its bytes add up."""

    path: Path
    file_nbytes: int
    overhead_nbytes: int  # magic, header JSON, CRC
    payload_nbytes: int  # the tensors, each padded to a whole byte
    payload_bits: int  # the tensors without padding
    size_bits: int  # mogaqnn.size.model_size of the exported model

    @property
    def padding_bits(self) -> int:
        return self.payload_nbytes * 8 - self.payload_bits


def _tensors(folded: FoldedModel) -> list[PackedTensor]:
    out = []
    for layer in folded.layers:
        if layer.weight_bits == 1:
            codes = PackedTensor.from_codes(f"{layer.name}.codes", layer.codes > 0, 1, False)
        else:
            codes = PackedTensor.from_codes(f"{layer.name}.codes", layer.codes, layer.weight_bits)
        out += [codes, PackedTensor.from_float32(f"{layer.name}.scale", layer.scale)]
        if layer.bias is not None:
            out.append(PackedTensor.from_float32(f"{layer.name}.bias", layer.bias))
        out += [
            PackedTensor.from_float32(f"{layer.name}.act_scale", np.float32([layer.act_scale])),
            PackedTensor.from_codes(f"{layer.name}.act_signed", np.array([layer.act_signed]),
                                    1, False),
        ]  # fmt: skip
    out += [PackedTensor.from_float32(n, v) for n, v in folded.floats.items()]
    out += [PackedTensor.from_float32(BUFFER_PREFIX + n, v) for n, v in folded.buffers.items()]
    return out


def write_packed(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    bn_fold: Mapping[str, str] | None = None,
    meta: dict[str, Any] | None = None,
) -> PackedExport:
    """Pack a fake-quantized ``model`` (its :class:`~mogaqnn.quant.QuantLayer` modules) to
    ``path``. ``bn_fold`` (from the graph analysis) names the BatchNorms to fold; ``meta``
    is added to the header (``model``, ``in_channels``, ``num_classes``, ``image_size``
    let :func:`load_packed` rebuild the architecture on its own)."""
    folded = fold_model(model, bn_fold or {})
    size = model_size(model, bn_fold)
    header = {
        **(meta or {}),
        "format": FORMAT,
        "mogaqnn_version": __version__,
        "size_bits": size.total_bits,
        "size_breakdown_bits": {"weights": size.weight_bits, "scales": size.scale_bits,
                                "biases": size.bias_bits, "float": size.float_bits,
                                "activation_scales": size.act_scale_bits},
        "layers": [layer.header() for layer in folded.layers],
        "folded_bn": folded.folded_bn,
        "affine_bn": folded.affine_bn,
        "float_params": list(folded.floats),
        "buffers": list(folded.buffers),
    }  # fmt: skip
    tensors = _tensors(folded)
    target = Path(path)
    written = write_container(target, header, tensors)
    info = container_info(target)
    return PackedExport(target, written, info.overhead_nbytes, info.payload_nbytes,
                        payload_bits(tensors), size.total_bits)  # fmt: skip


def export_packed(
    source: RunModel | str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    individual: str | int = "chosen",
) -> PackedExport:
    """Pack a run's individual (``source``: a run directory or a loaded
    :class:`RunModel`); ``path`` defaults to ``RUN/model.mogaqnn`` (``model-trialN`` for a
    trial)."""
    run_model = source if isinstance(source, RunModel) else load_run_model(source, individual)
    run = run_model.run
    if path is None:
        stem = "model" if run_model.individual == "chosen" else f"model-trial{run_model.individual}"
        path = run.root / f"{stem}.mogaqnn"
    meta = {
        "model": run.config.model, "dataset": run.config.dataset,
        "in_channels": run.in_channels, "num_classes": run.num_classes,
        "image_size": run.image_size, "individual": run_model.individual,
        "genome": {"weight_bits": list(run_model.genome.weight_bits),
                   "act_bits": list(run_model.genome.act_bits),
                   "ratios": list(run_model.genome.ratios)},
        **run.space.describe(run_model.genome),
    }  # fmt: skip
    return write_packed(run_model.model, path, bn_fold=run.graph.bn_fold, meta=meta)


def _folded_from_file(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FoldedModel:
    layers = []
    for h in meta["layers"]:
        name = h["name"]
        codes = arrays[f"{name}.codes"]
        if h["weight_bits"] == 1:
            codes = codes * 2 - 1  # stored bit 1 is +1, 0 is -1
        layers.append(FoldedLayer(
            name=name, kind=h["kind"], codes=codes.astype(np.int32),
            weight_bits=int(h["weight_bits"]), scale=arrays[f"{name}.scale"],
            bias=arrays[f"{name}.bias"] if h["bias"] else None, act_bits=int(h["act_bits"]),
            act_signed=bool(arrays[f"{name}.act_signed"][0]),
            act_scale=float(arrays[f"{name}.act_scale"][0]),
            groups=int(h["groups"]), folded_bn=h["folded_bn"],
        ))  # fmt: skip
    floats = {n: arrays[n] for n in meta["float_params"]}
    buffers = {n: arrays[BUFFER_PREFIX + n] for n in meta["buffers"]}
    return FoldedModel(layers, list(meta["folded_bn"]), list(meta["affine_bn"]), floats, buffers)


def load_packed(path: str | os.PathLike[str], model: nn.Module | None = None) -> nn.Module:
    """Rebuild a torch module (eval mode) from a packed file.

    The architecture is the header's zoo model (or ``model``, the same FP32 architecture,
    for models given to the search as Python modules), each quantized layer holding
    ``codes * scale`` with BatchNorm folded and quantizing its input at the calibrated scale,
    so it predicts what the trained fake-quantized model predicts. Raises
    :class:`~mogaqnn.errors.ExportError` for a corrupt, truncated or foreign file.
    """
    meta, arrays = read_container(path)
    if meta.get("format") != FORMAT:
        raise ExportError(f"{os.fspath(path)} is a container but not a packed mogaqnn model "
                          f"(format {meta.get('format')!r}); export it again")  # fmt: skip
    try:
        folded = _folded_from_file(meta, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{os.fspath(path)} has an inconsistent header ({exc!r}); "
                          "export it again") from None  # fmt: skip
    if model is None:
        name = str(meta.get("model", ""))
        if not name or name.startswith("python:"):
            raise ExportError(f"{os.fspath(path)} holds a Python model ({name or 'unnamed'}); "
                              "pass the same FP32 module as model= to load it")  # fmt: skip
        try:
            model = resolve_model(name, in_channels=int(meta["in_channels"]),
                                  num_classes=int(meta["num_classes"]),
                                  image_size=int(meta["image_size"]))  # fmt: skip
        except KeyError as exc:
            raise ExportError(f"{os.fspath(path)} lacks {exc} in its header") from None
    else:
        model = copy.deepcopy(model)
    return build_dequantized(model.cpu(), folded)
