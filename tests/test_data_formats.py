"""File formats read by mogaqnn.data: IDX, CIFAR pickles, image folders, written here by hand."""

from __future__ import annotations

import gzip
import importlib.machinery
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from mogaqnn.data import load_dataset, read_cifar_batch, read_idx
from mogaqnn.errors import ConfigError, DatasetError

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
IDX_TEST_NAMES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No $MOGAQNN_DATA and an empty cache, so only what a test writes is found."""
    monkeypatch.delenv("MOGAQNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# --- writers in the official formats ------------------------------------------------------


def write_idx(path: Path, arr: np.ndarray, *, gz: bool = False) -> Path:
    """IDX as specified: 0, 0, type byte, ndim, big-endian uint32 dims, big-endian data."""
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}
    code = codes[arr.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_idx_dataset(
    folder: Path, n_train: int = 30, n_test: int = 20, *, gz: bool = False, seed: int = 0
) -> dict[str, np.ndarray]:
    """Four IDX files of 28x28 images with labels cycling through 0..9."""
    rng = np.random.default_rng(seed)
    arrays = {
        "xtr": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "ytr": (np.arange(n_train) % 10).astype(np.uint8),
        "xte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "yte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    write_idx(folder / IDX_NAMES[0], arrays["xtr"], gz=gz)
    write_idx(folder / IDX_NAMES[1], arrays["ytr"], gz=gz)
    write_idx(folder / IDX_TEST_NAMES[0], arrays["xte"], gz=gz)
    write_idx(folder / IDX_TEST_NAMES[1], arrays["yte"], gz=gz)
    return arrays


def denormalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return ((x * s + m) * 255.0).round().to(torch.int64).numpy()


# --- IDX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32])
def test_read_idx_round_trips_every_type(tmp_path: Path, gz: bool, dtype: type) -> None:
    arr = (np.arange(2 * 3 * 4) * 37 - 100).reshape(2, 3, 4)
    arr = (arr % 256).astype(dtype) if dtype is np.uint8 else arr.astype(dtype)
    path = write_idx(tmp_path / "a-idx3", arr, gz=gz)
    out = read_idx(path)
    assert out.shape == (2, 3, 4)
    assert out.dtype.isnative and out.dtype.kind == np.dtype(dtype).kind
    np.testing.assert_array_equal(out, arr)
    assert not out.flags.writeable  # cached arrays must not be changed by a caller


def test_read_idx_rereads_a_rewritten_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "l", np.array([1, 2, 3], np.uint8))
    assert read_idx(path).tolist() == [1, 2, 3]
    write_idx(tmp_path / "l", np.array([4, 5, 6, 7], np.uint8))
    assert read_idx(path).tolist() == [4, 5, 6, 7]


@pytest.mark.parametrize(
    ("mangle", "phrase"),
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "longer than its header says"),
        (lambda b: b"\x01" + b[1:], "not an IDX file"),
        (lambda b: b[:2] + b"\x07" + b[3:], "unknown element type 0x07"),
        (lambda b: b[:9], "truncated inside its header"),
        (lambda b: gzip.compress(b)[:-12], "corrupt or truncated"),
    ],
)
def test_read_idx_rejects_damaged_files(tmp_path: Path, mangle, phrase: str) -> None:
    good = write_idx(tmp_path / "good", np.zeros((4, 2, 2), np.uint8)).read_bytes()
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(mangle(good))
    with pytest.raises(DatasetError, match=phrase) as info:
        read_idx(bad)
    assert str(bad) in str(info.value)


def test_mnist_from_idx_files_in_data_dir_subfolder(tmp_path: Path) -> None:
    arrays = make_idx_dataset(tmp_path / "data" / "mnist", n_train=100, n_test=20)
    d = load_dataset("mnist", data_dir=tmp_path / "data", val_fraction=0.2, seed=3)
    assert (len(d.train), len(d.val), len(d.test)) == (80, 20, 20)
    assert d.train.x.shape == (80, 1, 28, 28) and d.train.x.dtype == torch.float32
    assert d.test.y.dtype == torch.int64
    assert (d.num_classes, d.in_channels, d.image_size, d.augment_flip) == (10, 1, 28, False)
    assert torch.bincount(d.val.y, minlength=10).tolist() == [2] * 10
    # The test split is the file's content in file order, exactly, after undoing the scaling.
    np.testing.assert_array_equal(denormalise(d.test.x, d.mean, d.std)[:, 0], arrays["xte"])
    np.testing.assert_array_equal(d.test.y.numpy(), arrays["yte"])
    # Statistics come from the train split only.
    assert abs(float(d.train.x.mean())) < 1e-4 and abs(float(d.train.x.std()) - 1) < 1e-2


def test_fashion_mnist_from_torchvision_layout_under_env_var_gzipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = make_idx_dataset(tmp_path / "root" / "FashionMNIST" / "raw", gz=True, seed=5)
    monkeypatch.setenv("MOGAQNN_DATA", str(tmp_path / "root"))
    d = load_dataset("fashion-mnist")
    np.testing.assert_array_equal(denormalise(d.test.x, d.mean, d.std)[:, 0], arrays["xte"])
    assert d.class_names[0] == "T-shirt/top" and len(d.class_names) == 10


def test_data_dir_itself_and_its_precedence_over_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_idx_dataset(tmp_path / "direct", n_test=20, seed=1)
    make_idx_dataset(tmp_path / "env" / "mnist", n_test=10, seed=2)
    monkeypatch.setenv("MOGAQNN_DATA", str(tmp_path / "env"))
    assert len(load_dataset("mnist", data_dir=tmp_path / "direct").test) == 20
    assert len(load_dataset("mnist").test) == 10


def test_idx_label_count_mismatch_is_reported(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / IDX_NAMES[1], np.zeros(29, np.uint8))
    with pytest.raises(DatasetError, match=r"labels of shape \(29,\) for the 30 images"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_labels_out_of_range_are_reported(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / IDX_TEST_NAMES[1], np.full(20, 12, np.uint8))
    with pytest.raises(DatasetError, match=r"labels from 12 to 12, outside 0\.\.9"):
        load_dataset("mnist", data_dir=tmp_path)


def test_truncated_real_format_file_inside_a_dataset(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "mnist", gz=True)
    path = tmp_path / "mnist" / (IDX_NAMES[0] + ".gz")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated.*replace it with a fresh copy"):
        load_dataset("mnist", data_dir=tmp_path)


def test_partial_folder_is_named_in_the_not_found_message(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "mnist")
    (tmp_path / "mnist" / IDX_TEST_NAMES[1]).unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    msg = str(info.value)
    assert f"{tmp_path / 'mnist'} lacks t10k-labels-idx1-ubyte" in msg
    assert "downloading was turned off" in msg


def _fake_torchvision(monkeypatch: pytest.MonkeyPatch, dataset_class: type) -> list[tuple]:
    """Install a stand-in torchvision whose MNIST class records its calls."""
    calls: list[tuple] = []

    class Recorded(dataset_class):
        def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
            calls.append((root, train, download))
            super().__init__(root, train, download)

    tv = types.ModuleType("torchvision")
    tv.__spec__ = importlib.machinery.ModuleSpec("torchvision", None)
    datasets = types.ModuleType("torchvision.datasets")
    datasets.__spec__ = importlib.machinery.ModuleSpec("torchvision.datasets", None)
    datasets.MNIST = Recorded
    tv.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)
    return calls


def test_download_with_torchvision_then_read_with_our_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Downloader:  # writes what torchvision's MNIST writes: <root>/MNIST/raw/<idx files>
        def __init__(self, root: str, train: bool, download: bool) -> None:
            make_idx_dataset(Path(root) / "MNIST" / "raw", n_test=10)

    calls = _fake_torchvision(monkeypatch, Downloader)
    d = load_dataset("mnist")  # no data_dir: into the cache
    assert calls == [(str(tmp_path / "cache" / "mogaqnn"), True, True)]
    assert len(d.test) == 10
    load_dataset("mnist")
    assert len(calls) == 1  # found in the cache the second time


def test_failed_download_says_why_and_how_to_get_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Offline:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            raise OSError("Temporary failure in name resolution")

    _fake_torchvision(monkeypatch, Offline)
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", data_dir=tmp_path / "d")
    msg = str(info.value)
    assert f"torchvision's download into {tmp_path / 'd'} failed" in msg
    assert "Temporary failure in name resolution" in msg
    assert "--data-dir" in msg and str(tmp_path / "d" / "MNIST" / "raw") in msg


# --- CIFAR ----------------------------------------------------------------------------------


def cifar_images(n: int, seed: int) -> np.ndarray:
    """uint8 [n, 3, 32, 32] with a different value range per channel, to catch plane mix-ups."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 80, (n, 3, 32, 32), dtype=np.uint8)
    x[:, 1] += 80
    x[:, 2] += 160
    return x


