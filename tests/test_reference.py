"""The FP32 reference of the match-fp32 rule starts where every individual starts."""

import copy
import dataclasses
import importlib

import torch

from mogaqnn import SearchConfig
from mogaqnn.fitness import make_evaluator
from mogaqnn.models import create_model
from mogaqnn.run import expansion_graph, load_config_dataset, search_space
from mogaqnn.search._reference import fp32_fine_tuned_accuracy


def _evaluator():
    cfg = SearchConfig(fitness="widen", search_train_samples=64, search_val_samples=64,
                       search_epochs=0.5)  # fmt: skip
    data = load_config_dataset(cfg)
    base = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    graph = expansion_graph(base, torch.zeros(2, 1, 28, 28), "auto")
    space = search_space(cfg, base, graph)
    return make_evaluator(cfg, base, graph, space, data, torch.device("cpu"), None)


def test_the_reference_starts_from_the_fitness_start_at_ratio_one():
    evaluator = _evaluator()
    started = []

    def start(genome):  # stands in for a supernet slice: records what it was asked for
        started.append(genome)
        model = copy.deepcopy(evaluator.base)
        torch.nn.init.zeros_(model.classifier[-1].weight)  # a start the base is not
        return model

    with_start = dataclasses.replace(evaluator, start=start)
    accuracy = fp32_fine_tuned_accuracy(with_start)
    (genome,) = started
    assert genome.ratios == (1.0,) * len(evaluator.space.groups)
    assert 0.0 <= accuracy <= 1.0


def test_without_a_start_the_reference_is_the_base_fine_tuned():
    evaluator = _evaluator()
    before = copy.deepcopy(evaluator.base.state_dict())
    fp32_fine_tuned_accuracy(evaluator)
    after = evaluator.base.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # fine-tuned a copy


def test_the_reference_distils_from_the_base_when_the_individuals_do(monkeypatch):
    # by module name: the attribute mogaqnn.search is the search function, not the package
    reference = importlib.import_module("mogaqnn.search._reference")
    evaluator = _evaluator()
    distilling = dataclasses.replace(
        evaluator, settings=dataclasses.replace(evaluator.settings, distill_weight=0.5)
    )
    seen = []

    def spy(model, data, settings, **kwargs):
        seen.append((settings.distill_weight, kwargs.get("teacher")))

    monkeypatch.setattr(reference, "train_model", spy)
    fp32_fine_tuned_accuracy(distilling)
    assert seen == [(0.5, distilling.teacher)]  # the individuals' settings and teacher
