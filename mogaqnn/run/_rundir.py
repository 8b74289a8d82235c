"""The run directory: every file a search writes, written atomically so a kill leaves it valid."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import SearchConfig
from ..errors import RunDirError
from ..train import checkpoint_state

__all__ = [
    "RunDir",
    "TrainingProgress",
    "atomic_torch_save",
    "atomic_write_text",
    "checkpoint_state",
    "flocked",
    "load_weights",
    "read_checkpoint",
]

# Files of ours that a killed process may leave behind in an otherwise empty directory:
# the lock file and unfinished atomic writes.
_LEFTOVER = re.compile(r"^(\.lock|\..+\.tmp)$")


@contextmanager
def flocked(path: Path, *, blocking: bool = True) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); yield its descriptor.

    The kernel drops the lock when the holder dies, so a kill -9 never leaves a stale lock
    behind (unlike lock files that need a grace period). Raises BlockingIOError when
    ``blocking`` is False and another process holds it.
    """
    import fcntl  # POSIX only; imported here so that the package imports everywhere

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(path: Path, missing_hint: str) -> dict[str, Any]:
    """A checkpoint of the run directory, read safely (``weights_only``), or one clear
    RunDirError naming the file and what to do."""
    if not path.is_file():
        raise RunDirError(f"{path.parent} has no {path.name}; {missing_hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise RunDirError(
            f"{path} is corrupt or unreadable ({type(exc).__name__}); delete it or use "
            "another run directory"
        ) from exc


def load_weights(model: nn.Module, ckpt: dict[str, Any], path: Path, what: str) -> None:
    """Load ``ckpt["state_dict"]`` into ``model``, or one RunDirError naming the file.
    A state dict saved without its ``_metadata`` (not by ``checkpoint_state``) gets the
    model's own: it was saved from this architecture by this code."""
    state = ckpt["state_dict"] if isinstance(ckpt, dict) else None
    if isinstance(state, dict) and getattr(state, "_metadata", None) is None:
        state = OrderedDict(state)
        state._metadata = getattr(model.state_dict(), "_metadata", None)  # type: ignore[attr-defined]
    try:
        model.load_state_dict(state)
    except Exception as exc:  # missing/unexpected keys, shape mismatches, a bad layout
        raise RunDirError(f"{path} does not fit {what} ({type(exc).__name__})") from exc


class TrainingProgress:
    """A long training's state at its last finished epoch, in ``<artifact>.partial`` beside
    the file it will produce, so that a stopped run continues that training instead of
    starting it again (train.Progress). ``key`` names what is trained: a file with another
    key or length, or one that cannot be read, is started over. ``discard`` once the artifact
    exists."""

    def __init__(self, artifact: Path, key: str, note: Callable[[str], None] | None = None):
        self.path = artifact.with_name(artifact.name + ".partial")
        self.key, self.note = key, note

    def load(self, total_steps: int) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # a damaged file costs only the epochs it held
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        if state.get("total_steps") != total_steps:
            return None
        if self.note is not None:
            self.note(f"continuing from {self.path}: step {state['step']} of {total_steps}")
        return state

    def save(self, state: dict[str, Any]) -> None:
        atomic_torch_save({**state, "key": self.key}, self.path)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class RunDir:
    """Paths of one run, and the check that a directory holds this run and not another."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.json")
    journal = property(lambda self: self.root / "study.journal")
    base_checkpoint = property(lambda self: self.root / "base.pt")
    final_checkpoint = property(lambda self: self.root / "final.pt")
    result = property(lambda self: self.root / "result.json")
    pareto_csv = property(lambda self: self.root / "pareto.csv")
    evaluations_log = property(lambda self: self.root / "evaluations.log")
    claims = property(lambda self: self.root / "claims")
    lock_file = property(lambda self: self.root / ".lock")

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

    def holds(self, config: SearchConfig) -> bool:
        """True when the directory holds this run, False when it holds none (or only the
        config of a run that never started, which a new run replaces); a directory with
        files of a different run, or files that are not a run, is refused. Writes nothing."""
        stored = self.stored_config()
        if stored is not None:
            if stored.identity() == config.identity():
                return True
            if self._never_started():
                return False
            diff = [k for k, v in config.identity().items() if stored.identity().get(k) != v]
            raise RunDirError(
                f"{self.root} holds a different run (it differs in {', '.join(diff)}); "
                "choose another --out or resume it with 'mogaqnn resume'"
            )
        if self.root.exists() and any(not _LEFTOVER.match(p.name) for p in self.root.iterdir()):
            raise RunDirError(
                f"{self.root} is not empty and holds no mogaqnn run; choose another --out"
            )
        return False

    def _never_started(self) -> bool:
        """Only config.json (and our leftovers): a run whose first training never began."""
        return all(p.name == self.config.name or _LEFTOVER.match(p.name)
                   for p in self.root.iterdir())  # fmt: skip

    def prepare(self, config: SearchConfig) -> bool:
        """Create the directory for ``config`` (see ``holds``); True when it already holds
        this run."""
        if self.holds(config):
            return True
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config, json.dumps(config.to_dict(), indent=2) + "\n")
        return False

    def load(self) -> SearchConfig:
        """The stored config of the run in this directory, for ``mogaqnn resume``."""
        stored = self.stored_config()
        if stored is None:
            raise RunDirError(
                f"{self.root} holds no mogaqnn run (no config.json); start one with "
                "'mogaqnn search --out DIR'"
            )
        return stored

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the run for this process: a second search or resume of it is refused."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise RunDirError(
                    f"{self.root} is being run by another mogaqnn process (pid {pid}); wait "
                    "for it to finish or stop it first"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            for leftover in self.root.glob(".*.tmp"):  # unfinished writes of a killed run
                leftover.unlink(missing_ok=True)
            yield
        finally:
            os.close(fd)  # releases the lock; a killed process releases it too
