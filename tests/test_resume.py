"""A search killed with SIGKILL mid-generation resumes with nothing lost or trained twice."""

import json
import os
import signal
import time

import pytest

from mogaqnn.cli import main
from mogaqnn.search._store import _repair_journal
from tests._runs import (
    SMALL_SPACE,
    check_nothing_lost_or_trained_twice,
    generation_sizes,
    read_trials,
    run_cli,
    start_cli,
    trainings,
)

POPULATION, GENERATIONS = 4, 3
# A larger space than SMALL_SPACE's: fewer cache hits, so the kill lands in a training.
FLAGS = [
    *SMALL_SPACE, "--population", str(POPULATION), "--generations", str(GENERATIONS),
    "--weight-bits", "2,4,8", "--search-train-samples", "600",
]  # fmt: skip


def _wait_for_trainings(out, n: int, proc, timeout: float = 300) -> None:
    log = out / "evaluations.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, "the search ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError(f"no {n} trainings started in {timeout} s")


def test_sigkill_mid_generation_then_resume(tmp_path):
    out = tmp_path / "run"
    proc = start_cli("search", "--out", str(out), *FLAGS, log=tmp_path / "first.log")
    try:
        _wait_for_trainings(out, POPULATION + 2, proc)  # generation 2 is under way
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "result.json").exists()
    # What a kill during a write can leave: a partial journal record, an unfinished
    # atomic write. Both are repaired or ignored on resume.
    with open(out / "study.journal", "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 1, "sta')
    (out / ".result.json.abcd.tmp").write_text("{")
    before = trainings(out)

    proc = run_cli("resume", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "MOGAQNN (chosen, trial" in proc.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["search"]["evaluations"] == POPULATION * GENERATIONS
    # the evaluations of both processes count, not only the resumed one's
    assert result["timing"]["resumed"] is True
    assert result["timing"]["evaluations_s"] > 0
    trials = read_trials(f"journal:{out / 'study.journal'}")
    sizes = generation_sizes(trials)
    assert sizes == {g: POPULATION for g in range(GENERATIONS)}
    started = trainings(out)
    assert sum(started.values()) > sum(before.values())  # the resume did train
    check_nothing_lost_or_trained_twice(trials, started)
    assert not list(out.glob(".*.tmp"))

    again = run_cli("resume", str(out), "--workers", "2")  # finished: reported, not rerun
    assert again.returncode == 0, again.stderr
    assert trainings(out) == started


def test_repair_journal_cuts_only_a_partial_last_line(tmp_path):
    path = tmp_path / "j"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c"')
    _repair_journal(path)
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    _repair_journal(path)
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'


def test_resume_of_a_directory_without_a_run(tmp_path, capsys):
    assert main(["resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no mogaqnn run (no config.json)" in err and len(err.splitlines()) == 1


def test_a_running_run_directory_is_not_run_twice(tmp_path):
    from mogaqnn.errors import RunDirError
    from mogaqnn.run import RunDir

    run = RunDir(tmp_path)
    with run.exclusive():
        busy = f"being run by another mogaqnn process \\(pid {os.getpid()}\\)"
        with pytest.raises(RunDirError, match=busy):
            with RunDir(tmp_path).exclusive():
                pass
    with RunDir(tmp_path).exclusive():  # released
        pass


def test_a_damaged_journal_line_is_named_and_can_be_cut(tiny_run_dir, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(tiny_run_dir, out)
    (out / "result.json").unlink()  # unfinished: resume opens the study
    journal = out / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    bad = len(lines) * 2 // 3  # a record in the middle, not a torn last line
    lines[bad] = b'{"op_code": 5, "worker_id": \x00garbage\n'
    journal.write_bytes(b"".join(lines))

    proc = run_cli("resume", str(out), "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"mogaqnn: error: the study journal {journal} is damaged at line {bad + 1}; "
        f"'mogaqnn resume {out} --truncate-journal' keeps the {bad} records before it (the "
        "evaluations they hold) and runs the rest again"
    ]

    proc = run_cli("resume", str(out), "--no-progress", "--truncate-journal")
    assert proc.returncode == 0, proc.stderr
    assert f"cut the study journal at its damaged line {bad + 1}, keeping {bad} records" in (
        proc.stderr
    )
    assert (out / "study.journal.damaged").read_bytes() == b"".join(lines)
    assert journal.read_bytes().startswith(b"".join(lines[:bad]))
    assert json.loads((out / "result.json").read_text())["search"]["evaluations"] >= 8


def test_sigkill_during_the_final_trainings_then_resume_ends_as_an_unstopped_run(tmp_path):
    flags = [*SMALL_SPACE, "--population", "4", "--generations", "1", "--final-epochs", "2",
             "--fitness", "widen", "--final-init", "widen"]  # fmt: skip
    flags.remove("--no-progress")  # the messages say which training continues from where
    whole = run_cli("search", "--out", str(tmp_path / "whole"), *flags)
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "stopped"
    proc = start_cli("search", "--out", str(out), *flags, log=tmp_path / "first.log")
    # the distilled baseline's first epoch of two: the plain one has ended
    distilled = out / "final" / "fp32_distilled.pt.partial"
    try:
        deadline = time.monotonic() + 300
        while not distilled.exists():
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "result.json").exists()

    again = run_cli("resume", str(out))
    assert again.returncode == 0, again.stderr
    assert f"continuing from {out / 'final' / 'fp32.pt.partial'}" not in again.stderr  # kept
    assert f"continuing from {distilled}: step" in again.stderr
    assert not list(out.rglob("*.partial"))  # a finished run keeps no progress files
    first, second = (json.loads((d / "result.json").read_text()) for d in (tmp_path / "whole", out))
    for arm in ("fp32", "fp32_distilled", "chosen"):
        assert second[arm]["test_accuracy"] == first[arm]["test_accuracy"], arm
        assert second[arm]["val_accuracy"] == first[arm]["val_accuracy"], arm
