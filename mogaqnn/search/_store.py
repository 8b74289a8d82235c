"""The study's storage: a journal file in the run directory, or any Optuna RDB URL; the
study opened in it, and the run bound to it (what remote workers rebuild the run from).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

from ..config import SearchConfig
from ..errors import ConfigError, RunDirError
from ..run import RunDir, flocked
from ._trials import GENOME_KEY

# what each objective is called in optuna-dashboard and trials_dataframe
OBJECTIVE_NAMES = {"error": "val error", "size": "size bits", "bops": "BOPs"}

__all__ = [
    "STUDY_NAME",
    "read_study",
    "bind_run",
    "database_url",
    "fail_stale",
    "load_run_study",
    "open_storage",
    "open_study",
    "truncate_journal",
]


STUDY_NAME = "mogaqnn"  # the default study name (SearchConfig.study)
CONFIG_ATTR = "mogaqnn_config"  # study user attrs: what a remote worker rebuilds the run from
CHECKPOINTS_ATTR = "checkpoint_sha256"  # file name in the run directory -> its sha256
HEARTBEAT_S, GRACE_S = 20, 60  # RDB: a worker silent this long is dead, its trial runs again


class _FlockLock:
    """The journal's write lock as an ``flock``: released by the kernel when its holder dies,
    so a process killed while writing never leaves a stale lock (Optuna's lock files wait out
    a grace period of 30 s instead). JournalFileBackend's ``lock_obj`` documents the two
    methods it calls, ``acquire`` and ``release``; their base class is not exported."""

    def __init__(self, journal: Path) -> None:
        self.path = journal.with_name(journal.name + ".flock")
        self._held: Any = None

    def acquire(self) -> bool:
        self._held = flocked(self.path)
        self._held.__enter__()
        return True

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(None, None, None)


def _repair_journal(path: Path) -> None:
    """A kill during a write can leave a partial last line; appending after it would
    corrupt the next record too, so cut it (the record was never committed). Done under the
    write lock: a live writer's line in progress is not partial, only unfinished."""
    if not path.exists() or path.stat().st_size == 0:
        return
    lock = _FlockLock(path)
    lock.acquire()
    try:
        with open(path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = f.seek(0) or f.read()
            f.truncate(data.rfind(b"\n") + 1)
    finally:
        lock.release()


def _damaged_line(path: Path) -> tuple[int, int] | None:
    """(line number, byte offset) of the first record of the journal that is not JSON."""
    offset = 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                json.loads(line)
            except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
                return number, offset
            offset += len(line)
    return None


def _check_journal(path: Path) -> None:
    """A damaged record in the middle (a disk error, an edit by hand) stops Optuna with a
    JSONDecodeError; name the file and line instead, and how to keep what precedes it."""
    if not path.exists():
        return
    damaged = _damaged_line(path)
    if damaged is not None:
        line = damaged[0]
        raise RunDirError(
            f"the study journal {path} is damaged at line {line}; 'mogaqnn resume "
            f"{path.parent} --truncate-journal' keeps the {line - 1} records before it (the "
            "evaluations they hold) and runs the rest again"
        )


def truncate_journal(path: Path) -> tuple[int, int] | None:
    """Cut the journal before its first damaged line, keeping the whole file as
    ``PATH.damaged``; return (damaged line, records kept), or None when it is intact."""
    if not path.exists():
        raise RunDirError(f"{path} does not exist; there is no journal to repair")
    lock = _FlockLock(path)
    lock.acquire()
    try:
        damaged = _damaged_line(path)
        if damaged is None:
            return None
        line, offset = damaged
        shutil.copyfile(path, path.with_name(path.name + ".damaged"))
        with open(path, "rb+") as f:
            f.truncate(offset)
        return line, line - 1
    finally:
        lock.release()


def requeue(study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> None:
    """Queue an interrupted trial's genome again, so that evaluation is run again."""
    if GENOME_KEY in trial.user_attrs:
        study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number})


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """``journal:PATH`` (a journal file, the default), or any Optuna RDB URL.

    RDB storages get heartbeats: a trial whose worker stops beating for GRACE_S is failed by
    any other worker and its genome queued again. The journal has no heartbeat; its trials
    left RUNNING are rerun by the coordinator when it starts (see rerun_interrupted).
    """
    if url.startswith("journal:"):
        path = Path(url[len("journal:") :])
        _repair_journal(path)
        _check_journal(path)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=_FlockLock(path)))
    given, url = url, database_url(url)
    # Optuna 4.9 renamed the callback that heartbeats call for a dead worker's trial.
    callback = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in inspect.signature(RDBStorage).parameters
        else "failed_trial_callback"
    )
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    **{callback: requeue},
                )  # fmt: skip
        except ImportError as exc:
            raise ConfigError(
                f"cannot open storage {given!r}: its database driver is missing ({exc}); for "
                "PostgreSQL install the postgres extra: pip install 'mogaqnn[postgres]'"
            ) from exc
        except Exception as exc:  # bad URL, unreachable server
            if attempt == 2 or not _may_be_schema_race(exc):
                # the driver's own message, first line: SQLAlchemy appends a background link
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                raise ConfigError(f"cannot open storage {given!r}: {reason}") from exc
            time.sleep(1.0)  # a worker started at the same moment is creating the tables
    raise AssertionError("unreachable")


