"""Where dataset files are looked for on this machine, and the optional torchvision download.

Search order for a dataset made of files (MNIST, Fashion-MNIST, CIFAR-10/100):

1. ``data_dir`` (``--data-dir``), then ``$MOGAQNN_DATA``; inside each of these roots the
   sub-folders named in the dataset's spec (its own name such as ``fashion-mnist/``, the
   folder torchvision downloads into such as ``FashionMNIST/raw/`` or
   ``cifar-10-batches-py/``), then the root itself;
2. system folders a package installs, e.g. ``/usr/share/datasets/fashion-mnist`` from
   Debian's ``dataset-fashion-mnist``;
3. the download cache ``$XDG_CACHE_HOME/mogaqnn`` (``~/.cache/mogaqnn``), its sub-folders only.

A folder counts only when it holds every file the dataset needs. If none does and
torchvision is installed, it downloads the official files into ``data_dir`` (or the
cache) and our own readers parse them; without a network that fails with a clear message.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .._torchvision import import_torchvision
from ..errors import DatasetError

__all__ = ["DATA_ENV", "FileSource", "cache_dir", "locate", "resolve"]

DATA_ENV = "MOGAQNN_DATA"


@dataclass(frozen=True)
class FileSource:
    """What files a dataset needs and where they may be."""

    name: str
    files: tuple[str, ...]  # file names that must all be present in one folder
    subdirs: tuple[str, ...]  # folders tried under each root, in order
    gzip_ok: bool = False  # whether ``<file>.gz`` may stand for ``<file>``
    system_dirs: tuple[str, ...] = ()
    torchvision_class: str | None = None  # e.g. "FashionMNIST" in torchvision.datasets
    how_to_get: str = ""  # the end of the not-found message: how a user gets the files


def cache_dir() -> Path:
    """Root of the download cache: ``$XDG_CACHE_HOME/mogaqnn``, else ``~/.cache/mogaqnn``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mogaqnn"


def _candidate_dirs(source: FileSource, data_dir: Path | None) -> Iterator[Path]:
    roots = [data_dir] if data_dir is not None else []
    env = os.environ.get(DATA_ENV)
    if env:
        roots.append(Path(env).expanduser())
    for root in roots:
        for sub in source.subdirs:
            yield root / sub
        yield root
    for d in source.system_dirs:
        yield Path(d)
    for sub in source.subdirs:
        yield cache_dir() / sub


def _file_in(folder: Path, name: str, gzip_ok: bool) -> Path | None:
    for candidate in (name, name + ".gz") if gzip_ok else (name,):
        p = folder / candidate
        try:
            if p.is_file():
                return p
        except OSError:  # an unreadable folder is a folder without the file
            return None
    return None


def _files_in(source: FileSource, folder: Path) -> dict[str, Path]:
    found = {}
    for name in source.files:
        p = _file_in(folder, name, source.gzip_ok)
        if p is not None:
            found[name] = p
    return found


def locate(source: FileSource, data_dir: Path | None) -> dict[str, Path] | None:
    """Paths of all of the dataset's files from the first folder that holds them, or None."""
    for folder in _candidate_dirs(source, data_dir):
        found = _files_in(source, folder)
        if len(found) == len(source.files):
            return found
    return None


def _download(source: FileSource, target: Path) -> str | None:
    """Download with torchvision into ``target``; returns why it did not happen, or None."""
    if source.torchvision_class is None:
        return "there is no download for it"
    if importlib.util.find_spec("torchvision") is None:
        return "torchvision, which could download it, is not installed"
    try:
        datasets = import_torchvision("torchvision.datasets")
        target.mkdir(parents=True, exist_ok=True)
        # One call fetches the whole archive (train and test) into torchvision's layout.
        getattr(datasets, source.torchvision_class)(str(target), train=True, download=True)
    except Exception as exc:  # no network, a proxy page, a full disk: all end the same way
        return f"torchvision's download into {target} failed ({type(exc).__name__}: {exc})"
    return None


def resolve(source: FileSource, data_dir: Path | None, *, download: bool) -> dict[str, Path]:
    """Locate the dataset's files, downloading them where allowed; else a clear DatasetError."""
    found = locate(source, data_dir)
    if found is not None:
        return found
    why = "downloading was turned off"
    if download:
        target = data_dir if data_dir is not None else cache_dir()
        why = _download(source, target)
        if why is None:
            found = locate(source, data_dir)  # the target's sub-folders are candidates
            if found is not None:
                return found
            why = f"torchvision's download into {target} left no complete copy behind"
    raise DatasetError(_not_found_message(source, data_dir, why))


def _not_found_message(source: FileSource, data_dir: Path | None, why: str) -> str:
    suffix = "[.gz]" if source.gzip_ok else ""
    wanted = ", ".join(n + suffix for n in source.files)
    looked, partial = [], []
    for folder in _candidate_dirs(source, data_dir):
        looked.append(str(folder))
        found = _files_in(source, folder)
        if found:
            missing = [n for n in source.files if n not in found]
            partial.append(f"{folder} lacks {', '.join(missing)}")
    where = ", ".join(dict.fromkeys(looked))
    if DATA_ENV not in os.environ and data_dir is None:
        where += f" (no --data-dir given, ${DATA_ENV} unset)"
    partial_text = f" ({'; '.join(partial)})" if partial else ""
    return (
        f"dataset {source.name!r} was not found: looked for {wanted} in {where}"
        f"{partial_text}, and {why}; {source.how_to_get}"
    )
