"""Rebuild a trained model of a run: the one function export uses.

The chosen individual after its final training (``final.pt``) is rebuilt the way the search
built it (base -> graph analysis -> widen + quantize by the genome) and the trained weights
are loaded on top; a non-chosen individual is instead trained again exactly as the search's
Evaluator trained it (same subset, budget and seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..data import DatasetSplits
from ..errors import ConfigError, MogaqnnError, RunDirError
from ..genome import Genome, build_individual
from ..run import (
    RunContext,
    RunDir,
    load_run,
    load_run_data,
    load_weights,
    read_checkpoint,
    trial_genome,
)
from ..search import run_evaluator
from ..train import evaluate_accuracy, train_model

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
