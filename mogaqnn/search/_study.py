"""Optuna lives here: the storage, the NSGA-II sampler, the objective and the callbacks.

All search state is in the study storage: the generation of every trial, its genome, its
objectives and whether it was a cache hit, so a reloaded study continues where it stopped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from ..config import SearchConfig
from ..errors import ConfigError
from ..genome import Genome, SearchSpace
from ..size import KIB_BITS
from ._evaluate import Evaluation

__all__ = [
    "STUDY_NAME",
    "IndividualFailed",
    "open_storage",
    "make_sampler",
    "open_study",
    "Objective",
    "trial_generation",
    "completed",
]

STUDY_NAME = "mogaqnn"
GENOME_KEY = "genome_key"
FAIL_REASON = "fail_reason"


class IndividualFailed(Exception):
    """An evaluation diverged or raised; the trial is recorded as failed with the reason."""


def _repair_journal(path: Path) -> None:
    """A kill during a write can leave a partial last line; appending after it would
    corrupt the next record too, so cut it (the record was never committed)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data = f.seek(0) or f.read()
        f.truncate(data.rfind(b"\n") + 1)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """``journal:PATH`` (a journal file, the default), or any Optuna RDB URL."""
    if url.startswith("journal:"):
        path = Path(url[len("journal:") :])
        _repair_journal(path)
        return JournalStorage(JournalFileBackend(str(path)))
    try:
        return RDBStorage(url, heartbeat_interval=60, grace_period=180)
    except Exception as exc:  # bad URL, missing driver, unreachable server
        raise ConfigError(f"cannot open storage {url!r}: {exc}") from exc


def make_sampler(config: SearchConfig) -> BaseSampler:
    """NSGA-II (the method), or random sampling of the same space (the baseline).

    Random sampling has no generations: its "last population" is every completed trial,
    and the size limit acts only in the final choice (RandomSampler takes no constraints).
    """
    if config.sampler == "random":
        return RandomSampler(seed=config.seed)

    def constraints(trial: FrozenTrial) -> Sequence[float]:
        size = trial.user_attrs.get("size_bits")
        if config.max_size_kib is None or size is None:
            return (0.0,)
        return (size / KIB_BITS - config.max_size_kib,)

    return NSGAIISampler(
        population_size=config.population,
        crossover_prob=config.crossover_prob,
        swapping_prob=config.swapping_prob,
        mutation_prob=config.mutation_prob,
        seed=config.seed,
        constraints_func=constraints if config.max_size_kib is not None else None,
    )


def open_study(config: SearchConfig, storage_url: str, sampler: BaseSampler) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=STUDY_NAME,
        storage=open_storage(storage_url),
        sampler=sampler,
        directions=["minimize", "minimize"],  # val error, size in bits
        load_if_exists=True,
    )


def trial_generation(trial: FrozenTrial) -> int | None:
    return trial.system_attrs.get(NSGAIISampler._get_generation_key())


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


@dataclass
class Objective:
    """Suggest a genome, answer from an earlier identical genome if there is one, else
    evaluate it. Objectives: (val error, size in bits)."""

    space: SearchSpace
    evaluate: Callable[[Genome], Evaluation]

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        params = {
            name: trial.suggest_categorical(name, choices)
            for name, choices in self.space.parameters().items()
        }
        genome = self.space.decode(params)
        key = genome.key()
        trial.set_user_attr(GENOME_KEY, key)
        earlier = _earlier_result(trial.study, key, trial.number)
        if earlier is not None:
            if earlier.state == TrialState.FAIL:
                reason = earlier.user_attrs.get(FAIL_REASON, "failed before")
                trial.set_user_attr(FAIL_REASON, reason)
                trial.set_user_attr("cache_hit", True)
                raise IndividualFailed(reason)
            for k in ("val_accuracy", "size_bits", "size_kib"):
                trial.set_user_attr(k, earlier.user_attrs[k])
            trial.set_user_attr("cache_hit", True)
            trial.set_user_attr("cached_from", earlier.number)
            return tuple(earlier.values)  # type: ignore[return-value]
        try:
            result = self.evaluate(genome)
        except Exception as exc:  # a failed individual must not stop the search
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(FAIL_REASON, reason)
            raise IndividualFailed(reason) from exc
        trial.set_user_attr("val_accuracy", result.val_accuracy)
        trial.set_user_attr("size_bits", result.size_bits)
        trial.set_user_attr("size_kib", result.size_bits / KIB_BITS)
        trial.set_user_attr("seconds", result.seconds)
        trial.set_user_attr("train_seconds", result.train_seconds + result.val_seconds)
        trial.set_user_attr("cache_hit", False)
        return 1.0 - result.val_accuracy, float(result.size_bits)


def _earlier_result(study: optuna.Study, key: str, number: int) -> FrozenTrial | None:
    """A finished trial with the same genome: completed, or failed by the evaluation itself
    (not by an interruption, which leaves no reason)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if t.number == number or t.user_attrs.get(GENOME_KEY) != key:
            continue
        if t.state == TrialState.COMPLETE or FAIL_REASON in t.user_attrs:
            return t
    return None


def fail_interrupted_trials(study: optuna.Study) -> int:
    """Mark trials left RUNNING by a killed process as failed, so they are evaluated again."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    return len(stale)


def pareto_front(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Non-dominated trials on (val error, size), both minimised."""
    front = []
    for t in trials:
        e, s = t.values
        if not any(
            (o.values[0] <= e and o.values[1] <= s) and (o.values[0] < e or o.values[1] < s)
            for o in trials
        ):
            front.append(t)
    return front


def hypervolume_point(trials: Sequence[FrozenTrial]) -> tuple[float, float]:
    sizes = [t.values[1] for t in trials]
    return 1.0, (max(sizes) if sizes else 1.0) * 1.1


def generation_summary(study: optuna.Study, generation: int, target: int) -> dict[str, Any]:
    trials = completed(study)
    gen = [t for t in trials if trial_generation(t) == generation]
    front = pareto_front(gen)
    return {
        "generation": generation,
        "best_val_accuracy": max((t.user_attrs["val_accuracy"] for t in gen), default=math.nan),
        "smallest_front_kib": min((t.user_attrs["size_kib"] for t in front), default=math.nan),
        "evaluations": len(trials),
        "target": target,
        "cache_hits": sum(bool(t.user_attrs.get("cache_hit")) for t in trials),
        "failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
    }
