"""The search's references: the uniform 8/4/2-bit individuals, evaluated like every trial for
the report's plot, and the FP32 reference of the ``match-fp32`` rule.

The FP32 reference is the FP32 architecture (ratio 1.0), started as every individual starts
(the fitness's start: a supernet slice, a short training from scratch, or the base itself)
and fine-tuned by the evaluation recipe, unquantized, on the
search's train subset, measured on its val subset, distilled from the base when the
individuals are. Starting or training it otherwise than the individuals would compare two
recipes, not quantization and width against float (with the supernet fitness, the base alone
scored 1.5 pp below the individuals it was compared to).

Computed once per run and kept in the study (a resume reads it back), so it costs one
evaluation. It uses the Evaluator's own subsets, training settings and seed; any
quantization-specific part of the recipe does not apply to a float model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import optuna

from ..fitness import Evaluator
from ..genome import Genome
from ..run import atomic_write_text
from ..train import TrainingDiverged, evaluate_accuracy, train_model

__all__ = [
    "FP32_REFERENCE_ATTR",
    "REFERENCE_BITS",
    "REFERENCE_FILE",
    "fp32_fine_tuned_accuracy",
    "fp32_reference_accuracy",
    "uniform_reference_points",
]

FP32_REFERENCE_ATTR = "fp32_search_val_accuracy"  # study user attr
FLOAT_BITS = 32  # the bits of the reference genome: only its ratios are read


def fp32_fine_tuned_accuracy(evaluator: Evaluator) -> float:
    """Val accuracy of the FP32 architecture after the start and the fine-tuning every
    individual gets."""
    if evaluator.start is None:
        model = copy.deepcopy(evaluator.base).to(evaluator.device)
    else:
        n = len(evaluator.space.layers)
        fp32 = Genome((FLOAT_BITS,) * n, (FLOAT_BITS,) * n, (1.0,) * len(evaluator.space.groups))
        model = evaluator.start(fp32).to(evaluator.device)
    # the teacher too: an individual distils when the run does (train_model ignores it at
    # weight 0), and a reference trained without it would compare two recipes
    train_model(model, evaluator.train_data, evaluator.settings, seed=evaluator.seed,
                device=evaluator.device, teacher=evaluator.teacher)  # fmt: skip
    return evaluate_accuracy(model, evaluator.val_data, device=evaluator.device)


def fp32_reference_accuracy(study: optuna.Study, evaluator: Evaluator) -> float:
    """The run's FP32 reference accuracy, from the study or measured now and stored."""
    stored = study.user_attrs.get(FP32_REFERENCE_ATTR)
    if stored is None:
        stored = fp32_fine_tuned_accuracy(evaluator)
        study.set_user_attr(FP32_REFERENCE_ATTR, stored)
    return float(stored)


REFERENCE_FILE = "reference_points.json"
REFERENCE_BITS = (8, 4, 2)


def uniform_reference_points(root: Path, evaluator: Evaluator) -> list[dict[str, Any]]:
    """Uniform 8/4/2-bit individuals (weights and activations, every ratio 1.0) evaluated by
    the run's fitness like every trial, for the report's plot; kept in
    ``reference_points.json`` and read back from there."""
    path = root / REFERENCE_FILE
    space = evaluator.space
    genomes = {b: space.uniform(b, b, 1.0) for b in REFERENCE_BITS}
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))["points"]
            if {p["genome_key"] for p in stored} == {g.key() for g in genomes.values()}:
                return stored
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass  # unreadable or of another space: evaluated again below
    evaluator = dataclasses.replace(evaluator, log_path=None)  # not trials of the search
    stored = []
    for bits, genome in genomes.items():
        point = {"label": f"uniform {bits}-bit", "weight_bits": bits, "act_bits": bits,
                 "ratio": 1.0, "genome_key": genome.key()}  # fmt: skip
        try:
            ev = evaluator(genome)
        except TrainingDiverged as exc:  # as a search individual can: no point to plot
            stored.append({**point, "failed": f"{type(exc).__name__}: {exc}"})
            continue
        stored.append({**point, "val_accuracy": ev.val_accuracy, "size_bits": ev.size_bits})
    doc = {"about": "uniform-bit references, evaluated by the run's fitness like every trial",
           "points": stored}  # fmt: skip
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return stored
