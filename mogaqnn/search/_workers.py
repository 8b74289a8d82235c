"""Worker processes: N on this machine (``--workers N``) or on other machines against one
database (``mogaqnn worker``). Each worker rebuilds the evaluator from the run's config and
the FP32 base checkpoint, then runs the shared loop of ``_loop.evaluate_until_done``.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import torch

from ..config import SearchConfig
from ..errors import ConfigError, MogaqnnError, RunDirError
from ..fitness import bops_counter, make_evaluator
from ..run import RunDir, load_run, load_run_data, resolve_device
from ..size import fp32_size_bits
from ._claims import open_claims
from ._loop import evaluate_until_done
from ._objective import Objective
from ._sampler import make_sampler
from ._select import size_limit_kib
from ._store import load_run_study, open_study
from ._threads import process_threads

__all__ = [
    "WorkerSpec",
    "checkpoint_hashes",
    "evaluate_as_worker",
    "run_worker",
    "run_workers",
    "sha256_file",
    "worker_specs",
]


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process needs; sent to it pickled (multiprocessing spawn)."""

    config: SearchConfig  # the run's config; out is the run directory on this machine
    storage_url: str
    index: int
    device: str
    threads: int
    seed: int | None  # the worker's NSGA-II seed; None: from the OS (remote workers)
    parent_pid: int
    model: Any = None  # a Python model / data object of an API run (None: from the config)
    data: Any = None


def checkpoint_hashes(root: Path, names: Sequence[str]) -> dict[str, str]:
    """sha256 of each of ``names`` that exists in ``root``."""
    return {n: sha256_file(root / n) for n in names if (root / n).exists()}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def worker_specs(
    config: SearchConfig,
    storage_url: str,
    *,
    seeds: Sequence[int | None],
    model: Any = None,
    data: Any = None,
) -> list[WorkerSpec]:
    """One spec per worker: devices round-robin over ``config.devices`` (default: the one
    ``config.device``), each with the config's threads (default: 1 per worker)."""
    n = config.workers
    devices = [config.devices[i % len(config.devices)] if config.devices else config.device
               for i in range(n)]  # fmt: skip
    threads = process_threads(config, worker=True)
    return [
        WorkerSpec(
            config=config,
            storage_url=storage_url,
            index=i,
            device=devices[i],
            threads=threads,
            seed=seeds[i],
            parent_pid=os.getpid(),
            model=model,
            data=data,
        )  # fmt: skip
        for i in range(n)
    ]


def evaluate_as_worker(spec: WorkerSpec, keep_going: Callable[[], bool] = lambda: True) -> None:
    """Rebuild the run from its FP32 base (as the search built it) and evaluate until the
    study is done."""

    torch.set_num_threads(spec.threads)
    config = spec.config.replace(device=spec.device, devices=(), progress=False)
    run_dir = RunDir(config.out)
    run = load_run(run_dir.root, model=spec.model, config=config)
    data = load_run_data(run, spec.data)
    device = resolve_device(config.device)
    evaluator = make_evaluator(
        config,
        run.base,
        run.graph,
        run.space,
        data,
        device,
        run_dir.evaluations_log,
        root=run_dir.root,
    )
    study = open_study(config, spec.storage_url, make_sampler(config, seed=spec.seed))
    claims = open_claims(spec.storage_url, config.study, run_dir.claims)
    limit = size_limit_kib(config.max_size_kib, config.min_compression,
                           fp32_size_bits(run.base, run.graph.bn_fold))  # fmt: skip
    objective = Objective(run.space, evaluator, claims, limit,
                          bops=bops_counter(evaluator), objectives=config.objectives)  # fmt: skip
    evaluate_until_done(study, objective, config, keep_going=keep_going)