def write_cifar_batch(path: Path, x: np.ndarray, labels: dict[bytes, list[int]]) -> None:
    """The python-version layout: b'data' uint8 [N, 3072] (R plane, G plane, B plane)."""
    batch = {b"batch_label": b"test batch", b"data": x.reshape(len(x), 3072), **labels}
    batch[b"filenames"] = [f"img_{i}.png".encode() for i in range(len(x))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))


def make_cifar10(folder: Path, per_batch: int = 20) -> dict[str, np.ndarray]:
    xs, ys = [], []
    for i in range(1, 6):
        x, y = cifar_images(per_batch, i), [(j + i) % 10 for j in range(per_batch)]
        write_cifar_batch(folder / f"data_batch_{i}", x, {b"labels": y})
        xs.append(x)
        ys.extend(y)
    xte, yte = cifar_images(10, 99), list(range(10))
    write_cifar_batch(folder / "test_batch", xte, {b"labels": yte})
    return {"xtr": np.concatenate(xs), "ytr": np.array(ys), "xte": xte, "yte": np.array(yte)}


def test_cifar10_from_python_batches(tmp_path: Path) -> None:
    arrays = make_cifar10(tmp_path / "cifar-10-batches-py")
    d = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0.1)
    assert (len(d.train), len(d.val), len(d.test)) == (90, 10, 10)
    assert (d.num_classes, d.in_channels, d.image_size, d.augment_flip) == (10, 3, 32, True)
    assert d.class_names[0] == "airplane"
    np.testing.assert_array_equal(denormalise(d.test.x, d.mean, d.std), arrays["xte"])
    np.testing.assert_array_equal(d.test.y.numpy(), arrays["yte"])
    assert d.mean[0] < d.mean[1] < d.mean[2]  # channel planes in R, G, B order
    # Train + val together are the five batches' images, each exactly once.
    both = torch.cat([d.train.x, d.val.x])
    got = np.sort(denormalise(both, d.mean, d.std).reshape(100, -1), axis=0)
    np.testing.assert_array_equal(got, np.sort(arrays["xtr"].reshape(100, -1), axis=0))


