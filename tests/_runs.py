"""Helpers of the resume / worker tests: run the real command, read back the study, stop a
training after a checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from mogaqnn.search._store import open_storage
from mogaqnn.search._trials import FAIL_REASON, GENOME_KEY, trial_generation

ROOT = Path(__file__).resolve().parents[1]
# Tiny budgets; 16 possible genomes (4 expansion groups x 2 ratios), so that identical
# genomes are proposed often, by two workers at once too. No uniform QAT models: the tests
# that use these flags are not about them (tests/test_final.py is).
SMALL_SPACE = [
    "--seed", "0", "--pretrain-epochs", "0.2", "--search-epochs", "0.5", "--final-epochs", "0.1",
    "--search-train-samples", "300", "--search-val-samples", "200",
    "--weight-bits", "4", "--act-bits", "8", "--expansion-ratios", "1.0,1.5", "--no-progress",
    "--uniform-qat-bits", "",
]  # fmt: skip


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run_cli(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The command in a subprocess; ``env`` adds to (or overrides) cli_env()."""
    return subprocess.run(
        [sys.executable, "-m", "mogaqnn", *args], capture_output=True, text=True,
        env={**cli_env(), **(env or {})}, timeout=timeout,
    )  # fmt: skip


def start_cli(*args: str, log: Path) -> subprocess.Popen:
    """Start the command in the background, its output in ``log`` (no pipe to fill up)."""
    with open(log, "w") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "mogaqnn", *args], stdout=f, stderr=subprocess.STDOUT,
            env=cli_env(),
        )  # fmt: skip


def read_trials(storage_url: str, study: str = "mogaqnn") -> list[FrozenTrial]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=study, storage=open_storage(storage_url)).get_trials()


def trainings(out: Path) -> Counter:
    """Trainings started, per genome key, from the run's evaluations.log."""
    lines = (out / "evaluations.log").read_text().splitlines()
    return Counter(json.loads(line)["genome"] for line in lines)


def check_nothing_lost_or_trained_twice(trials: list[FrozenTrial], started: Counter) -> None:
    """Every trial finished; each genome completed by one training at most; a genome trained
    more than once only after interrupted trials of it, which never completed."""
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    trained: Counter = Counter()
    interrupted: Counter = Counter()
    for t in trials:
        key = t.user_attrs.get(GENOME_KEY)
        if t.state == TrialState.FAIL and FAIL_REASON not in t.user_attrs:
            interrupted[key] += 1
        elif t.state.is_finished() and not t.user_attrs.get("cache_hit"):
            trained[key] += 1
    assert max(trained.values()) == 1, trained  # never trained twice to the end
    for key, n in started.items():
        assert n <= trained[key] + interrupted[key], (key, n, trained[key], interrupted[key])
    assert set(trained) <= set(started)  # each training that finished was logged


def generation_sizes(trials: list[FrozenTrial]) -> Counter:
    return Counter(trial_generation(t) for t in trials if t.state == TrialState.COMPLETE)


class Stopped(Exception):
    """Stands for a kill right after a training wrote its checkpoint."""


class StopAfterSaves:
    """A training's progress file (run.TrainingProgress) that stops the training right after
    its ``saves``-th checkpoint."""

    def __init__(self, progress, saves: int) -> None:
        self.progress, self.saves = progress, saves

    def load(self, total_steps: int):
        return self.progress.load(total_steps)

    def save(self, state) -> None:
        self.progress.save(state)
        self.saves -= 1
        if self.saves == 0:
            raise Stopped


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
