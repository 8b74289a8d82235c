"""Quantized Conv2d and Linear: the torch layer plus a mixin, as in Brevitas.

Each layer fake-quantizes its weights per output channel and its input activations per
tensor, at its own bit widths. The ranges start from a calibration (weights: the clipping
ratio of max|w| with the least squared error; activations: a high percentile of |x| on a
calibration batch) and then, by the layer's ``range_mode``:

- ``fixed``: the activation scale stays; the weight scale is the fixed ratio of max|w|.
- ``ema``: in training, the activation scale is a moving average of each batch's
  percentile (as torch.ao's moving-average observers) and the weight clipping ratio is
  chosen again from the current weights at every step.
- ``lsq``: both scales are parameters learned with the weights (learned step sizes),
  for quantizers of at most 8 bits (``LSQ_MAX_BITS``; wider ones keep the calibrated range).

``lsq`` is the default, by val accuracy (benchmarks/quant_ranges.py, figures and commands
in benchmarks/results/quant_ranges.txt; LeNet-5, the same
pretrained base and genomes: uniform 2/3/4 bits at ratio 1.0 and 1.5, plus random ones;
mean val accuracy, fixed / ema / lsq):

- MNIST-5k, final budget (4 epochs, 3,600 images, 4 genomes): 94.69 / - / 95.25 %
  (95.56 % since the network input keeps its calibrated scale); distilled (weight 0.7):
  94.25 / - / 94.81 %.
- MNIST-5k, search budget (1 epoch, 2,000 images, 10 genomes): 94.30 / 93.93 / 94.10 %.
- Fashion-MNIST, search budget (8 genomes, 6,000 val images): 81.20 / 81.09 / 81.29 %;
  distilled (0.7): 80.68 / 79.86 / 80.88 %.

``ema`` is never the best and re-choosing the weight clipping every step makes it the
slowest (train time per evaluation on a shared machine 2.1-2.4 s against 1.3-2.0 s).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ._ops import (
    fake_quant_per_channel,
    fake_quant_per_tensor,
    int_range,
    lsq_per_channel,
    lsq_per_tensor,
)

__all__ = [
    "QuantLayer",
    "QuantConv2d",
    "QuantLinear",
    "RANGE_MODES",
    "best_clip_ratio",
    "weight_scale_for",
]

RANGE_MODES = ("fixed", "ema", "lsq")
_CLIP_RATIOS = torch.linspace(1.0, 0.3, 15)
_CALIBRATION_SAMPLE = 65_536
_EMA_SAMPLE = 8_192  # per training step: a cheaper strided sample, the average smooths it
# Weight of each batch in the moving average: torch.ao's 0.01 would barely move within a
# search's fine-tune of a few dozen steps.
EMA_MOMENTUM = 0.1
LSQ_WEIGHT_SCALE = "learned_weight_scale"  # ends in _scale: no weight decay on it
# LSQ learns a quantizer's scale only up to this many bits. Wider quantizers keep their
# calibrated range: their steps are so fine that a learned range gains nothing, and their
# scales are so small (16-bit weights: ~4e-6) that one Adam step of the learning rate
# drives them below zero, where the clamp stops their gradient: a LeNet-5 at 12/16 bits
# fell to 42 % / 10 % val (fixed ranges: 95.1 %, as at 8 bits).
LSQ_MAX_BITS = 8


def _abs_percentile(x: torch.Tensor, sample: int, q: float = 0.999) -> torch.Tensor:
    """The ``q`` quantile of |x| on an evenly strided sample of at most ``sample`` values
    (kthvalue selects in linear time; torch.quantile sorts, half the build time)."""
    flat = x.detach().abs().flatten()
    if flat.numel() > sample:
        idx = torch.linspace(0, flat.numel() - 1, sample, device=flat.device)
        flat = flat[idx.long()]
    k = max(1, round(q * flat.numel()))
    return flat.float().kthvalue(k).values.clamp_min(1e-5)


def weight_scale_for(w: torch.Tensor, bits: int, clip: torch.Tensor) -> torch.Tensor:
    """Per-channel scale of ``w``: ``clip * max|w| / qmax`` (1 bit: the mean of |w|)."""
    flat = w.detach().flatten(1).abs()
    if bits == 1:
        return flat.mean(dim=1).clamp_min(1e-8)
    _, qmax = int_range(bits, signed=True)
    return (flat.amax(dim=1) * clip / qmax).clamp_min(1e-8)


def best_clip_ratio(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-channel clipping ratio of max|w| with the least squared quantization error (a
    grid search: at 2-4 bits clipping outliers beats the plain maximum)."""
    flat = w.detach().flatten(1)
    best = torch.ones(flat.shape[0], dtype=flat.dtype, device=flat.device)
    if bits == 1:
        return best
    _, qmax = int_range(bits, signed=True)
    amax = flat.abs().amax(dim=1).clamp_min(1e-8)
    best_err = torch.full_like(amax, float("inf"))
    for ratio in _CLIP_RATIOS:
        scale = amax * ratio / qmax
        q = (flat / scale[:, None]).round().clamp(-qmax, qmax) * scale[:, None]
        err = (q - flat).pow(2).sum(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, torch.full_like(best, float(ratio)), best)
    return best


