"""A short search end to end on timm: and torchvision: models by name."""

import json

import pytest
from _runs import run_cli

FAST = [
    "--dataset", "mnist5k", "--population", "4", "--generations", "1", "--seed", "0",
    "--pretrain-epochs", "0.02", "--search-epochs", "0.1", "--final-epochs", "0.02",
    "--search-train-samples", "64", "--search-val-samples", "64", "--weight-bits", "4",
    "--act-bits", "8", "--expansion-ratios", "1.0,1.5", "--uniform-qat-bits", "",
]  # fmt: skip


@pytest.mark.parametrize(
    "model,said",
    [
        ("timm:mobilenetv3_small_050", "expansion groups"),
        ("torchvision:squeezenet1_1", "its first convolution features.0 was rebuilt for 1 input"),
    ],
)
def test_search_by_name_runs_end_to_end(tmp_path, model, said):
    out = tmp_path / "run"
    proc = run_cli("search", "--model", model, "--out", str(out), *FAST)
    assert proc.returncode == 0, proc.stderr
    assert said in proc.stdout + proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["search"]["failed"] == 0
    assert result["chosen"]["size_bits"] < result["fp32"]["size_bits"]


def test_a_missing_model_name_is_one_sentence(tmp_path, capsys):
    from mogaqnn.cli import main

    assert main(["search", "--model", "timm:no_such_net", "--out", str(tmp_path / "r"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "timm has no model 'no_such_net'" in err
    assert "Traceback" not in err


def test_a_missing_package_is_one_sentence(monkeypatch):
    import importlib

    from mogaqnn.errors import ModelError
    from mogaqnn.models._factory import resolve_model

    real = importlib.import_module

    def without_timm(name, package=None):
        if name.partition(".")[0] == "timm":
            raise ImportError("No module named 'timm'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_timm)
    with pytest.raises(ModelError, match=r"pip install 'mogaqnn\[timm\]'"):
        resolve_model("timm:resnet18", in_channels=1, num_classes=10, image_size=28)
