"""Which code a benchmark process runs, for the results it writes.

A benchmark can run for hours; a commit made meanwhile is not the code that ran. Every
benchmark therefore reads the commit once, when it starts (``code_commit()`` at import or
first thing in ``main``), and records that string with each result.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ("mogaqnn", "benchmarks", ":!benchmarks/results", "pyproject.toml", "Makefile")


@functools.cache
def code_commit() -> str:
    """Short hash of HEAD at the first call in this process, with "+uncommitted" when the
    code differs from it: the package, the benchmarks or the build files (prose and the
    results the benchmarks write do not count)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
        return out.stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", *CODE)
    return git("rev-parse", "--short", "HEAD") + ("+uncommitted" if dirty else "")
