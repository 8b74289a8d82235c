"""Stratified splits and subsets, augmentation and the batch iterator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mogaqnn.data import (
    Augmentation,
    LabelledImages,
    iterate_batches,
    load_dataset,
    stratified_split,
    stratified_subset,
)

# Unequal classes (and one tiny one) make rounding per class visible.
LABELS = np.repeat(np.arange(5), [100, 37, 64, 3, 250])
rng = np.random.default_rng(0)
LABELS = LABELS[rng.permutation(len(LABELS))]


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_stratified_split_is_a_partition_with_class_proportions(fraction: float) -> None:
    rest, part = stratified_split(LABELS, fraction, seed=1)
    assert np.intersect1d(rest, part).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([rest, part])), np.arange(len(LABELS)))
    for cls, n in enumerate(np.bincount(LABELS)):
        assert abs(np.sum(LABELS[part] == cls) - n * fraction) <= 1.0  # within one sample


def test_stratified_split_is_deterministic_by_seed() -> None:
    a = stratified_split(LABELS, 0.2, seed=5)
    b = stratified_split(LABELS, 0.2, seed=5)
    c = stratified_split(LABELS, 0.2, seed=6)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_stratified_subset() -> None:
    sub = stratified_subset(LABELS, 91, seed=0)
    assert len(np.unique(sub)) == len(sub)
    assert abs(len(sub) - 91) <= 5  # per-class rounding, at most half a sample per class
    counts = np.bincount(LABELS[sub], minlength=5)
    expected = np.bincount(LABELS) * 91 / len(LABELS)
    assert np.all(np.abs(counts - expected) <= 1.0)
    np.testing.assert_array_equal(sub, stratified_subset(LABELS, 91, seed=0))
    np.testing.assert_array_equal(stratified_subset(LABELS, 10_000, seed=0), np.arange(454))


def test_val_is_carved_from_train_disjointly_and_by_seed() -> None:
    a = load_dataset("mnist5k", val_fraction=0.1, seed=0)
    b = load_dataset("mnist5k", val_fraction=0.1, seed=0)
    c = load_dataset("mnist5k", val_fraction=0.1, seed=1)
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.val.x, c.val.x)
    # No image appears in two splits: compare the images' bytes.
    keys = {
        name: {bytes(img.numpy().tobytes()) for img in split.x}
        for name, split in (("train", a.train), ("val", a.val), ("test", a.test))
    }
    assert not keys["train"] & keys["val"]
    assert not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    assert torch.bincount(a.val.y).tolist() == [40] * 10


def _reference_crop(x: torch.Tensor, p: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    h, w = x.shape[2:]
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(len(x))])


def test_random_crop_is_per_sample_and_matches_a_loop() -> None:
    x = torch.randn(64, 3, 8, 8)
    out = Augmentation(crop_padding=2)(x, torch.Generator().manual_seed(3))
    shifts = torch.randint(0, 5, (2, 64), generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, _reference_crop(x, 2, shifts[0], shifts[1]))
    assert len({(int(a), int(b)) for a, b in shifts.T}) > 5  # samples got different shifts


def test_flip_and_determinism() -> None:
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).reshape(2, 1, 2, 3).repeat(32, 1, 1, 1)
    aug = Augmentation(horizontal_flip=True)
    out = aug(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, s.flip(2)) for o, s in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, s) for o, s in zip(out, x, strict=True)])
    assert bool((flipped | kept).all()) and 0 < int(flipped.sum()) < len(x)
    assert torch.equal(out, aug(x, torch.Generator().manual_seed(0)))
    assert aug(x).shape == x.shape  # no generator: torch's global random state
    assert not Augmentation().active and aug.active


def test_iterate_batches_visits_every_sample_once_and_augments() -> None:
    x = torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 4, 4).clone()
    data = LabelledImages(x, torch.arange(10))
    batches = list(
        iterate_batches(data, 4, shuffle=True, generator=torch.Generator().manual_seed(0))
    )
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(10))
    for x, y in batches:
        assert torch.equal(x[:, 0, 0, 0], y.float())  # images stay with their labels
    aug = Augmentation(crop_padding=1)
    xs = [x for x, _ in iterate_batches(data, 10, shuffle=False, augmentation=aug)]
    assert (xs[0] == 0).any()  # padding shifted in (zero) for at least some samples
    plain = next(iterate_batches(data, 10, shuffle=False))[0]
    assert torch.equal(plain, data.x)
