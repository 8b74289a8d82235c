"""How a genome of a run becomes a trained network: the one place the recipes are written.

- The **float recipe** (``pretrain_float``): what the FP32 base gets, ``pretrain_epochs`` at
  ``lr``; an architecture trained at its own width gets exactly the same.
- The **search's recipe** (``Recipe.search_model``): the fitness's start at the genome's
  width, quantized and calibrated, then ``search_epochs`` of QAT on the search's training
  subset (the run's Evaluator, distilled from the base when the run distils).
- The **final recipe** (``Recipe.final_model``): the genome's architecture trained in float at
  its width from a fresh initialisation as the base was (``final_init = "scratch"``), or the
  base widened by copying channels (``"widen"``), then quantized, calibrated and given
  ``final_epochs`` of QAT on the whole training split, distilled from the base when the run
  distils. The FP32 baselines (``Recipe.fp32_model``) are the base given the same
  ``final_epochs`` with the same settings, plain and distilled.

The search, the export, the report and every benchmark train through this class, so a
figure measured outside the search is measured by the search's own recipe.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import SearchConfig
from .data import DatasetSplits
from .errors import RunDirError
from .expand import ModelGraph, fresh_at_width
from .fitness import Evaluator, make_evaluator
from .genome import Genome, SearchSpace, build_individual
from .run import (
    RunContext,
    TrainingProgress,
    atomic_torch_save,
    augmentation_for,
    load_run,
    load_run_data,
    load_weights,
    read_checkpoint,
    resolve_device,
    train_settings,
)
from .train import Teacher, TrainSettings, checkpoint_state, evaluate_accuracy, train_model

__all__ = [
    "BASELINE_DISTILL_WEIGHT",
    "Recipe",
    "genome_dict",
    "pretrain_float",
    "read_trained",
]

# Distillation weight of the distilled FP32 baseline when the run itself does not distil
# (distill_weight 0): the claim is judged against the stronger FP32 baseline either way.
BASELINE_DISTILL_WEIGHT = 0.5


def pretrain_float(
    cfg: SearchConfig,
    model: nn.Module,
    data: DatasetSplits,
    device: torch.device,
    progress: TrainingProgress | None = None,
) -> nn.Module:
    """The float recipe, in place: ``pretrain_epochs`` at ``lr`` on the training split, seeded
    by the run's seed (what the FP32 base and every architecture trained at its width get)."""
    if cfg.pretrain_epochs > 0:
        settings = train_settings(cfg, cfg.pretrain_epochs, cfg.lr, augmentation_for(cfg, data))
        train_model(model, data.train, settings, seed=cfg.seed, device=device, progress=progress)
    return model


def genome_dict(genome: Genome) -> dict[str, Any]:
    return {"weight_bits": list(genome.weight_bits), "act_bits": list(genome.act_bits),
            "ratios": list(genome.ratios)}  # fmt: skip


def read_trained(path: Path, base: nn.Module, graph: ModelGraph, space: SearchSpace,
                 missing_hint: str) -> tuple[nn.Module, Genome]:  # fmt: skip
    """A trained quantized model saved by ``Recipe.final_model`` (final.pt among them),
    rebuilt as the search built it, and its genome; eval mode, on the CPU."""
    ckpt = read_checkpoint(path, missing_hint)
    try:
        g = ckpt["genome"]
        genome = Genome(tuple(int(b) for b in g["weight_bits"]),
                        tuple(int(b) for b in g["act_bits"]),
                        tuple(float(r) for r in g["ratios"]))  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{path} has no valid genome ({exc!r})") from exc
    if (len(genome.weight_bits), len(genome.ratios)) != (len(space.layers), len(space.groups)):
        raise RunDirError(f"the genome in {path} does not fit the run's model")
    # Weights and calibrated scales all come from the checkpoint: noise and seed are moot.
    model = build_individual(base, graph, space, genome)
    load_weights(model, ckpt, path, "the rebuilt model")
    return model.eval(), genome


