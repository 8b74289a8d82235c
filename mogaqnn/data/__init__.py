"""Datasets as normalised in-memory tensors with train / val / test splits."""

from ._datasets import DatasetInfo, list_datasets, load_dataset
from ._splits import stratified_split, stratified_subset
from ._tensors import Augmentation, DatasetSplits, LabelledImages, iterate_batches

__all__ = [
    "Augmentation",
    "DatasetInfo",
    "DatasetSplits",
    "LabelledImages",
    "iterate_batches",
    "list_datasets",
    "load_dataset",
    "stratified_split",
    "stratified_subset",
]
