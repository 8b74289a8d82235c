"""The report a search writes into its run directory, and `mogaqnn report`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mogaqnn.fitness import Evaluator
from mogaqnn.report import report_data, write_report
from mogaqnn.report._data import _fp32_point
from tests._browser import open_in_chromium

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("final.png", "pareto.png", "hypervolume.png", "policy.png")


def test_search_writes_the_report(tiny_run_dir):
    for name in FIGURES:
        path = tiny_run_dir / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        with Image.open(path) as img:
            img.verify()
    page = (tiny_run_dir / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert '<table class="result">' in page and "MOGAQNN (chosen, trial" in page
    assert "FP32 baseline" in page and "&quot;population&quot;: 4" in page  # the config


def test_reference_points_are_evaluated_by_the_search_and_read_by_the_report(
    tiny_run_dir, monkeypatch
):
    stored = json.loads((tiny_run_dir / "reference_points.json").read_text())
    assert [p["label"] for p in stored["points"]] == [f"uniform {b}-bit" for b in (8, 4, 2)]

    def no_training(self, genome):
        raise AssertionError("the report must read the stored reference points")

    monkeypatch.setattr(Evaluator, "__call__", no_training)
    data = report_data(tiny_run_dir)
    assert [round(1 - p.error, 6) for p in data.references] == [
        round(p["val_accuracy"], 6) for p in stored["points"]
    ]
    # Not trials of the search: the evaluations log lists the search's trainings only.
    result = json.loads((tiny_run_dir / "result.json").read_text())
    log = (tiny_run_dir / "evaluations.log").read_text().splitlines()
    assert len(log) == result["search"]["trained"]


def test_report_data_is_consistent(tiny_run_dir):
    data = report_data(tiny_run_dir)
    result = data.result
    assert len(data.trials) == result["search"]["evaluations"]
    assert data.chosen.trial == result["chosen"]["trial"]
    assert data.fp32.size_bits == result["fp32"]["size_bits"]
    # The FP32 point is the baseline trained as long as the chosen model, not the base.
    assert data.fp32.error == pytest.approx(1 - result["fp32"]["val_accuracy"])
    assert data.fp32.label == f"FP32 baseline ({result['fp32']['epochs']:g} epochs)"
    old = {k: v for k, v in result["fp32"].items() if k != "val_accuracy"}
    base = _fp32_point(old, 0.9)  # a result.json without it: the base, named as such
    assert base.label == "FP32 base (pretrained only)" and base.error == pytest.approx(0.1)
    hv = [v for _, v in data.hypervolume]
    assert len(hv) == result["search"]["generations"]
    assert all(0.0 <= v <= 1.0 for v in hv) and hv == sorted(hv)  # cumulative: never drops
    assert [p.layer for p in data.policy] == result["model"]["quantized_layers"]
    for p, g in zip(data.policy, result["chosen"]["layers"]):
        assert (p.weight_bits, p.act_bits) == (g["weight_bits"], g["act_bits"])


def test_write_report_again_overwrites(tiny_run_dir):
    page = write_report(tiny_run_dir)
    assert page == tiny_run_dir / "report.html" and page.is_file()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mogaqnn", *args], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


def test_cli_report(tiny_run_dir):
    proc = run_cli("report", str(tiny_run_dir))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {tiny_run_dir / 'report.html'}" in proc.stdout


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_cli_report_bad_run_dir_is_one_line(make, tmp_path):
    target = tmp_path / "run"
    if make == "empty":
        target.mkdir()
    proc = run_cli("report", str(target))
    assert proc.returncode == 2
    assert proc.stderr.startswith("mogaqnn: error: ") and proc.stderr.count("\n") == 1


def test_report_renders_offline_in_headless_chromium(tiny_run_dir, tmp_path):
    shot = tmp_path / "report.png"
    page = open_in_chromium(tiny_run_dir / "report.html", shot)
    assert page.errors == []  # no console error, no uncaught exception
    assert page.title.startswith("MOGAQNN report: lenet5 on mnist5k")
    assert len(page.images) == len(FIGURES)
    for img in page.images:  # every figure decoded
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
    # Offline: the page itself and its data: figures, nothing fetched over the network.
    assert page.requests[0] == (tiny_run_dir / "report.html").resolve().as_uri()
    assert {url.split(":", 1)[0] for url in page.requests} == {"file", "data"}
    with Image.open(shot) as img:
        assert img.format == "PNG" and img.width >= 800 and img.height > 1500  # the whole page
        low, high = img.convert("L").getextrema()
        assert high - low > 100  # not a blank page
