"""Dense LSB-first bit packing of integer quantization codes (numpy only, vectorised).

A ``b``-bit code occupies exactly ``b`` bits: code ``i`` of a flattened array starts at bit
``i * b`` of the stream, bit 0 of the stream is the least significant bit of byte 0, and
each code's own bits go least significant first. Signed codes are stored in ``b``-bit
two's complement. The stream is padded with zero bits to a whole byte, so ``n`` codes
take ``ceil(n * b / 8)`` bytes and at most 7 bits are padding.

Two 2-bit signed codes per nibble, worked by hand: the codes ``[1, -1, 0, -2]`` are
``01, 11, 00, 10`` in two's complement; LSB-first they fill one byte as
``1 + 3*4 + 0*16 + 2*64 = 141 = 0x8d``.

>>> import numpy as np
>>> pack_codes(np.array([1, -1, 0, -2]), bits=2, signed=True)
b'\\x8d'
>>> unpack_codes(b"\\x8d", bits=2, count=4, signed=True).tolist()
[1, -1, 0, -2]
>>> packed_nbytes(count=13, bits=3)  # 39 bits -> 5 bytes, 1 bit of padding
5
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["MAX_BITS", "code_range", "pack_codes", "packed_nbytes", "unpack_codes"]

MAX_BITS = 16
"""Widest code supported; codes are decoded into int32, so 16 bits leave ample headroom."""


def _check_bits(bits: int) -> int:
    # operator.index accepts numpy integers but rejects floats; bool is refused explicitly
    # because True would silently mean 1 bit.
    if isinstance(bits, bool):
        raise ValueError(f"bits must be an integer in 1..{MAX_BITS}, got {bits!r}")
    try:
        b = operator.index(bits)
    except TypeError:
        raise ValueError(f"bits must be an integer in 1..{MAX_BITS}, got {bits!r}") from None
    if not 1 <= b <= MAX_BITS:
        raise ValueError(f"bits must be an integer in 1..{MAX_BITS}, got {b}")
    return b


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Inclusive ``(low, high)`` of the codes that fit ``bits`` bits.

    >>> code_range(4, signed=True), code_range(4, signed=False)
    ((-8, 7), (0, 15))
    """
    b = _check_bits(bits)
    if signed:
        return -(1 << (b - 1)), (1 << (b - 1)) - 1
    return 0, (1 << b) - 1


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes that ``count`` codes of ``bits`` bits take once packed: ``ceil(count*bits/8)``."""
    b = _check_bits(bits)
    n = operator.index(count)
    if n < 0:
        raise ValueError(f"count must be >= 0, got {n}")
    return (n * b + 7) // 8


def pack_codes(codes: np.ndarray, bits: int, signed: bool) -> bytes:
    """Pack integer ``codes`` (any shape, read in C order) into ``ceil(n*bits/8)`` bytes.

    Raises ``ValueError`` when ``bits`` is outside 1..16, the array is not of an integer
    dtype, or a code falls outside :func:`code_range` (the message gives both ranges).
    """
    b = _check_bits(bits)
    arr = np.asarray(codes)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"codes must have an integer dtype, got {arr.dtype}; round them first")
    flat = arr.reshape(-1)
    if flat.size == 0:
        return b""
    low, high = code_range(b, signed)
    # Compare as Python ints: a uint64 code above 2**63 must not wrap before the check.
    vmin, vmax = int(flat.min()), int(flat.max())
    if vmin < low or vmax > high:
        kind = "signed" if signed else "unsigned"
        raise ValueError(
            f"codes do not fit {b}-bit {kind}: allowed range [{low}, {high}], "
            f"got values in [{vmin}, {vmax}]"
        )
    # The range check makes the int64 cast exact; masking gives b-bit two's complement.
    u = (flat.astype(np.int64) & ((1 << b) - 1)).astype(np.uint16)
    if b == 8:
        return u.astype(np.uint8).tobytes()
    if b == 16:
        return u.astype("<u2").tobytes()
    # One row of b bits per code, LSB first; packbits then fills bytes LSB first too.
    planes = ((u[:, None] >> np.arange(b, dtype=np.uint16)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def unpack_codes(
    data: bytes | bytearray | memoryview, bits: int, count: int, signed: bool
) -> np.ndarray:
    """Inverse of :func:`pack_codes`: the first ``count`` codes as a flat int32 array.

    Only the first ``packed_nbytes(count, bits)`` bytes of ``data`` are read; a shorter
    ``data`` raises ``ValueError``. Padding bits are ignored.
    """
    b = _check_bits(bits)
    need = packed_nbytes(count, b)
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    if view.nbytes < need:
        raise ValueError(
            f"packed data too short: {count} codes of {b} bits need {need} bytes, got {view.nbytes}"
        )
    n = operator.index(count)
    raw = np.frombuffer(view, dtype=np.uint8, count=need)
    if b == 8:
        out = raw.astype(np.int32)
    elif b == 16:
        out = raw.view("<u2").astype(np.int32)
    else:
        planes = np.unpackbits(raw, count=n * b, bitorder="little").reshape(n, b)
        out = np.zeros(n, dtype=np.int32)
        # A loop over at most 16 bit planes, each a vectorised op over all codes.
        for k in range(b):
            out |= planes[:, k].astype(np.int32) << k
    if signed:
        # Sign-extend: subtract 2**b where the top bit of the b-bit field is set.
        out -= ((out >> (b - 1)) & 1) << b
    return out
