"""CIFAR ResNets (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition",
CVPR 2016, section 4.2): ResNet-(6n+2) for 28×28 and 32×32 inputs.

A 3×3 stem of 16 channels, three stages of ``n`` basic blocks with 16, 32 and 64 channels
(the first block of stages two and three has stride 2), global average pooling and one fully
connected layer. Where a block changes shape, the shortcut is a 1×1 convolution with stride
plus BatchNorm (the paper's option B, projection shortcuts for increasing dimensions); all
other shortcuts are identities. 28×28 inputs give 28→14→7 feature maps, 32×32 give 32→16→8.
"""

from __future__ import annotations

import torch
from torch import nn

from ._layers import init_weights
from ._registry import register_model

__all__ = ["BasicBlock", "CifarResNet"]


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        # Not in place: it reads the sum of the residual add, which the channel-coupling
        # analysis and fake-quant observers must see unmodified.
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ``self.shortcut is None`` is fixed at construction, so tracing takes one branch.
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class CifarResNet(nn.Module):
    def __init__(
        self,
        depth: int,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_planes = widths[0]
        stages: list[nn.Module] = []
        for i, planes in enumerate(widths):
            blocks: list[nn.Module] = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        # No zero-init of the blocks' last BN scale here (unlike MobileNetV2 in this zoo): it
        # dropped ResNet-20's 3-epoch MNIST-5k val accuracy to 49% (test 91% -> 51%).
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model("resnet20", "CIFAR ResNet-20: 3 stages × 3 basic blocks, 16-32-64 channels")
def resnet20(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    return CifarResNet(20, in_channels, num_classes, image_size)


@register_model("resnet56", "CIFAR ResNet-56: 3 stages × 9 basic blocks, 16-32-64 channels")
def resnet56(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    return CifarResNet(56, in_channels, num_classes, image_size)
