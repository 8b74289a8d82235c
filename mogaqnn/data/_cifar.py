"""Reader for the CIFAR-10 / CIFAR-100 "python version" batches (the official pickle files).

A batch is a pickled dict with ``b"data"``, a uint8 array [N, 3072] holding each image's
red, green and blue 32x32 planes in turn, and ``b"labels"`` (CIFAR-10) or
``b"fine_labels"`` (CIFAR-100). The files were written by Python 2, hence
``encoding="bytes"``. Unpickling runs code named in the file, so this unpickler only
resolves the few numpy names an array needs and refuses anything else.
"""

from __future__ import annotations

import codecs
import functools
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError

__all__ = ["read_cifar_batch", "read_cifar_meta"]

try:  # numpy >= 2 moved the module; pickles written by numpy 1 still name the old one
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes under protocol 2 as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refers to {module}.{name}, which a CIFAR batch never needs"
            ) from None


def _unpickle(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            return _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DatasetError(f"cannot read CIFAR file {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # pickle raises many types (EOFError, ValueError, ...) on junk
        raise DatasetError(
            f"CIFAR file {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
            "replace it with a fresh copy of the official python-version archive"
        ) from exc


def read_cifar_batch(path: str | Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 3, 32, 32] and labels int64 [N] of one batch file (cached per process)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise DatasetError(f"cannot read CIFAR file {p}: {exc.strerror or exc}") from exc
    return _read_batch_cached(str(p.resolve()), label_key, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_batch_cached(
    path: str, label_key: bytes, size: int, mtime_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    del size, mtime_ns  # cache key only
    obj = _unpickle(path)
    if not isinstance(obj, dict) or b"data" not in obj or label_key not in obj:
        raise DatasetError(
            f"CIFAR file {path} lacks the keys b'data' and {label_key!r}; it is not a batch "
            "of the python-version archive, so replace it with a fresh copy"
        )
    data, labels = obj[b"data"], np.asarray(obj[label_key])
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * 32 * 32
        or labels.shape != (data.shape[0],)
        or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise DatasetError(
            f"CIFAR file {path} holds data of shape {getattr(data, 'shape', None)} and "
            f"{labels.shape} labels instead of uint8 [N, 3072] and N integer labels; "
            "replace it with a fresh copy"
        )
    x = data.reshape(-1, 3, 32, 32)
    y = labels.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def read_cifar_meta(path: str | Path, key: bytes) -> list[str] | None:
    """Class names from a ``batches.meta`` / ``meta`` file, or None when it is unreadable."""
    try:
        obj = _unpickle(str(path))
        return [n.decode("utf-8") for n in obj[key]]
    except (DatasetError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        return None  # names are a nicety; the images and labels are what matters
