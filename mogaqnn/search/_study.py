"""Optuna lives here: the storage, the NSGA-II sampler, the objective and the worker loop.

All search state is in the study storage: the generation of every trial, its genome, its
objectives and whether it was a cache hit, so a reloaded study continues where it stopped,
and several worker processes (on one machine or several) share one study.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import os
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock
from optuna.trial import FrozenTrial, TrialState

from ..config import SearchConfig
from ..errors import ConfigError, MogaqnnError, RunDirError
from ..genome import Genome, SearchSpace
from ..size import KIB_BITS
from ._evaluate import Evaluation
from ._rundir import atomic_write_text, flocked

__all__ = [
    "STUDY_NAME",
    "IndividualFailed",
    "open_storage",
    "make_sampler",
    "open_study",
    "load_run_study",
    "bind_run",
    "open_claims",
    "Objective",
    "rerun_interrupted",
    "evaluate_until_done",
    "wait_for_running",
    "trial_generation",
    "completed",
    "worker_id",
]

STUDY_NAME = "mogaqnn"  # the default study name (SearchConfig.study)
GENOME_KEY = "genome_key"
FAIL_REASON = "fail_reason"
WORKER = "worker"  # "host:pid" of the process that ran the trial
CONFIG_ATTR = "mogaqnn_config"  # study user attrs: what a remote worker rebuilds the run from
BASE_ATTR = "base_sha256"
HEARTBEAT_S, GRACE_S = 20, 60  # RDB: a worker silent this long is dead, its trial runs again
POLL_S = 0.5
OBJECTIVE_NAMES = ("val error", "size bits")  # what Objective returns, in this order
GENERATION = "generation"  # user attr: the NSGA-II generation, readable in optuna-dashboard


class IndividualFailed(Exception):
    """An evaluation diverged or raised; the trial is recorded as failed with the reason."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- storage ---------------------------------------------------------------------------------
class _FlockLock(BaseJournalFileLock):
    """The journal's write lock as an ``flock``: released by the kernel when its holder dies,
    so a process killed while writing never leaves a stale lock (Optuna's lock files wait out
    a grace period of 30 s instead)."""

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


def _requeue(study: optuna.Study, trial: FrozenTrial) -> None:
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
        return JournalStorage(JournalFileBackend(str(path), lock_obj=_FlockLock(path)))
    url = database_url(url)
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
                    **{callback: _requeue},
                )  # fmt: skip
        except ImportError as exc:
            raise ConfigError(
                f"cannot open storage {url!r}: its database driver is missing ({exc}); for "
                "PostgreSQL install the postgres extra: pip install 'mogaqnn[postgres]'"
            ) from exc
        except Exception as exc:  # bad URL, unreachable server
            if attempt == 2 or not _may_be_schema_race(exc):
                raise ConfigError(f"cannot open storage {url!r}: {exc}") from exc
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

    def constraints(trial: FrozenTrial) -> Sequence[float]:
        size = trial.user_attrs.get("size_bits")
        if config.max_size_kib is None or size is None:
            return (0.0,)
        return (size / KIB_BITS - config.max_size_kib,)

    return NSGAIISampler(
        population_size=config.population,
        crossover_prob=config.crossover_prob,
        swapping_prob=config.swapping_prob,
        mutation_prob=config.mutation_prob,
        seed=config.seed if seed is None else seed,
        constraints_func=constraints if config.max_size_kib is not None else None,
    )


class GenerationalRandomSampler(RandomSampler):
    """Random sampling whose trials are numbered in generations of ``population_size`` by
    NSGA-II's rule (BaseGASampler.get_trial_generation), stored under NSGA-II's key, so the
    stopping rule, the progress lines and the report's hypervolume count them alike."""

    def __init__(self, population_size: int, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.population_size = population_size

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        if trial_generation(trial) is not None:
            return
        counts = Counter(trial_generation(t) for t in completed(study))
        newest = max((g for g in counts if g is not None), default=0)
        gen = newest if counts[newest] < self.population_size else newest + 1
        study._storage.set_trial_system_attr(trial._trial_id,
                                             NSGAIISampler._get_generation_key(), gen)  # fmt: skip


def open_study(config: SearchConfig, storage_url: str, sampler: BaseSampler) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=config.study,
        storage=open_storage(storage_url),
        sampler=sampler,
        directions=["minimize", "minimize"],
        load_if_exists=True,
    )
    if study.metric_names is None:  # the names optuna-dashboard and trials_dataframe show
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(OBJECTIVE_NAMES))
    return study


