"""Bit packing of quantization codes and the packed-model container file."""

from __future__ import annotations

import doctest
import json
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mogaqnn.errors import ExportError
from mogaqnn.export import _bitpack
from mogaqnn.export._bitpack import code_range, pack_codes, packed_nbytes, unpack_codes
from mogaqnn.export._container import (
    MAGIC,
    PackedTensor,
    container_info,
    payload_bits,
    payload_nbytes,
    read_container,
    write_container,
)

WIDTHS = range(1, 17)
SIZES = [1, 7, 13, 1001]


def _random_codes(rng: np.random.Generator, n: int, bits: int, signed: bool) -> np.ndarray:
    low, high = code_range(bits, signed)
    codes = rng.integers(low, high + 1, size=n)
    # Force both ends of the range into every array of two or more codes.
    codes[0] = low
    codes[-1] = high
    return codes


# ---------------------------------------------------------------- bit packing


def test_doctests() -> None:
    result = doctest.testmod(_bitpack)
    assert result.attempted > 0 and result.failed == 0


def test_two_bit_example_by_hand() -> None:
    # 01, 11, 00, 10 LSB-first -> 0b10_00_11_01
    assert pack_codes(np.array([1, -1, 0, -2]), 2, signed=True) == bytes([0b10001101])
    assert pack_codes(np.array([1, 3, 0, 2]), 2, signed=False) == bytes([0b10001101])