class ActivationState:
    """Mixin: whether a layer's input is calibrated and signed, kept twice: in buffers,
    which a state dict saves and restores, and in Python attributes that the forward reads.
    Reading a buffer with ``bool()`` in every forward would wait for the device at every step
    on a GPU; the attributes are set where the buffers are (calibration, loading a state
    dict)."""

    act_calibrated: torch.Tensor
    act_is_signed: torch.Tensor

    def _init_activation_state(self, device: torch.device) -> None:
        # calibrated on the first batch seen unless calibrated before; signed when that
        # batch had negatives
        self.register_buffer("act_calibrated", torch.tensor(False, device=device))  # type: ignore[attr-defined]
        self.register_buffer("act_is_signed", torch.tensor(False, device=device))  # type: ignore[attr-defined]
        self._act_calibrated = False
        self._act_signed = False

    @property
    def act_signed(self) -> bool:
        return self._act_signed

    @property
    def is_calibrated(self) -> bool:
        return self._act_calibrated

    @torch.no_grad()
    def set_activation_state(self, *, calibrated: bool, signed: bool | None = None) -> None:
        """Set whether the input is calibrated (and signed), in the buffers and their mirrors."""
        self.act_calibrated.fill_(calibrated)
        self._act_calibrated = bool(calibrated)
        if signed is not None:
            self.act_is_signed.fill_(signed)
            self._act_signed = bool(signed)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[misc]
        # the mirrors of the buffers just loaded (one read per load, not per forward)
        self._act_calibrated = bool(self.act_calibrated)
        self._act_signed = bool(self.act_is_signed)


