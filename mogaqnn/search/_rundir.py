"""The run directory: every file a search writes, written atomically so a kill leaves it valid."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import SearchConfig
from ..errors import RunDirError

__all__ = ["RunDir", "atomic_write_text", "atomic_torch_save"]


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """Paths of one run, and the check that a directory holds this run and not another."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.json")
    journal = property(lambda self: self.root / "study.journal")
    base_checkpoint = property(lambda self: self.root / "base.pt")
    final_checkpoint = property(lambda self: self.root / "final.pt")
    baseline_checkpoint = property(lambda self: self.root / "fp32_baseline.pt")
    result = property(lambda self: self.root / "result.json")
    pareto_csv = property(lambda self: self.root / "pareto.csv")
    evaluations_log = property(lambda self: self.root / "evaluations.log")

    def storage_url(self, config: SearchConfig) -> str:
        return config.storage or f"journal:{self.journal}"

    def stored_config(self) -> SearchConfig | None:
        if not self.config.exists():
            return None
        try:
            data = json.loads(self.config.read_text(encoding="utf-8"))
            return SearchConfig.from_mapping(data, source=str(self.config))
        except (json.JSONDecodeError, OSError) as exc:
            raise RunDirError(f"{self.config} is unreadable ({exc}); use another --out") from exc

    def prepare(self, config: SearchConfig) -> bool:
        """Create the directory for ``config``; True when it already holds this run.

        A directory with files of a different run, or files that are not a run, is refused
        and left untouched.
        """
        stored = self.stored_config()
        if stored is not None:
            if stored.identity() != config.identity():
                diff = [k for k, v in config.identity().items() if stored.identity().get(k) != v]
                raise RunDirError(
                    f"{self.root} holds a different run (it differs in {', '.join(diff)}); "
                    "choose another --out or resume it with 'mogaqnn resume'"
                )
            return True
        if self.root.exists() and any(self.root.iterdir()):
            raise RunDirError(
                f"{self.root} is not empty and holds no mogaqnn run; choose another --out"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config, json.dumps(config.to_dict(), indent=2) + "\n")
        return False
