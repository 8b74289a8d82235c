"""Stratified, seeded splits and subsets of in-memory labelled tensors."""

from __future__ import annotations

import numpy as np

__all__ = ["stratified_split", "stratified_subset"]


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (rest, part) where ``part`` holds ``fraction`` of every class.

    Per class the part gets ``round(n_class * fraction)`` samples, so class proportions
    differ from the whole by less than one sample per class.
    """
    rng = np.random.default_rng(seed)
    rest, part = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        k = int(round(len(idx) * fraction))
        part.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(part))


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified subset of ``n`` samples (all of them when ``n >= len``)."""
    if n >= len(labels):
        return np.arange(len(labels))
    _, part = stratified_split(labels, n / len(labels), seed)
    return part
