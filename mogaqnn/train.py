"""Training and evaluation loops shared by pretraining, QAT fitness and final training."""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .data import Augmentation, LabelledImages, iterate_batches

__all__ = [
    "EpochCheckpoints",
    "checkpoint_state",
    "LossFn",
    "Progress",
    "Teacher",
    "TrainSettings",
    "TrainingDiverged",
    "distillation_loss",
    "reestimate_batchnorm",
    "train_model",
    "evaluate_accuracy",
    "make_optimizer",
]


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
    # Distillation from a teacher given to train_model: loss = (1 - w) CE + w T^2 KL(T).
    # Off by default (the config's distill_weight 0), by val accuracy: with learned step
    # sizes, LeNet-5, same base and genomes (benchmarks/quant_ranges.py), mean val of
    # w = 0 / 0.3 at T 2 / 0.3 at T 4 / 0.7 at T 4: MNIST-5k at the final budget (4 genomes)
    # 95.25 / 95.25 / 95.00 / 94.81 %; Fashion-MNIST, 2 epochs on 10,000 images (4 genomes)
    # 80.84 / 80.45 / - / 80.65 %; Fashion-MNIST at the search budget (8 genomes) w = 0 / 0.7
    # 81.29 / 80.88 %. It helps 3-4-bit individuals a little and hurts 2-bit ones.
    distill_weight: float = 0.0
    distill_temperature: float = 4.0
    # Under Adam, each quantizer scale (parameters named *_scale: LSQ's) gets the learning
    # rate lr x scale_lr x its own size, so it moves by about scale_lr x lr of itself per
    # step (see make_optimizer). Under SGD the scales share lr: LSQ's gradient scaling is
    # what balances them there.
    scale_lr: float = 10.0


class Teacher:
    """A frozen model whose softened logits a student learns from (the FP32 base).

    Without augmentation every epoch sees the same images, so its logits on a training set
    are computed once and kept, keyed by that set's tensor: a run's evaluations share them.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        self._logits: dict[tuple[int, tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(x)

    def logits_on(
        self, data: LabelledImages, device: torch.device | str, batch_size: int = 512
    ) -> torch.Tensor:
        key = (id(data.x), tuple(data.x.shape))
        if key not in self._logits:  # the tensor is kept with them: its id stays unique
            self.model.to(device)
            parts = [self(x) for x, _ in iterate_batches(data, batch_size, shuffle=False,
                                                         device=device)]  # fmt: skip
            self._logits[key] = (data.x, torch.cat(parts))
        return self._logits[key][1]


def distillation_loss(
    logits: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None, s: TrainSettings
) -> torch.Tensor:
    """Cross-entropy mixed with the KL divergence to the teacher's softened distribution,
    times T^2 so its gradients keep their scale across temperatures (Hinton et al. 2015)."""
    ce = F.cross_entropy(logits, y)
    if teacher_logits is None or s.distill_weight == 0:
        return ce
    t = s.distill_temperature
    kl = F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                  log_target=True, reduction="batchmean")  # fmt: skip
    return (1 - s.distill_weight) * ce + s.distill_weight * t * t * kl


def make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    # No weight decay on quantizer scales, biases and norms: decaying a clipping range
    # shrinks it for no reason.
    decay, no_decay, scales = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("_scale"):
            scales.append(p)
        else:
            (no_decay if p.dim() <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": s.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if s.optimizer == "sgd":
        groups.append({"params": scales, "weight_decay": 0.0})
        return torch.optim.SGD(groups, lr=s.lr, momentum=0.9, nesterov=True)
    # Adam moves a parameter by about its lr per step whatever its size, and LSQ's scales
    # span ~1e-3 (8-bit weights) to ~1 (2-bit activations): one shared lr makes the 8-bit
    # ones jump by half of themselves per step while the 2-bit ones barely move. A rate
    # relative to each scale's size suits every bit width (benchmarks/lsq_scale_lr.py).
    rate = s.lr * s.scale_lr
    groups += [
        {"params": [p], "weight_decay": 0.0, "lr": rate * float(p.detach().abs().mean())}
        for p in scales
    ]
    return torch.optim.Adam(groups, lr=s.lr)


def checkpoint_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` on the CPU, for a checkpoint's ``"state_dict"``: with the
    state dict's ``_metadata`` (the module versions that some models' own loaders check,
    torchvision's MNASNet among them), which a plain dict comprehension drops."""
    state = model.state_dict()
    out = OrderedDict((k, v.detach().cpu()) for k, v in state.items())
    out._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]
    return out


LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""A training step's loss: ``loss(model, x, y, teacher_logits)`` (None without a teacher)."""


class Progress(Protocol):
    """Where a long training keeps its state at each finished epoch (run.TrainingProgress)."""

    def load(self, total_steps: int) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


