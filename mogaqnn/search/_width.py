"""How the chosen individual reaches its width before its final QAT (``final_init``).

``widen`` (the paper's protocol): the pretrained base widened by copying channels. Copies
stay copies, so the wider network learns little more than the base (LeNet-5,
Fashion-MNIST, issue 10: FP32 x1.5 90.84% widened vs 91.28% trained at its width).
``scratch``: the chosen architecture is initialised afresh and pretrained in float exactly
as the base was (same epochs, optimizer, schedule, seed), then quantized, calibrated and
given the final QAT epochs; the FP32 baseline (base + final epochs) has the same total.
The float pretraining at the chosen width is kept in the run directory (``chosen_float.pt``,
keyed by the genome), so a resumed run does not repeat it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..config import SearchConfig
from ..data import Augmentation, DatasetSplits
from ..expand import ModelGraph, fresh_at_width
from ..genome import Genome
from ..run import (
    TrainingProgress,
    atomic_torch_save,
    load_weights,
    read_checkpoint,
    train_settings,
)
from ..train import evaluate_accuracy, train_model
from ._evaluate import Evaluator

__all__ = ["CHOSEN_FLOAT", "final_start", "scratch_float_model"]

CHOSEN_FLOAT = "chosen_float.pt"


def final_start(
    cfg: SearchConfig,
    root: Path,
    evaluator: Evaluator,
    genome: Genome,
    data: DatasetSplits,
    augmentation: Augmentation,
    device: torch.device,
    note: Callable[[str], None],
    *,
    cache: bool = True,
) -> nn.Module:
    """The chosen individual, quantized and calibrated, ready for its final QAT epochs
    (``cache``: keep its float pretraining in ``root``)."""
    if cfg.final_init == "widen":
        return dataclasses.replace(evaluator, start=None).build(genome)
    float_model = scratch_float_model(
        cfg, root / CHOSEN_FLOAT if cache else None, evaluator.base, evaluator.graph, genome,
        data, augmentation, device, note,
    )  # fmt: skip
    return evaluator.build(genome, float_model=float_model)


def scratch_float_model(
    cfg: SearchConfig,
    path: Path | None,
    base: nn.Module,
    graph: ModelGraph,
    genome: Genome,
    data: DatasetSplits,
    augmentation: Augmentation,
    device: torch.device,
    note: Callable[[str], None],
) -> nn.Module:
    """``genome``'s architecture trained in float from a fresh initialisation with the base's
    pretraining recipe, read from ``path`` when it was trained there before (None: no cache)."""
    model = fresh_at_width(base, graph, genome.ratios, seed=cfg.seed)
    if path is not None and path.exists():
        ckpt = read_checkpoint(path, "")
        if ckpt.get("genome_key") == genome.key():
            load_weights(model, ckpt, path, "the chosen architecture; delete it to train again")
            note(f"float model at the chosen width read from {path}")
            return model.to(device)
    note(
        f"pretraining the chosen architecture from scratch at its width for "
        f"{cfg.pretrain_epochs:g} epochs, as the FP32 base was"
    )
    progress = TrainingProgress(path, genome.key(), note) if path is not None else None
    if cfg.pretrain_epochs > 0:
        settings = train_settings(cfg, cfg.pretrain_epochs, cfg.lr, augmentation)
        train_model(model, data.train, settings, seed=cfg.seed, device=device, progress=progress)
    val = evaluate_accuracy(model, data.val, device=device)
    note(f"float model at the chosen width: val accuracy {val:.2%}")
    if progress is None:  # no path: no cache
        return model
    atomic_torch_save(
        {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
         "genome_key": genome.key(), "val_accuracy": val, "epochs": cfg.pretrain_epochs},
        path,
    )  # fmt: skip
    progress.discard()
    return model
