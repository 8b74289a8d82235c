"""The sampler: NSGA-II (the method) or random sampling of the same space (the baseline)."""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler
from optuna.trial import FrozenTrial

from ..config import SearchConfig
from ._trials import completed, trial_generation

__all__ = ["GenerationalRandomSampler", "make_sampler"]


def make_sampler(config: SearchConfig, seed: int | None = None) -> BaseSampler:
    """NSGA-II (the method), or random sampling of the same space (the baseline).

    ``seed`` defaults to the run's; parallel workers each need their own, or they would
    all propose the same genomes at the same moment. Random sampling has no generations:
    its "last population" is every completed trial, and the size limit acts only in the
    final choice (RandomSampler takes no constraints).
    """
    if config.sampler == "random":
        return GenerationalRandomSampler(config.population, seed=config.seed if seed is None
                                         else seed)  # fmt: skip

    return NSGAIISampler(
        population_size=config.population,
        crossover_prob=config.crossover_prob,
        swapping_prob=config.swapping_prob,
        mutation_prob=config.mutation_prob,
        seed=config.seed if seed is None else seed,
    )  # the size limit: Objective sets it per trial (Trial.set_constraint)


class GenerationalRandomSampler(RandomSampler):
    """Random sampling whose trials are numbered in generations of ``population_size`` by
    NSGA-II's rule (BaseGASampler.get_trial_generation), so the stopping rule, the progress
    lines and the report's hypervolume count them alike."""

    def __init__(self, population_size: int, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.population_size = population_size

    def get_trial_generation(self, study: optuna.Study, trial: FrozenTrial) -> int:
        if trial_generation(trial) is not None:
            return trial_generation(trial)  # type: ignore[return-value]
        counts = Counter(trial_generation(t) for t in completed(study))
        newest = max((g for g in counts if g is not None), default=0)
        return newest if counts[newest] < self.population_size else newest + 1
