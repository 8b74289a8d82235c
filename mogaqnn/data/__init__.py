"""Datasets as normalised in-memory tensors with train / val / test splits.

``load_dataset(name)`` reads one of ``mnist5k`` (offline, the default), ``fashion-mnist``,
``mnist``, ``cifar10``, ``cifar100`` or ``imagefolder:PATH``; ``describe_datasets()``
says which of them this machine has and where.
"""

from ._cifar import read_cifar_batch
from ._datasets import (
    IMAGEFOLDER_PREFIX,
    DatasetInfo,
    RawDataset,
    describe_datasets,
    list_datasets,
    load_dataset,
)
from ._idx import read_idx
from ._imagefolder import IMAGE_EXTENSIONS
from ._sources import DATA_ENV, cache_dir
from ._splits import stratified_split, stratified_subset
from ._tensors import Augmentation, DatasetSplits, LabelledImages, iterate_batches

__all__ = [
    "DATA_ENV",
    "IMAGE_EXTENSIONS",
    "IMAGEFOLDER_PREFIX",
    "Augmentation",
    "DatasetInfo",
    "DatasetSplits",
    "LabelledImages",
    "RawDataset",
    "cache_dir",
    "describe_datasets",
    "iterate_batches",
    "list_datasets",
    "load_dataset",
    "read_cifar_batch",
    "read_idx",
    "stratified_split",
    "stratified_subset",
]
