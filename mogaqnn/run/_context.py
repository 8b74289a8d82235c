"""A run read back from its directory: config, FP32 base, graph, space, data, trials.

The run directory holds the resolved config, the FP32 base (``base.pt``), pareto.csv and
result.json; everything that rebuilds a run (export, report, benchmarks) starts here.
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
from ..errors import ConfigError, RunDirError
from ..expand import ModelGraph
from ..genome import Genome, SearchSpace
from ..models._factory import resolve_model
from ._rundir import RunDir, load_weights, read_checkpoint
from ._setup import expansion_graph, load_config_dataset, search_space

__all__ = ["RunContext", "load_run", "load_run_data", "read_result", "trial_genome"]


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


def load_run(
    run_dir: str | Path, *, model: nn.Module | None = None, config: SearchConfig | None = None
) -> RunContext:
    """Read a run directory's config and FP32 base; ``model`` replaces the config's model
    for runs started from the Python API with a module (``python:...`` model names);
    ``config`` replaces config.json (a remote worker's directory holds only base.pt)."""
    rd = RunDir(run_dir)
    if not rd.root.is_dir():
        raise RunDirError(f"{rd.root} is not a directory; give the --out directory of a search")
    cfg = config or rd.stored_config()
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


def read_result(run: RunContext) -> dict[str, Any]:
    path = RunDir(run.root).result
    if not path.is_file():
        raise RunDirError(f"{run.root} has no result.json; the search has not finished")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path} is unreadable ({exc})") from exc
