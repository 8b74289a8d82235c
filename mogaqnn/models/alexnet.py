"""AlexNet (Krizhevsky, Sutskever, Hinton, NeurIPS 2012) adapted to 28×28 and 32×32 inputs.

Five convolutions and three fully connected layers, as in the paper, with ReLU, max pooling
and dropout before the first two fully connected layers. No BatchNorm, as in the paper.

Changes for small inputs and a CPU budget:

* 3×3 convolutions with stride 1 replace the 11×11/stride-4 and 5×5 stem, which would shrink
  a 28×28 image to nothing; three 2×2 max pools take 28→14→7→3 (32→16→8→4).
* The convolution widths 64-192-384-256-256 of torchvision's single-tower AlexNet are scaled
  to 32-64-96-64-64, and the 4096-4096 classifier to 256-256: 11 M instead of 153 M
  multiply-adds per 28×28 image, so an epoch of MNIST-5k takes seconds on a 2-core CPU.
  MNIST does not need the full width, and the channel-expansion search is the tool that
  buys width back where it pays.
* ``nn.AdaptiveAvgPool2d(3)`` (torchvision uses 6) gives the classifier a fixed 3×3 input
  for both image sizes.
"""

from __future__ import annotations

import torch
from torch import nn

from ._layers import init_weights
from ._registry import register_model

__all__ = ["AlexNet"]


class AlexNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        widths: tuple[int, int, int, int, int] = (32, 64, 96, 64, 64),
        hidden: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(3)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c5 * 3 * 3, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


@register_model("alexnet", "AlexNet: 5 conv + 3 fully connected, widths 32-64-96-64-64 / 256-256")
def alexnet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    return AlexNet(in_channels, num_classes, image_size)
