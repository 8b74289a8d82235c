"""What a trial of the study records (user attrs), and how the search reads trials back.

All search state is in the study storage: the generation of every trial, its genome, its
objectives and whether it was a cache hit, so a reloaded study continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "CLONE_RETRIES",
    "FAIL_REASON",
    "GENERATION",
    "GENOME_KEY",
    "WORKER",
    "completed",
    "pareto_front",
    "trial_by_number",
    "trial_generation",
]


GENOME_KEY = "genome_key"
CLONE_RETRIES = "clone_retries"  # children drawn again because they equalled an evaluated one
GENERATION = "generation"
FAIL_REASON = "fail_reason"
WORKER = "worker"  # "host:pid" of the process that ran the trial


def trial_generation(trial: FrozenTrial) -> int | None:
    """The generation the sampler assigned to ``trial`` (stored by the Objective)."""
    return trial.user_attrs.get(GENERATION)


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial | None:
    for t in study.get_trials(deepcopy=False):
        if t.number == number:
            return t
    return None


def pareto_front(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Non-dominated trials on their objectives (val error, size[, BOPs]), all minimised;
    trials with equal objectives are all kept."""
    if not trials:
        return []
    values = np.array([t.values for t in trials], dtype=float)
    keep = moocore.is_nondominated(values, keep_weakly=True)
    return [t for t, k in zip(trials, keep) if k]