def test_codes_straddle_byte_boundaries_lsb_first() -> None:
    # 3-bit codes 5, 6, 7: bits 101 | 011 | 111 from bit 0 -> 0b11_110_101, 0b0000000_1
    assert pack_codes(np.array([5, 6, 7]), 3, signed=False) == bytes([0b11110101, 0b1])


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits", WIDTHS)
def test_round_trip_every_width_and_odd_size(bits: int, signed: bool) -> None:
    rng = np.random.default_rng(bits * 2 + signed)
    for n in SIZES:
        codes = _random_codes(rng, n, bits, signed)
        data = pack_codes(codes, bits, signed)
        assert len(data) == packed_nbytes(n, bits) == math.ceil(n * bits / 8)
        out = unpack_codes(data, bits, n, signed)
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, codes)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits", WIDTHS)
def test_range_boundaries_round_trip(bits: int, signed: bool) -> None:
    low, high = code_range(bits, signed)
    codes = np.array([low, high, low, high, (low + high) // 2, low + 1 if bits > 1 else low])
    out = unpack_codes(pack_codes(codes, bits, signed), bits, codes.size, signed)
    np.testing.assert_array_equal(out, codes)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits", WIDTHS)
def test_out_of_range_codes_raise(bits: int, signed: bool) -> None:
    low, high = code_range(bits, signed)
    for bad in (low - 1, high + 1):
        with pytest.raises(ValueError, match=rf"{bits}-bit .*\[{low}, {high}\]"):
            pack_codes(np.array([0, bad, 0]), bits, signed)


def test_error_message_names_the_values_found() -> None:
    with pytest.raises(ValueError, match=r"4-bit signed: allowed range \[-8, 7\], got .*\[-9, 3\]"):
        pack_codes(np.array([-9, 3, 0]), 4, signed=True)


@pytest.mark.parametrize("bits", [0, 17, -1, 2.0, True, "4"])
def test_bad_widths_raise(bits: object) -> None:
    with pytest.raises(ValueError, match="bits must be an integer in 1..16"):
        pack_codes(np.array([0]), bits, signed=False)  # type: ignore[arg-type]


def test_float_codes_rejected() -> None:
    with pytest.raises(ValueError, match="integer dtype"):
        pack_codes(np.array([0.0, 1.0]), 2, signed=False)


def test_huge_unsigned_value_does_not_wrap_into_range() -> None:
    with pytest.raises(ValueError, match="8-bit unsigned"):
        pack_codes(np.array([2**64 - 1], dtype=np.uint64), 8, signed=False)


def test_shape_is_flattened_in_c_order() -> None:
    codes = np.arange(12, dtype=np.int8).reshape(3, 4)
    assert pack_codes(codes, 4, False) == pack_codes(codes.ravel(order="C"), 4, False)
    assert pack_codes(codes.T, 4, False) == pack_codes(codes.T.ravel(order="C"), 4, False)


def test_empty() -> None:
    assert pack_codes(np.zeros(0, dtype=np.int64), 5, signed=True) == b""
    assert unpack_codes(b"", 5, 0, signed=True).shape == (0,)


def test_padding_bits_are_zero_and_ignored_on_read() -> None:
    data = pack_codes(np.array([1, 1, 1]), 3, signed=False)  # 9 bits -> 7 padding bits
    assert data == bytes([0b01001001, 0b0])
    dirty = bytes([data[0], 0b11111110])  # set every padding bit
    np.testing.assert_array_equal(unpack_codes(dirty, 3, 3, signed=False), [1, 1, 1])


def test_short_data_raises_and_longer_data_reads_a_prefix() -> None:
    data = pack_codes(np.arange(10), 4, signed=False)
    with pytest.raises(ValueError, match="need 5 bytes, got 4"):
        unpack_codes(data[:-1], 4, 10, signed=False)
    out = unpack_codes(data + b"\xff\xff", 4, 10, signed=False)
    np.testing.assert_array_equal(out, np.arange(10))


def test_accepts_memoryview_and_bytearray() -> None:
    data = pack_codes(np.array([-3, 2, 1]), 3, signed=True)
    for buf in (memoryview(data), bytearray(data), memoryview(data)[0:]):
        np.testing.assert_array_equal(unpack_codes(buf, 3, 3, signed=True), [-3, 2, 1])


@st.composite
def _codes_and_width(draw: st.DrawFn) -> tuple[np.ndarray, int, bool]:
    bits = draw(st.integers(1, 16))
    signed = draw(st.booleans())
    low, high = code_range(bits, signed)
    n = draw(st.integers(0, 300))
    # Any integer dtype wide enough for the range, so narrow inputs are exercised too.
    dtypes = [
        d
        for d in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64)
        if np.iinfo(d).min <= low and high <= np.iinfo(d).max
    ]
    dtype = draw(st.sampled_from(dtypes))
    codes = draw(hnp.arrays(dtype, n, elements=st.integers(low, high)))
    return codes, bits, signed


@settings(max_examples=200, deadline=None)
@given(_codes_and_width())
def test_property_round_trip(case: tuple[np.ndarray, int, bool]) -> None:
    codes, bits, signed = case
    data = pack_codes(codes, bits, signed)
    assert len(data) == (codes.size * bits + 7) // 8
    np.testing.assert_array_equal(unpack_codes(data, bits, codes.size, signed), codes)


@settings(max_examples=100, deadline=None)
@given(bits=st.integers(1, 16), signed=st.booleans(), data=st.data())
def test_property_any_bytes_decode_and_reencode_exactly(
    bits: int, signed: bool, data: st.DataObject
) -> None:
    # 8k codes fill k*bits whole bytes with no padding, so every byte string is valid.
    k = data.draw(st.integers(0, 8))
    raw = data.draw(st.binary(min_size=k * bits, max_size=k * bits))
    assert pack_codes(unpack_codes(raw, bits, 8 * k, signed), bits, signed) == raw


# ---------------------------------------------------------------- container


def _mixed_tensors() -> list[PackedTensor]:
    rng = np.random.default_rng(0)
    return [
        PackedTensor.from_codes(
            "conv1.weight",
            _random_codes(rng, 6 * 1 * 5 * 5, 2, True).reshape(6, 1, 5, 5),
            bits=2,
            signed=True,
        ),
        PackedTensor.from_float32("conv1.scale", rng.standard_normal(6)),
        PackedTensor.from_float32("conv1.bias", rng.standard_normal(6)),
        PackedTensor.from_codes(
            "fc.weight", _random_codes(rng, 13 * 7, 5, True).reshape(13, 7), bits=5, signed=True
        ),
        PackedTensor.from_codes(
            "act.codes", _random_codes(rng, 1001, 3, False), bits=3, signed=False
        ),
        PackedTensor.from_codes("one", np.array([1]), bits=1, signed=False),
        PackedTensor.from_codes("sixteen", np.array([[-(2**15), 2**15 - 1]]), bits=16),
        PackedTensor.from_float32("scalar", np.float32(0.25)),
        PackedTensor.from_codes("empty", np.zeros((0, 3), dtype=np.int64), bits=4),
    ]


META = {"model": "lenet5", "bits": [2, 5, 3], "note": "größe ✓", "nested": {"x": None}}


def test_container_round_trip_mixed(tmp_path: Path) -> None:
    tensors = _mixed_tensors()
    path = tmp_path / "model.mqnn"
    written = write_container(path, META, tensors)
    assert written == path.stat().st_size
    meta, arrays = read_container(path)
    assert meta == META
    assert list(arrays) == [t.name for t in tensors]
    for t in tensors:
        out = arrays[t.name]
        assert out.shape == t.shape
        if t.kind == "codes":
            assert out.dtype == np.int32
            np.testing.assert_array_equal(out, t.codes)
        else:
            assert out.dtype == np.float32
            np.testing.assert_array_equal(out, t.values)
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file must be renamed away"


def test_file_size_is_overhead_plus_packed_bytes(tmp_path: Path) -> None:
    tensors = _mixed_tensors()
    path = tmp_path / "m.mqnn"
    write_container(path, META, tensors)
    info = container_info(path)
    size = path.stat().st_size
    (hlen,) = struct.unpack_from("<I", path.read_bytes(), 8)
    assert info.file_nbytes == size
    assert info.overhead_nbytes == len(MAGIC) + 4 + hlen + 4
    assert size == info.overhead_nbytes + payload_nbytes(tensors)
    assert info.payload_nbytes == payload_nbytes(tensors)
    expected_bits = 150 * 2 + 6 * 32 + 6 * 32 + 91 * 5 + 1001 * 3 + 1 + 2 * 16 + 32 + 0
    assert payload_bits(tensors) == expected_bits
    padding = payload_nbytes(tensors) * 8 - payload_bits(tensors)
    assert 0 <= padding <= 7 * len(tensors)
    assert payload_nbytes(tensors) == sum(math.ceil(t.nbits / 8) for t in tensors), (
        "each tensor is padded only to its own next byte"
    )
    assert [(e.name, e.kind, e.bits, e.signed) for e in info.tensors][:2] == [
        ("conv1.weight", "codes", 2, True),
        ("conv1.scale", "float32", None, None),
    ]


@pytest.mark.parametrize("n", [1, 7, 13, 1001, 4096])
def test_two_bit_tensor_takes_ceil_2n_over_8_bytes(tmp_path: Path, n: int) -> None:
    path = tmp_path / "w.mqnn"
    t = PackedTensor.from_codes("w", np.ones(n, dtype=np.int8), bits=2)
    write_container(path, {}, [t])
    assert container_info(path).payload_nbytes == math.ceil(2 * n / 8)
    assert path.stat().st_size == container_info(path).overhead_nbytes + math.ceil(2 * n / 8)


def test_out_of_range_codes_leave_no_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.mqnn"
    with pytest.raises(ValueError, match="3-bit signed"):
        write_container(path, {}, [PackedTensor.from_codes("w", np.array([4]), bits=3)])
    assert list(tmp_path.iterdir()) == []


def test_overwrite_is_atomic_replacement(tmp_path: Path) -> None:
    path = tmp_path / "m.mqnn"
    write_container(path, {"v": 1}, [])
    write_container(path, {"v": 2}, [PackedTensor.from_float32("x", np.arange(3.0))])
    assert read_container(path)[0] == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m.mqnn"]


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "m.mqnn"
    x = PackedTensor.from_float32("x", np.zeros(2))
    with pytest.raises(ValueError, match="appears twice"):
        write_container(path, {}, [x, x])
    with pytest.raises(ValueError, match="JSON"):
        write_container(path, {"v": np.float64("nan")}, [])
    with pytest.raises(ValueError, match="JSON"):
        write_container(path, {"v": object()}, [])
    with pytest.raises(ValueError, match="exactly one of codes or values"):
        PackedTensor("w", (1,))
    with pytest.raises(ValueError, match="holds 6 elements"):
        PackedTensor("w", (2, 3), codes=np.zeros(5, dtype=np.int8), bits=2)
    with pytest.raises(ValueError, match="bits"):
        PackedTensor("w", (1,), codes=np.zeros(1, dtype=np.int8), bits=20)
    with pytest.raises(ValueError, match="integer dtype"):
        PackedTensor.from_codes("w", np.zeros(3), bits=2)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- damaged files


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.mqnn"
    write_container(path, META, _mixed_tensors())
    return path


def _read_error(path: Path) -> str:
    with pytest.raises(ExportError) as info:
        read_container(path)
    with pytest.raises(ExportError):
        container_info(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "\n" not in msg
    return msg


def test_truncated_payload(good_file: Path) -> None:
    data = good_file.read_bytes()
    total = container_info(good_file).payload_nbytes
    good_file.write_bytes(data[:-100])
    msg = _read_error(good_file)
    found = total + 4 - 100  # the 4 CRC bytes went first, the rest is payload
    assert f"is truncated: expected {total} bytes of payload, found {found}" in msg
    assert msg.endswith("export it again")


@pytest.mark.parametrize("keep", [0, 5, 8, 11, 15, 40])
def test_truncated_inside_the_header(good_file: Path, keep: int) -> None:
    good_file.write_bytes(good_file.read_bytes()[:keep])
    assert "truncated" in _read_error(good_file)


def test_cut_crc_trailer(good_file: Path) -> None:
    good_file.write_bytes(good_file.read_bytes()[:-2])
    assert "payload is complete but the CRC32 trailer is cut off" in _read_error(good_file)


def test_trailing_bytes(good_file: Path) -> None:
    good_file.write_bytes(good_file.read_bytes() + b"junk")
    assert "4 unexpected bytes after its payload" in _read_error(good_file)


@pytest.mark.parametrize("where", ["payload", "header", "crc", "length"])
def test_flipped_byte_fails_crc(good_file: Path, where: str) -> None:
    data = bytearray(good_file.read_bytes())
    (hlen,) = struct.unpack_from("<I", data, 8)
    pos = {"payload": len(data) - 50, "header": 12 + 3, "crc": len(data) - 1, "length": 8}[where]
    data[pos] ^= 0x01
    good_file.write_bytes(bytes(data))
    msg = _read_error(good_file)
    assert "CRC32 mismatch" in msg or "truncated" in msg, msg
    if where in ("payload", "crc", "header"):
        assert "is corrupt: CRC32 mismatch (stored 0x" in msg


def test_wrong_magic(good_file: Path) -> None:
    data = good_file.read_bytes()
    good_file.write_bytes(b"\x89PNG\r\n\x1a\n" + data[8:])
    msg = _read_error(good_file)
    assert "is not a mogaqnn packed model" in msg and "MOGAQNN" in msg


def test_newer_format_version(good_file: Path) -> None:
    data = good_file.read_bytes()
    good_file.write_bytes(MAGIC[:-1] + b"\x02" + data[8:])
    assert "format version 2, this mogaqnn reads version 1" in _read_error(good_file)


def _forge(path: Path, header: bytes, payload: bytes = b"") -> None:
    """A file with a valid CRC around an arbitrary header: tests header validation."""
    body = MAGIC + struct.pack("<I", len(header)) + header + payload
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))


