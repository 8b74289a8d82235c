"""The fitness evaluation: what it calibrates on."""

import numpy as np
import torch

from mogaqnn import SearchConfig
from mogaqnn.fitness import CALIBRATION_SAMPLES, Evaluator, calibration_indices
from mogaqnn.run import load_config_dataset, subset


def _evaluator(train_data) -> Evaluator:
    return Evaluator(
        base=None, graph=None, space=None, train_data=train_data, val_data=None,
        settings=None, seed=0, widen_noise=0.0, device=torch.device("cpu"),
    )  # type: ignore[arg-type]  # fmt: skip


def test_calibration_sample_covers_every_class_of_a_class_ordered_split():
    data = load_config_dataset(SearchConfig(dataset="mnist5k"))
    train = subset(data.train, 2000, 0)
    assert len(np.unique(train.y[:CALIBRATION_SAMPLES].numpy())) == 1  # stored by class
    images = _evaluator(train).calibration_images()
    assert images.shape[0] == CALIBRATION_SAMPLES
    # each calibration image is a training image; their labels span all ten digits
    match = (images.flatten(1)[:, None, :] == train.x.flatten(1)[None]).all(dim=2)
    labels = {int(train.y[row.nonzero()[0, 0]]) for row in match}
    assert labels == set(range(10))


def test_calibration_indices_are_seeded_balanced_and_cover_small_classes():
    labels = np.array([0] * 500 + [1] * 3 + [2] * 200)
    a = calibration_indices(labels, 30, seed=1)
    assert np.array_equal(a, calibration_indices(labels, 30, seed=1))
    assert not np.array_equal(a, calibration_indices(labels, 30, seed=2))
    counts = np.bincount(labels[a], minlength=3)
    assert counts.tolist() == [14, 3, 13] or counts.tolist() == [13, 3, 14]
    assert len(np.unique(a)) == 30
