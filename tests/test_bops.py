"""Bit operations: MACs x weight bits x activation bits, reported for every individual, and
a third objective on request."""

import csv
import json

import optuna
import torch
from torch import nn

from mogaqnn.quant import QuantConv2d, QuantLinear
from mogaqnn.search._store import open_storage
from mogaqnn.size import bit_operations, layer_macs
from tests._runs import SMALL_SPACE, run_cli


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_bops_count_macs_times_weight_and_activation_bits():
    model = _Tiny()
    example = torch.zeros(1, 1, 8, 8)
    conv_macs, fc_macs = 4 * 8 * 8 * (1 * 3 * 3), 10 * 4 * 8 * 8  # outputs x inputs per output
    macs = layer_macs(model, example)
    assert macs == {"conv": conv_macs, "fc": fc_macs}
    assert layer_macs(model, torch.zeros(5, 1, 8, 8)) == macs  # per sample
    assert bit_operations(model, macs) == (conv_macs + fc_macs) * 32 * 32  # float: 32 x 32
    model.conv = QuantConv2d.from_float(model.conv, weight_bits=4, act_bits=8)
    model.fc = QuantLinear.from_float(model.fc, weight_bits=2, act_bits=6)
    assert layer_macs(model, example) == macs
    assert bit_operations(model, macs) == conv_macs * 4 * 8 + fc_macs * 2 * 6


def test_a_three_objective_search_runs_through_the_cli(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "search", "--out", str(out), *SMALL_SPACE, "--weight-bits", "2,4", "--act-bits", "4,8",
        "--population", "4", "--generations", "2", "--objectives", "error,size,bops",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "bit operations per sample: chosen" in proc.stdout
    study = optuna.load_study(study_name="mogaqnn",
                              storage=open_storage(f"journal:{out / 'study.journal'}"))  # fmt: skip
    assert len(study.directions) == 3
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all(t.values[2] == t.user_attrs["bops"] > 0 for t in done)
    rows = [r for r in csv.DictReader((out / "pareto.csv").open()) if r["state"] == "COMPLETE"]
    assert all(int(r["bops"]) > 0 for r in rows)
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["objectives"] == ["error", "size", "bops"]
    assert 0 < result["chosen"]["bops"] < result["fp32"]["bops"]
    assert "Bit operations per sample" in (out / "report.html").read_text()
    from PIL import Image

    # pareto.png gains a second panel, val error against BOPs (13 x 5 in at 120 dpi)
    assert Image.open(out / "pareto.png").size[0] > 1200


def test_an_unknown_objective_set_is_one_clear_line(tmp_path):
    proc = run_cli("search", "--out", str(tmp_path / "r"), "--objectives", "error,bops")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "mogaqnn: error: objectives is 'error,bops'; choose 'error,size' or 'error,size,bops'"
    )
