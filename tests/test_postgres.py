"""A PostgreSQL-backed study: a coordinator and a `mogaqnn worker` evaluate together.

The server comes from Debian's postgresql package (make system-deps): a throwaway cluster
in a temporary directory on a free port of 127.0.0.1, stopped after the tests.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from mogaqnn.search._claims import TableClaims
from mogaqnn.search._store import database_url
from tests._runs import (
    SMALL_SPACE,
    check_nothing_lost_or_trained_twice,
    generation_sizes,
    read_trials,
    start_cli,
    trainings,
)

POPULATION, GENERATIONS = 4, 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    initdbs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert initdbs, "no PostgreSQL server here: run 'make system-deps' (apt: postgresql)"
    bindir = initdbs[-1].parent
    tmp = Path(tempfile.mkdtemp(prefix="mogaqnn-pg-"))
    # The server refuses to run as root: run it as the postgres user when we are root.
    as_server = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_server:
        shutil.chown(tmp, "postgres", "postgres")
    data, port = tmp / "data", _free_port()

    def server(*cmd: str) -> None:
        subprocess.run([*as_server, *cmd], check=True, capture_output=True, timeout=120)

    server(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
           "--no-sync", "-E", "UTF8")  # fmt: skip
    options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    server(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(tmp / "log"),
           "-w", "start")  # fmt: skip
    try:
        server(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
               "mogaqnn")  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/mogaqnn"
    finally:
        server(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


def test_coordinator_and_worker_on_postgresql(postgres_url, tmp_path):
    out = tmp_path / "run"  # shared by both, as a shared filesystem would be
    storage = ["--storage", postgres_url, "--study", "pg-two-workers"]
    coordinator = start_cli(
        "search", "--out", str(out), *storage, *SMALL_SPACE, "--population", str(POPULATION),
        "--generations", str(GENERATIONS), log=tmp_path / "coordinator.log",
    )  # fmt: skip
    worker = start_cli("worker", *storage, "--out", str(out), log=tmp_path / "worker.log")
    try:
        assert coordinator.wait(timeout=600) == 0, (tmp_path / "coordinator.log").read_text()
        assert worker.wait(timeout=120) == 0, (tmp_path / "worker.log").read_text()
    finally:
        for p in (coordinator, worker):
            if p.poll() is None:
                p.kill()
    assert "is complete" in (tmp_path / "worker.log").read_text()
    result = json.loads((out / "result.json").read_text())
    trials = read_trials(postgres_url, "pg-two-workers")
    started = trainings(out)
    check_nothing_lost_or_trained_twice(trials, started)
    assert max(started.values()) == 1
    sizes = generation_sizes(trials)
    assert sorted(sizes) == list(range(GENERATIONS))
    assert all(n >= POPULATION for n in sizes.values())
    assert result["search"]["evaluations"] == sum(sizes.values())
    # One claim row per trained genome, held by the trial that trained it.
    with sa.create_engine(database_url(postgres_url)).connect() as c:
        rows = c.execute(sa.text(f"SELECT genome_key, trial_number FROM {TableClaims.TABLE} "
                                 "WHERE study = 'pg-two-workers'")).all()  # fmt: skip
    assert {k for k, _ in rows} == set(started)
    by_number = {t.number: t for t in trials}
    assert all(not by_number[n].user_attrs["cache_hit"] for _, n in rows)
