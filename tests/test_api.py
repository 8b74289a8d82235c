"""Any user CNN through the Python API, and a model given to the CLI as module:factory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mogaqnn
from mogaqnn.data import DatasetSplits, LabelledImages
from mogaqnn.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    population=4, generations=1, pretrain_epochs=1, search_epochs=0.5, final_epochs=0.5,
    weight_bits=(2, 4), act_bits=(4, 8), expansion_ratios=(1.0, 1.5), progress=False,
)  # fmt: skip


def tiny_data() -> DatasetSplits:
    """Two separable classes of 12x12 images: enough to train, fast to run."""
    g = torch.Generator().manual_seed(0)

    def part(n):
        y = torch.arange(n) % 2
        x = torch.randn(n, 1, 12, 12, generator=g) * 0.3
        x[y == 1, :, :6] += 1.0
        return LabelledImages(x, y)

    return DatasetSplits("toy", part(96), part(32), part(32), num_classes=2, in_channels=1,
                         image_size=12)  # fmt: skip


class UserNet(nn.Module):
    """A residual add, a depthwise conv and a concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU())  # fmt: skip
        self.res = nn.Conv2d(8, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.side = nn.Conv2d(8, 4, 1)
        self.head = nn.Linear(12, 2)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.res(x))
        x = torch.cat([self.dw(x), self.side(x)], dim=1)
        return self.head(x.mean((2, 3)))


class Untraceable(UserNet):
    def forward(self, x):
        if x.mean() > 100:  # data-dependent branch: torch.fx cannot trace it
            x = x * 0
        return super().forward(x)


def test_user_module_and_data_through_the_api(tmp_path):
    result = mogaqnn.search(model=UserNet(), data=tiny_data(), out=tmp_path / "run", **TINY)
    groups = result.data["model"]["expansion_groups"]
    assert [g["group"] for g in groups] == ["stem.0", "side"]
    assert set(groups[0]["layers"]) >= {"stem.0", "res", "stem.1", "dw"}
    assert len(result.chosen["layers"]) == 5
    assert result.chosen["size_bits"] < result.fp32["size_bits"]
    assert result.data["search"]["evaluations"] == 4
    timing = result.data["timing"]
    assert timing["resumed"] is False
    assert 0 < timing["evaluations_s"] <= timing["search_s"]  # one process did them all


def test_untraceable_user_module_searches_bits_only_with_a_note(tmp_path, capsys):
    out = tmp_path / "run"
    config = mogaqnn.SearchConfig(**{**TINY, "progress": True}, out=str(out))
    result = mogaqnn.search(config, model=Untraceable(), data=tiny_data())
    err = capsys.readouterr().err
    assert "Untraceable cannot be traced by torch.fx" in err
    assert "searching bit widths only" in err
    assert result.chosen["groups"] == []


def test_untraceable_user_module_with_strict_expansion_is_refused(tmp_path):
    with pytest.raises(ModelError, match="Untraceable cannot be traced"):
        mogaqnn.search(model=Untraceable(), data=tiny_data(), out=tmp_path / "run",
                       expansion="strict", **TINY)  # fmt: skip


def test_cli_accepts_a_module_factory(tmp_path):
    (tmp_path / "my_models.py").write_text(
        "from torch import nn\n"
        "def build(in_channels, num_classes):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, 4, 5), nn.ReLU(), nn.MaxPool2d(4),\n"
        "                         nn.Flatten(), nn.Linear(4 * 6 * 6, num_classes))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "mogaqnn", "search", "--model", "my_models:build",
         "--out", str(out), "--population", "4", "--generations", "1", "--pretrain-epochs",
         "0.5", "--search-epochs", "0.3", "--final-epochs", "0.2", "--search-train-samples",
         "200", "--uniform-qat-bits", "", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["model"]["name"] == "my_models:build"
    assert [g["group"] for g in result["model"]["expansion_groups"]] == ["0"]
    assert np.isfinite(result["chosen"]["test_accuracy"])


def test_cli_reports_a_missing_factory_module(tmp_path, capsys):
    from mogaqnn.cli import main

    assert main(["search", "--model", "no_such_pkg.models:build", "--out",
                 str(tmp_path / "r")]) == 2  # fmt: skip
    assert "cannot import module 'no_such_pkg.models'" in capsys.readouterr().err


def test_model_given_by_name_to_the_api_is_the_config_model(tmp_path):
    s = mogaqnn.Search(model="lenet5", out=str(tmp_path / "r"), population=6)
    assert s.config.model == "lenet5" and s.config.population == 6
    assert s._user_model is None


def test_pretrain_alone_trains_the_searchs_base_and_a_search_reads_it_back(tmp_path):
    """Search.pretrain: only the FP32 base (no study), with the weights a search's own
    pretraining gives, kept where a later search of that directory reads it."""
    net, data = UserNet(), tiny_data()
    alone = mogaqnn.Search(model=net, data=data, out=str(tmp_path / "a"), **TINY)
    base = alone.pretrain()
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.name != ".lock") == [
        "base.pt", "config.json"]  # fmt: skip
    written = (tmp_path / "a" / "base.pt").read_bytes()
    mogaqnn.search(model=net, data=data, out=tmp_path / "b", **TINY)
    searched = torch.load(tmp_path / "b" / "base.pt", weights_only=True)["state_dict"]
    assert searched.keys() == base.state_dict().keys()
    assert all(torch.equal(v, searched[k]) for k, v in base.state_dict().items())
    assert alone.pretrain().state_dict().keys() == searched.keys()  # read back, not trained
    result = mogaqnn.search(model=net, data=data, out=tmp_path / "a", **TINY)
    assert result.data["timing"]["resumed"] is True
    assert (tmp_path / "a" / "base.pt").read_bytes() == written
