"""What ran a run: the package version and commit, torch, the CPU as torch sees it, threads
and device. A result depends on them (floating-point sums differ between CPU capabilities
and thread counts), so result.json records them beside the figures."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ._setup import describe_device

__all__ = ["code_commit", "environment"]

_PACKAGE = Path(__file__).resolve().parents[1]


@functools.cache
def code_commit() -> str | None:
    """Short hash of the git checkout the package runs from, with "+uncommitted" when its
    code differs from it; None for an installed package (no checkout around it)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True,
                                 cwd=_PACKAGE, timeout=10)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", str(_PACKAGE))
    return head + ("+uncommitted" if dirty else "")


def environment(device: torch.device | str) -> dict[str, Any]:
    """The machine and software a run ran on, for result.json."""
    return {
        "mogaqnn_version": __version__,
        "commit": code_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "device": describe_device(device),
    }
