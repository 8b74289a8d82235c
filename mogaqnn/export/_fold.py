"""From a trained fake-quantized model to integer codes, per-channel scales and biases.

BatchNorm folds exactly into a per-output-channel scale: with ``k = gamma / sqrt(var + eps)``
a layer ``codes * s`` followed by BN is ``codes * (s * k)`` plus the bias
``(b - mean) * k + beta``; the integer codes do not change. A channel whose folded scale is
negative has its codes and scale negated (the product is the same), so every exported
scale is >= 0, as ONNX's DequantizeLinear expects.

The same representation feeds the packed file and the ONNX graph, and
:func:`build_dequantized` turns it back into a torch module: the model's own architecture
with each quantized layer replaced by a :class:`DequantConv2d` / :class:`DequantLinear`
whose weight is ``codes * scale`` and whose input is fake-quantized at the calibrated scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExportError
from ..quant import QuantLayer, fake_quant_per_tensor, int_range
from ._onnx_ops import dequantize_weight, quantize_dequantize

__all__ = [
    "DequantConv2d",
    "DequantLinear",
    "FoldedLayer",
    "FoldedModel",
    "build_dequantized",
    "fold_model",
]


@dataclass(eq=False)
class FoldedLayer:
    name: str
    kind: str  # "conv2d" or "linear"
    codes: np.ndarray  # int32, the weight's shape; 1-bit codes are -1 / +1
    weight_bits: int
    scale: np.ndarray  # float32 [out], BN folded, >= 0
    bias: np.ndarray | None  # float32 [out], BN folded
    act_bits: int
    act_signed: bool
    act_scale: float
    groups: int = 1
    folded_bn: str | None = None

    def weight(self) -> torch.Tensor:
        """``codes * scale`` in float32, the exact product the fake-quant op computes."""
        shape = (-1,) + (1,) * (self.codes.ndim - 1)
        return torch.from_numpy(self.codes).float() * torch.from_numpy(self.scale).view(shape)

    def header(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "weight_shape": list(self.codes.shape),
            "weight_bits": self.weight_bits, "act_bits": self.act_bits,
            "groups": self.groups, "bias": self.bias is not None, "folded_bn": self.folded_bn,
        }  # fmt: skip


@dataclass(eq=False)
class FoldedModel:
    layers: list[FoldedLayer]
    folded_bn: list[str]  # BatchNorms folded into a layer (they become Identity)
    affine_bn: list[str]  # BatchNorms kept, as their eval-mode affine map (weight, bias)
    floats: dict[str, np.ndarray] = field(default_factory=dict)  # other params, by name
    buffers: dict[str, np.ndarray] = field(default_factory=dict)  # other float buffers


def _bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval-mode BN as ``x * k + c`` (float64, for an exact-as-possible fold)."""
    var = bn.running_var.double() if bn.running_var is not None else None
    mean = bn.running_mean.double() if bn.running_mean is not None else None
    if var is None or mean is None:
        raise ExportError(f"BatchNorm {bn} has no running statistics and cannot be exported")
    k = 1.0 / torch.sqrt(var + bn.eps)
    c = -mean * k
    if bn.affine:
        k, c = k * bn.weight.double(), c * bn.weight.double() + bn.bias.double()
    return k, c


