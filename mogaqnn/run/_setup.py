"""How a run's config becomes its device, data, graph and search space.

One set of functions, used by the search, its workers, the export and the report, so a
rebuilt run is built exactly as it was searched (the search's Evaluator is built from these
by ``mogaqnn.search.make_evaluator``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..config import SearchConfig
from ..data import Augmentation, DatasetSplits, LabelledImages, load_dataset, stratified_subset
from ..errors import ExpansionBugError, ModelError, MogaqnnError
from ..expand import ModelGraph, analyze_model, widen_model
from ..genome import SearchSpace
from ..quant import quantizable_layers
from ..train import TrainSettings

__all__ = [
    "augmentation_for",
    "expansion_graph",
    "load_config_dataset",
    "describe_device",
    "resolve_device",
    "search_space",
    "subset",
    "train_settings",
]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MogaqnnError(
            f"device {name!r} is not a torch device; use cpu, cuda or cuda:N"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MogaqnnError(f"device {name!r} was asked for but CUDA is not available here")
    return device


def describe_device(device: torch.device | str) -> str:
    """What a device is, for a benchmark's record: a GPU's name, or the CPU's torch threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu x{torch.get_num_threads()}"


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
        scale_lr=cfg.lsq_scale_lr,
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
        say(f"note: {_fixed_summary(graph)}")
    _check_widening_runs(base, graph, example)
    return graph


def _fixed_summary(graph: ModelGraph, shown: int = 4) -> str:
    """One line: which layers keep their width, and why."""
    fixed = [f for f in graph.fixed if f.reason in graph.not_widened]
    parts = [f"{f.producers[0]} ({f.reason})" for f in fixed[:shown]]
    more = f"; and {len(fixed) - shown} more" if len(fixed) > shown else ""
    return f"{len(fixed)} layer group(s) keep their width: " + "; ".join(parts) + more


@torch.no_grad()
def _check_widening_runs(base: nn.Module, graph: ModelGraph, example: torch.Tensor) -> None:
    """One forward of the base widened x2 everywhere, before any individual is trained: a
    widening the analysis allowed and the model cannot run is an analysis bug."""
    if not graph.groups:
        return
    was_training = base.training
    base.eval()
    try:
        want = base(example).shape
        try:
            got = widen_model(base, graph, [2.0] * len(graph.groups)).eval()(example).shape
            if got == want:
                return
            failure = f"gives outputs of shape {tuple(got)} instead of {tuple(want)}"
        except Exception as exc:  # any failure here is the analysis' fault
            failure = f"fails ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc})"
        culprits = [
            g.name for i, g in enumerate(graph.groups) if not _widens(base, graph, i, example, want)
        ]
    finally:
        base.train(was_training)
    raise ExpansionBugError(
        f"channel expansion analysis bug: the model widened at groups "
        f"{', '.join(culprits) or 'together'} {failure}; please report it, and use "
        "--expansion off to search bit widths only"
    )


def _widens(base: nn.Module, graph: ModelGraph, i: int, x: torch.Tensor, want: torch.Size) -> bool:
    ratios = [2.0 if j == i else 1.0 for j in range(len(graph.groups))]
    try:
        return widen_model(base, graph, ratios).eval()(x).shape == want
    except Exception:  # the group that breaks the forward is the one to name
        return False


def search_space(cfg: SearchConfig, base: nn.Module, graph: ModelGraph) -> SearchSpace:
    space = SearchSpace(
        layers=tuple(quantizable_layers(base)),
        groups=tuple(g.name for g in graph.groups),
        group_widths=tuple(g.width for g in graph.groups),
        weight_bit_choices=cfg.weight_bits,
        act_bit_choices=cfg.act_bits,
        ratio_choices=cfg.expansion_ratios,
        group_blocks=tuple(g.blocks for g in graph.groups),
    )
    if not space.layers:
        raise ModelError("the model has no Conv2d or Linear layer to quantize")
    return space