def bind_run(study: optuna.Study, config: SearchConfig, base_sha256: str) -> None:
    """Store the run's config and base checkpoint hash in the study (what remote workers
    rebuild the run from); refuse a study that holds a different run."""
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
    study.set_user_attr(BASE_ATTR, base_sha256)


def load_run_study(
    storage_url: str, study_name: str, on_wait: Callable[[], None] | None = None
) -> tuple[SearchConfig, str]:
    """Wait until the coordinator has created the study and stored its run in it; return the
    run's config and the base checkpoint's sha256."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url)
    while True:
        try:
            study_id = storage.get_study_id_from_name(study_name)
            attrs = storage.get_study_user_attrs(study_id)
            if CONFIG_ATTR in attrs and BASE_ATTR in attrs:
                config = SearchConfig.from_mapping(attrs[CONFIG_ATTR], f"study {study_name!r}")
                return config, attrs[BASE_ATTR]
        except KeyError:  # the coordinator has not created it yet
            pass
        if on_wait is not None:
            on_wait()
            on_wait = None
        time.sleep(2.0)


# -- claims: one genome is trained by one trial only -----------------------------------------
class Claims(Protocol):
    def claim(self, key: str, number: int, is_dead: Callable[[int], bool]) -> int:
        """Atomically record trial ``number`` as the one that trains genome ``key``, unless
        a trial that ``is_dead`` does not reject holds it; return the holder afterwards."""


class FileClaims:
    """Claims as files under one ``flock`` (journal storage: every worker on this machine)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def claim(self, key: str, number: int, is_dead: Callable[[int], bool]) -> int:
        with flocked(self.folder / ".lock"):
            path = self.folder / key
            if path.exists():
                owner = int(path.read_text(encoding="utf-8"))
                if owner == number or not is_dead(owner):
                    return owner
            atomic_write_text(path, str(number))
            return number


class TableClaims:
    """Claims as rows with a unique key in the study's database (RDB storage: workers on
    several machines); an insert that collides tells the worker who got there first."""

    TABLE = "mogaqnn_genome_claims"

    def __init__(self, url: str, study_name: str) -> None:
        import sqlalchemy as sa

        self._sa, self.study = sa, study_name
        self.engine = sa.create_engine(database_url(url), pool_pre_ping=True)
        meta = sa.MetaData()
        self.table = sa.Table(
            self.TABLE, meta,
            sa.Column("study", sa.String(512), primary_key=True),
            sa.Column("genome_key", sa.String(64), primary_key=True),
            sa.Column("trial_number", sa.Integer, nullable=False),
        )  # fmt: skip
        try:
            meta.create_all(self.engine)
        except sa.exc.DBAPIError:  # another worker created it at the same moment
            if not sa.inspect(self.engine).has_table(self.TABLE):
                raise

    def claim(self, key: str, number: int, is_dead: Callable[[int], bool]) -> int:
        sa, t = self._sa, self.table
        mine = (t.c.study == self.study) & (t.c.genome_key == key)
        while True:
            try:
                with self.engine.begin() as c:
                    c.execute(t.insert().values(study=self.study, genome_key=key,
                                                trial_number=number))  # fmt: skip
                return number
            except sa.exc.IntegrityError:
                pass
            with self.engine.connect() as c:
                owner = c.execute(sa.select(t.c.trial_number).where(mine)).scalar()
            if owner is None:
                continue
            if owner == number or not is_dead(owner):
                return owner
            with self.engine.begin() as c:  # compare-and-set: take over from the dead trial
                r = c.execute(t.update().where(mine & (t.c.trial_number == owner))
                              .values(trial_number=number))  # fmt: skip
            if r.rowcount == 1:
                return number


def open_claims(storage_url: str, study_name: str, folder: Path) -> Claims:
    if storage_url.startswith("journal:"):
        return FileClaims(folder)
    return TableClaims(storage_url, study_name)


