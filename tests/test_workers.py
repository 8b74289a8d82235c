"""Two worker processes on one journal storage: nothing lost, no genome trained twice."""

import json
import threading

import pytest

from mogaqnn.config import SearchConfig
from mogaqnn.errors import ConfigError
from mogaqnn.search._claims import FileClaims, TableClaims
from tests._runs import (
    SMALL_SPACE,
    check_nothing_lost_or_trained_twice,
    generation_sizes,
    read_trials,
    run_cli,
    trainings,
)

POPULATION, GENERATIONS = 4, 3


def test_two_workers_share_one_journal_study(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "search", "--out", str(out), *SMALL_SPACE, "--population", str(POPULATION),
        "--generations", str(GENERATIONS), "--workers", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    trials = read_trials(f"journal:{out / 'study.journal'}")
    started = trainings(out)
    check_nothing_lost_or_trained_twice(trials, started)
    assert max(started.values()) == 1  # no kill here: every genome trained exactly once
    s = result["search"]
    assert s["trained"] == sum(started.values()) and s["failed"] == 0
    # Every generation is full; parallel workers may add a trial or two to a generation
    # that was filling up when they started theirs, never to the last one beyond need.
    sizes = generation_sizes(trials)
    assert sorted(sizes) == list(range(GENERATIONS))
    assert all(n >= POPULATION for n in sizes.values())
    assert s["evaluations"] == sum(sizes.values())
    assert set(result["search"]["last_population"]) <= {t.number for t in trials}


def _race(claims, key: str, numbers: range, is_dead=lambda n: False) -> list[int]:
    owners: list[int] = []
    barrier = threading.Barrier(len(numbers))

    def claim(n: int) -> None:
        barrier.wait()
        owners.append(claims.claim(key, n, is_dead))

    threads = [threading.Thread(target=claim, args=(n,)) for n in numbers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return owners


@pytest.mark.parametrize("kind", ["file", "table"])
def test_one_claim_wins_a_race_and_a_dead_holder_is_replaced(kind, tmp_path):
    if kind == "file":
        claims = FileClaims(tmp_path / "claims")
    else:
        claims = TableClaims(f"sqlite:///{tmp_path / 'c.db'}", "s")
    owners = _race(claims, "k", range(8))
    assert len(set(owners)) == 1 and owners[0] in range(8)
    assert claims.claim("k", 99, lambda n: False) == owners[0]  # a live holder keeps it
    # The holder was interrupted: one of the next claimants takes over, and only one.
    takeover = _race(claims, "k", range(10, 16), is_dead=lambda n: n == owners[0])
    assert len(set(takeover)) == 1 and takeover[0] in range(10, 16)
    assert claims.claim("other", 5, lambda n: False) == 5


def test_more_devices_than_workers_is_refused():
    with pytest.raises(ConfigError, match="devices lists 2 devices but workers is 1"):
        SearchConfig(devices=("cuda:0", "cuda:1"))
    assert SearchConfig(workers=2, devices=("cuda:0", "cuda:1")).identity() == (
        SearchConfig().identity()
    )


def test_worker_refuses_a_journal_storage(capsys):
    from mogaqnn.cli import main

    assert main(["worker", "--storage", "journal:/x", "--out", "/x"]) == 2
    assert "mogaqnn worker needs a database storage" in capsys.readouterr().err
