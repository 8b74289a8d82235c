"""A small binary container for a packed model: JSON header, dense payload, CRC32 trailer.

Layout (all integers little-endian)::

    offset 0        MAGIC            8 bytes  b"MOGAQNN\\x01" (the last byte is the version)
    offset 8        header length    uint32   H
    offset 12       header           H bytes  UTF-8 JSON, see below
    offset 12+H     payload          P bytes  the tensors, back to back, in table order
    offset 12+H+P   CRC32            uint32   zlib.crc32 of every byte before it

The header is ``{"meta": {...}, "payload_nbytes": P, "tensors": [entry, ...]}`` where
``meta`` is the caller's JSON object, stored as given, and each entry is
``{"name", "kind", "shape", "offset", "nbytes"}`` plus ``"bits"`` and ``"signed"`` when
``kind == "codes"``. ``offset`` is relative to the start of the payload.

Padding. Each ``codes`` tensor is bit-packed on its own (:mod:`._bitpack`) and rounded up
to a whole byte, so it wastes at most 7 bits; ``float32`` tensors are 4 bytes per value.
There is no alignment padding between tensors. Hence, for any file::

    file size == overhead_nbytes + payload_nbytes(tensors)
    0 <= payload_nbytes(tensors) * 8 - payload_bits(tensors) <= 7 * len(tensors)

and a 2-bit tensor of ``n`` weights takes exactly ``ceil(2 * n / 8)`` payload bytes.
Nothing is pickled: reading a file never executes code from it.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ExportError
from ._bitpack import code_range, pack_codes, packed_nbytes, unpack_codes

__all__ = [
    "MAGIC",
    "ContainerInfo",
    "PackedTensor",
    "TensorEntry",
    "container_info",
    "payload_bits",
    "payload_nbytes",
    "read_container",
    "write_container",
]

MAGIC = b"MOGAQNN\x01"
_PREFIX = MAGIC[:-1]  # the part that does not change between format versions
_LEN = struct.Struct("<I")
_CRC_NBYTES = 4
_PREAMBLE_NBYTES = len(MAGIC) + _LEN.size

TensorKind = Literal["codes", "float32"]


@dataclass(frozen=True, eq=False)
class PackedTensor:
    """One named tensor to store: integer ``codes`` of ``bits`` bits, or float32 ``values``.

    Give exactly one of ``codes`` (with ``bits``; ``signed`` picks two's complement) or
    ``values``. ``shape`` must hold as many elements as the array, which is read in C order.
    ``eq=False`` because array fields make ``==`` ambiguous.
    """

    name: str
    shape: tuple[int, ...]
    codes: np.ndarray | None = None
    bits: int | None = None
    signed: bool = True
    values: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"tensor name must be a non-empty string, got {self.name!r}")
        shape = tuple(int(d) for d in self.shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"tensor {self.name!r}: shape {shape} has a negative dimension")
        object.__setattr__(self, "shape", shape)
        if (self.codes is None) == (self.values is None):
            raise ValueError(f"tensor {self.name!r}: give exactly one of codes or values")
        if self.codes is not None:
            if self.bits is None:
                raise ValueError(f"tensor {self.name!r}: codes need bits")
            code_range(self.bits, self.signed)  # validates bits early, with its own message
            arr = np.asarray(self.codes)
            if arr.dtype != np.bool_ and not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(
                    f"tensor {self.name!r}: codes must have an integer dtype, got {arr.dtype}"
                )
        else:
            if self.bits is not None:
                raise ValueError(f"tensor {self.name!r}: bits apply to codes, not float values")
            arr = np.asarray(self.values, dtype=np.float32)
            object.__setattr__(self, "values", arr)
        if arr.size != math.prod(shape):
            raise ValueError(
                f"tensor {self.name!r}: shape {shape} holds {math.prod(shape)} elements, "
                f"the array has {arr.size}"
            )

    @classmethod
    def from_codes(
        cls, name: str, codes: np.ndarray, bits: int, signed: bool = True
    ) -> PackedTensor:
        """Integer codes, with the shape taken from the array."""
        codes = np.asarray(codes)
        return cls(name=name, shape=codes.shape, codes=codes, bits=bits, signed=signed)

    @classmethod
    def from_float32(cls, name: str, values: np.ndarray) -> PackedTensor:
        """Float values stored as float32, with the shape taken from the array."""
        values = np.asarray(values, dtype=np.float32)
        return cls(name=name, shape=values.shape, values=values)

    @property
    def kind(self) -> TensorKind:
        return "codes" if self.codes is not None else "float32"

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbits(self) -> int:
        """Payload bits of this tensor without padding: count * bits, or count * 32."""
        return self.count * (self.bits if self.codes is not None else 32)

    @property
    def nbytes(self) -> int:
        """Payload bytes of this tensor, padding to a whole byte included."""
        if self.codes is not None:
            return packed_nbytes(self.count, self.bits)
        return self.count * 4

    def to_bytes(self) -> bytes:
        if self.codes is not None:
            return pack_codes(self.codes, self.bits, self.signed)
        return np.ascontiguousarray(self.values, dtype="<f4").tobytes()


@dataclass(frozen=True)
class TensorEntry:
    """One row of a file's tensor table (``bits``/``signed`` are None for float32)."""

    name: str
    kind: TensorKind
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    bits: int | None = None
    signed: bool | None = None


@dataclass(frozen=True)
class ContainerInfo:
    """What a container holds, without decoding the tensors.

    ``overhead_nbytes`` is every byte that is not payload: magic, header length, header
    JSON and CRC32; ``file_nbytes == overhead_nbytes + payload_nbytes``.
    """

    path: str
    file_nbytes: int
    overhead_nbytes: int
    payload_nbytes: int
    meta: dict[str, Any]
    tensors: tuple[TensorEntry, ...]


def payload_bits(tensors: Sequence[PackedTensor]) -> int:
    """Total payload bits of ``tensors`` without any padding (what a size formula counts)."""
    return sum(t.nbits for t in tensors)


def payload_nbytes(tensors: Sequence[PackedTensor]) -> int:
    """Total payload bytes of ``tensors`` as written: each tensor rounded up to a byte."""
    return sum(t.nbytes for t in tensors)


def _header(meta: dict[str, Any], tensors: Sequence[PackedTensor]) -> bytes:
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    table, offset, seen = [], 0, set()
    for t in tensors:
        if t.name in seen:
            raise ValueError(f"tensor name {t.name!r} appears twice; names must be unique")
        seen.add(t.name)
        entry: dict[str, Any] = {"name": t.name, "kind": t.kind, "shape": list(t.shape)}
        if t.codes is not None:
            entry["bits"] = int(t.bits)
            entry["signed"] = bool(t.signed)
        entry["offset"] = offset
        entry["nbytes"] = t.nbytes
        table.append(entry)
        offset += t.nbytes
    header = {"meta": meta, "payload_nbytes": offset, "tensors": table}
    try:
        # allow_nan=False: NaN/Infinity are not JSON, other readers would reject the file.
        text = json.dumps(header, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta is not JSON-serialisable: {exc}") from exc
    return text.encode("utf-8")


def write_container(
    path: str | os.PathLike[str], meta: dict[str, Any], tensors: Sequence[PackedTensor]
) -> int:
    """Write ``meta`` and ``tensors`` to ``path`` atomically; return the bytes written.

    Every tensor is packed in memory before the file is opened, so a bad code range
    (``ValueError``) leaves nothing behind. The file is written to a temporary name in
    the same directory, flushed to disk and renamed over ``path``, so a reader never sees
    a half-written file.
    """
    header = _header(meta, tensors)
    chunks = [MAGIC, _LEN.pack(len(header)), header]
    for t in tensors:
        data = t.to_bytes()
        # A cheap guard that table and payload agree; a mismatch is a bug here.
        if len(data) != t.nbytes:
            raise AssertionError(f"{t.name}: packed {len(data)} bytes, table says {t.nbytes}")
        chunks.append(data)
    crc = 0
    for c in chunks:
        crc = zlib.crc32(c, crc)
    chunks.append(_LEN.pack(crc))

    target = Path(path)
    # os.open with mode 0o666 honours the umask (mkstemp would leave the file 0600).
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sum(len(c) for c in chunks)


def _fail(path: str, what: str) -> ExportError:
    return ExportError(f"{path} {what}; export it again")


def _parse_table(path: str, header: Any) -> tuple[dict[str, Any], int, list[TensorEntry]]:
    """Validate the decoded header JSON; the tensors must tile the payload exactly."""

    def bad(why: str) -> ExportError:
        return _fail(path, f"has an invalid header: {why}")

    if not isinstance(header, dict):
        raise bad("the JSON is not an object")
    meta, total, rows = header.get("meta"), header.get("payload_nbytes"), header.get("tensors")
    if not isinstance(meta, dict):
        raise bad("'meta' is missing or not an object")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise bad("'payload_nbytes' is missing or not a non-negative integer")
    if not isinstance(rows, list):
        raise bad("'tensors' is missing or not a list")
    entries, offset, seen = [], 0, set()
    for i, row in enumerate(rows):
        try:
            name, kind, shape = row["name"], row["kind"], tuple(row["shape"])
            t_off, t_len = row["offset"], row["nbytes"]
            ints = [*shape, t_off, t_len]
            if not isinstance(name, str) or any(
                not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in ints
            ):
                raise TypeError
            count = math.prod(shape)
            if kind == "codes":
                bits, signed = row["bits"], row["signed"]
                if not isinstance(signed, bool):
                    raise TypeError
                expected = packed_nbytes(count, bits)  # ValueError on a bad width
            elif kind == "float32":
                bits, signed, expected = None, None, count * 4
            else:
                raise bad(f"tensor #{i} has unknown kind {kind!r}")
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor #{i} ({row!r:.80}) is malformed") from None
        if name in seen:
            raise bad(f"tensor name {name!r} appears twice")
        if t_off != offset or t_len != expected:
            raise bad(
                f"tensor {name!r} is at offset {t_off} with {t_len} bytes, "
                f"expected offset {offset} with {expected} bytes"
            )
        seen.add(name)
        entries.append(TensorEntry(name, kind, shape, t_off, t_len, bits, signed))
        offset += t_len
    if offset != total:
        raise bad(f"the tensors cover {offset} bytes but payload_nbytes is {total}")
    return meta, total, entries


def _load(path: str | os.PathLike[str]) -> tuple[ContainerInfo, memoryview]:
    """Read and fully validate a container; return its description and its payload."""
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read {name}: {exc.strerror or exc}") from exc
    size = len(data)

    if data[: len(MAGIC)] != MAGIC[:size]:
        if data[: len(_PREFIX)] == _PREFIX:
            raise ExportError(
                f"{name} is packed-model format version {data[len(_PREFIX)]}, "
                f"this mogaqnn reads version {MAGIC[-1]}; upgrade mogaqnn or export it again"
            )
        raise ExportError(
            f"{name} is not a mogaqnn packed model: it starts with {data[:8]!r}, "
            f"expected {MAGIC!r}; check the path"
        )
    if size < _PREAMBLE_NBYTES + _CRC_NBYTES:
        raise _fail(name, f"is truncated: {size} bytes, shorter than the smallest valid file")

    (hlen,) = _LEN.unpack_from(data, len(MAGIC))
    (stored_crc,) = _LEN.unpack_from(data, size - _CRC_NBYTES)
    crc = zlib.crc32(memoryview(data)[: size - _CRC_NBYTES])
    if crc != stored_crc:
        # Say *why* when we can: a cut-off file is a likelier cause than a flipped bit.
        raise _diagnose(name, data, hlen, stored_crc, crc)

    hend = _PREAMBLE_NBYTES + hlen
    if hend > size - _CRC_NBYTES:
        raise _fail(name, f"has a header length of {hlen} bytes that overruns the file")
    try:
        header = json.loads(data[_PREAMBLE_NBYTES:hend].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(name, f"has an unreadable JSON header ({exc})") from None
    meta, total, entries = _parse_table(name, header)
    found = size - _CRC_NBYTES - hend
    if found != total:
        raise _fail(name, f"has {found} bytes of payload, its header says {total}")
    info = ContainerInfo(name, size, size - total, total, meta, tuple(entries))
    return info, memoryview(data)[hend : hend + total]


def _diagnose(name: str, data: bytes, hlen: int, stored: int, computed: int) -> ExportError:
    size = len(data)
    crc_msg = f"is corrupt: CRC32 mismatch (stored {stored:#010x}, computed {computed:#010x})"
    hend = _PREAMBLE_NBYTES + hlen
    if hend > size:
        return _fail(
            name, f"is truncated: the header needs {hlen} bytes, found {size - _PREAMBLE_NBYTES}"
        )
    try:
        total = json.loads(data[_PREAMBLE_NBYTES:hend].decode("utf-8"))["payload_nbytes"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        # The header itself is damaged (or the length field is): only the CRC is certain.
        return _fail(name, crc_msg)
    if not isinstance(total, int):
        return _fail(name, crc_msg)
    # In an intact file the header is followed by the payload and then the CRC; in a cut
    # file whatever follows the header is payload, the CRC having been cut off first.
    after = size - hend
    if after < total:
        return _fail(name, f"is truncated: expected {total} bytes of payload, found {after}")
    if after < total + _CRC_NBYTES:
        return _fail(name, "is truncated: the payload is complete but the CRC32 trailer is cut off")
    if after > total + _CRC_NBYTES:
        extra = after - total - _CRC_NBYTES
        return _fail(name, f"has {extra} unexpected bytes after its payload")
    return _fail(name, crc_msg)


def container_info(path: str | os.PathLike[str]) -> ContainerInfo:
    """Validate the file at ``path`` (magic, CRC, header) and describe it, decoding nothing.

    Raises :class:`~mogaqnn.errors.ExportError` when the file is unreadable, truncated,
    corrupt or not a packed model.
    """
    return _load(path)[0]


def read_container(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a container: ``(meta, {name: array})`` in table order.

    ``codes`` tensors come back as int32 arrays of their shape, ``float32`` tensors as
    float32 arrays. Raises :class:`~mogaqnn.errors.ExportError` like :func:`container_info`.
    """
    info, payload = _load(path)
    arrays: dict[str, np.ndarray] = {}
    for e in info.tensors:
        chunk = payload[e.offset : e.offset + e.nbytes]
        if e.kind == "codes":
            flat = unpack_codes(chunk, e.bits, math.prod(e.shape), e.signed)
        else:
            # Copy, so the arrays are writable and do not pin the whole file in memory.
            flat = np.frombuffer(chunk, dtype="<f4").astype(np.float32)
        arrays[e.name] = flat.reshape(e.shape)
    return info.meta, arrays
