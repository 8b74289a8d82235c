"""Labelled image tensors held in memory, and a batch iterator with cheap augmentation.

Every dataset here fits in memory as float tensors, so an epoch is a shuffled index
permutation and a few tensor ops per batch, not a DataLoader call per sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LabelledImages", "DatasetSplits", "Augmentation", "iterate_batches"]


@dataclass(frozen=True)
class LabelledImages:
    """``x``: float32 [N, C, H, W], normalised; ``y``: int64 [N]."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, indices: np.ndarray) -> LabelledImages:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return LabelledImages(self.x[idx], self.y[idx])


@dataclass(frozen=True)
class DatasetSplits:
    """Train / val / test splits of one dataset; val is carved from the training data."""

    name: str
    train: LabelledImages
    val: LabelledImages
    test: LabelledImages
    num_classes: int
    in_channels: int
    image_size: int
    augment_flip: bool = False  # horizontal flips make sense for natural images only


@dataclass(frozen=True)
class Augmentation:
    """Random crop with zero padding ``crop_padding`` pixels, and optional horizontal flip."""

    crop_padding: int = 0
    horizontal_flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.horizontal_flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.crop_padding > 0:
            p = self.crop_padding
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            # One shift per batch keeps this a single slice; batches differ, samples within
            # one batch share the shift, which is enough jitter for the small budgets here.
            dy, dx = torch.randint(0, 2 * p + 1, (2,), generator=generator).tolist()
            x = padded[:, :, dy : dy + h, dx : dx + w]
        if self.horizontal_flip:
            flip = torch.rand(n, generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


def iterate_batches(
    data: LabelledImages,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    augmentation: Augmentation | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x, y = data.x[idx], data.y[idx]
        if augmentation is not None and augmentation.active and generator is not None:
            x = augmentation(x, generator)
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
