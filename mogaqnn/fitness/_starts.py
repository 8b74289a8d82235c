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

- ``quant-supernet``: one network at the widest ratios whose layers quantize at every bit
  width of the space, one learned step size per layer and bit width (``_quant_supernet.py``),
  trained once per run (``quant_supernet.pt``): the float sandwich over widths for the first
  ``1 - supernet_qat_fraction`` of ``pretrain_epochs``, then the sandwich over widths and
  bits, quantization-aware, for the rest. Its start is the genome's slice at its widths and
  bits, already quantized with the supernet's steps, BatchNorm recalibrated on
  ``bn_recalibration_batches`` batches; ``search_epochs`` of QAT follow only when positive.
  Quick checks (benchmarks/results/fitness_fidelity_quant.md, LeNet-5, 1 thread): at
  ``search_epochs = 0`` a slice costs 0.02-0.05 s per MNIST-5k evaluation against 0.27-0.39 s
  for a ``supernet`` slice and its epoch of QAT, side by side; its one-off training 28 s
  against 16 s. It ranks below ``supernet`` where a short final protocol spreads the
  individuals (Kendall's tau +0.34 / +0.49 against +0.72 / +0.73 on 20 random / bit-varying
  genomes at pretrain 3; Fashion-MNIST +0.55 against +0.61 on 30) and above it at the default
  budget, where the final protocol's spread is below its own noise (+0.32 / +0.13 / +0.31
  against +0.18 / +0.15 / -0.01 on 40 random / bit- / width-varying genomes). Three float
  epochs in four before the quantization-aware phase ranked best on MNIST-5k
  (``supernet_qat_fraction`` 0.25 against 0.5 and 1). Not the default (yet).

ResNet-20, same protocol (one H100 shared by four benchmark processes, commit cd481ba,
benchmarks/results/fitness_fidelity_h100.md): widen 3.7 s, tau -0.08; scratch 4.1 s, +0.08;
supernet 4.0 s + 11 s once, -0.17. No fitness ranks ResNet-20 there because the final
protocol cannot either: its 20 val accuracies spread by 0.83 pp (std), less than one
binomial standard error on 400 val images (1.0 pp). The default stays with the LeNet-5 figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from ..genome import Genome, SearchSpace
from ..run import TrainingProgress, atomic_torch_save, load_weights, read_checkpoint
from ..train import TrainSettings, checkpoint_state, reestimate_batchnorm, train_model
from ._evaluate import CALIBRATION_SAMPLES, calibration_indices
from ._quant_supernet import (
    QuantSupernetStart,
    calibrate_quant_supernet,
    make_quant_supernet,
    train_quant_supernet,
)
from ._supernet import train_supernet

__all__ = [
    "QUANT_SUPERNET",
    "SUPERNET",
    "ScratchStart",
    "SupernetStart",
    "fitness_start",
]

SUPERNET = "supernet.pt"
QUANT_SUPERNET = "quant_supernet.pt"
# the quant supernet's float phase, kept until its quantization-aware phase is done
QUANT_SUPERNET_FLOAT = "quant_supernet.float.pt"


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
    space: SearchSpace,
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
    if cfg.fitness == "quant-supernet":  # bits vary with one width too
        return quant_supernet_start(cfg, base, graph, space, data, train_subset, settings,
                                    device, root, pretrain=pretrain, note=note)  # fmt: skip
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
        per_group = width_choices(graph, cfg.expansion_ratios)
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


def quant_supernet_start(
    cfg: SearchConfig,
    base: nn.Module,
    graph: ModelGraph,
    space: SearchSpace,
    data: DatasetSplits,
    train_subset: LabelledImages,
    settings: Callable[[float, float], TrainSettings],
    device: torch.device,
    root: Path | None,
    *,
    pretrain: bool,
    note: Callable[[str], None],
) -> QuantSupernetStart:
    """The quant supernet of the run, read from ``root`` or (``pretrain``) trained there:
    each phase keeps its epoch checkpoints, and the float phase's result is kept until the
    quantization-aware phase is done, so a stopped training goes on where it stopped."""
    ratio = max(cfg.expansion_ratios) if graph.groups else 1.0
    widest = [ratio] * len(graph.groups)
    supernet_graph = scaled_graph(graph, widest)
    choices = width_choices(graph, cfg.expansion_ratios)
    path = (root or Path(cfg.out)) / QUANT_SUPERNET
    if not path.exists() and not pretrain:
        raise RunDirError(
            f"{path} is missing: the quant-supernet fitness slices the coordinator's supernet; "
            f"copy {QUANT_SUPERNET} from the coordinator's run directory"
        )
    supernet = fresh_at_width(base, graph, widest, seed=cfg.seed)
    qat_epochs = cfg.pretrain_epochs * cfg.supernet_qat_fraction
    float_epochs = cfg.pretrain_epochs - qat_epochs
    float_path = path.with_name(QUANT_SUPERNET_FLOAT)
    if not path.exists() and float_epochs > 0:
        if float_path.exists():
            load_weights(supernet, read_checkpoint(float_path, ""), float_path,
                         "its float phase; delete it to train it again")  # fmt: skip
            note(f"quant supernet's float phase read from {float_path}")
        else:
            note(f"training the quant supernet (widest ratio {ratio:g}) in float for "
                 f"{float_epochs:g} epochs with sampled widths")  # fmt: skip
            progress = TrainingProgress(float_path, f"quant supernet float at {ratio:g}", note)
            train_supernet(supernet, supernet_graph, choices, data.train,
                           settings(float_epochs, cfg.lr), seed=cfg.seed, device=device,
                           progress=progress)  # fmt: skip
            atomic_torch_save({"state_dict": checkpoint_state(supernet), "epochs": float_epochs},
                              float_path)  # fmt: skip
            progress.discard()
    make_quant_supernet(supernet, space).to(device)
    idx = calibration_indices(train_subset.y.numpy(), CALIBRATION_SAMPLES, cfg.seed)
    calibrate_quant_supernet(supernet, train_subset.x[torch.from_numpy(idx)].to(device), space)
    if path.exists():
        load_weights(supernet, read_checkpoint(path, ""), path,
                     "the quant supernet; delete it to train it again")  # fmt: skip
        note(f"quant supernet read from {path}")
    else:
        note(f"training the quant supernet quantization-aware for {qat_epochs:g} epochs with "
             "sampled widths and bits")  # fmt: skip
        progress = TrainingProgress(path, f"quant supernet at ratio {ratio:g}", note)
        train_quant_supernet(supernet, supernet_graph, choices, space, data.train,
                             settings(qat_epochs, cfg.lr), seed=cfg.seed, device=device,
                             progress=progress)  # fmt: skip
        atomic_torch_save({"state_dict": checkpoint_state(supernet), "ratio": ratio,
                           "epochs": cfg.pretrain_epochs,
                           "qat_fraction": cfg.supernet_qat_fraction}, path)  # fmt: skip
        progress.discard()
        float_path.unlink(missing_ok=True)
    return QuantSupernetStart(supernet.to(device).eval(), graph, supernet_graph, space,
                              train_subset, cfg.bn_recalibration_batches, cfg.batch_size,
                              cfg.seed, device)  # fmt: skip


def width_choices(graph: ModelGraph, ratios: Sequence[float]) -> list[list[int]]:
    """Per group, the widths an individual can have, as the widening builds them (whole
    blocks): what a supernet's sandwich samples from."""
    at_ratio = [group_widths(graph, [r] * len(graph.groups)) for r in ratios]
    return [sorted(set(ws)) for ws in zip(*at_ratio)]
