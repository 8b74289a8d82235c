"""``mogaqnn dashboard RUN``: a run's Optuna study in ``optuna-dashboard``.

Every trial shows its genome (the parameters, and ``genome_key``), its generation and
whether it was a cache hit (user attributes); the objectives carry their names.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .run import RunDir

__all__ = ["serve_dashboard"]

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve_dashboard(
    run: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> None:
    """Serve the run's study until interrupted (Ctrl-C)."""
    try:
        import optuna_dashboard
    except ImportError as exc:
        raise ConfigError(
            "mogaqnn dashboard needs optuna-dashboard, which is not installed; install it "
            "with: pip install 'mogaqnn[dashboard]'"
        ) from exc
    from .search._store import open_storage

    run_dir = RunDir(run)
    config = run_dir.load()
    url = run_dir.storage_url(config)
    storage = open_storage(url)
    if host not in LOOPBACK:
        log(f"warning: the dashboard has no login and can change the study; {host} exposes it")
    log(f"study {config.study!r} of {run_dir.root} on http://{host}:{port}/dashboard "
        "(Ctrl-C stops it)")  # fmt: skip
    try:
        optuna_dashboard.run_server(storage, host=host, port=port)
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        raise ConfigError(
            f"cannot serve the dashboard on {host}:{port} ({exc.strerror or exc}); choose "
            "another --port or --host"
        ) from exc