class QuantLayer(ActivationState):
    """Mixin state: weight and input-activation bits, the weights' clipping ratios and
    the activations' scale (buffers, so a state dict restores them), whether the input is
    calibrated and signed (``ActivationState``)."""

    weight: torch.Tensor
    weight_bits: int
    act_bits: int
    weight_clip: torch.Tensor
    act_scale: torch.Tensor
    range_mode: str = "fixed"

    def _init_quant(self, weight_bits: int, act_bits: int) -> None:
        self.weight_bits = int(weight_bits)
        self.act_bits = int(act_bits)
        on = {"device": self.weight.device}  # beside the weights, wherever they are
        self.register_buffer("weight_clip", best_clip_ratio(self.weight, self.weight_bits))
        self.register_buffer("act_scale", torch.ones(1, **on))
        self._init_activation_state(self.weight.device)

    @torch.no_grad()
    def calibrate_activation(self, x: torch.Tensor) -> None:
        """Start the clipping range at a high percentile of |x| (not the max: one outlier
        would waste most codes) and pick signed codes when the input has negatives."""
        signed = bool((x < 0).any())  # one sync, at calibration only
        if signed and self.act_bits < 2:
            raise ModelError(
                f"a {self.act_bits}-bit activation cannot quantize a signed input (its only "
                "code is zero); give this layer at least 2 activation bits"
            )
        _, qmax = int_range(self.act_bits, signed)
        self.act_scale.copy_(_abs_percentile(x, _CALIBRATION_SAMPLE) / qmax)
        self.set_activation_state(calibrated=True, signed=signed)

    @torch.no_grad()
    def set_range_mode(self, mode: str) -> None:
        """Switch to ``mode`` (see the module doc) from the current, calibrated ranges; LSQ
        turns both scales into parameters, so call it before the optimizer is made."""
        if mode not in RANGE_MODES:
            raise ValueError(f"range mode {mode!r} is not one of {', '.join(RANGE_MODES)}")
        if mode == "lsq" and self.range_mode != "lsq":
            if self.weight_bits <= LSQ_MAX_BITS:
                scale = self.weight_scale().detach().clone()
                self.register_parameter(LSQ_WEIGHT_SCALE, nn.Parameter(scale))
            if self.act_bits <= LSQ_MAX_BITS:
                act = self._buffers.pop("act_scale").detach().clone()
                self.register_parameter("act_scale", nn.Parameter(act))
        elif mode != "lsq" and self.range_mode == "lsq":
            raise ValueError("a layer with learned step sizes cannot go back to other ranges")
        self.range_mode = mode

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # A checkpoint of an LSQ layer holds its learned weight scale: become LSQ to take it.
        if prefix + LSQ_WEIGHT_SCALE in state_dict and self.range_mode != "lsq":
            self.set_range_mode("lsq")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def _learns_weight_scale(self) -> bool:
        return self.range_mode == "lsq" and LSQ_WEIGHT_SCALE in self._parameters

    def weight_scale(self) -> torch.Tensor:
        """The per-channel scale the weights are quantized with now."""
        if self._learns_weight_scale:
            return getattr(self, LSQ_WEIGHT_SCALE).clamp_min(1e-8)
        if self.range_mode == "ema" and self.training and torch.is_grad_enabled():
            with torch.no_grad():  # the MSE-best clipping of the weights as they are now
                self.weight_clip.copy_(best_clip_ratio(self.weight, self.weight_bits))
        return weight_scale_for(self.weight, self.weight_bits, self.weight_clip)

    def quantized_weight(self) -> torch.Tensor:
        if self._learns_weight_scale:
            return lsq_per_channel(self.weight, getattr(self, LSQ_WEIGHT_SCALE), self.weight_bits)
        return fake_quant_per_channel(self.weight, self.weight_scale(), self.weight_bits)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self._act_calibrated:
            self.calibrate_activation(x)
        elif self.range_mode == "ema" and self.training:
            with torch.no_grad():
                _, qmax = int_range(self.act_bits, self.act_signed)
                batch = _abs_percentile(x, _EMA_SAMPLE) / qmax
                self.act_scale.lerp_(batch.reshape(1).to(self.act_scale.dtype), EMA_MOMENTUM)
        if self.range_mode == "lsq" and "act_scale" in self._parameters and x.requires_grad:
            return lsq_per_tensor(x, self.act_scale, self.act_bits, self.act_signed)
        # The network's input (no gradient) keeps its calibrated scale: learning it would
        # make the first layer compute an input gradient for nothing but that scale.
        return fake_quant_per_tensor(x, self.act_scale.detach(), self.act_bits, self.act_signed)

    @torch.no_grad()
    def _take_float(self, layer: nn.Module, weight_bits: int, act_bits: int):
        """Copy the float layer's weight and bias, then set up the quantizers."""
        self.weight.copy_(layer.weight)
        if layer.bias is not None:
            self.bias.copy_(layer.bias)  # type: ignore[attr-defined]
        self._init_quant(weight_bits, act_bits)
        return self

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        sign = "s" if self.act_signed else "u"
        return f"{base}, w{self.weight_bits}a{self.act_bits}{sign}"


class QuantConv2d(QuantLayer, nn.Conv2d):
    @classmethod
    def from_float(cls, conv: nn.Conv2d, weight_bits: int, act_bits: int) -> QuantConv2d:
        q = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        return q._take_float(conv, weight_bits, act_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quantized_input(x), self.quantized_weight(), self.bias)


class QuantLinear(QuantLayer, nn.Linear):
    @classmethod
    def from_float(cls, linear: nn.Linear, weight_bits: int, act_bits: int) -> QuantLinear:
        q = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        return q._take_float(linear, weight_bits, act_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantized_input(x), self.quantized_weight(), self.bias)