def test_bad_json_header_with_valid_crc(tmp_path: Path) -> None:
    path = tmp_path / "forged.mqnn"
    _forge(path, b"{not json")
    assert "has an unreadable JSON header" in _read_error(path)
    _forge(path, b"\xff\xfe")
    assert "unreadable JSON header" in _read_error(path)


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ([], "not an object"),
        ({"payload_nbytes": 0, "tensors": []}, "'meta'"),
        ({"meta": {}, "tensors": []}, "'payload_nbytes'"),
        ({"meta": {}, "payload_nbytes": 0}, "'tensors'"),
        ({"meta": {}, "payload_nbytes": 1, "tensors": [{"name": "x"}]}, "malformed"),
        (
            {
                "meta": {},
                "payload_nbytes": 1,
                "tensors": [{"name": "x", "kind": "int4", "shape": [1], "offset": 0, "nbytes": 1}],
            },
            "unknown kind",
        ),
        (
            {
                "meta": {},
                "payload_nbytes": 1,
                "tensors": [
                    {
                        "name": "x",
                        "kind": "codes",
                        "bits": 99,
                        "signed": True,
                        "shape": [1],
                        "offset": 0,
                        "nbytes": 1,
                    }
                ],
            },
            "malformed",
        ),
        (
            {
                "meta": {},
                "payload_nbytes": 4,
                "tensors": [
                    {"name": "x", "kind": "float32", "shape": [2], "offset": 0, "nbytes": 4}
                ],
            },
            "expected offset 0 with 8 bytes",
        ),
        (
            {
                "meta": {},
                "payload_nbytes": 3,
                "tensors": [
                    {"name": "x", "kind": "float32", "shape": [0], "offset": 0, "nbytes": 0}
                ],
            },
            "cover 0 bytes but payload_nbytes is 3",
        ),
    ],
)
def test_invalid_header_with_valid_crc(tmp_path: Path, header: object, fragment: str) -> None:
    path = tmp_path / "forged.mqnn"
    payload = b"\0" * (header.get("payload_nbytes", 0) if isinstance(header, dict) else 0)
    _forge(path, json.dumps(header).encode(), payload)
    msg = _read_error(path)
    assert "has an invalid header" in msg and fragment in msg, msg


def test_missing_file_is_an_export_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.mqnn"
    with pytest.raises(ExportError, match=f"cannot read {path}"):
        read_container(path)


def test_accepts_str_paths(tmp_path: Path) -> None:
    path = os.path.join(tmp_path, "s.mqnn")
    write_container(path, {"a": 1}, [PackedTensor.from_codes("w", np.array([0, 1]), 1, False)])
    meta, arrays = read_container(path)
    assert meta == {"a": 1} and arrays["w"].tolist() == [0, 1]