@torch.no_grad()
def _codes(layer: QuantLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes and scales of a layer's weight, read off its own fake-quant op.

    Dividing the fake-quantized weight (exactly ``code * scale`` in float32) by its scale
    and rounding gives the codes back without re-implementing the kernel's rounding.
    """
    fq = layer.quantized_weight().detach().float()
    scale = layer.weight_scale().detach().float().reshape(-1)
    shape = (-1,) + (1,) * (fq.dim() - 1)
    s = scale.view(shape)
    codes = torch.where(s != 0, torch.round(fq / torch.where(s != 0, s, 1.0)), 0.0)
    if layer.weight_bits == 1:
        codes = torch.where(codes >= 0, 1.0, -1.0)
    else:
        _, qmax = int_range(layer.weight_bits, signed=True)
        codes = codes.clamp(-qmax, qmax)
    if not torch.equal(codes * s, fq):
        raise ExportError(f"the weights of a {type(layer).__name__} do not decode to integer "
                          "codes times their scale; this is a bug, please report it")  # fmt: skip
    return codes.to(torch.int32), scale


@torch.no_grad()
def fold_model(model: nn.Module, bn_fold: Mapping[str, str]) -> FoldedModel:
    """Codes, folded scales and biases of every quantized layer, and the float rest."""
    modules = dict(model.named_modules())
    quantized = {n: m for n, m in modules.items() if isinstance(m, QuantLayer)}
    bn_of = {layer: bn for bn, layer in bn_fold.items() if layer in quantized and bn in modules}
    layers, done = [], set()
    for name, m in quantized.items():
        codes, scale = _codes(m)
        scale64 = scale.double()
        bias = m.bias.detach().double() if m.bias is not None else None
        bn = bn_of.get(name)
        if bn is not None:
            k, c = _bn_affine(modules[bn])
            bias = (bias * k if bias is not None else 0.0) + c
            scale64 = scale64 * k
            done.update(id(t) for t in modules[bn].parameters(recurse=False))
            done.update(id(t) for t in modules[bn].buffers(recurse=False))
        negative = scale64 < 0
        if bool(negative.any()):
            codes[negative] = -codes[negative]
            scale64 = scale64.abs()
        is_conv = isinstance(m, nn.Conv2d)
        layers.append(FoldedLayer(
            name=name, kind="conv2d" if is_conv else "linear", codes=codes.numpy(),
            weight_bits=m.weight_bits, scale=scale64.float().numpy(),
            bias=None if bias is None else bias.float().numpy(), act_bits=m.act_bits,
            act_signed=m.act_signed, act_scale=float(m.act_scale.detach().reshape(-1)[0]),
            groups=m.groups if is_conv else 1, folded_bn=bn,
        ))  # fmt: skip
        done.update(id(p) for p in m.parameters(recurse=False))
    folded = sorted(set(bn_of.values()))
    affine_bn, floats = [], {}
    for name, mod in modules.items():
        if name in folded or not isinstance(mod, nn.modules.batchnorm._BatchNorm):
            continue
        k, c = _bn_affine(mod)
        affine_bn.append(name)
        floats[f"{name}.weight"] = k.float().numpy()
        floats[f"{name}.bias"] = c.float().numpy()
        done.update(id(p) for p in mod.parameters(recurse=False))
        done.update(id(b) for b in mod.buffers(recurse=False))
    for name, p in model.named_parameters():
        if id(p) not in done:
            floats[name] = p.detach().float().numpy()
    buffers = {}
    for name, b in model.named_buffers():
        owner = modules[name.rpartition(".")[0]]
        if id(b) in done or isinstance(owner, QuantLayer) or not b.is_floating_point():
            continue
        buffers[name] = b.detach().float().numpy()
    return FoldedModel(layers, folded, affine_bn, floats, buffers)


class _DequantLayer:
    """Input fake-quantized at the calibrated per-tensor scale; weight already ``codes*scale``.

    After :meth:`enable_onnx_export` the layer calls the ops that the ONNX export translates
    into QuantizeLinear/DequantizeLinear (8-bit types, see ``_onnx_ops``): the input through
    a Clip to the narrower range of fewer bits and an 8-bit quantizer, the weight as int8
    codes (a buffer, the int8 initializer) times the per-channel scale.
    """

    act_bits: int
    act_signed: bool
    weight_bits: int
    onnx_export: bool = False
    act_clip: tuple[float, float]

    def enable_onnx_export(self) -> None:
        """Hold the weight as its int8 codes and the input scale as a scalar, for ONNX."""
        scale = self.weight_scale.view((-1,) + (1,) * (self.weight.dim() - 1))
        # weight = codes * scale in float32, so dividing gives the codes back exactly.
        codes = torch.where(scale > 0, torch.round(self.weight / scale), 0.0)
        self.register_buffer("weight_codes", codes.to(torch.int8))
        self.register_buffer("act_scale_scalar", self.act_scale.reshape(()).clone())
        qmin, qmax = int_range(self.act_bits, self.act_signed)
        s = float(self.act_scale)
        self.act_clip = (qmin * s, qmax * s)  # constants of the graph's Clip
        self.onnx_export = True

    def _init_dequant(self, layer: FoldedLayer) -> None:
        self.act_bits, self.act_signed = layer.act_bits, layer.act_signed
        self.weight_bits = layer.weight_bits
        self.register_buffer("act_scale", torch.tensor([layer.act_scale], dtype=torch.float32))
        self.register_buffer("weight_scale", torch.from_numpy(layer.scale.copy()))
        with torch.no_grad():
            self.weight.copy_(layer.weight())
            if layer.bias is not None:
                self.bias.copy_(torch.from_numpy(layer.bias))

    def extra_repr(self) -> str:  # type: ignore[override]
        sign = "s" if self.act_signed else "u"
        return f"{super().extra_repr()}, w{self.weight_bits}a{self.act_bits}{sign}"  # type: ignore[misc]

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.onnx_export:
            return fake_quant_per_tensor(x, self.act_scale, self.act_bits, self.act_signed)
        x = torch.clamp(x, *self.act_clip)
        return quantize_dequantize(x, self.act_scale_scalar, self.act_signed)

    def _weight(self) -> torch.Tensor:
        if not self.onnx_export:
            return self.weight
        return dequantize_weight(self.weight_codes, self.weight_scale)


class DequantConv2d(_DequantLayer, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self._input(x), self._weight(), self.bias)


class DequantLinear(_DequantLayer, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self._input(x), self._weight(), self.bias)


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _get(root: nn.Module, name: str, what: str) -> nn.Module:
    try:
        return root.get_submodule(name)
    except AttributeError:
        raise ExportError(f"the model has no {what} {name!r}; it is not the exported "
                          "architecture") from None  # fmt: skip


@torch.no_grad()
def build_dequantized(skeleton: nn.Module, folded: FoldedModel) -> nn.Module:
    """Put ``folded`` into ``skeleton`` (the FP32 architecture, any weights), in place.

    Shapes come from the stored tensors, so the skeleton need not be widened first.
    Raises ExportError when a tensor has no place in the skeleton.
    """
    for layer in folded.layers:
        old = _get(skeleton, layer.name, "layer")
        out_ch, in_ch = layer.codes.shape[0], layer.codes.shape[1]
        bias = layer.bias is not None
        if layer.kind == "conv2d" and isinstance(old, nn.Conv2d):
            new: nn.Module = DequantConv2d(
                in_ch * layer.groups, out_ch, old.kernel_size, stride=old.stride,
                padding=old.padding, dilation=old.dilation, groups=layer.groups, bias=bias,
                padding_mode=old.padding_mode,
            )  # fmt: skip
        elif layer.kind == "linear" and isinstance(old, nn.Linear):
            new = DequantLinear(in_ch, out_ch, bias=bias)
        else:
            raise ExportError(f"layer {layer.name!r} is a {type(old).__name__} in the model, "
                              f"a {layer.kind} in the file")  # fmt: skip
        if tuple(new.weight.shape) != layer.codes.shape:
            raise ExportError(f"layer {layer.name!r}: weight shape {tuple(new.weight.shape)} "
                              f"cannot hold the stored {layer.codes.shape}")  # fmt: skip
        new._init_dequant(layer)
        _set_submodule(skeleton, layer.name, new)
    for name in folded.folded_bn:
        _get(skeleton, name, "BatchNorm")
        _set_submodule(skeleton, name, nn.Identity())
    floats = dict(folded.floats)
    loaded = {f"{n.name}.{p}" for n in folded.layers for p in ("weight", "bias")}
    loaded |= {f"{n}.{p}" for n in folded.affine_bn for p in ("weight", "bias")}
    loaded |= set(floats)
    for name in folded.affine_bn:
        old = _get(skeleton, name, "BatchNorm")
        weight, bias = floats.pop(f"{name}.weight"), floats.pop(f"{name}.bias")
        # The stored (weight, bias) is the whole eval-mode map: statistics 0/1, eps 0.
        bn = type(old)(len(weight), eps=0.0)
        bn.weight.copy_(torch.from_numpy(weight))
        bn.bias.copy_(torch.from_numpy(bias))
        _set_submodule(skeleton, name, bn)
    for kind, tensors in (("parameter", floats), ("buffer", folded.buffers)):
        for name, value in tensors.items():
            owner_name, _, attr = name.rpartition(".")
            owner = _get(skeleton, owner_name, f"module for the {kind}") if owner_name else skeleton
            t = torch.from_numpy(value.copy())
            if kind == "parameter":
                setattr(owner, attr, nn.Parameter(t))
            else:
                owner.register_buffer(attr, t)
    missing = [n for n, _ in skeleton.named_parameters() if n not in loaded]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ExportError(f"the model has parameters the file does not hold ({shown}); "
                          "it is not the exported architecture")  # fmt: skip
    return skeleton.eval()
