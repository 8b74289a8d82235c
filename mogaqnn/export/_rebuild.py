"""Rebuild a trained model of a run: the one function export uses.

The chosen individual after its final training (``final.pt``), or any final-trained
candidate (``final/<genome key>.pt``), is rebuilt the way the search built it and the
trained weights are loaded on top; any other individual is trained again by the search's
recipe (``Recipe.search_model``: same start, subset, budget, seed and teacher), so its val
accuracy is the one pareto.csv reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..data import DatasetSplits
from ..errors import ConfigError, MogaqnnError
from ..genome import Genome
from ..recipe import Recipe, read_trained
from ..run import RunContext, RunDir, load_run, trial_genome
from ..search import FINAL_DIR
from ..train import TrainingDiverged, evaluate_accuracy

__all__ = ["RunModel", "load_run_model", "parse_individual"]

Individual = str | int  # "chosen" or a trial number of pareto.csv


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


def load_run_model(
    run_dir: str | Path | RunContext,
    individual: str | int = "chosen",
    *,
    model: nn.Module | None = None,
    data: DatasetSplits | None = None,
) -> RunModel:
    """The trained fake-quantized model of a run, on the CPU in eval mode.

    ``"chosen"`` loads final.pt (the chosen individual after its final training); a trial
    number of a final-trained candidate loads that candidate's final model. Any other trial
    number rebuilds that genome and trains it by the search's recipe, so its val accuracy is
    the one pareto.csv reports; this needs the run's dataset (``data`` for Python datasets).
    """
    run = run_dir if isinstance(run_dir, RunContext) else load_run(run_dir, model=model)
    which = parse_individual(individual)
    if which == "chosen":
        quantized, genome = read_trained(
            RunDir(run.root).final_checkpoint, run.base, run.graph, run.space,
            "the search has not finished; resume it first",
        )  # fmt: skip
        return RunModel(run, quantized, genome, which)
    genome = trial_genome(run, int(which))
    trained = run.root / FINAL_DIR / f"{genome.key()}.pt"
    if trained.is_file():  # a final-trained candidate: export it as trained
        quantized, _ = read_trained(trained, run.base, run.graph, run.space, "")
        return RunModel(run, quantized, genome, which)
    recipe = Recipe.of_run(run, data=data)
    try:
        quantized = recipe.search_model(genome)
    except TrainingDiverged as exc:  # the search records such an individual as failed, too
        raise MogaqnnError(f"training individual {which} diverged: {exc}") from exc
    ev = recipe.evaluator
    acc = evaluate_accuracy(quantized, ev.val_data, device=ev.device)
    return RunModel(run, quantized.cpu().eval(), genome, which, val_accuracy=acc)
