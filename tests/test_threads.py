"""Torch threads: the ``threads`` key, its default, and that every process applies it."""

import json
import os

import pytest

from mogaqnn.config import SearchConfig
from mogaqnn.errors import ConfigError
from mogaqnn.search._threads import available_cores, describe_threads, process_threads
from mogaqnn.search._workers import worker_specs
from tests._runs import SMALL_SPACE, run_cli


def test_default_is_the_cores_given_to_the_process(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert available_cores() == cores
    one = SearchConfig(workers=1)
    assert process_threads(one, worker=False) == process_threads(one, worker=True) == cores
    assert describe_threads(one) == f"threads: {cores}"
    two = SearchConfig(workers=2)
    assert process_threads(two, worker=False) == cores  # pretraining and final training
    assert process_threads(two, worker=True) == 1
    assert describe_threads(two) == f"threads: {cores} (1 per worker)"
    assert [s.threads for s in worker_specs(two, "journal:x", seeds=[0, 1])] == [1, 1]


def test_omp_num_threads_and_the_key_override_the_default(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert process_threads(SearchConfig(), worker=False) == 3
    given = SearchConfig(workers=2, threads=5)
    assert process_threads(given, worker=False) == process_threads(given, worker=True) == 5
    assert [s.threads for s in worker_specs(given, "journal:x", seeds=[0, 1])] == [5, 5]


def test_threads_values():
    assert SearchConfig.from_mapping({"threads": "0"}).threads is None  # 0: the default
    assert SearchConfig.from_mapping({"threads": 4}).threads == 4
    with pytest.raises(ConfigError, match="threads is -1"):
        SearchConfig.from_mapping({"threads": -1})
    # how a run is run, not what it computes: a resume may change it
    assert "threads" not in SearchConfig(threads=2).identity()


@pytest.mark.parametrize("workers", [1, 2])
def test_every_process_trains_with_the_given_threads(tmp_path, workers):
    out = tmp_path / "run"
    args = [a for a in SMALL_SPACE if a != "--no-progress"]
    # The smallest budget that trains: it is what each process applies that is checked here.
    # Two threads on a busy two-core machine wait on each other at every operation; waiting
    # passively (not spinning) halves the time it takes beside the suite's other processes.
    proc = run_cli(
        "search", "--out", str(out), *args, "--population", "4", "--generations", "1",
        "--pretrain-epochs", "0.02", "--search-epochs", "0.1", "--final-epochs", "0",
        "--search-train-samples", "64", "--search-val-samples", "64",
        "--threads", "2", "--workers", str(workers), env={"OMP_WAIT_POLICY": "PASSIVE"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first == ("threads: 2" if workers == 1 else "threads: 2 (2 per worker)")
    lines = [json.loads(x) for x in (out / "evaluations.log").read_text().splitlines()]
    # the subprocess runs under OMP_NUM_THREADS=1: 2 threads come from the key alone
    assert lines and all(x["threads"] == 2 for x in lines)
