"""How a run's config becomes its data, graph, search space and evaluator.

One set of functions, used by the search, its workers, the export and the report, so a
rebuilt run is built exactly as it was searched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..config import SearchConfig
from ..data import Augmentation, DatasetSplits, LabelledImages, load_dataset, stratified_subset
from ..errors import ModelError
from ..expand import ModelGraph, analyze_model
from ..genome import SearchSpace
from ..quant import quantizable_layers
from ..train import TrainSettings
from ._evaluate import Evaluator

__all__ = [
    "augmentation_for",
    "expansion_graph",
    "load_config_dataset",
    "make_evaluator",
    "search_space",
    "subset",
    "train_settings",
]


def load_config_dataset(cfg: SearchConfig) -> DatasetSplits:
    return load_dataset(
        cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction, seed=cfg.seed,
        image_size=cfg.image_size, channels=cfg.channels,
    )  # fmt: skip


def subset(images: LabelledImages, n: int | None, seed: int) -> LabelledImages:
    """A stratified, seeded subset of ``n`` samples (all of them for None or n >= len)."""
    if n is None or n >= len(images):
        return images
    return images.subset(stratified_subset(images.y.numpy(), n, seed))


def augmentation_for(cfg: SearchConfig, data: DatasetSplits) -> Augmentation:
    return Augmentation(cfg.augment_crop, data.augment_flip and cfg.augment_crop > 0)


def train_settings(
    cfg: SearchConfig, epochs: float, lr: float, augmentation: Augmentation
) -> TrainSettings:
    return TrainSettings(
        epochs=epochs, lr=lr, batch_size=cfg.batch_size, optimizer=cfg.optimizer,
        weight_decay=cfg.weight_decay, augmentation=augmentation,
        distill_weight=cfg.distill_weight, distill_temperature=cfg.distill_temperature,
    )  # fmt: skip


def expansion_graph(
    base: nn.Module, example: torch.Tensor, mode: str, note: Callable[[str], None] | None = None
) -> ModelGraph:
    """The expansion groups of ``base`` as the config's ``expansion`` mode allows them:
    ``auto`` goes on without what cannot be widened (saying so through ``note``),
    ``strict`` refuses it, ``off`` keeps only the BatchNorm folding."""
    say = note or (lambda message: None)
    try:
        graph = analyze_model(base, example)
    except ModelError as exc:
        if mode == "strict":
            raise
        say(f"note: {exc}; searching bit widths only, without channel expansion")
        return ModelGraph(groups=[], bn_fold={})
    if mode == "off":
        return ModelGraph(groups=[], bn_fold=graph.bn_fold)
    if graph.not_widened:
        if mode == "strict":
            raise ModelError(
                "expansion is strict but some channels cannot be widened: "
                + "; ".join(graph.not_widened)
            )
        say("note: these channels keep their width: " + "; ".join(graph.not_widened))
    return graph


def search_space(cfg: SearchConfig, base: nn.Module, graph: ModelGraph) -> SearchSpace:
    space = SearchSpace(
        layers=tuple(quantizable_layers(base)),
        groups=tuple(g.name for g in graph.groups),
        group_widths=tuple(g.width for g in graph.groups),
        weight_bit_choices=cfg.weight_bits,
        act_bit_choices=cfg.act_bits,
        ratio_choices=cfg.expansion_ratios,
    )
    if not space.layers:
        raise ModelError("the model has no Conv2d or Linear layer to quantize")
    return space


def make_evaluator(
    cfg: SearchConfig,
    base: nn.Module,
    graph: ModelGraph,
    space: SearchSpace,
    data: DatasetSplits,
    device: torch.device,
    log_path: Path | None,
) -> Evaluator:
    """The fitness of the run: its subsets, its QAT budget, its seed."""
    return Evaluator(
        base=base,
        graph=graph,
        space=space,
        train_data=subset(data.train, cfg.search_train_samples, cfg.seed),
        val_data=subset(data.val, cfg.search_val_samples, cfg.seed),
        settings=train_settings(cfg, cfg.search_epochs, cfg.qat_lr, augmentation_for(cfg, data)),
        seed=cfg.seed,
        widen_noise=cfg.widen_noise,
        device=device,
        log_path=log_path,
        quant_ranges=cfg.quant_ranges,
        bn_reestimate_batches=cfg.bn_reestimate_batches,
    )
