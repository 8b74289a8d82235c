"""A short search through the CLI for every zoo model (tiny budgets: it checks that the
whole pipeline runs on each architecture, not what it finds)."""

import json

import pytest

from mogaqnn.cli import main
from mogaqnn.models import list_models


# resnet56 is resnet20's builder at depth 56: three times the time and nothing new to check.
@pytest.mark.parametrize("name", [m for m in list_models() if m != "resnet56"])
def test_short_search_runs_for_every_zoo_model(name, tmp_path, capsys):
    out = tmp_path / name
    code = main([
        "search", "--model", name, "--out", str(out), "--population", "4", "--generations",
        "1", "--pretrain-epochs", "0.02", "--search-epochs", "0.2", "--final-epochs", "0.02",
        "--search-train-samples", "128", "--search-val-samples", "64", "--weight-bits", "2,8",
        "--act-bits", "8", "--expansion-ratios", "1.0,1.25", "--uniform-qat-bits", "",
        "--no-progress",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["model"]["name"] == name
    assert result["search"]["evaluations"] == 4
    assert result["model"]["expansion_groups"], "no expansion group found"
    assert result["chosen"]["size_bits"] < result["fp32"]["size_bits"]
