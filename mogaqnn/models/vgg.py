"""VGG-11 with BatchNorm (Simonyan & Zisserman, ICLR 2015, configuration "A";
BatchNorm after Ioffe & Szegedy, ICML 2015) adapted to 28×28 and 32×32 inputs.

Eight 3×3 convolutions in the VGG-11 pattern 64 | 128 | 256-256 | 512-512 | 512-512, each
followed by BatchNorm and ReLU. Changes for small inputs and a CPU budget:

* Widths are the paper's times ``width_mult`` (default 1/4: 16 | 32 | 64-64 | 128-128 |
  128-128), rounded to multiples of 8.
* Only the first three stages end in a 2×2 max pool (28→14→7→3, 32→16→8→4); pooling after
  stages four and five would leave no pixels at 28×28. ``nn.AdaptiveAvgPool2d(1)`` then makes
  the classifier independent of the image size.
* The 4096-4096 classifier becomes one hidden layer of 256 units: global pooling already
  leaves a small feature vector.
"""

from __future__ import annotations

import torch
from torch import nn

from ._layers import init_weights, make_divisible
from ._registry import register_model

__all__ = ["VGG"]

# Stages of configuration "A"; the bool says whether the stage ends in a max pool.
_VGG11_STAGES: tuple[tuple[tuple[int, ...], bool], ...] = (
    ((64,), True),
    ((128,), True),
    ((256, 256), True),
    ((512, 512), False),
    ((512, 512), False),
)


class VGG(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        width_mult: float = 0.25,
        hidden: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for widths, pool in _VGG11_STAGES:
            for w in widths:
                c_out = make_divisible(w * width_mult)
                layers += [
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),  # BN supplies the bias
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                ]
                c_in = c_out
            if pool:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


@register_model("vgg11", "VGG-11 with BatchNorm, width ×1/4, 8 conv + 2 fully connected")
def vgg11(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    return VGG(in_channels, num_classes, image_size)
