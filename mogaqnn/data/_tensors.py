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
    class_names: tuple[str, ...] = ()
    # Per-channel mean and std (of pixel values in [0, 1]) that normalised every split;
    # new images must be normalised the same way before a trained model sees them.
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


@dataclass(frozen=True)
class Augmentation:
    """Random crop after zero padding by ``crop_padding`` pixels, and optional horizontal flip.

    Every sample gets its own shift and flip. Zero is the training mean after
    normalisation, so padding shows the mean colour, not black.
    """

    crop_padding: int = 0
    horizontal_flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.horizontal_flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch [N, C, H, W]; random numbers come from ``generator`` (a CPU one).

        Without a generator torch's global random state is used.
        """
        n, c, h, w = x.shape
        if self.crop_padding > 0:
            p = self.crop_padding
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            shifts = torch.randint(0, 2 * p + 1, (2, n), generator=generator).to(x.device)
            # Two gathers (rows, then columns) cut a different window from every sample
            # without a Python loop; the expanded index tensors are views, not copies.
            rows = (shifts[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (shifts[1, :, None] + torch.arange(w, device=x.device))[:, None, None, :]
            x = padded.gather(2, rows.expand(n, c, h, w + 2 * p)).gather(3, cols.expand(n, c, h, w))
        if self.horizontal_flip:
            flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
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
    """Batches of ``data`` moved to ``device``; shuffled and augmented with ``generator``.

    Augmentation runs after the move, so on a GPU it costs a few kernel launches per batch.
    """
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x = data.x[idx].to(device, non_blocking=True)
        y = data.y[idx].to(device, non_blocking=True)
        if augmentation is not None and augmentation.active:
            x = augmentation(x, generator)
        yield x, y
