"""The objective: suggest a genome, answer from an earlier evaluation of it or evaluate it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import EvaluationError, MogaqnnError
from ..fitness import Evaluation
from ..genome import Genome, SearchSpace
from ..size import KIB_BITS
from ..train import TrainingDiverged
from ._claims import Claims
from ._store import fail_stale, requeue
from ._trials import CLONE_RETRIES, FAIL_REASON, GENERATION, GENOME_KEY, WORKER, trial_by_number

__all__ = ["POLL_S", "IndividualFailed", "Objective", "worker_id"]


POLL_S = 0.5


class IndividualFailed(Exception):
    """An evaluation diverged or raised; the trial is recorded as failed with the reason."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _finished_result(t: FrozenTrial | None) -> bool:
    """Completed, or failed by the evaluation itself (an interruption leaves no reason)."""
    return t is not None and (
        t.state == TrialState.COMPLETE
        or (t.state == TrialState.FAIL and FAIL_REASON in t.user_attrs)
    )


def _interrupted(study: optuna.Study, number: int) -> bool:
    t = trial_by_number(study, number)
    return t is None or (t.state == TrialState.FAIL and FAIL_REASON not in t.user_attrs)


@dataclass
class Objective:
    """Suggest a genome, answer from the trial that trains or trained the same genome if
    there is one, else claim it and evaluate it. Objectives: (val error, size in bits), and
    the bit operations when ``objectives`` names them."""

    space: SearchSpace
    # the fitness: genome, and the bar a val pass may stop under (Evaluator.__call__)
    evaluate: Callable[[Genome, Callable[[int], float | None]], Evaluation]
    claims: Claims
    max_size_kib: float | None = None  # NSGA-II prefers individuals within it (a constraint)
    bops: Callable[[Genome], int] | None = None  # bit operations, recorded for every individual
    objectives: tuple[str, ...] = ("error", "size")  # ("error", "size", "bops"): three
    worker: str = field(default_factory=worker_id)
    poll_s: float = POLL_S

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        params = {
            name: trial.suggest_categorical(name, choices)
            for name, choices in self.space.parameters().items()
        }
        genome = self.space.decode(params)
        key = genome.key()
        _store_generation(trial)
        retries = getattr(trial.study.sampler, "clone_retries", {}).pop(trial.number, 0)
        trial.set_user_attr(CLONE_RETRIES, retries)
        trial.set_user_attr(WORKER, self.worker)
        trial.set_user_attr(GENOME_KEY, key)
        earlier = self._trained_by(trial, key)
        if earlier is not None:
            trial.set_user_attr("cache_hit", True)
            trial.set_user_attr("cached_from", earlier.number)
            if earlier.state == TrialState.FAIL:
                reason = earlier.user_attrs[FAIL_REASON]
                trial.set_user_attr(FAIL_REASON, reason)
                raise IndividualFailed(reason)
            for k in ("val_accuracy", "size_bits", "size_kib", "bops"):
                if k in earlier.user_attrs:
                    trial.set_user_attr(k, earlier.user_attrs[k])
            self._constrain(trial, earlier.user_attrs["size_bits"])
            return tuple(earlier.values)  # type: ignore[return-value]
        try:
            result = self.evaluate(genome, lambda size: _bar(trial.study, size))
        except TrainingDiverged as exc:  # an unfit individual: the search goes on
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(FAIL_REASON, reason)
            raise IndividualFailed(reason) from exc
        except MogaqnnError:
            raise
        except Exception as exc:  # a bug in the model or in mogaqnn: stop, say what and where
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            requeue(trial.study, trial)  # a resume tries it again
            raise EvaluationError(
                f"evaluating trial {trial.number} raised {type(exc).__name__}: {exc} "
                f"(genome: weight bits {list(genome.weight_bits)}, activation bits "
                f"{list(genome.act_bits)}, expansion ratios {list(genome.ratios)}); this is "
                "not a divergence but an error of the model or of mogaqnn on this genome, so "
                "the search stops; fix it, then 'mogaqnn resume' evaluates the genome again"
            ) from exc
        trial.set_user_attr("val_accuracy", result.val_accuracy)
        trial.set_user_attr("size_bits", result.size_bits)
        trial.set_user_attr("size_kib", result.size_bits / KIB_BITS)
        trial.set_user_attr("seconds", result.seconds)
        trial.set_user_attr("train_seconds", result.train_seconds + result.val_seconds)
        trial.set_user_attr("val_samples", result.val_samples)
        trial.set_user_attr("cache_hit", False)
        self._constrain(trial, result.size_bits)
        values = [1.0 - result.val_accuracy, float(result.size_bits)]
        if self.bops is not None:
            bops = self.bops(genome)
            trial.set_user_attr("bops", bops)
            if "bops" in self.objectives:
                values.append(float(bops))
        return tuple(values)

    def _constrain(self, trial: optuna.Trial, size_bits: int) -> None:
        """Feasible when <= 0: KiB over the size limit."""
        if self.max_size_kib is not None:
            trial.set_constraint("size_over_limit_kib", size_bits / KIB_BITS - self.max_size_kib)

    def _trained_by(self, trial: optuna.Trial, key: str) -> FrozenTrial | None:
        """The finished trial that evaluated ``key``, waiting for it if another worker is
        evaluating it now; None when this trial holds the claim and must evaluate it."""
        study = trial.study
        while True:
            earlier = _earlier_result(study, key, trial.number)
            if earlier is not None:
                return earlier
            owner = self.claims.claim(key, trial.number, lambda n: _interrupted(study, n))
            if owner == trial.number:
                return None
            holder = trial_by_number(study, owner)
            if _finished_result(holder):
                return holder
            fail_stale(study)  # the holder's worker may be dead: RDB fails it in time
            time.sleep(self.poll_s)


def _store_generation(trial: optuna.Trial) -> None:
    """Ask the sampler for the trial's generation (NSGA-II assigns it by its own rule, also
    to a queued trial whose parameters are all fixed) and keep it in the trial's user attrs,
    where every reader finds it without the sampler's private key."""
    study = trial.study
    frozen = trial_by_number(study, trial.number)
    if frozen is not None and hasattr(study.sampler, "get_trial_generation"):
        trial.set_user_attr(GENERATION, study.sampler.get_trial_generation(study, frozen))


def _bar(study: optuna.Study, size_bits: int) -> float | None:
    """The highest val accuracy of a completed individual at most ``size_bits`` large: an
    individual clearly below it is dominated (None: nothing that small yet)."""
    accs = [t.user_attrs["val_accuracy"] for t in study.get_trials(deepcopy=False,
            states=(TrialState.COMPLETE,)) if t.user_attrs.get("size_bits", size_bits + 1)
            <= size_bits]  # fmt: skip
    return max(accs, default=None)


def _earlier_result(study: optuna.Study, key: str, number: int) -> FrozenTrial | None:
    """A finished trial with the same genome that was not itself a copy."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if t.number == number or t.user_attrs.get(GENOME_KEY) != key:
            continue
        if _finished_result(t) and not t.user_attrs.get("cache_hit"):
            return t
    return None
