"""The quantization-aware supernet: one network at the widest ratio of every group whose
layers quantize at any bit width of the search space (``quant.MultiBitLayer``: the float
weights shared, one learned step size per layer and bit width), trained so that every
(widths, bits) slice is a good quantized network, and read without training.

Each training step sums the losses of four subnetworks, the sandwich rule of slimmable
networks and once-for-all extended to bits as BatchQuant and EQ-Net do: the widest at the
most bits of every layer, the narrowest at the fewest, and ``RANDOM_SUBNETS_PER_STEP`` with
a random width per group and random weight and activation bits per layer. The widest learns
from the labels; the others from the widest's detached soft predictions (in-place
distillation). A subnetwork's channels past its widths are masked to zero, which is what its
slice computes (``expand.channel_masks``). The steps run in ``train.train_model``'s loop: its
schedule, its epoch checkpoints, its divergence check.

An individual is read by ``slice_quant_supernet``: the first channels of each group
(``expand.slice_model``), each layer the plain ``QuantConv2d`` / ``QuantLinear`` at the
genome's bits with the supernet's steps for those bits; then its BatchNorm statistics are
recalibrated on a few training batches at its widths and bits.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..data import LabelledImages
from ..expand import ModelGraph, channel_masks, group_widths, slice_model
from ..genome import Genome, SearchSpace
from ..quant import calibrate, fix_bits, quantize_multibit, set_bits
from ..train import Progress, TrainSettings, reestimate_batchnorm, train_model

__all__ = [
    "RANDOM_SUBNETS_PER_STEP",
    "QuantSandwichLoss",
    "QuantSupernetStart",
    "Subnet",
    "calibrate_quant_supernet",
    "make_quant_supernet",
    "slice_quant_supernet",
    "subnet_forward",
    "train_quant_supernet",
]

RANDOM_SUBNETS_PER_STEP = 2  # the sandwich rule's random subnetworks, besides its two ends


@dataclass(frozen=True)
class Subnet:
    widths: list[int]  # per group
    bits: dict[str, tuple[int, int]]  # layer -> (weight bits, activation bits)


def make_quant_supernet(supernet: nn.Module, space: SearchSpace) -> nn.Module:
    """``supernet`` (a float network at the widest ratios) with every layer of the search
    space made multi-bit over the space's bit choices, in place."""
    choices = (space.weight_bit_choices, space.act_bit_choices)
    return quantize_multibit(supernet, dict.fromkeys(space.layers, choices))


class QuantSandwichLoss:
    """The loss of one quant-supernet step (``train.LossFn``)."""

    def __init__(
        self,
        supernet_graph: ModelGraph,
        width_choices: Sequence[Sequence[int]],
        space: SearchSpace,
        rng: random.Random,
    ) -> None:
        self.graph, self.width_choices, self.space, self.rng = (
            supernet_graph, width_choices, space, rng,
        )  # fmt: skip
        w, a = space.weight_bit_choices, space.act_bit_choices
        self.widest = Subnet([max(c) for c in width_choices],
                             dict.fromkeys(space.layers, (max(w), max(a))))  # fmt: skip
        self.narrowest = Subnet([min(c) for c in width_choices],
                                dict.fromkeys(space.layers, (min(w), min(a))))  # fmt: skip

    def random_subnet(self) -> Subnet:
        widths = [self.rng.choice(c) for c in self.width_choices]
        w, a = self.space.weight_bit_choices, self.space.act_bit_choices
        bits = {n: (self.rng.choice(w), self.rng.choice(a)) for n in self.space.layers}
        return Subnet(widths, bits)

    def sampled(self) -> list[Subnet]:
        randoms = [self.random_subnet() for _ in range(RANDOM_SUBNETS_PER_STEP)]
        return [self.widest, self.narrowest, *randoms]

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor | None
    ) -> torch.Tensor:
        total = torch.zeros((), device=x.device)
        soft: torch.Tensor | None = None
        for subnet in self.sampled():
            logits = subnet_forward(model, self.graph, subnet, x)
            if soft is None:  # the widest, first: from the labels
                total = total + F.cross_entropy(logits, y)
                soft = F.log_softmax(logits.detach(), dim=1)
            else:
                total = total + F.kl_div(F.log_softmax(logits, dim=1), soft, log_target=True,
                                         reduction="batchmean")  # fmt: skip
        return total