def _die_with_parent(parent_pid: int) -> None:
    """A worker must not outlive its parent: after a kill -9 of the parent, orphans would
    keep writing to a study that a resumed run treats as theirs no longer."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # died before prctl took effect
        os._exit(1)


def _worker_main(spec: WorkerSpec, errors: Any) -> None:
    _die_with_parent(spec.parent_pid)
    try:
        evaluate_as_worker(spec, keep_going=lambda: os.getppid() == spec.parent_pid)
    except MogaqnnError as exc:  # its class too: a NoAnswerError is an outcome, not a fault
        errors.put(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def run_workers(
    specs: Sequence[WorkerSpec],
    *,
    on_tick: Callable[[], None] | None = None,
    resume_hint: str = "",
    tick_s: float = 1.0,
) -> None:
    """Run the workers in spawned processes until all are done; the first to fail stops
    the others and raises (its trials run again when the run resumes)."""
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    procs = [
        ctx.Process(target=_worker_main, args=(s, errors), name=f"mogaqnn-worker-{s.index}")
        for s in specs
    ]
    try:
        for p in procs:
            try:
                p.start()
            except (pickle.PicklingError, AttributeError, TypeError) as exc:
                raise MogaqnnError(
                    f"workers > 1 send the model and data to each worker process and these "
                    f"cannot be pickled ({exc}); use workers = 1 or a model from a module"
                ) from exc
        while True:
            wait([p.sentinel for p in procs if p.exitcode is None], timeout=tick_s)
            if on_tick is not None:
                on_tick()
            failed = [p for p in procs if p.exitcode not in (None, 0)]
            if failed:
                if not errors.empty():
                    raise errors.get()
                p = failed[0]
                raise MogaqnnError(
                    f"{p.name} stopped with exit code {p.exitcode} (its error is above); "
                    f"{resume_hint or 'run the same command again to continue'}"
                )
            if all(p.exitcode == 0 for p in procs):
                return
    finally:
        for p in procs:
            if p.exitcode is None and p.pid is not None:
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(timeout=30)


def run_worker(
    storage_url: str,
    study_name: str,
    out: str,
    *,
    workers: int = 1,
    device: str | None = None,
    devices: tuple[str, ...] = (),
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """``mogaqnn worker``: evaluate for a coordinator's study in a database."""
    if storage_url.startswith("journal:"):
        raise ConfigError(
            "mogaqnn worker needs a database storage such as postgresql://...; to run "
            "several workers on one machine use 'mogaqnn search --workers N'"
        )
    config, checkpoints = load_run_study(
        storage_url, study_name,
        on_wait=lambda: log(f"waiting for the coordinator to start study {study_name!r}"),
    )  # fmt: skip
    if config.model.startswith("python:") or config.dataset.startswith("python:"):
        raise RunDirError(
            f"study {study_name!r} searches a model or dataset given as a Python object; "
            "remote workers need a zoo model or a 'package.module:factory' and a named dataset"
        )
    changes: dict[str, Any] = {
        "out": out, "storage": storage_url, "study": study_name, "progress": False,
        "workers": workers, "devices": list(devices), "threads": threads,
    }  # fmt: skip
    if device is not None:
        changes["device"] = device
    config = SearchConfig.from_mapping({**config.to_dict(), **changes}, "the command line")
    for name, sha in checkpoints.items():  # a stale copy would silently change every fitness
        path = Path(out) / name
        if not path.exists() or sha256_file(path) != sha:
            state = "is missing" if not path.exists() else "differs from the coordinator's"
            raise RunDirError(
                f"{path} {state}; copy {name} from the coordinator's run directory into "
                f"{out} (sha256 {sha[:16]}...)"
            )
    specs = worker_specs(config, storage_url, seeds=[None] * workers)
    log(
        f"worker on {socket.gethostname()}: {workers} process(es) evaluating study "
        f"{study_name!r}, threads: {specs[0].threads} per process"
    )
    t0 = time.perf_counter()
    if workers == 1:
        evaluate_as_worker(specs[0])
    else:
        run_workers(specs)
    log(f"study {study_name!r} is complete ({time.perf_counter() - t0:.0f} s here)")
