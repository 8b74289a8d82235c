"""Torch intra-op threads of the search's processes.

Torch's default thread count collapses when anything else shares the cores, and a result
depends on it (the order of floating-point sums), so the run says how many it uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..config import SearchConfig

__all__ = ["available_cores", "process_threads", "describe_threads", "torch_threads"]


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _default_threads() -> int:
    # An explicit OMP_NUM_THREADS is the user's (or the test suite's) choice: keep it.
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else available_cores()


def process_threads(config: SearchConfig, *, worker: bool) -> int:
    """Threads of the main process (``worker=False``) or of one worker process: the
    config's ``threads``, else the cores given to the process, else 1 per worker when
    several workers share them."""
    if config.threads is not None:
        return config.threads
    if worker and config.workers > 1:
        return 1
    return _default_threads()


def describe_threads(config: SearchConfig) -> str:
    """The line a run prints at start, e.g. ``threads: 2`` or ``threads: 2 (1 per worker)``."""
    main = process_threads(config, worker=False)
    if config.workers == 1:
        return f"threads: {main}"
    return f"threads: {main} ({process_threads(config, worker=True)} per worker)"


@contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run a block with ``n`` torch threads, then give the caller back its own count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
