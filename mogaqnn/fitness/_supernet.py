"""Training the weight-sharing supernet: one float network at the widest ratio of every group
whose first channels are every narrower width (slimmable networks, once-for-all).

Each step sums the losses of the widest, the narrowest and ``RANDOM_WIDTHS_PER_STEP`` random
widths (the sandwich rule), each computed with the channels past its width masked to zero,
which is what the slice at that width computes (``expand.channel_masks``). The step runs in
``train.train_model``'s loop, so the supernet has the schedule, the epoch checkpoints and the
divergence check of every other training.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..data import LabelledImages
from ..expand import ModelGraph, channel_masks
from ..train import Progress, TrainSettings, train_model

__all__ = ["RANDOM_WIDTHS_PER_STEP", "SandwichLoss", "train_supernet"]

RANDOM_WIDTHS_PER_STEP = 2  # the sandwich rule's random widths, besides widest and narrowest


class SandwichLoss:
    """The loss of one supernet step (``train.LossFn``): the cross-entropy summed over the
    widest, the narrowest and random widths (one choice per group, drawn from ``rng``)."""

    def __init__(
        self,
        supernet_graph: ModelGraph,
        width_choices: Sequence[Sequence[int]],
        rng: random.Random,
    ) -> None:
        self.graph, self.choices, self.rng = supernet_graph, width_choices, rng
        self.widest = [max(c) for c in width_choices]
        self.narrowest = [min(c) for c in width_choices]

    def sampled_widths(self) -> list[list[int]]:
        samples = [[self.rng.choice(c) for c in self.choices]
                   for _ in range(RANDOM_WIDTHS_PER_STEP)]  # fmt: skip
        return [self.widest, self.narrowest, *samples]

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor | None
    ) -> torch.Tensor:
        total = torch.zeros((), device=x.device)
        for widths in self.sampled_widths():
            masks = channel_masks(model, self.graph, widths)
            params = {n: p * masks[n] for n, p in model.named_parameters() if n in masks}
            total = total + F.cross_entropy(functional_call(model, params, (x,)), y)
        return total


def train_supernet(
    supernet: nn.Module,
    supernet_graph: ModelGraph,
    width_choices: Sequence[Sequence[int]],
    data: LabelledImages,
    settings: TrainSettings,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> None:
    """Train ``supernet`` in place by the sandwich rule over ``width_choices`` (per group,
    the widths an individual can have). With ``progress`` the state is saved there after
    every epoch and continued from."""
    rng = random.Random(seed)
    loss = SandwichLoss(supernet_graph, width_choices, rng)
    train_model(supernet, data, settings, seed=seed, device=device, progress=progress,
                loss=loss, rng=rng)  # fmt: skip
    supernet.eval()