class Recipe:
    """The recipes of one run (its config, FP32 base, graph, space, data and device).

    ``root`` is the run directory: the fitness reads its supernet there, and the final
    trainings keep their checkpoints in the folder given as ``keep`` (a stopped run goes on
    from the last finished epoch; a finished model is read back, not trained again).
    """

    def __init__(
        self,
        config: SearchConfig,
        base: nn.Module,
        graph: ModelGraph,
        space: SearchSpace,
        data: DatasetSplits,
        device: torch.device,
        *,
        root: Path | None = None,
        evaluator: Evaluator | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.config, self.base, self.graph, self.space = config, base, graph, space
        self.data, self.device = data, device
        self.root = Path(root) if root is not None else None
        self._evaluator = evaluator
        self.note = note or (lambda message: None)
        self.augmentation = augmentation_for(config, data)

    @classmethod
    def of_run(
        cls,
        run: str | Path | RunContext,
        *,
        data: DatasetSplits | None = None,
        model: nn.Module | None = None,
        device: str | None = None,
    ) -> Recipe:
        """The recipes of a run directory (``data`` and ``model`` for a run searched with
        Python objects, which the directory cannot rebuild)."""
        ctx = run if isinstance(run, RunContext) else load_run(run, model=model)
        return cls(ctx.config, ctx.base, ctx.graph, ctx.space, load_run_data(ctx, data),
                   resolve_device(device or ctx.config.device), root=ctx.root)  # fmt: skip

    # -- the search's recipe ---------------------------------------------------------
    @property
    def evaluator(self) -> Evaluator:
        """The run's fitness (its supernet read from the run directory on first use)."""
        if self._evaluator is None:
            self._evaluator = make_evaluator(
                self.config, self.base, self.graph, self.space, self.data, self.device, None,
                root=self.root,
            )  # fmt: skip
        return self._evaluator

    def search_model(self, genome: Genome) -> nn.Module:
        """``genome`` trained as the search evaluated it: its val accuracy on the search's
        val subset is the one pareto.csv reports."""
        ev = self.evaluator
        return ev.fine_tune(ev.build(genome), genome)

    # -- the final recipe --------------------------------------------------------------
    @cached_property
    def teacher(self) -> Teacher:
        """The FP32 base as teacher of the final trainings (its logits cached once)."""
        return Teacher(copy.deepcopy(self.base).to(self.device))

    @cached_property
    def _quantizer(self) -> Evaluator:
        # the search's quantize-and-calibrate step without its fitness start: no supernet
        return make_evaluator(self.config.replace(fitness="widen"), self.base, self.graph,
                              self.space, self.data, self.device, None)  # fmt: skip

    def final_settings(self, distill_weight: float | None = None) -> TrainSettings:
        s = train_settings(self.config, self.config.final_epochs, self.config.qat_lr,
                           self.augmentation)  # fmt: skip
        return (
            s if distill_weight is None else dataclasses.replace(s, distill_weight=distill_weight)
        )

    def float_at_width(self, genome: Genome, keep: Path | None = None) -> nn.Module:
        """``genome``'s architecture trained in float from a fresh initialisation by the float
        recipe; kept in ``keep`` (``<width key>.float.pt``: genomes of the same widths share
        it, whatever their bits) and read back from there."""
        cfg = self.config
        model = fresh_at_width(self.base, self.graph, genome.ratios, seed=cfg.seed)
        key = genome.width_key()
        path = keep / f"{key}.float.pt" if keep is not None else None
        if path is not None and path.exists():
            load_weights(model, read_checkpoint(path, ""), path,
                         "the architecture; delete it to train it again")  # fmt: skip
            self.note(f"float model at widths {key} read from {path}")
            return model.to(self.device)
        self.note(f"training the float model at widths {key} (ratios "
                  f"{', '.join(f'{r:g}' for r in genome.ratios)}) for {cfg.pretrain_epochs:g} "
                  "epochs, as the FP32 base was")  # fmt: skip
        progress = TrainingProgress(path, key, self.note) if path else None
        pretrain_float(cfg, model, self.data, self.device, progress)
        self.note(f"float model at its width: val accuracy {self.accuracy(model):.2%}")
        if path is not None and progress is not None:
            atomic_torch_save({"state_dict": checkpoint_state(model), "width_key": key,
                               "epochs": cfg.pretrain_epochs}, path)  # fmt: skip
            progress.discard()
        return model

    def final_start(
        self, genome: Genome, *, init: str | None = None, keep: Path | None = None
    ) -> nn.Module:
        """``genome`` quantized and calibrated, ready for its final QAT: from its float model
        at its width (``init`` "scratch") or from the base widened by copies ("widen";
        default: the config's ``final_init``)."""
        init = init or self.config.final_init
        if init == "widen":
            return self._quantizer.build(genome)
        return self._quantizer.build(genome, float_model=self.float_at_width(genome, keep))

    def final_model(
        self,
        genome: Genome,
        *,
        init: str | None = None,
        keep: Path | None = None,
        name: str | None = None,
    ) -> nn.Module:
        """``genome`` trained by the final recipe. With ``keep``, the trained model is kept
        there as ``<name or genome key>.pt`` and read back from there. Raises
        train.TrainingDiverged when the loss does not stay finite."""
        path = keep / f"{name or genome.key()}.pt" if keep is not None else None
        if path is not None and path.exists():
            self.note(f"final model of genome {genome.key()} read from {path}")
            return self.read(path)[0].to(self.device)
        model = self.final_start(genome, init=init, keep=keep)
        progress = TrainingProgress(path, genome.key(), self.note) if path else None
        if self.config.final_epochs > 0:
            train_model(model, self.data.train, self.final_settings(), seed=self.config.seed,
                        device=self.device, teacher=self.teacher, progress=progress)  # fmt: skip
        if path is not None and progress is not None:
            self.save(model, genome, path)
            progress.discard()
        return model

    def fp32_model(self, *, distilled: bool, keep: Path | None = None) -> nn.Module:
        """The FP32 baseline: the base given ``final_epochs`` with the final settings, plain
        or distilled from the base (at the run's weight, or BASELINE_DISTILL_WEIGHT)."""
        name = "fp32_distilled" if distilled else "fp32"
        path = keep / f"{name}.pt" if keep is not None else None
        model = copy.deepcopy(self.base)
        if path is not None and path.exists():
            load_weights(model, read_checkpoint(path, ""), path, "the FP32 model")
            return model.to(self.device)
        weight = (self.config.distill_weight or BASELINE_DISTILL_WEIGHT) if distilled else 0.0
        progress = TrainingProgress(path, name, self.note) if path else None
        if self.config.final_epochs > 0:
            train_model(model, self.data.train, self.final_settings(weight), seed=self.config.seed,
                        device=self.device, teacher=self.teacher, progress=progress)  # fmt: skip
        if path is not None and progress is not None:
            atomic_torch_save({"state_dict": checkpoint_state(model)}, path)
            progress.discard()
        return model

    def save(self, model: nn.Module, genome: Genome, path: Path) -> None:
        """A trained quantized model with its genome (what ``read`` and the export read)."""
        atomic_torch_save({"state_dict": checkpoint_state(model), "genome": genome_dict(genome),
                           "model": self.config.model}, path)  # fmt: skip

    def read(self, path: Path, missing_hint: str = "") -> tuple[nn.Module, Genome]:
        return read_trained(path, self.base, self.graph, self.space, missing_hint)

    def accuracy(self, model: nn.Module, split: str = "val") -> float:
        """Accuracy on the whole ``val`` or ``test`` split (the test split: once per final
        model, at the end)."""
        return evaluate_accuracy(model, getattr(self.data, split), device=self.device)
