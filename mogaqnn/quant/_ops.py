"""The one place that touches torch's private fused fake-quantization ops.

Both ops quantize and dequantize in one C++ kernel and carry the straight-through
estimator (STE) for the input and the LSQ gradient (Esser et al., 2020) for the scale,
so no autograd code is written here.
"""

from __future__ import annotations

import torch

__all__ = ["int_range", "fake_quant_per_channel", "fake_quant_per_tensor", "binarize"]


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


def _lsq_grad_factor(numel: int, qmax: int) -> float:
    # LSQ's step-size gradient scale 1/sqrt(N * Qp) keeps the scale's update comparable
    # to the weights' whatever the tensor size and bit width.
    return 1.0 / max(numel * max(qmax, 1), 1) ** 0.5


def fake_quant_per_channel(
    w: torch.Tensor, scale: torch.Tensor, bits: int, axis: int = 0
) -> torch.Tensor:
    """Symmetric per-output-channel fake quantization with a learnable ``scale`` [C].

    >>> w = torch.tensor([[0.9, -0.2, 0.05], [2.0, -2.0, 0.7]])
    >>> fake_quant_per_channel(w, torch.tensor([0.3, 1.0]), bits=3)
    tensor([[ 0.9000, -0.3000,  0.0000],
            [ 2.0000, -2.0000,  1.0000]])
    """
    if bits == 1:
        return binarize(w, scale)
    qmin, qmax = int_range(bits, signed=True)
    zero_point = torch.zeros_like(scale)
    factor = _lsq_grad_factor(w.numel() // w.shape[axis], qmax)
    return torch._fake_quantize_learnable_per_channel_affine(
        w, scale, zero_point, axis, qmin, qmax, factor
    )


def fake_quant_per_tensor(
    x: torch.Tensor, scale: torch.Tensor, bits: int, signed: bool
) -> torch.Tensor:
    """Per-tensor fake quantization of activations with a learnable clipping ``scale`` [1].

    Unsigned (after a ReLU) uses all ``2**bits`` codes from zero; signed is symmetric.

    >>> fake_quant_per_tensor(torch.tensor([-1.0, 0.26, 0.74, 9.0]), torch.tensor([0.5]), 2, False)
    tensor([0.0000, 0.5000, 0.5000, 1.5000])
    """
    qmin, qmax = int_range(bits, signed)
    factor = _lsq_grad_factor(x[0].numel() if x.dim() > 1 else x.numel(), qmax)
    zero_point = torch.zeros_like(scale)
    return torch._fake_quantize_learnable_per_tensor_affine(
        x, scale, zero_point, qmin, qmax, factor
    )


def binarize(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """1-bit weights, ``scale * sign(w)`` per output channel (no fused op has two levels
    without zero). The value is the sign; the gradient passes to ``w`` unchanged (STE) and
    to ``scale`` as the sign."""
    shape = (-1,) + (1,) * (w.dim() - 1)
    sign = torch.where(w >= 0, 1.0, -1.0).to(w.dtype).detach()
    return sign * scale.view(shape) + (w - w.detach())
