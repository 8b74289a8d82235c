"""The worker loop: evaluate trials until the configured generations are complete; any
number of these loops may run at once, in processes on one or several machines."""

from __future__ import annotations

import math
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..config import SearchConfig
from ..errors import NoAnswerError
from ._objective import POLL_S, IndividualFailed, Objective
from ._store import fail_stale, requeue
from ._trials import CLONE_RETRIES, FAIL_REASON, WORKER, completed, pareto_front, trial_generation

__all__ = [
    "clone_retries",
    "evaluate_until_done",
    "generation_summary",
    "next_step",
    "rerun_interrupted",
    "wait_for_running",
]


def _pid_gone(worker: str | None, host: str) -> bool:
    if not worker or not worker.startswith(host + ":"):
        return False
    try:
        os.kill(int(worker.rsplit(":", 1)[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def rerun_interrupted(study: optuna.Study, *, every_running: bool) -> int:
    """Fail the trials left RUNNING by killed processes and queue their genomes again.

    ``every_running``: no live process can own a trial now (journal storage, whose workers
    are this coordinator's children, with the run directory held). Otherwise only trials of
    processes of this host that are gone; remote workers' trials are left to heartbeats.
    """
    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not every_running and not _pid_gone(t.user_attrs.get(WORKER), host):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            continue  # it finished meanwhile
        requeue(study, t)
        n += 1
    return n


def _failed_individuals(trials: Iterable[FrozenTrial]) -> int:
    return sum(t.state == TrialState.FAIL and FAIL_REASON in t.user_attrs for t in trials)


def next_step(study: optuna.Study, population: int, generations: int) -> str:
    """Next: "start" a trial, "wait" for running ones, or "done": the last generation is full.

    A new trial joins the newest generation until it has ``population`` completed trials
    (Optuna's rule in BaseGASampler.get_trial_generation; failed trials do not count, so a
    generation still fills its population). The last generation gets no more trials than
    it needs: a worker waits while the running ones may complete it.
    """
    trials = study.get_trials(deepcopy=False)
    done = [trial_generation(t) for t in trials if t.state == TrialState.COMPLETE]
    counts = Counter(g for g in done if g is not None)
    newest = max(counts, default=0)
    new = newest if counts[newest] < population else newest + 1
    if new >= generations:
        return "done"
    running = sum(t.state == TrialState.RUNNING for t in trials)
    if new == generations - 1 and counts[new] + running >= population:
        return "wait"
    return "start"


def evaluate_until_done(
    study: optuna.Study,
    objective: Objective,
    config: SearchConfig,
    *,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """One worker's loop: evaluate trials until the configured generations are complete.
    Any number of these may run at once, in processes on one or several machines."""
    target = config.population * config.generations
    while keep_going():
        failed = _failed_individuals(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
        if failed >= max(target, 8):
            raise NoAnswerError(
                f"{failed} evaluations failed (see pareto.csv's fail_reason); "
                "the search stops: try a lower qat_lr or allow more bits"
            )
        step = next_step(study, config.population, config.generations)
        if step == "done":
            return
        if step == "wait":
            fail_stale(study)
            time.sleep(objective.poll_s)
            continue
        study.optimize(
            objective, n_trials=1, catch=(IndividualFailed,), callbacks=list(callbacks),
            gc_after_trial=False,
        )  # fmt: skip


def wait_for_running(study: optuna.Study, poll_s: float = POLL_S) -> None:
    """Wait for trials still running elsewhere (remote workers finishing an older
    generation), so that the result is computed from a settled study."""
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        fail_stale(study)
        time.sleep(poll_s)


def clone_retries(study: optuna.Study) -> int:
    """Children drawn again because they equalled a genome already in the study."""
    return sum(t.user_attrs.get(CLONE_RETRIES, 0) for t in study.get_trials(deepcopy=False))


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
        "clone_retries": clone_retries(study),
        "failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
    }
