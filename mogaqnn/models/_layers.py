"""Small helpers shared by the zoo builders."""

from __future__ import annotations

from torch import nn

__all__ = ["make_divisible", "init_weights"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90% of ``value``.

    The rule of MobileNetV2's reference code (and timm's ``layers/helpers.py``): widths derived
    from one base width stay hardware-friendly multiples of ``divisor``.
    """
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:  # rounding down must not remove more than 10% of the channels
        new_value += divisor
    return new_value


def init_weights(model: nn.Module) -> None:
    """He (fan-out) init for convs, unit BatchNorm, small normal init for linear layers."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
