"""Layers that quantize at any bit width of a set, switched between steps: the layers of the
quantization-aware supernet (fitness ``quant-supernet``).

One float weight is shared by every bit width; each bit width has its own quantizer, as
BatchQuant and EQ-Net keep one quantizer per bit width: a learned step size (LSQ) per output
channel for the weights and one per tensor for the input activations, for every bit width
of at most ``LSQ_MAX_BITS`` (wider ones keep ranges as ``QuantLayer``'s lsq mode does: the
weights' per-channel max|w|, the activations' calibrated scale). The step of a bit width
learns only from the steps that drew it.

``set_bits`` chooses the bits of the next forward passes (Python attributes, nothing read
from the device); ``at_bits`` makes the plain ``QuantConv2d`` / ``QuantLinear`` at given bits
that computes what this layer computes at them (its steps are this layer's first channels'
for those bits), so a slice of the supernet is an ordinary quantized model.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ._layers import (
    _CALIBRATION_SAMPLE,
    LSQ_MAX_BITS,
    LSQ_WEIGHT_SCALE,
    ActivationState,
    QuantConv2d,
    QuantLayer,
    QuantLinear,
    _abs_percentile,
    best_clip_ratio,
    weight_scale_for,
)
from ._ops import (
    fake_quant_per_channel,
    fake_quant_per_tensor,
    int_range,
    lsq_per_channel,
    lsq_per_tensor,
)

__all__ = [
    "FLOAT_BITS",
    "MultiBitConv2d",
    "MultiBitLayer",
    "MultiBitLinear",
]

FLOAT_BITS = 32  # a layer asked for 32-bit weights and activations stays in float


def _weight_step(bits: int) -> str:
    return f"w{bits}_scale"  # ends in _scale: make_optimizer's rate per scale, no decay


def _act_step(bits: int) -> str:
    return f"a{bits}_scale"


class MultiBitLayer(ActivationState):
    """Mixin: the bit choices, the steps of every bit width, the bits now in use, whether the
    input is calibrated and signed (``ActivationState``)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    weight_bits: int
    act_bits: int
    weight_choices: tuple[int, ...]
    act_choices: tuple[int, ...]
    _plain: type  # the QuantLayer class of a slice

    @torch.no_grad()
    def _init_multibit(self, weight_choices: Iterable[int], act_choices: Iterable[int]) -> None:
        self.weight_choices = tuple(sorted({int(b) for b in weight_choices}))
        self.act_choices = tuple(sorted({int(b) for b in act_choices}))
        if not self.weight_choices or not self.act_choices:
            raise ModelError("a multi-bit layer needs at least one weight and one activation bit")
        self.weight_bits, self.act_bits = self.weight_choices[-1], self.act_choices[-1]
        on = {"device": self.weight.device}  # a layer made on a GPU has its steps there
        for b in self.weight_choices:
            if b <= LSQ_MAX_BITS:
                step = weight_scale_for(self.weight, b, best_clip_ratio(self.weight, b))
                self.register_parameter(_weight_step(b), nn.Parameter(step))
        for b in self.act_choices:
            if b <= LSQ_MAX_BITS:
                self.register_parameter(_act_step(b), nn.Parameter(torch.ones(1, **on)))
            else:
                self.register_buffer(_act_step(b), torch.ones(1, **on))
        # |x| at calibration: the activation step of bits outside the choices (at_bits)
        self.register_buffer("act_range", torch.ones(1, **on))
        self._init_activation_state(self.weight.device)

    def set_bits(self, weight_bits: int, act_bits: int) -> None:
        self._check_bits(weight_bits, act_bits)
        self.weight_bits, self.act_bits = weight_bits, act_bits

    def _check_bits(self, weight_bits: int, act_bits: int) -> None:
        if weight_bits not in self.weight_choices or act_bits not in self.act_choices:
            raise ModelError(
                f"bits w{weight_bits}a{act_bits} are not among this layer's choices "
                f"(weights {self.weight_choices}, activations {self.act_choices})"
            )

    @torch.no_grad()
    def calibrate_activation(self, x: torch.Tensor) -> None:
        """Every bit width's input step from one batch: a high percentile of |x| over the
        largest code (QuantLayer's calibration, once for all bit widths)."""
        signed = bool((x < 0).any())
        if signed and self.act_choices[0] < 2:
            raise ModelError("a 1-bit activation cannot quantize a signed input")
        top = _abs_percentile(x, _CALIBRATION_SAMPLE)
        self.act_range.copy_(top)
        for b in self.act_choices:
            getattr(self, _act_step(b)).copy_(top / int_range(b, signed)[1])
        self.set_activation_state(calibrated=True, signed=signed)

    @torch.no_grad()
    def calibrate_weights(self) -> None:
        """Every bit width's weight steps from the weights as they are now (the clipping of
        max|w| with the least squared error, as a QuantLayer starts)."""
        for b in self.weight_choices:
            if b <= LSQ_MAX_BITS:
                step = weight_scale_for(self.weight, b, best_clip_ratio(self.weight, b))
                getattr(self, _weight_step(b)).copy_(step)

    def quantized_weight(self) -> torch.Tensor:
        b = self.weight_bits
        if b == 1:  # binarize has no zero code: weights masked to zero must stay zero
            q = lsq_per_channel(self.weight, getattr(self, _weight_step(b)), b)
            return q * (self.weight != 0)
        if b <= LSQ_MAX_BITS:
            return lsq_per_channel(self.weight, getattr(self, _weight_step(b)), b)
        return fake_quant_per_channel(self.weight, weight_scale_for(self.weight, b, 1.0), b)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self._act_calibrated:
            self.calibrate_activation(x)
        b = self.act_bits
        step = getattr(self, _act_step(b))
        if b <= LSQ_MAX_BITS and x.requires_grad:
            return lsq_per_tensor(x, step, b, self._act_signed)
        # the network's input keeps its calibrated step, as in QuantLayer
        return fake_quant_per_tensor(x, step.detach(), b, self._act_signed)

    @torch.no_grad()
    def at_bits(self, weight_bits: int, act_bits: int) -> nn.Module:
        """The plain layer at these bits (``FLOAT_BITS`` for both: a float Conv2d / Linear)
        that computes what this layer computes at them, in the lsq range mode; its steps
        are this layer's first channels' at those bits. Bits outside the choices (the
        search's uniform reference points may ask for them) start as a QuantLayer does:
        weight steps from the weights, the activation step from the calibrated range."""
        if weight_bits == act_bits == FLOAT_BITS:
            return self._float_copy()
        q: QuantLayer = self._plain.from_float(self, weight_bits, act_bits)
        out = self.weight.shape[0]
        if weight_bits in self.weight_choices:
            q.weight_clip.fill_(1.0)  # > LSQ_MAX_BITS: the plain max|w|, as here
        if act_bits in self.act_choices:
            q.act_scale.copy_(getattr(self, _act_step(act_bits)))
        else:
            q.act_scale.copy_(self.act_range / int_range(act_bits, self._act_signed)[1])
        q.set_activation_state(calibrated=self._act_calibrated, signed=self._act_signed)
        q.set_range_mode("lsq")
        if weight_bits in self.weight_choices and weight_bits <= LSQ_MAX_BITS:
            getattr(q, LSQ_WEIGHT_SCALE).copy_(getattr(self, _weight_step(weight_bits))[:out])
        return q.train(self.training)  # type: ignore[attr-defined]

    def _float_copy(self) -> nn.Module:
        raise NotImplementedError

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        return (f"{base}, w{self.weight_bits}a{self.act_bits} of "
                f"w{self.weight_choices} a{self.act_choices}")  # fmt: skip


