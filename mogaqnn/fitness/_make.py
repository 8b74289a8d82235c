"""The fitness of a run: its Evaluator, built from the run's config (subsets, QAT budget,
seed), for the search, its workers, and the recipe of whoever rebuilds a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..config import SearchConfig
from ..data import DatasetSplits
from ..expand import ModelGraph, widen_model
from ..genome import Genome, SearchSpace
from ..run import RunContext, augmentation_for, resolve_device, subset, train_settings
from ..size import bit_operations_at, layer_macs
from ._evaluate import Evaluator
from ._starts import fitness_start

__all__ = ["bops_counter", "make_evaluator", "run_evaluator"]


def make_evaluator(
    cfg: SearchConfig,
    base: nn.Module,
    graph: ModelGraph,
    space: SearchSpace,
    data: DatasetSplits,
    device: torch.device,
    log_path: Path | None,
    *,
    root: Path | None = None,
    pretrain: bool = False,
    note: Callable[[str], None] = lambda message: None,
) -> Evaluator:
    """The fitness of the run: its subsets, its QAT budget, its seed, where each individual
    starts (``fitness``; a supernet is read from ``root``, trained there when ``pretrain``)."""
    train_subset = subset(data.train, cfg.search_train_samples, cfg.seed)
    aug = augmentation_for(cfg, data)
    start = fitness_start(
        cfg, base, graph, space, data, train_subset,
        lambda epochs, lr: train_settings(cfg, epochs, lr, aug), device, root,
        pretrain=pretrain, note=note,
    )  # fmt: skip
    return Evaluator(
        base=base,
        graph=graph,
        space=space,
        train_data=train_subset,
        val_data=subset(data.val, cfg.search_val_samples, cfg.seed),
        settings=train_settings(cfg, cfg.search_epochs, cfg.qat_lr, aug),
        seed=cfg.seed,
        widen_noise=cfg.widen_noise,
        device=device,
        log_path=log_path,
        quant_ranges=cfg.quant_ranges,
        bn_reestimate_batches=cfg.bn_reestimate_batches,
        stop_sigmas=cfg.early_stop_sigmas,
        start=start,
    )


def run_evaluator(run: RunContext, data: DatasetSplits, device: str | None = None) -> Evaluator:
    """An Evaluator equal to the one ``Search.run`` builds (subsets, budget, seed), without
    the evaluations log: evaluations made here are not trials of the search."""
    device_ = resolve_device(device or run.config.device)
    return make_evaluator(run.config, run.base, run.graph, run.space, data, device_, None,
                          root=run.root)  # fmt: skip


def bops_counter(evaluator: Evaluator) -> Callable[[Genome], int]:
    """The bit operations of a genome's network per input sample (MACs at the dataset's
    input shape x weight bits x activation bits). MACs depend on the widths only: they are
    counted once per set of expansion ratios on the widened float network, and the bits
    come from the genome, so no individual is built for its count."""
    example = evaluator.val_data.x[:1]
    macs_by_ratios: dict[tuple[float, ...], dict[str, int]] = {}

    def count(genome: Genome) -> int:
        if genome.ratios not in macs_by_ratios:
            wide = widen_model(evaluator.base, evaluator.graph, genome.ratios)
            device = next(wide.parameters()).device
            macs_by_ratios[genome.ratios] = layer_macs(wide, example.to(device))
        return bit_operations_at(macs_by_ratios[genome.ratios],
                                 evaluator.space.layer_bits(genome))  # fmt: skip

    return count
