"""Fitness of one individual: widen, quantize, QAT fine-tune briefly, accuracy on val."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data import LabelledImages
from ..expand import ModelGraph
from ..genome import Genome, SearchSpace, build_individual
from ..quant import calibrate, quantize_model
from ..size import model_size
from ..train import TrainSettings, evaluate_accuracy, train_model

__all__ = ["Evaluation", "Evaluator", "CALIBRATION_SAMPLES"]

CALIBRATION_SAMPLES = 128


@dataclass(frozen=True)
class Evaluation:
    val_accuracy: float
    size_bits: int
    seconds: float  # the whole evaluation
    build_seconds: float  # widening, quantizing, calibrating
    train_seconds: float  # QAT fine-tuning
    val_seconds: float  # validation


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
    # The float network at the genome's width that the fitness starts from
    # (search/_fitness_start.py); None: the base widened by copying channels.
    start: Callable[[Genome], nn.Module] | None = None

    def build(self, genome: Genome, float_model: nn.Module | None = None) -> nn.Module:
        """The quantized, calibrated network of ``genome`` (not yet fine-tuned), made from
        ``float_model``, else from the fitness's start, else from the base widened."""
        if float_model is None and self.start is not None:
            float_model = self.start(genome)
        if float_model is not None:
            model = quantize_model(float_model, self.space.layer_bits(genome)).to(self.device)
        else:
            model = build_individual(
                self.base, self.graph, self.space, genome,
                noise_std=self.widen_noise, seed=genome.seed(self.seed),
            ).to(self.device)  # fmt: skip
        calibrate(model, self.train_data.x[:CALIBRATION_SAMPLES].to(self.device))
        return model

    def __call__(self, genome: Genome) -> Evaluation:
        t0 = time.perf_counter()
        self._log(genome)
        model = self.build(genome)
        t1 = time.perf_counter()
        train_model(model, self.train_data, self.settings, seed=genome.seed(self.seed),
                    device=self.device)  # fmt: skip
        t2 = time.perf_counter()
        acc = evaluate_accuracy(model, self.val_data, device=self.device)
        size = model_size(model, self.graph.bn_fold).total_bits
        t3 = time.perf_counter()
        return Evaluation(acc, size, t3 - t0, t1 - t0, t2 - t1, t3 - t2)

    def _log(self, genome: Genome) -> None:
        if self.log_path is None:
            return
        line = json.dumps({"genome": genome.key(), "pid": os.getpid(), "time": time.time(),
                           "threads": torch.get_num_threads()})  # fmt: skip
        with open(self.log_path, "a", encoding="utf-8") as f:  # O_APPEND: one line, atomic
            f.write(line + "\n")
