"""``mogaqnn dashboard``: the run's study read back over optuna-dashboard's HTTP API."""

import csv
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from mogaqnn.cli import main
from tests._runs import cli_env


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, deadline: float, proc: subprocess.Popen) -> dict:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            assert proc.poll() is None, proc.communicate()[1]
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_dashboard_serves_the_run_study_on_loopback(tiny_run_dir):
    port = _free_loopback_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mogaqnn", "dashboard", str(tiny_run_dir), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        studies = _get_json(f"{base}/api/studies", time.monotonic() + 60, proc)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["mogaqnn"]
        detail = _get_json(f"{base}/api/studies/{studies[0]['study_id']}", time.monotonic(), proc)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/dashboard" in err
    assert detail["directions"] == ["minimize", "minimize"]
    assert detail["objective_names"] == ["val error", "size bits"]
    with open(tiny_run_dir / "pareto.csv", newline="") as f:
        rows = {int(r["trial"]): r for r in csv.DictReader(f)}
    trials = {t["number"]: t for t in detail["trials"]}
    assert trials.keys() == rows.keys()
    for number, trial in trials.items():
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        row = rows[number]
        genome = {p["name"]: p["param_external_value"] for p in trial["params"]}
        assert genome and genome == {k: row[k] for k in genome}  # the genes of pareto.csv
        assert int(attrs["generation"]) == int(row["generation"])
        assert attrs["cache_hit"] in ("True", "False")
        assert (attrs["cache_hit"] == "True") == (row["cache_hit"] == "1")
        assert attrs["genome_key"]


def test_dashboard_without_optuna_dashboard_says_how_to_install(tiny_run_dir, monkeypatch,
                                                                capsys):  # fmt: skip
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails as if missing
    assert main(["dashboard", str(tiny_run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        "mogaqnn: error: mogaqnn dashboard needs optuna-dashboard, which is not installed; "
        "install it with: pip install 'mogaqnn[dashboard]'"
    ]


def test_dashboard_of_a_missing_run_or_a_taken_port(tmp_path, tiny_run_dir, capsys):
    assert main(["dashboard", str(tmp_path / "nothing")]) == 2
    assert "holds no mogaqnn run" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", str(tiny_run_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve the dashboard on 127.0.0.1:{port}" in err


@pytest.mark.parametrize("port", ["http", "-"])
def test_dashboard_port_must_be_a_number(port, tiny_run_dir, capsys):
    assert main(["dashboard", str(tiny_run_dir), "--port", port]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
