"""Fitness of one individual: its start at its width, quantize, calibrate, QAT fine-tune
briefly, accuracy on the search's val subset."""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import LabelledImages
from ..expand import ModelGraph
from ..genome import Genome, SearchSpace, build_individual
from ..quant import QuantLayer, calibrate, quantize_model, set_range_mode
from ..size import model_size
from ..train import (
    Teacher,
    TrainSettings,
    reestimate_batchnorm,
    train_model,
)

__all__ = [
    "CALIBRATION_SAMPLES",
    "Evaluation",
    "Evaluator",
    "accuracy_until_dominated",
    "calibration_indices",
    "wilson_upper",
]

CALIBRATION_SAMPLES = 128


@dataclass(frozen=True)
class Evaluation:
    val_accuracy: float
    size_bits: int
    seconds: float  # the whole evaluation
    build_seconds: float  # widening or slicing, quantizing, calibrating
    train_seconds: float  # QAT fine-tuning
    val_seconds: float  # validation
    val_samples: int = 0  # val images seen: fewer than the subset when stopped early


@dataclass
class Evaluator:
    """Everything an evaluation needs, built once per search and reused for every genome."""

    base: nn.Module
    graph: ModelGraph
    space: SearchSpace
    train_data: LabelledImages
    val_data: LabelledImages
    settings: TrainSettings
    seed: int
    widen_noise: float
    device: torch.device
    log_path: Path | None = None  # one JSON line per training started: what was trained when
    quant_ranges: str = "lsq"  # how the quantization ranges follow training (quant doc)
    bn_reestimate_batches: int = 0  # BatchNorm statistics re-estimated after quantizing
    stop_sigmas: float = 0.0  # a clearly dominated individual's val pass stops (0: never)
    # The network at the genome's width that the fitness starts from (fitness/_starts.py):
    # float, to be quantized and calibrated here, or quantized and calibrated already (a
    # quant-supernet slice), taken as it is; None: the base widened by copying channels.
    start: Callable[[Genome], nn.Module] | None = None

    def __post_init__(self) -> None:
        self._teacher: Teacher | None = None

    @property
    def teacher(self) -> Teacher:
        """The FP32 base as distillation teacher, on this evaluator's device; its logits on
        the training subset are computed by the first evaluation and kept."""
        if self._teacher is None:
            self._teacher = Teacher(copy.deepcopy(self.base).to(self.device))
        return self._teacher

    def build(self, genome: Genome, float_model: nn.Module | None = None) -> nn.Module:
        """The quantized, calibrated network of ``genome`` (not yet fine-tuned), made from
        ``float_model``, else from the fitness's start, else from the base widened. A start
        that is quantized already (it holds a QuantLayer) calibrated itself: it is taken as
        it is."""
        if float_model is None and self.start is not None:
            float_model = self.start(genome)
            if any(isinstance(m, QuantLayer) for m in float_model.modules()):
                return float_model.to(self.device)
        if float_model is not None:
            model = quantize_model(float_model, self.space.layer_bits(genome)).to(self.device)
        else:
            model = build_individual(
                self.base, self.graph, self.space, genome,
                noise_std=self.widen_noise, seed=genome.seed(self.seed),
            ).to(self.device)  # fmt: skip
        calibrate(model, self.calibration_images().to(self.device))
        set_range_mode(model, self.quant_ranges)
        if self.bn_reestimate_batches:
            reestimate_batchnorm(
                model, self.train_data, self.bn_reestimate_batches, self.settings.batch_size,
                seed=self.seed, device=self.device,
            )  # fmt: skip
        return model

    def calibration_images(self) -> torch.Tensor:
        """The seeded sample of training images that sets the activation ranges: classes
        in turn, so every class is in it (the splits keep the source order, which on
        MNIST-5k is by class: the first 128 images are all zeros)."""
        idx = calibration_indices(self.train_data.y.numpy(), CALIBRATION_SAMPLES, self.seed)
        return self.train_data.x[torch.from_numpy(idx)]

    def fine_tune(self, model: nn.Module, genome: Genome) -> nn.Module:
        """The search's short QAT of a built individual, in place (its seed is the genome's);
        none at zero epochs (the quant-supernet fitness: the slice as it is)."""
        if self.settings.epochs <= 0:
            return model
        train_model(model, self.train_data, self.settings, seed=genome.seed(self.seed),
                    device=self.device, teacher=self.teacher)  # fmt: skip
        return model

    def __call__(
        self, genome: Genome, bar: Callable[[int], float | None] | None = None
    ) -> Evaluation:
        """Build, fine-tune and measure ``genome``. ``bar(size_bits)``: the highest val
        accuracy of an individual at most that large already evaluated; the val pass stops
        once this one is clearly below it (``stop_sigmas``), i.e. clearly dominated."""
        t0 = time.perf_counter()
        self._log(genome)
        model = self.build(genome)
        t1 = time.perf_counter()
        self.fine_tune(model, genome)
        t2 = time.perf_counter()
        size = model_size(model, self.graph.bn_fold).total_bits
        acc, seen = accuracy_until_dominated(
            model, self.val_data, self.val_order, None if bar is None else bar(size),
            self.stop_sigmas, device=self.device,
        )  # fmt: skip
        t3 = time.perf_counter()
        return Evaluation(acc, size, t3 - t0, t1 - t0, t2 - t1, t3 - t2, seen)

    @cached_property
    def val_order(self) -> torch.Tensor:
        """A seeded permutation of the val subset: a val pass stopped early has seen a fair
        sample (the splits keep the source order, by class on MNIST-5k)."""
        return torch.randperm(len(self.val_data), generator=torch.Generator().manual_seed(
            self.seed))  # fmt: skip

    def _log(self, genome: Genome) -> None:
        if self.log_path is None:
            return
        line = json.dumps({"genome": genome.key(), "pid": os.getpid(), "time": time.time(),
                           "threads": torch.get_num_threads()})  # fmt: skip
        with open(self.log_path, "a", encoding="utf-8") as f:  # O_APPEND: one line, atomic
            f.write(line + "\n")