# -- the objective ---------------------------------------------------------------------------
def trial_generation(trial: FrozenTrial) -> int | None:
    return trial.system_attrs.get(NSGAIISampler._get_generation_key())


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _trial_by_number(study: optuna.Study, number: int) -> FrozenTrial | None:
    try:
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    except KeyError:
        return None
    return study._storage.get_trial(trial_id)


def _finished_result(t: FrozenTrial | None) -> bool:
    """Completed, or failed by the evaluation itself (an interruption leaves no reason)."""
    return t is not None and (
        t.state == TrialState.COMPLETE
        or (t.state == TrialState.FAIL and FAIL_REASON in t.user_attrs)
    )


def _interrupted(study: optuna.Study, number: int) -> bool:
    t = _trial_by_number(study, number)
    return t is None or (t.state == TrialState.FAIL and FAIL_REASON not in t.user_attrs)


def _fail_stale(study: optuna.Study) -> None:
    """RDB: fail the trials of workers whose heartbeat stopped (their genomes are queued
    again by _requeue). A no-op on the journal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)


@dataclass
class Objective:
    """Suggest a genome, answer from the trial that trains or trained the same genome if
    there is one, else claim it and evaluate it. Objectives: (val error, size in bits)."""

    space: SearchSpace
    evaluate: Callable[[Genome], Evaluation]
    claims: Claims
    worker: str = field(default_factory=worker_id)
    poll_s: float = POLL_S

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        params = {
            name: trial.suggest_categorical(name, choices)
            for name, choices in self.space.parameters().items()
        }
        genome = self.space.decode(params)
        key = genome.key()
        _ensure_generation(trial)
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
            for k in ("val_accuracy", "size_bits", "size_kib"):
                trial.set_user_attr(k, earlier.user_attrs[k])
            return tuple(earlier.values)  # type: ignore[return-value]
        try:
            result = self.evaluate(genome)
        except Exception as exc:  # a failed individual must not stop the search
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(FAIL_REASON, reason)
            raise IndividualFailed(reason) from exc
        trial.set_user_attr("val_accuracy", result.val_accuracy)
        trial.set_user_attr("size_bits", result.size_bits)
        trial.set_user_attr("size_kib", result.size_bits / KIB_BITS)
        trial.set_user_attr("seconds", result.seconds)
        trial.set_user_attr("train_seconds", result.train_seconds + result.val_seconds)
        trial.set_user_attr("cache_hit", False)
        return 1.0 - result.val_accuracy, float(result.size_bits)

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
            holder = _trial_by_number(study, owner)
            if _finished_result(holder):
                return holder
            _fail_stale(study)  # the holder's worker may be dead: RDB fails it in time
            time.sleep(self.poll_s)


def _ensure_generation(trial: optuna.Trial) -> None:
    """A queued trial (an interrupted genome run again) gets all its parameters fixed, and
    NSGA-II then never assigns it a generation; assign it by NSGA-II's own rule."""
    sampler, study = trial.study.sampler, trial.study
    if isinstance(sampler, NSGAIISampler):
        frozen = study._storage.get_trial(trial._trial_id)
        trial.set_user_attr(GENERATION, sampler.get_trial_generation(study, frozen))


def _earlier_result(study: optuna.Study, key: str, number: int) -> FrozenTrial | None:
    """A finished trial with the same genome that was not itself a copy."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if t.number == number or t.user_attrs.get(GENOME_KEY) != key:
            continue
        if _finished_result(t) and not t.user_attrs.get("cache_hit"):
            return t
    return None


# -- the worker loop ---------------------------------------------------------------------------
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
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # it finished meanwhile
        _requeue(study, t)
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
            raise MogaqnnError(
                f"{failed} evaluations failed (see pareto.csv's fail_reason); "
                "the search stops: try a lower qat_lr or allow more bits"
            )
        step = next_step(study, config.population, config.generations)
        if step == "done":
            return
        if step == "wait":
            _fail_stale(study)
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
        _fail_stale(study)
        time.sleep(poll_s)


def pareto_front(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Non-dominated trials on (val error, size), both minimised."""
    front = []
    for t in trials:
        e, s = t.values
        if not any(
            (o.values[0] <= e and o.values[1] <= s) and (o.values[0] < e or o.values[1] < s)
            for o in trials
        ):
            front.append(t)
    return front


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
        "failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
    }
