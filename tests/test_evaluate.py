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


def test_the_wilson_bound_lies_above_the_accuracy_and_narrows_with_more_images():
    from mogaqnn.fitness import wilson_upper

    assert 0.5 < wilson_upper(50, 100, 3.0) < wilson_upper(5, 10, 3.0) < 1.0
    assert wilson_upper(0, 10, 3.0) > 0.0 and wilson_upper(10, 10, 3.0) == 1.0
    assert wilson_upper(500, 1000, 3.0) - 0.5 < 0.05


class _Guess(torch.nn.Module):
    """Predicts class ``c`` for every image."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.c = c

    def forward(self, x):
        out = torch.zeros(len(x), 10)
        out[:, self.c] = 1.0
        return out


def test_a_clearly_dominated_val_pass_stops_and_a_whole_one_is_evaluate_accuracy():
    from mogaqnn.fitness import accuracy_until_dominated
    from mogaqnn.train import evaluate_accuracy

    data = load_config_dataset(SearchConfig(dataset="mnist5k")).train  # 4,500 images
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    guess = _Guess(3)
    whole, seen = accuracy_until_dominated(guess, data, order, None, 3.0, batch_size=256)
    assert seen == len(data) and whole == evaluate_accuracy(guess, data)
    # ~10 % correct against a bar of 90 %: stopped after its first batch, at its estimate
    acc, seen = accuracy_until_dominated(guess, data, order, 0.9, 3.0, batch_size=256)
    assert seen == 256 and abs(acc - whole) < 0.06
    # near the bar it goes on to the end; sigmas 0 never stops
    assert accuracy_until_dominated(guess, data, order, whole + 0.01, 3.0, batch_size=256)[1] == (
        len(data)
    )
    assert accuracy_until_dominated(guess, data, order, 0.9, 0.0, batch_size=256)[1] == len(data)


def test_an_evaluation_under_a_bar_it_cannot_reach_stops_early():
    from mogaqnn.fitness import make_evaluator
    from mogaqnn.models import create_model
    from mogaqnn.run import expansion_graph, search_space

    cfg = SearchConfig(fitness="widen", search_train_samples=200, search_epochs=0.1,
                       early_stop_sigmas=3.0)  # fmt: skip
    data = load_config_dataset(cfg)
    base = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)  # untrained
    graph = expansion_graph(base, data.train.x[:2], "auto")
    space = search_space(cfg, base, graph)
    evaluator = make_evaluator(cfg, base, graph, space, data, torch.device("cpu"), None)
    genome = space.uniform(2, 8)
    whole = evaluator(genome)
    assert whole.val_samples == len(data.val)
    stopped = evaluator(genome, lambda size: 0.99 if size >= whole.size_bits else None)
    assert stopped.val_samples < len(data.val) and stopped.val_accuracy < 0.5


def test_the_bar_is_the_best_accuracy_at_most_the_size():
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from mogaqnn.search._objective import _bar

    study = optuna.create_study(directions=["minimize", "minimize"])
    for acc, size in ((0.90, 100), (0.95, 300), (0.80, 50)):
        study.add_trial(create_trial(
            values=[1 - acc, size], params={"x": 0.5},
            distributions={"x": FloatDistribution(0, 1)},
            user_attrs={"val_accuracy": acc, "size_bits": size},
        ))  # fmt: skip
    assert _bar(study, 40) is None
    assert _bar(study, 100) == 0.90 and _bar(study, 299) == 0.90 and _bar(study, 300) == 0.95
