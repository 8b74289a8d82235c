"""The sampler: NSGA-II (the method) or random sampling of the same space (the baseline)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from ..config import SearchConfig
from ..genome import Genome, SearchSpace
from ._trials import completed, trial_generation

__all__ = [
    "DistinctNSGAIISampler",
    "GenerationalRandomSampler",
    "make_sampler",
    "seed_first_generation",
    "target_seeds",
    "uniform_seeds",
    "WIDTH_SEED",
]


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

    return DistinctNSGAIISampler(
        population_size=config.population,
        crossover_prob=config.crossover_prob,
        swapping_prob=config.swapping_prob,
        mutation_prob=config.mutation_prob,
        seed=config.seed if seed is None else seed,
    )  # the size limit: Objective sets it per trial (Trial.set_constraint)


CLONE_TRIES = 20  # children drawn again at most this often before a clone is accepted


class DistinctNSGAIISampler(NSGAIISampler):
    """NSGA-II whose children differ from every genome already in the study: a child equal
    to an evaluated (or running) genome is drawn again (crossover and mutation anew), at
    most CLONE_TRIES times, then accepted (the genome cache answers it without training).

    Optuna's child is partial: the genes it leaves out are the mutated ones, which NSGA-II
    draws uniformly later; they are drawn here the same way, so the whole genome is known
    when it is compared. ``clone_retries`` maps trial numbers to their redraws (the
    Objective stores them with the trial).
    """

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, seed=seed, **kwargs)
        self._mutation_rng = np.random.default_rng(seed)
        self.clone_retries: dict[int, int] = {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        names = sorted(search_space)  # single-choice genes are not in it: they never differ
        seen = {
            _params_key(t.params, names)
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                               TrialState.RUNNING))
            if t.number != trial.number
        }  # fmt: skip
        tries = 0
        while True:
            params = super().sample_relative(study, trial, search_space)
            if not params:  # the first generation: sampled at random, gene by gene
                return params
            for name, dist in search_space.items():
                if name not in params and isinstance(dist, CategoricalDistribution):
                    params[name] = dist.choices[self._mutation_rng.integers(len(dist.choices))]
            if _params_key(params, names) not in seen or tries == CLONE_TRIES:
                break
            tries += 1
        self.clone_retries[trial.number] = tries
        return params


def _params_key(params: dict[str, Any], names: list[str]) -> tuple:
    return tuple(params.get(name) for name in names)


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


UNIFORM_WEIGHT_BITS = (8, 4, 3, 2)
SEEDED = "seeded"  # user attr of a seeded trial: what it is, e.g. "uniform 4-bit"
WIDTH_SEED = "bits_for_width"  # user attr of the bits-for-width seeds: a final candidate


def uniform_seeds(space: SearchSpace, population: int) -> list[tuple[str, Genome]]:
    """Uniform individuals at the smallest ratio (1.0 where allowed), 8-bit activations (or
    the largest allowed), weight bits 8, 4, 3, 2 as allowed and always the smallest allowed,
    so the front spans the size range from the first generation and the smallest genome of
    the space (the one under any feasible size limit) is evaluated. At most half the
    population; the smallest and the largest are kept first."""
    weight_choices, act_choices = space.weight_bit_choices, space.act_bit_choices
    bits = sorted({b for b in UNIFORM_WEIGHT_BITS if b in weight_choices} | {min(weight_choices)},
                  reverse=True)  # fmt: skip
    keep = max(1, population // 2)
    if len(bits) > keep:
        bits = bits[: keep - 1] + [bits[-1]]
    act = 8 if 8 in act_choices else max(act_choices)
    ratio = min(space.ratio_choices)
    return [(f"uniform {b}-bit", space.uniform(b, act, ratio)) for b in bits]


TARGET_WEIGHT_BITS = (4, 3, 2)  # the bits-for-width seeds' weight bits, first kept first


def target_seeds(
    space: SearchSpace, size_bits: Callable[[Genome], int], limit_bits: float, room: int
) -> list[tuple[str, Genome]]:
    """Bits for width: uniform b-bit weights (8-bit activations, or the largest allowed) at
    the ratio whose size is the nearest under the size target, for b in 4, 3, 2 as allowed;
    what models trained at their width show beating FP32 (fewer bits, more channels). At
    most ``room`` of them, and none that no allowed ratio fits."""
    act = 8 if 8 in space.act_bit_choices else max(space.act_bit_choices)
    seeds: list[tuple[str, Genome]] = []
    for bits in (b for b in TARGET_WEIGHT_BITS if b in space.weight_bit_choices):
        if len(seeds) == room:
            break
        genomes = [space.uniform(bits, act, r) for r in space.ratio_choices]
        fits = [(size, g) for g in genomes if (size := size_bits(g)) <= limit_bits]
        if fits:
            genome = max(fits, key=lambda f: f[0])[1]
            seeds.append((f"uniform {bits}-bit at ratio {genome.ratios[0]:g} (size target)",
                          genome))  # fmt: skip
    return seeds


def seed_first_generation(
    study: optuna.Study,
    space: SearchSpace,
    population: int,
    size_bits: Callable[[Genome], int] | None = None,
    limit_bits: float | None = None,
) -> list[str]:
    """Queue the uniform individuals, and with a size target the bits-for-width ones, into a
    study that has no trial yet (at most half the population in all); return their labels."""
    if study.get_trials(deepcopy=False):
        return []
    seeds = [(label, g, {SEEDED: label}) for label, g in uniform_seeds(space, population)]
    if size_bits is not None and limit_bits is not None:
        taken = {g for _, g, _ in seeds}
        room = max(population // 2 - len(seeds), 0)
        seeds += [(label, g, {SEEDED: label, WIDTH_SEED: True})
                  for label, g in target_seeds(space, size_bits, limit_bits, room)
                  if g not in taken]  # fmt: skip
    for _, genome, attrs in seeds:
        study.enqueue_trial(space.encode(genome), user_attrs=attrs)
    return [label for label, _, _ in seeds]
