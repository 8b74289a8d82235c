"""Failed individuals: a diverging training is recorded with its reason, the search goes on,
each generation still fills its population, and a failed individual is never chosen."""

import csv
import json

import torch

from mogaqnn import Search, SearchConfig
from mogaqnn import recipe as recipe_module
from mogaqnn.cli import main
from mogaqnn.fitness import Evaluator
from mogaqnn.quant import QuantLayer
from mogaqnn.train import TrainingDiverged, train_model
from tests._runs import generation_sizes, read_trials
from tests.test_cli import TINY

POPULATION, GENERATIONS = 4, 3


def test_diverging_individuals_fail_and_the_search_finishes(tmp_path, monkeypatch):
    build = Evaluator.build

    def build_nan_at_2_bits(self, genome, float_model=None):
        """The first layer at 2 bits "diverges": its logits become NaN, so train_model
        raises TrainingDiverged as it does for a real divergence."""
        model = build(self, genome, float_model)
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
    # the uniform 2-bit QAT model diverges too: recorded as failed beside the others
    uniform = {u["bits"]: u for u in result.data["uniform_qat"]}
    assert uniform[2]["failed"].startswith("loss became nan") and "failed" not in uniform[8]


SHAPE_ERROR = (
    "The size of tensor a (12) must match the size of tensor b (8) at non-singleton dimension 1"
)


def _raise_shape_error(module, inputs, output):
    raise RuntimeError(SHAPE_ERROR)


def test_a_shape_error_in_a_user_model_stops_the_search_with_that_error(
    tmp_path, capfd, monkeypatch
):
    """A user model that fails at its widened width in a way no analysis can foresee (here a
    hook raising what a fixed-size mask raises): the search stops at the first evaluation
    with that error, not with advice about the learning rate."""
    import pytest

    from mogaqnn.errors import EvaluationError

    config = SearchConfig(
        population=4, generations=2, seed=0, pretrain_epochs=0, search_epochs=0.5,
        final_epochs=0.5, search_train_samples=100, search_val_samples=100, weight_bits=(4,),
        act_bits=(8,), expansion_ratios=(1.5,), progress=False, out=str(tmp_path / "run"),
    )  # fmt: skip
    build = Evaluator.build

    def build_failing(self, genome, float_model=None):
        model = build(self, genome, float_model)
        model.register_forward_hook(_raise_shape_error)
        return model

    monkeypatch.setattr(Evaluator, "build", build_failing)
    with pytest.raises(EvaluationError) as err:
        Search(config).run()
    message = str(err.value)
    assert "raised RuntimeError: The size of tensor a (12) must match" in message
    assert "expansion ratios [1.5, 1.5, 1.5, 1.5]" in message and "not a divergence" in message
    assert "qat_lr" not in message
    assert "Traceback" not in capfd.readouterr().err  # Optuna's per-trial log is kept quiet
    trials = read_trials(f"journal:{tmp_path / 'run' / 'study.journal'}")
    assert len([t for t in trials if t.state.name == "FAIL"]) == 1  # it stopped at once


def _tiny(out, **changes) -> SearchConfig:
    config = SearchConfig(
        population=4, generations=2, seed=0, pretrain_epochs=1, search_epochs=0.5,
        final_epochs=0.5, search_train_samples=300, search_val_samples=200,
        weight_bits=(2, 4, 8), act_bits=(4, 8), expansion_ratios=(1.0, 1.5), progress=False,
        out=str(out),
    )  # fmt: skip
    return config.replace(**changes)


def _diverge_final_training(monkeypatch, times: int) -> list[int]:
    """The first ``times`` final trainings of a quantized model diverge as a real one does
    (TrainingDiverged from train_model); the search's own evaluations are untouched."""
    calls: list[int] = []

    def train(model, data, settings, *, seed, device="cpu", **kwargs):
        quantized = any(isinstance(m, QuantLayer) for m in model.modules())
        if quantized and len(calls) < times:
            calls.append(1)
            raise TrainingDiverged("loss became nan at step 3")
        return train_model(model, data, settings, seed=seed, device=device, **kwargs)

    monkeypatch.setattr(recipe_module, "train_model", train)
    return calls


def test_a_diverging_final_training_trains_the_next_individual_of_the_front(
    tmp_path, monkeypatch, capsys
):
    _diverge_final_training(monkeypatch, times=1)
    # one candidate, no uniform QAT: the diverging final training is the candidate's
    config = _tiny(tmp_path / "run", progress=True, uniform_qat_bits=(), final_candidates=1)
    result = Search(config).run()
    diverged = result.data["final_diverged"]
    assert len(diverged) == 1 and diverged[0]["reason"] == "loss became nan at step 3"
    front = result.data["search"]["front"]
    assert diverged[0]["trial"] in front and result.chosen["trial"] in front
    assert result.chosen["trial"] != diverged[0]["trial"]
    assert f"final training of trial {diverged[0]['trial']} diverged" in capsys.readouterr().err
    assert "diverged" in result.table()
    stored = json.loads((tmp_path / "run" / "result.json").read_text())
    assert stored["final_diverged"] == diverged
    rows = list(csv.DictReader((tmp_path / "run" / "pareto.csv").open()))
    assert int(next(r for r in rows if r["chosen"] == "1")["trial"]) == result.chosen["trial"]


def test_every_final_training_diverging_is_one_clear_error(tmp_path, monkeypatch, capsys):
    _diverge_final_training(monkeypatch, times=10_000)
    out = tmp_path / "run"
    assert main(["search", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert "final training diverged for every individual of the front" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_search_without_an_answer_raises_no_answer_error_from_its_workers_too(tmp_path):
    """Too many failed evaluations is the search's outcome (NoAnswerError), which a benchmark
    records as a result, and it keeps its class when a worker process raises it; any other
    error (a missing dataset, a killed worker) stays a plain MogaqnnError subclass."""
    import pytest

    from mogaqnn.errors import NoAnswerError

    # every evaluation's QAT fine-tune diverges at this learning rate (the FP32 base does not)
    config = _tiny(tmp_path / "run", qat_lr=1e30, search_epochs=2, workers=2, uniform_qat_bits=())
    with pytest.raises(NoAnswerError, match="8 evaluations failed"):
        Search(config).run()
    trials = read_trials(f"journal:{tmp_path / 'run' / 'study.journal'}")
    assert len([t for t in trials if t.state.name == "FAIL"]) >= 8


def test_every_final_training_diverging_is_a_no_answer_error(tmp_path, monkeypatch):
    import pytest

    from mogaqnn.errors import NoAnswerError

    _diverge_final_training(monkeypatch, times=10_000)
    with pytest.raises(NoAnswerError, match="final training diverged for every individual"):
        Search(_tiny(tmp_path / "run")).run()