class EpochCheckpoints:
    """Everything a training loop needs to go on exactly where it stopped: weights, optimizer
    and schedule, the step, and every random state it draws from (the batch order's
    generator, torch's global one for dropout, the loop's own ``rng``). Saved after each
    finished epoch, so a stopped run loses at most one epoch and continues as if it had
    never stopped (tests/test_train.py compares the weights bit for bit)."""

    def __init__(
        self,
        progress: Progress | None,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        gen: torch.Generator,
        total_steps: int,
        device: torch.device | str,
        rng: random.Random | None = None,
    ) -> None:
        self.progress, self.model, self.opt, self.sched = progress, model, opt, sched
        self.gen, self.total_steps, self.rng = gen, total_steps, rng
        self.device = torch.device(device)  # CUDA keeps its own random state, saved too

    def restore(self) -> tuple[int, float]:
        """The step and last epoch's mean loss to go on from (0, 0.0 for a fresh start)."""
        state = self.progress.load(self.total_steps) if self.progress is not None else None
        if state is None:
            return 0, 0.0
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.gen.set_state(state["batch_order"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if self.rng is not None:
            self.rng.setstate(state["rng"])
        return state["step"], state["loss"]

    def save(self, step: int, loss: float) -> None:
        if self.progress is None:
            return
        self.progress.save({
            "step": step, "total_steps": self.total_steps, "loss": loss,
            "model": checkpoint_state(self.model),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "batch_order": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": (torch.cuda.get_rng_state(self.device)
                         if self.device.type == "cuda" else None),
            "rng": self.rng.getstate() if self.rng is not None else None,
        })  # fmt: skip


def train_model(
    model: nn.Module,
    data: LabelledImages,
    settings: TrainSettings,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    teacher: Teacher | None = None,
    progress: Progress | None = None,
    loss: LossFn | None = None,
    rng: random.Random | None = None,
) -> float:
    """Train in place with a cosine learning-rate schedule; return the last epoch's mean loss.

    With a ``teacher`` and ``settings.distill_weight`` > 0 the loss distils from it: its
    logits come from its cache without augmentation, else from a forward pass per step.
    ``loss`` replaces the step's loss (default: cross-entropy, distilled as above); ``rng``
    is a random generator it draws from, saved and restored with the checkpoints. With
    ``progress`` the state is saved there after every epoch and a saved state is continued
    from. Raises TrainingDiverged on a non-finite loss. Zero epochs train nothing (0.0).
    """
    if settings.epochs <= 0:
        return 0.0
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout and other in-model randomness
    model.to(device).train()
    steps_per_epoch = math.ceil(len(data) / settings.batch_size)
    total_steps = max(1, round(settings.epochs * steps_per_epoch))
    opt = make_optimizer(model, settings)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    checkpoints = EpochCheckpoints(progress, model, opt, sched, gen, total_steps, device, rng)
    distil = teacher is not None and settings.distill_weight > 0
    augmented = settings.augmentation is not None and settings.augmentation.active
    cached = teacher.logits_on(data, device) if distil and not augmented else None  # type: ignore[union-attr]
    # Batches of indices, so the cached logits and the labels are looked up per batch, on the
    # device: reading the indices back to the host would wait for the device every step.
    indexed = LabelledImages(data.x, torch.arange(len(data)))
    labels = data.y.to(device)
    step, last_loss = checkpoints.restore()
    while step < total_steps:
        # summed on the device: no host sync per step; a non-finite loss poisons the sum and
        # is found once per epoch (the weights are NaN from then on anyway)
        loss_sum, loss_count = torch.zeros((), device=device), 0
        for x, idx in iterate_batches(
            indexed, settings.batch_size, shuffle=True, generator=gen,
            augmentation=settings.augmentation, device=device,
        ):  # fmt: skip
            y = labels[idx]
            target = None
            if distil:
                target = cached[idx] if cached is not None else teacher(x)  # type: ignore[misc]
            if loss is None:
                value = distillation_loss(model(x), y, target, settings)
            else:
                value = loss(model, x, y, target)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            loss_sum += value.detach()
            loss_count += 1
            step += 1
            if step >= total_steps:
                break
        last_loss = float(loss_sum) / max(loss_count, 1)
        if not math.isfinite(last_loss):
            raise TrainingDiverged(f"loss became {last_loss} in the epoch ending at step {step}")
        checkpoints.save(step, last_loss)
    return last_loss


@torch.no_grad()
def reestimate_batchnorm(
    model: nn.Module, data: LabelledImages, batches: int | None, batch_size: int, *,
    seed: int, device: torch.device | str = "cpu",
) -> None:  # fmt: skip
    """Recompute every BatchNorm's running statistics from ``batches`` shuffled training
    batches, or from all of ``data`` in order when ``batches`` is None (train-mode forward
    passes without gradients): widening, quantizing or slicing a supernet change the
    statistics the stored ones describe. The statistics are plain averages over the
    batches; the layers' momentum is restored afterwards.

    Off by default (bn_reestimate_batches 0), by val accuracy: ResNet-20 on MNIST-5k at the
    search budget, learned step sizes, 3 genomes (benchmarks/quant_ranges.py --model
    resnet20 --pretrain-epochs 2 --genomes 3), 0 batches 88.67 %, 8 batches 87.42 %."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or (batches is not None and batches <= 0):
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    shuffle = batches is not None
    for i, (x, _) in enumerate(iterate_batches(data, batch_size, shuffle=shuffle, generator=gen,
                                               device=device)):  # fmt: skip
        if batches is not None and i >= batches:
            break
        model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


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