def test_cifar100_uses_fine_labels_and_meta_names(tmp_path: Path) -> None:
    folder = tmp_path / "cifar100" / "cifar-100-python"
    fine = [(7 * i) % 100 for i in range(200)]
    coarse = [i % 20 for i in range(200)]
    write_cifar_batch(
        folder / "train", cifar_images(200, 1), {b"fine_labels": fine, b"coarse_labels": coarse}
    )
    write_cifar_batch(
        folder / "test",
        cifar_images(100, 2),
        {b"fine_labels": list(range(100)), b"coarse_labels": [0] * 100},
    )
    names = [f"class{i}".encode() for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": names}, protocol=2))
    d = load_dataset("cifar100", data_dir=tmp_path)
    assert d.num_classes == 100 and d.class_names[42] == "class42"
    assert sorted(torch.cat([d.train.y, d.val.y]).tolist()) == sorted(fine)
    assert d.test.y.tolist() == list(range(100))


def test_pickle_written_by_numpy_1_is_read(tmp_path: Path) -> None:
    """The official files name numpy.core.multiarray, which numpy 2 moved to numpy._core."""
    x = cifar_images(4, 0)
    path = tmp_path / "data_batch_1"
    write_cifar_batch(path, x, {b"labels": [1, 2, 3, 4]})
    path.write_bytes(path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray" in path.read_bytes()
    got, y = read_cifar_batch(path, b"labels")
    np.testing.assert_array_equal(got, x)
    assert y.tolist() == [1, 2, 3, 4]


def test_pickle_naming_other_code_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(DatasetError, match="never needs"):
        read_cifar_batch(path, b"labels")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (lambda good: good[: len(good) // 2], "corrupt or truncated"),
        (lambda good: b"not a pickle at all", "corrupt or truncated"),
        (lambda good: pickle.dumps({b"data": np.zeros((2, 100), np.uint8)}), "lacks the keys"),
        (
            lambda good: pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
            r"instead of uint8 \[N, 3072\]",
        ),
    ],
)
def test_damaged_cifar_batch(tmp_path: Path, content, phrase: str) -> None:
    make_cifar10(tmp_path / "cifar-10-batches-py", per_batch=4)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(content(path.read_bytes()))
    with pytest.raises(DatasetError, match=phrase) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(path) in str(info.value)


def test_missing_cifar_lists_where_it_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MOGAQNN_DATA", str(tmp_path / "shared"))
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", data_dir=tmp_path / "mine", download=False)
    msg = str(info.value)
    for folder in ("mine/cifar-10-batches-py", "shared/cifar-10-batches-py", "cache/mogaqnn"):
        assert folder in msg
    assert "data_batch_1" in msg and "CIFAR-10 python version" in msg


# --- image folders --------------------------------------------------------------------------

COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "eel": (30, 30, 200)}


def write_image_folder(
    root: Path, per_class: int = 10, size: int = 8, mode: str = "RGB", ext: str = ".png"
) -> None:
    from PIL import Image

    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            value = colour if mode == "RGB" else colour[0] // 2 + i
            Image.new(mode, (size, size), value).save(root / name / f"{i:03d}{ext}")


def test_image_folder_classes_labels_and_heldout_test(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / ".cache").mkdir()  # hidden folders are not classes
    d = load_dataset(f"imagefolder:{tmp_path / 'imgs'}", val_fraction=0.25)
    assert d.class_names == ("cat", "dog", "eel") and d.num_classes == 3
    assert (d.in_channels, d.image_size, d.augment_flip) == (3, 8, True)
    # 10 per class: 2 held out as test (20%), then 2 of the other 8 as val (25%).
    assert torch.bincount(d.test.y).tolist() == [2, 2, 2]
    assert torch.bincount(d.val.y).tolist() == [2, 2, 2]
    assert torch.bincount(d.train.y).tolist() == [6, 6, 6]
    # Every image's colour matches its label: labels follow the folders.
    pixels = denormalise(d.train.x, d.mean, d.std)[:, :, 0, 0]
    for label, px in zip(d.train.y.tolist(), pixels, strict=True):
        assert tuple(px) == COLOURS[d.class_names[label]]
    # The held-out test split does not move with the run's seed.
    other = load_dataset(f"imagefolder:{tmp_path / 'imgs'}", val_fraction=0.25, seed=9)
    assert torch.equal(other.test.x, d.test.x)


def test_image_folder_grey_resize_and_forced_channels(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "g", per_class=5, size=6, mode="L", ext=".jpg")
    d = load_dataset(f"imagefolder:{tmp_path / 'g'}")
    assert (d.in_channels, d.image_size, d.augment_flip) == (1, 6, False)
    d = load_dataset(f"imagefolder:{tmp_path / 'g'}", image_size=4, channels=3)
    assert d.train.x.shape[1:] == (3, 4, 4) and d.in_channels == 3 and d.image_size == 4


def test_image_folder_with_train_and_test_folders(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds" / "train", per_class=4)
    write_image_folder(tmp_path / "ds" / "test", per_class=3)
    d = load_dataset(f"imagefolder:{tmp_path / 'ds'}", val_fraction=0.25)
    assert d.class_names == ("cat", "dog", "eel")
    assert (len(d.train), len(d.val), len(d.test)) == (9, 3, 9)


def test_image_folder_size_mismatch_needs_image_size(tmp_path: Path) -> None:
    from PIL import Image

    write_image_folder(tmp_path / "m", per_class=3)
    odd = tmp_path / "m" / "dog" / "zzz.png"
    Image.new("RGB", (9, 8)).save(odd)
    with pytest.raises(DatasetError, match=r"is 9x8 but .* is 8x8; pass image_size") as info:
        load_dataset(f"imagefolder:{tmp_path / 'm'}")
    assert str(odd) in str(info.value)
    d = load_dataset(f"imagefolder:{tmp_path / 'm'}", image_size=8)
    assert len(d.train) + len(d.val) + len(d.test) == 10


def test_image_folder_bad_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "e", per_class=2)
    (tmp_path / "e" / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"class folder .*empty holds no images"):
        load_dataset(f"imagefolder:{tmp_path / 'e'}")

    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")

    (tmp_path / "e" / "empty").rmdir()
    (tmp_path / "e" / "eel" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match=r"cannot read image .*001\.png"):
        load_dataset(f"imagefolder:{tmp_path / 'e'}")

    with pytest.raises(ConfigError, match="channels must be 1"):
        load_dataset(f"imagefolder:{tmp_path / 'e'}", channels=2)

    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(DatasetError, match="pip install pillow"):
        load_dataset(f"imagefolder:{tmp_path / 'e'}")


def test_image_folder_single_class_and_non_square(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "one" / "a").mkdir(parents=True)
    Image.new("L", (5, 5)).save(tmp_path / "one" / "a" / "x.png")
    with pytest.raises(DatasetError, match="at least two"):
        load_dataset(f"imagefolder:{tmp_path / 'one'}")
    (tmp_path / "one" / "b").mkdir()
    Image.new("L", (5, 7)).save(tmp_path / "one" / "b" / "y.png")
    Image.new("L", (5, 7)).save(tmp_path / "one" / "a" / "w.png")  # sorts first
    with pytest.raises(DatasetError, match="5x7, not square"):
        load_dataset(f"imagefolder:{tmp_path / 'one'}")
