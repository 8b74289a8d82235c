"""Rebuild a trained model from a run directory: the one function export and report use.

The run directory holds the resolved config, the FP32 base (``base.pt``) and the chosen
individual after its final training (``final.pt``). The quantized network is rebuilt the
way the search built it (base -> graph analysis -> widen + quantize by the genome) and the
trained weights are loaded on top; a non-chosen individual is instead trained again
exactly as the search's Evaluator trained it (same subset, budget and seed).
"""

from __future__ import annotations

import copy
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import SearchConfig
from ..data import DatasetSplits
from ..errors import ConfigError, MogaqnnError, RunDirError
from ..expand import ModelGraph
from ..genome import Genome, SearchSpace, build_individual
from ..models._factory import resolve_model
from ..search import Evaluator, RunDir, resolve_device
from ..search._rundir import load_weights, read_checkpoint
from ..search._setup import expansion_graph, load_config_dataset, make_evaluator, search_space
from ..train import evaluate_accuracy, train_model

__all__ = [
    "RunContext",
    "RunModel",
    "load_run",
    "load_run_data",
    "load_run_model",
    "parse_individual",
    "read_result",
    "run_evaluator",
    "trial_genome",
]

Individual = str | int  # "chosen" or a trial number of pareto.csv


@dataclass
class RunContext:
    """What every rebuild of a run starts from: its config, FP32 base, graph and space."""

    root: Path
    config: SearchConfig
    base: nn.Module  # the pretrained FP32 model, eval mode, on the CPU
    base_val_accuracy: float
    graph: ModelGraph  # as the search used it (expansion "off" keeps only bn_fold)
    space: SearchSpace
    in_channels: int
    num_classes: int
    image_size: int


@dataclass
class RunModel:
    """A trained, fake-quantized individual of a run, ready for export (eval, CPU)."""

    run: RunContext
    model: nn.Module
    genome: Genome
    individual: Individual
    val_accuracy: float | None = None  # measured when the individual was trained here


def parse_individual(value: str | int) -> Individual:
    """``"chosen"`` or a non-negative trial number (from the CLI's ``--individual``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        if value == "chosen":
            return value
        if value.isdigit():
            return int(value)
    raise ConfigError(
        f"individual must be 'chosen' or a trial number from pareto.csv, got {value!r}"
    )


def load_run(run_dir: str | Path, *, model: nn.Module | None = None) -> RunContext:
    """Read a run directory's config and FP32 base; ``model`` replaces the config's model
    for runs started from the Python API with a module (``python:...`` model names)."""
    rd = RunDir(run_dir)
    if not rd.root.is_dir():
        raise RunDirError(f"{rd.root} is not a directory; give the --out directory of a search")
    cfg = rd.stored_config()
    if cfg is None:
        raise RunDirError(f"{rd.root} holds no mogaqnn run (no config.json); give a search's --out")
    ckpt = read_checkpoint(rd.base_checkpoint, "the search has not pretrained its base yet")
    shape = {k: int(ckpt[k]) for k in ("in_channels", "num_classes", "image_size")}
    if model is None:
        if cfg.model.startswith("python:"):
            raise RunDirError(
                f"{rd.root} was searched with a Python model ({cfg.model}); pass the same "
                "module as model= to rebuild it"
            )
        model = resolve_model(cfg.model, **shape)
    base = copy.deepcopy(model).cpu()
    load_weights(base, ckpt, rd.base_checkpoint, f"the model {cfg.model}")
    base.eval()
    example = torch.zeros(2, shape["in_channels"], shape["image_size"], shape["image_size"])
    graph = expansion_graph(base, example, cfg.expansion)
    space = search_space(cfg, base, graph)
    return RunContext(rd.root, cfg, base, float(ckpt.get("val_accuracy", float("nan"))),
                      graph, space, **shape)  # fmt: skip


def load_run_data(run: RunContext, data: DatasetSplits | None = None) -> DatasetSplits:
    """The run's dataset splits, loaded as the search loaded them (same seed and sizes)."""
    if data is not None:
        return data
    cfg = run.config
    if cfg.dataset.startswith("python:"):
        raise RunDirError(
            f"{run.root} was searched on Python data ({cfg.dataset}); pass the same "
            "DatasetSplits as data="
        )
    return load_config_dataset(cfg)