def calibration_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices drawn class by class in turn, each class shuffled by ``seed``: every
    class is covered whenever ``n`` is at least the number of classes."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = [idx[i] for i in range(max(map(len, per_class), default=0)) for idx in per_class
             if i < len(idx)]  # fmt: skip
    return np.sort(np.asarray(order[:n], dtype=np.int64))


VAL_BATCH = 128  # small enough that a stop saves most of a 400-image subset


def wilson_upper(correct: int, seen: int, sigmas: float) -> float:
    """Upper end of the Wilson score interval of an accuracy ``correct / seen`` at ``sigmas``
    standard errors (sound at small counts and near 0 or 1, unlike p + z * se)."""
    p, z2 = correct / seen, sigmas * sigmas
    centre = p + z2 / (2 * seen)
    half = sigmas * math.sqrt(p * (1 - p) / seen + z2 / (4 * seen * seen))
    return (centre + half) / (1 + z2 / seen)


@torch.no_grad()
def accuracy_until_dominated(
    model: nn.Module,
    data: LabelledImages,
    order: torch.Tensor,
    bar: float | None,
    sigmas: float,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = VAL_BATCH,
) -> tuple[float, int]:
    """Accuracy on ``data`` in ``order``, and the images seen: the pass stops once the upper
    Wilson bound at ``sigmas`` of the accuracy so far lies below ``bar`` (``bar`` None or
    ``sigmas`` 0: the whole pass). Over the whole pass it is ``evaluate_accuracy``'s."""
    model.to(device).eval()
    correct = seen = 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        x, y = data.x[idx].to(device), data.y[idx].to(device)
        correct += int((model(x).argmax(dim=1) == y).sum())
        seen += len(idx)
        if bar is not None and sigmas > 0 and seen < len(order):
            if wilson_upper(correct, seen, sigmas) < bar:
                break
    return correct / max(seen, 1), seen
