"""Where an individual's fitness evaluation starts (``fitness``): the float network at the
genome's width that is then quantized, calibrated and given ``search_epochs`` of QAT.

- ``widen``: the pretrained base widened by copying channels (Net2Wider). Cheap, but a copy
  has the narrow network's function, so the fitness sees what quantization costs, not
  what the extra width can learn.
- ``scratch``: the architecture initialised afresh and trained in float for
  ``search_epochs`` on the search subset (the base's learning rate), then QAT as usual.
  Float then QAT, not QAT from scratch: it is the final protocol (``final_init =
  "scratch"``) in small, and calibrating ranges on random weights measures nothing.
- ``supernet``: one float network at the widest ratio of every group, trained once per run
  (``supernet.pt`` in the run directory, like base.pt) with the sandwich rule of slimmable
  networks (Yu & Huang, 2019) and once-for-all: every step trains the widest, the
  narrowest and two random widths with shared weights. An individual is its first
  channels of each group (``slice_model``), with BatchNorm statistics re-estimated on the
  search subset for its width.

Measured (benchmarks/fitness_fidelity.py, LeNet-5 on MNIST-5k, seed 0, 20 random individuals,
1 thread on a shared 2-core CPU; final protocol = ``final_init = "scratch"`` with pretraining
3 + final 1.5 epochs, reduced from 8 + 4 to fit the machine; fitness budget the default,
1 epoch on 2,000 samples), Kendall's tau between the fitness and the final val accuracy:

    fitness    s / evaluation   one-off   Kendall's tau
    widen           3.36           -         +0.551
    scratch         5.54           -         +0.463
    supernet        2.88         78 s        +0.716

The supernet ranks best and costs least per evaluation; its one-off training is about 0.6 s
per evaluation of a default search (128 evaluations). So ``supernet`` is the default. One
epoch from scratch is too short to tell capacity from speed of learning (its accuracies are
74-86% where the final ones are 92-97%).

ResNet-20, same protocol (one H100 shared by four benchmark processes, commit cd481ba,
benchmarks/results/fitness_fidelity_h100.md): widen 3.7 s, tau -0.08; scratch 4.1 s, +0.08;
supernet 4.0 s + 11 s once, -0.17. No fitness ranks ResNet-20 there because the final
protocol cannot either: its 20 val accuracies spread by 0.83 pp (std), less than one
binomial standard error on 400 val images (1.0 pp). The default stays with the LeNet-5 figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import SearchConfig
from ..data import DatasetSplits, LabelledImages
from ..errors import RunDirError
from ..expand import (
    ModelGraph,
    fresh_at_width,
    group_widths,
    scaled_graph,
    slice_model,
)
from ..genome import Genome
from ..run import TrainingProgress, atomic_torch_save, load_weights, read_checkpoint
from ..train import TrainSettings, checkpoint_state, reestimate_batchnorm, train_model
from ._supernet import train_supernet

__all__ = ["SUPERNET", "ScratchStart", "SupernetStart", "fitness_start"]

SUPERNET = "supernet.pt"


@dataclass(frozen=True)
class ScratchStart:
    base: nn.Module
    graph: ModelGraph
    train_data: LabelledImages
    settings: TrainSettings  # float training: search_epochs at the pretraining lr
    seed: int
    device: torch.device

    def __call__(self, genome: Genome) -> nn.Module:
        seed = genome.seed(self.seed)
        model = fresh_at_width(self.base, self.graph, genome.ratios, seed=seed)
        train_model(model, self.train_data, self.settings, seed=seed, device=self.device)
        return model


@dataclass(frozen=True)
class SupernetStart:
    supernet: nn.Module  # float, at the widest ratio of every group
    graph: ModelGraph  # the base's
    supernet_graph: ModelGraph
    train_data: LabelledImages  # BatchNorm statistics of each slice come from here
    batch_size: int
    device: torch.device

    def __call__(self, genome: Genome) -> nn.Module:
        widths = group_widths(self.graph, genome.ratios)
        model = slice_model(self.supernet, self.supernet_graph, widths).to(self.device)
        # the supernet's statistics mix all widths (once-for-all re-estimates them so too)
        reestimate_batchnorm(model, self.train_data, None, self.batch_size, seed=0,
                             device=self.device)  # fmt: skip
        model.eval()
        return model


def fitness_start(
    cfg: SearchConfig,
    base: nn.Module,
    graph: ModelGraph,
    data: DatasetSplits,
    train_subset: LabelledImages,
    settings: Callable[[float, float], TrainSettings],
    device: torch.device,
    root: Path | None,
    *,
    pretrain: bool,
    note: Callable[[str], None],
) -> Callable[[Genome], nn.Module] | None:
    """The ``start`` of the run's Evaluator (None for ``widen``). ``settings(epochs, lr)``
    gives the run's training settings; the supernet is trained here when ``pretrain``."""
    if cfg.fitness == "widen" or not graph.groups:
        return None
    if cfg.fitness == "scratch":
        float_settings = settings(cfg.search_epochs, cfg.lr)
        return ScratchStart(base, graph, train_subset, float_settings, cfg.seed, device)
    if max(cfg.expansion_ratios) == 1.0:  # one width only: the base is that supernet
        return None
    widest = [max(cfg.expansion_ratios)] * len(graph.groups)
    supernet = fresh_at_width(base, graph, widest, seed=cfg.seed)
    supernet_graph = scaled_graph(graph, widest)
    path = (root or Path(cfg.out)) / SUPERNET
    if path.exists():
        ckpt = read_checkpoint(path, "")
        load_weights(supernet, ckpt, path, "the supernet; delete it to train it again")
        note(f"supernet read from {path}")
    elif not pretrain:
        raise RunDirError(
            f"{path} is missing: the supernet fitness slices the coordinator's supernet; copy "
            f"{SUPERNET} from the coordinator's run directory"
        )
    else:
        note(f"training the supernet (widest ratio {widest[0]:g}) for "
             f"{cfg.pretrain_epochs:g} epochs with sampled widths")  # fmt: skip
        # each group's widths as the widening builds them (whole blocks)
        at_ratio = [group_widths(graph, [r] * len(graph.groups)) for r in cfg.expansion_ratios]
        per_group = [sorted(set(ws)) for ws in zip(*at_ratio)]
        progress = TrainingProgress(path, f"supernet at ratio {widest[0]:g}", note)
        train_supernet(
            supernet,
            supernet_graph,
            per_group,
            data.train,
            settings(cfg.pretrain_epochs, cfg.lr),
            seed=cfg.seed,
            device=device,
            progress=progress,
        )
        atomic_torch_save(
            {"state_dict": checkpoint_state(supernet),
             "ratio": widest[0], "epochs": cfg.pretrain_epochs},
            path,
        )  # fmt: skip
        progress.discard()
    return SupernetStart(supernet.to(device).eval(), graph, supernet_graph, train_subset,
                         cfg.batch_size, device)  # fmt: skip
