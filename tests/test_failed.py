"""Failed individuals: a diverging training is recorded with its reason, the search goes on,
each generation still fills its population, and a failed individual is never chosen."""

import csv
import json

import torch

from mogaqnn import Search, SearchConfig
from mogaqnn.search import Evaluator
from tests._runs import generation_sizes, read_trials

POPULATION, GENERATIONS = 4, 3


def test_diverging_individuals_fail_and_the_search_finishes(tmp_path, monkeypatch):
    build = Evaluator.build

    def build_nan_at_2_bits(self, genome):
        """The first layer at 2 bits "diverges": its logits become NaN, so train_model
        raises TrainingDiverged as it does for a real divergence."""
        model = build(self, genome)
        if genome.weight_bits[0] == 2:
            model.register_forward_hook(lambda m, i, out: out * torch.nan)
        return model

    monkeypatch.setattr(Evaluator, "build", build_nan_at_2_bits)
    config = SearchConfig(
        population=POPULATION, generations=GENERATIONS, seed=0, pretrain_epochs=1,
        search_epochs=0.5, final_epochs=0.5, search_train_samples=300,
        search_val_samples=200, weight_bits=(2, 4), act_bits=(4, 8),
        expansion_ratios=(1.0, 1.5), progress=False, out=str(tmp_path / "run"),
    )  # fmt: skip
    result = Search(config).run()

    rows = list(csv.DictReader((tmp_path / "run" / "pareto.csv").open()))
    failed = [r for r in rows if r["state"] == "FAIL"]
    assert failed, "seed 0 proposes 2-bit first layers; some must have failed"
    assert all(r["fail_reason"].startswith("TrainingDiverged: loss became nan") for r in failed)
    assert all(r["w:features.0"] == "2" for r in failed)
    assert result.chosen["layers"][0]["weight_bits"] == 4
    assert result.data["search"]["failed"] == len(failed)
    trials = read_trials(f"journal:{tmp_path / 'run' / 'study.journal'}")
    assert generation_sizes(trials) == {g: POPULATION for g in range(GENERATIONS)}
    chosen = next(r for r in rows if r["chosen"] == "1")
    assert chosen["state"] == "COMPLETE"
    assert json.loads((tmp_path / "run" / "result.json").read_text())["search"]["evaluations"] == (
        POPULATION * GENERATIONS
    )


class _MaskedNet(torch.nn.Module):
    """A user model with a bug the channel analysis cannot see: a fixed 8-channel mask, so
    every widened genome fails with a shape error (the FP32 base trains fine)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.register_buffer("mask", torch.ones(1, 8, 1, 1))
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x)) * self.mask
        return self.fc(self.pool(x).flatten(1))


def test_a_shape_error_in_a_user_model_stops_the_search_with_that_error(tmp_path, capfd):
    import pytest

    from mogaqnn.errors import EvaluationError

    config = SearchConfig(
        population=4, generations=2, seed=0, pretrain_epochs=0, search_epochs=0.5,
        final_epochs=0.5, search_train_samples=100, search_val_samples=100, weight_bits=(4,),
        act_bits=(8,), expansion_ratios=(1.5,), progress=False, out=str(tmp_path / "run"),
    )  # fmt: skip
    with pytest.raises(EvaluationError) as err:
        Search(config, model=_MaskedNet()).run()
    message = str(err.value)
    assert "raised RuntimeError: The size of tensor a (12) must match" in message
    assert "expansion ratios [1.5]" in message and "not a divergence" in message
    assert "qat_lr" not in message
    assert "Traceback" not in capfd.readouterr().err  # Optuna's per-trial log is kept quiet
    trials = read_trials(f"journal:{tmp_path / 'run' / 'study.journal'}")
    assert len([t for t in trials if t.state.name == "FAIL"]) == 1  # it stopped at once