def database_url(url: str) -> str:
    """SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3; where only psycopg2 (the
    ``postgres`` extra) is installed, name it, so the plain URL works as documented."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres") or not sep:
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    return url


def _may_be_schema_race(exc: Exception) -> bool:
    import sqlalchemy as sa

    return isinstance(exc, (sa.exc.IntegrityError, sa.exc.ProgrammingError))


def open_study(config: SearchConfig, storage_url: str, sampler: BaseSampler) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial errors: in pareto.csv
    study = optuna.create_study(
        study_name=config.study,
        storage=open_storage(storage_url),
        sampler=sampler,
        directions=["minimize"] * len(config.objectives),
        load_if_exists=True,
    )
    if study.metric_names is None:  # the names optuna-dashboard and trials_dataframe show
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_NAMES[o] for o in config.objectives])
    return study


def bind_run(study: optuna.Study, config: SearchConfig, checkpoints: dict[str, str]) -> None:
    """Store the run's config and the sha256 of the checkpoints every evaluation reads (the
    FP32 base, the supernet) in the study, what remote workers rebuild the run from and
    check their copies against; refuse a study that holds a different run."""
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is not None:
        other = SearchConfig.from_mapping(stored, source=f"study {config.study!r}")
        if other.identity() != config.identity():
            diff = [k for k, v in config.identity().items() if other.identity().get(k) != v]
            raise RunDirError(
                f"study {config.study!r} in this storage holds a different run (it differs in "
                f"{', '.join(diff)}); choose another --study"
            )
    study.set_user_attr(CONFIG_ATTR, config.to_dict())
    study.set_user_attr(CHECKPOINTS_ATTR, checkpoints)


def load_run_study(
    storage_url: str, study_name: str, on_wait: Callable[[], None] | None = None
) -> tuple[SearchConfig, dict[str, str]]:
    """Wait until the coordinator has created the study and stored its run in it; return the
    run's config and its checkpoints' sha256 by file name."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial errors: in pareto.csv
    storage = open_storage(storage_url)
    while True:
        try:
            study_id = storage.get_study_id_from_name(study_name)
            attrs = storage.get_study_user_attrs(study_id)
            if CONFIG_ATTR in attrs and CHECKPOINTS_ATTR in attrs:
                config = SearchConfig.from_mapping(attrs[CONFIG_ATTR], f"study {study_name!r}")
                return config, dict(attrs[CHECKPOINTS_ATTR])
        except KeyError:  # the coordinator has not created it yet
            pass
        if on_wait is not None:
            on_wait()
            on_wait = None
        time.sleep(2.0)


def fail_stale(study: optuna.Study) -> None:
    """RDB: fail the trials of workers whose heartbeat stopped (their genomes are queued
    again by requeue). A no-op on the journal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)


def read_study(run_dir: str | Path) -> optuna.Study:
    """The study of a finished or running search, from its run directory's config (its
    journal, or the database it names), for reading its trials."""
    rd = RunDir(run_dir)
    config = rd.load()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=config.study, storage=open_storage(rd.storage_url(config)))