def run_evaluator(run: RunContext, data: DatasetSplits, device: str | None = None) -> Evaluator:
    """An Evaluator equal to the one ``Search.run`` builds (subsets, budget, seed), without
    the evaluations log: evaluations made here are not trials of the search."""
    device_ = resolve_device(device or run.config.device)
    return make_evaluator(run.config, run.base, run.graph, run.space, data, device_, None,
                          root=run.root)  # fmt: skip


def trial_genome(run: RunContext, trial: int) -> Genome:
    """The genome of a completed trial, read from the run's pareto.csv."""
    path = RunDir(run.root).pareto_csv
    if not path.is_file():
        raise RunDirError(f"{run.root} has no pareto.csv; the search has not finished")
    with open(path, newline="", encoding="utf-8") as f:
        rows = {int(r["trial"]): r for r in csv.DictReader(f)}
    row = rows.get(trial)
    if row is None:
        raise ConfigError(
            f"individual {trial} is not a trial of {run.root} (trials 0..{max(rows, default=-1)})"
        )
    if row["state"] != "COMPLETE":
        raise ConfigError(f"trial {trial} of {run.root} is {row['state']}, not COMPLETE")
    try:
        return run.space.decode(row)
    except (KeyError, ValueError) as exc:
        raise RunDirError(f"{path} does not match the run's search space ({exc})") from exc


def _final_model(run: RunContext) -> tuple[nn.Module, Genome]:
    ckpt = read_checkpoint(RunDir(run.root).final_checkpoint,
                            "the search has not finished; resume it first")  # fmt: skip
    try:
        genome = Genome(
            tuple(int(b) for b in ckpt["genome"]["weight_bits"]),
            tuple(int(b) for b in ckpt["genome"]["act_bits"]),
            tuple(float(r) for r in ckpt["genome"]["ratios"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{run.root / 'final.pt'} has no valid genome ({exc!r})") from exc
    if (len(genome.weight_bits), len(genome.ratios)) != (len(run.space.layers),
                                                         len(run.space.groups)):  # fmt: skip
        raise RunDirError(f"the genome in {run.root / 'final.pt'} does not fit the run's model")
    # Weights and calibrated scales all come from the checkpoint: noise and seed are moot.
    model = build_individual(run.base, run.graph, run.space, genome)
    load_weights(model, ckpt, run.root / "final.pt", "the rebuilt model")
    return model.eval(), genome


def load_run_model(
    run_dir: str | Path | RunContext,
    individual: str | int = "chosen",
    *,
    model: nn.Module | None = None,
    data: DatasetSplits | None = None,
) -> RunModel:
    """The trained fake-quantized model of a run, on the CPU in eval mode.

    ``"chosen"`` loads final.pt (the chosen individual after its final training). A trial
    number rebuilds that genome and fine-tunes it exactly as the search evaluated it
    (``search_epochs`` of QAT on the search subset, the genome's own seed), so its val
    accuracy is the one pareto.csv reports; this needs the run's dataset (``data`` for
    Python datasets).
    """
    run = run_dir if isinstance(run_dir, RunContext) else load_run(run_dir, model=model)
    which = parse_individual(individual)
    if which == "chosen":
        quantized, genome = _final_model(run)
        return RunModel(run, quantized, genome, which)
    genome = trial_genome(run, int(which))
    evaluator = run_evaluator(run, load_run_data(run, data))
    quantized = evaluator.build(genome)
    try:
        train_model(quantized, evaluator.train_data, evaluator.settings,
                    seed=genome.seed(run.config.seed), device=evaluator.device)  # fmt: skip
    except Exception as exc:  # the search records such an individual as failed, too
        raise MogaqnnError(f"training individual {which} failed: {exc}") from exc
    acc = evaluate_accuracy(quantized, evaluator.val_data, device=evaluator.device)
    return RunModel(run, quantized.cpu().eval(), genome, which, val_accuracy=acc)


def read_result(run: RunContext) -> dict[str, Any]:
    path = RunDir(run.root).result
    if not path.is_file():
        raise RunDirError(f"{run.root} has no result.json; the search has not finished")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path} is unreadable ({exc})") from exc
