"""Training and evaluation loops shared by pretraining, QAT fitness and final training."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import Augmentation, LabelledImages, iterate_batches

__all__ = ["TrainSettings", "TrainingDiverged", "train_model", "evaluate_accuracy"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (it happens at 1-2 bits with a high learning rate)."""


@dataclass(frozen=True)
class TrainSettings:
    epochs: float  # may be fractional: 0.5 is half an epoch of batches
    lr: float
    batch_size: int = 128
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9, nesterov)
    weight_decay: float = 0.0
    augmentation: Augmentation | None = None


def _optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    # No weight decay on quantizer scales, biases and norms: decaying a clipping range
    # shrinks it for no reason.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.dim() <= 1 or name.endswith("_scale") else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": s.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=s.lr, momentum=0.9, nesterov=True)
    return torch.optim.Adam(groups, lr=s.lr)


def train_model(
    model: nn.Module,
    data: LabelledImages,
    settings: TrainSettings,
    *,
    seed: int,
    device: torch.device | str = "cpu",
) -> float:
    """Train in place with a cosine learning-rate schedule; return the last epoch's mean loss.

    Raises TrainingDiverged on a non-finite loss.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout and other in-model randomness
    model.to(device).train()
    steps_per_epoch = math.ceil(len(data) / settings.batch_size)
    total_steps = max(1, round(settings.epochs * steps_per_epoch))
    opt = _optimizer(model, settings)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    step, loss_sum, loss_count = 0, 0.0, 0
    while step < total_steps:
        loss_sum, loss_count = 0.0, 0
        for x, y in iterate_batches(
            data, settings.batch_size, shuffle=True, generator=gen,
            augmentation=settings.augmentation, device=device,
        ):  # fmt: skip
            loss = F.cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss.item()} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item()
            loss_count += 1
            step += 1
            if step >= total_steps:
                break
    return loss_sum / max(loss_count, 1)


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, data: LabelledImages, *, batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> float:  # fmt: skip
    model.to(device).eval()
    correct = 0
    for x, y in iterate_batches(data, batch_size, shuffle=False, device=device):
        correct += int((model(x).argmax(dim=1) == y).sum())
    return correct / max(len(data), 1)