class MultiBitConv2d(MultiBitLayer, nn.Conv2d):
    _plain = QuantConv2d

    @classmethod
    def from_float(
        cls, conv: nn.Conv2d, weight_choices: Iterable[int], act_choices: Iterable[int]
    ) -> MultiBitConv2d:
        q = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride, padding=conv.padding, dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups, bias=conv.bias is not None, padding_mode=conv.padding_mode,
            device=conv.weight.device, dtype=conv.weight.dtype,
        )  # fmt: skip
        with torch.no_grad():
            q.weight.copy_(conv.weight)
            if conv.bias is not None:
                q.bias.copy_(conv.bias)  # type: ignore[union-attr]
        q._init_multibit(weight_choices, act_choices)
        return q

    def _float_copy(self) -> nn.Module:
        conv = nn.Conv2d(
            self.in_channels, self.out_channels, self.kernel_size,  # type: ignore[arg-type]
            stride=self.stride, padding=self.padding, dilation=self.dilation,  # type: ignore[arg-type]
            groups=self.groups, bias=self.bias is not None, padding_mode=self.padding_mode,
            device=self.weight.device, dtype=self.weight.dtype,
        )  # fmt: skip
        return _copy_weights(conv, self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quantized_input(x), self.quantized_weight(), self.bias)


class MultiBitLinear(MultiBitLayer, nn.Linear):
    _plain = QuantLinear

    @classmethod
    def from_float(
        cls, linear: nn.Linear, weight_choices: Iterable[int], act_choices: Iterable[int]
    ) -> MultiBitLinear:
        q = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                device=linear.weight.device, dtype=linear.weight.dtype)  # fmt: skip
        with torch.no_grad():
            q.weight.copy_(linear.weight)
            if linear.bias is not None:
                q.bias.copy_(linear.bias)
        q._init_multibit(weight_choices, act_choices)
        return q

    def _float_copy(self) -> nn.Module:
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=self.weight.device, dtype=self.weight.dtype)  # fmt: skip
        return _copy_weights(linear, self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantized_input(x), self.quantized_weight(), self.bias)


@torch.no_grad()
def _copy_weights(layer: nn.Module, source: nn.Module) -> nn.Module:
    layer.weight.copy_(source.weight)
    if source.bias is not None:
        layer.bias.copy_(source.bias)
    return layer.train(source.training)
