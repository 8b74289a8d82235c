"""Our own reader for IDX files (MNIST, Fashion-MNIST), so torchvision stays optional.

An IDX file is: two zero bytes, one byte naming the element type, one byte giving the
number of dimensions ``d``, ``d`` big-endian uint32 sizes, then the elements in C order,
big-endian. Files may be gzipped; gzip is recognised by its magic bytes, not the name.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetError

__all__ = ["read_idx"]

_GZIP_MAGIC = b"\x1f\x8b"

# The element-type byte of the IDX format and the big-endian numpy dtype it stands for.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain or gzipped) into a read-only numpy array of its shape.

    Raises :class:`~mogaqnn.errors.DatasetError` for a file that is not IDX, is truncated,
    or has bytes left over. Parsed arrays are cached per process, keyed by path, size
    and modification time, because a search loads the same dataset more than once.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise DatasetError(f"cannot read IDX file {p}: {exc.strerror or exc}") from exc
    return _read_idx_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, size: int, mtime_ns: int) -> np.ndarray:
    del size, mtime_ns  # cache key only: a rewritten file is read again
    raw = _read_bytes(path)
    return _parse_idx(raw, path)


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        # gzip raises EOFError for a cut-off stream and BadGzipFile (an OSError) for junk.
        raise DatasetError(
            f"IDX file {path} is corrupt or truncated ({exc}); replace it with a fresh copy"
        ) from exc
    return raw


def _parse_idx(raw: bytes, path: str) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(
            f"{path} is not an IDX file (it does not start with two zero bytes); "
            "point the data folder at the original MNIST-format files"
        )
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise DatasetError(
            f"IDX file {path} names an unknown element type 0x{type_code:02X}; "
            "replace it with a fresh copy"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(
            f"IDX file {path} is truncated inside its header; replace it with a fresh copy"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "longer than its header says"
        raise DatasetError(
            f"IDX file {path} is {what}: its header {dims} needs {expected} data bytes but "
            f"it holds {len(raw) - header}; replace it with a fresh copy"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    # Native byte order so that torch.from_numpy accepts it; frombuffer is already read-only.
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))
        arr.setflags(write=False)
    return arr
