"""The one place that calls torch's fused fake-quantization ops.

Each op quantizes and dequantizes in one C++ kernel and carries the straight-through
estimator (STE): the gradient passes unchanged inside the clipping range and is zero
outside. The learned-step-size (LSQ) weights use torch's learnable-scale kernel, which is
private (``torch._fake_quantize_learnable_per_channel_affine``): this module is its only
caller, so a change in torch is mended here. LSQ activations use a small autograd function
that computes what torch's fused op with its in-range mask computes: the same values and
gradients as torch's learnable kernel, faster (see it).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "int_range",
    "fake_quant_per_channel",
    "fake_quant_per_tensor",
    "binarize",
    "lsq_per_channel",
    "lsq_per_tensor",
]


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer code range of a ``bits``-bit quantizer.

    Signed ranges are symmetric (narrow), which keeps zero exact and the codes at most
    ``2**bits - 1`` distinct values:

    >>> int_range(2, signed=True), int_range(4, signed=True), int_range(4, signed=False)
    ((-1, 1), (-7, 7), (0, 15))
    """
    if signed:
        q = 2 ** (bits - 1) - 1
        return -q, q
    return 0, 2**bits - 1


def fake_quant_per_channel(
    w: torch.Tensor, scale: torch.Tensor, bits: int, axis: int = 0
) -> torch.Tensor:
    """Symmetric per-output-channel fake quantization with ``scale`` [C].

    >>> w = torch.tensor([[0.9, -0.2, 0.05], [2.0, -2.0, 0.7]])
    >>> fake_quant_per_channel(w, torch.tensor([0.3, 1.0]), bits=3)
    tensor([[ 0.9000, -0.3000,  0.0000],
            [ 2.0000, -2.0000,  1.0000]])
    """
    if bits == 1:
        return binarize(w, scale)
    qmin, qmax = int_range(bits, signed=True)
    zero_point = torch.zeros(scale.shape, dtype=torch.int32, device=scale.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zero_point, axis, qmin, qmax)


def fake_quant_per_tensor(
    x: torch.Tensor, scale: torch.Tensor, bits: int, signed: bool
) -> torch.Tensor:
    """Per-tensor fake quantization of activations with the clipping ``scale`` [1].

    Unsigned (after a ReLU) uses all ``2**bits`` codes from zero; signed is symmetric.

    >>> fake_quant_per_tensor(torch.tensor([-1.0, 0.26, 0.74, 9.0]), torch.tensor([0.5]), 2, False)
    tensor([0.0000, 0.5000, 0.5000, 1.5000])
    """
    qmin, qmax = int_range(bits, signed)
    zero_point = torch.zeros(1, dtype=torch.int32, device=scale.device)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, qmin, qmax)


def binarize(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """1-bit weights, ``scale * sign(w)`` per output channel (no fused op has two levels
    without zero). The gradient passes to ``w`` unchanged (STE)."""
    shape = (-1,) + (1,) * (w.dim() - 1)
    sign = torch.where(w >= 0, 1.0, -1.0).to(w.dtype).detach()
    return sign * scale.view(shape) + (w - w.detach())


def lsq_per_channel(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel fake quantization with a learned ``scale`` [C] (LSQ, Esser et al.
    2020): the scale's gradient is scaled by ``1 / sqrt(weights per channel * qmax)`` so it
    moves at the weights' pace. 1 bit: ``scale * sign(w)``, the scale learned as well."""
    scale = scale.clamp_min(1e-8)
    if bits == 1:
        return binarize(w, scale)
    qmin, qmax = int_range(bits, signed=True)
    zero_point = torch.zeros(scale.shape, dtype=scale.dtype, device=scale.device)
    grad_factor = 1.0 / math.sqrt(w[0].numel() * qmax)
    return torch._fake_quantize_learnable_per_channel_affine(
        w, scale, zero_point, 0, qmin, qmax, grad_factor
    )


def lsq_per_tensor(x: torch.Tensor, scale: torch.Tensor, bits: int, signed: bool) -> torch.Tensor:
    """Per-tensor fake quantization of activations with a learned ``scale`` [1] (LSQ), the
    gradient scaled by ``1 / sqrt(features per sample * qmax)``."""
    qmin, qmax = int_range(bits, signed)
    grad_factor = 1.0 / math.sqrt(max(x[0].numel(), 1) * qmax)
    return _LearnedStepPerTensor.apply(x, scale.clamp_min(1e-8), qmin, qmax, grad_factor)


class _LearnedStepPerTensor(torch.autograd.Function):
    """The gradients of ``torch._fake_quantize_learnable_per_tensor_affine`` (zero point 0)
    around the forward of torch's fused op with its in-range mask. Activations are the large
    tensors; torch's learnable kernel costs several passes over them per step, this backward
    three (the mask product and two dot products): ResNet-20's QAT step 1.52x the FP32 step
    with the learnable kernel, 1.40 with torch's fused forward, 1.28 with the vectorised one
    below (benchmarks/qat_overhead.py, one process beside it on the other core).

    d out / d x = 1 where round(x / s) lies in [qmin, qmax], else 0 (STE);
    d out / d s = round(x / s) - x / s inside, the clamped code outside; times grad_factor,
    i.e. (sum(grad * out) - sum(grad * x * inside)) / s * grad_factor.
    """

    @staticmethod
    def forward(ctx, x, scale, qmin: int, qmax: int, grad_factor: float):  # type: ignore[override]
        # torch's fused op, round(x * (1 / s)) clamped times s, as three vectorised passes:
        # the same values and mask, 3-4x faster on the CPU than its per-element kernel
        # (9 ms of ResNet-20's 1 s step per call, 19 % of the step).
        s = scale.detach()
        q = torch.round(x * (1.0 / s))
        inside = (q >= qmin) & (q <= qmax)
        y = q.clamp_(qmin, qmax).mul_(s).to(x.dtype)
        ctx.save_for_backward(x, y, inside, scale)
        ctx.grad_factor = grad_factor
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, y, inside, scale = ctx.saved_tensors
        grad_x = grad * inside
        g = grad.reshape(-1)
        dot = torch.dot(g, y.reshape(-1)) - torch.dot(grad_x.reshape(-1), x.reshape(-1))
        grad_scale = dot / scale * ctx.grad_factor
        return grad_x, grad_scale.reshape(scale.shape), None, None, None