def subnet_forward(
    model: nn.Module, supernet_graph: ModelGraph, subnet: Subnet, x: torch.Tensor
) -> torch.Tensor:
    """The quant supernet's output at the subnet's bits with the channels past its widths
    masked to zero: what ``slice_quant_supernet`` computes (before BatchNorm recalibration)."""
    set_bits(model, subnet.bits)
    masks = channel_masks(model, supernet_graph, subnet.widths)
    if not masks:
        return model(x)
    params = {n: p * masks[n] for n, p in model.named_parameters() if n in masks}
    return functional_call(model, params, (x,))


def train_quant_supernet(
    supernet: nn.Module,
    supernet_graph: ModelGraph,
    width_choices: Sequence[Sequence[int]],
    space: SearchSpace,
    data: LabelledImages,
    settings: TrainSettings,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> None:
    """Train a multi-bit ``supernet`` (``make_quant_supernet``, calibrated) in place by the
    sandwich rule over ``width_choices`` (per group) and the space's bits. With
    ``progress`` the state is saved there after every epoch and continued from."""
    rng = random.Random(seed)
    loss = QuantSandwichLoss(supernet_graph, width_choices, space, rng)
    train_model(supernet, data, settings, seed=seed, device=device, progress=progress,
                loss=loss, rng=rng)  # fmt: skip
    set_bits(supernet, loss.widest.bits)
    supernet.eval()


def calibrate_quant_supernet(supernet: nn.Module, images: torch.Tensor, space: SearchSpace) -> None:
    """Every layer's activation steps at every bit width from one batch through the widest
    network at the most bits, BatchNorm normalising by the batch (the supernet's running
    statistics mix all widths: calibrated on them, ResNet-20's steps fit no width); the
    weight steps come from the weights when the layers are made."""
    w, a = space.weight_bit_choices, space.act_bit_choices
    set_bits(supernet, dict.fromkeys(space.layers, (max(w), max(a))))
    calibrate(supernet, images, batch_statistics=True)


@torch.no_grad()
def slice_quant_supernet(
    supernet: nn.Module, supernet_graph: ModelGraph, widths: Sequence[int], space: SearchSpace,
    genome: Genome,
) -> nn.Module:  # fmt: skip
    """The genome's network read from the quant supernet: its first ``widths`` channels of
    every group, every layer the plain quantized layer at the genome's bits with the
    supernet's steps for them (a layer at 32/32 bits: float). BatchNorm statistics are the
    supernet's, to be recalibrated."""
    model = slice_model(supernet, supernet_graph, widths)
    return fix_bits(model, space.layer_bits(genome))


@dataclass(frozen=True)
class QuantSupernetStart:
    """The start of the quant-supernet fitness: the genome's slice, quantized and calibrated
    already (Evaluator.build takes it as it is), its BatchNorm statistics recalibrated on
    ``bn_batches`` seeded batches of the search's training subset (0: all of it, in order)."""

    supernet: nn.Module  # multi-bit, at the widest ratio of every group
    graph: ModelGraph  # the base's
    supernet_graph: ModelGraph
    space: SearchSpace
    train_data: LabelledImages
    bn_batches: int
    batch_size: int
    seed: int
    device: torch.device

    def __call__(self, genome: Genome) -> nn.Module:
        widths = group_widths(self.graph, genome.ratios)
        model = slice_quant_supernet(self.supernet, self.supernet_graph, widths, self.space,
                                     genome).to(self.device)  # fmt: skip
        reestimate_batchnorm(model, self.train_data, self.bn_batches or None, self.batch_size,
                             seed=self.seed, device=self.device)  # fmt: skip
        return model.eval()
