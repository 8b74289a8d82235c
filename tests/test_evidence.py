"""The evidence benchmarks' bookkeeping, on hand-made units and runs (no training): the paper
table's standard-profile statistics (benchmarks/_evidence.py and the cell aggregation of
benchmarks/papertable/), the committed table aggregated again from its units, which commit a
result ran at (benchmarks/_provenance.py), and which half-finished recipe-ablation cells
continue."""

import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _evidence as ev  # noqa: E402
import _provenance as provenance  # noqa: E402
from papertable import aggregate, plan, render  # noqa: E402
from papertable import units as runner  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# the script's processes import this checkout's package, as `PYTHONPATH=. python ...` does
CHECKOUT = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}


def test_paired_interval_is_the_t_interval_over_seeds():
    r = ev.paired_interval([0.01, 0.03, 0.02])
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # t(0.975, df 2) x sd / sqrt(n)
    assert r["n"] == 3 and r["mean"] == pytest.approx(0.02)
    assert (r["low"], r["high"]) == pytest.approx((0.02 - half, 0.02 + half))
    one = ev.paired_interval([0.05])
    assert one["mean"] == pytest.approx(0.05) and one["low"] is None


def test_kendall_tau_is_tau_b_and_nan_without_a_pair():
    import fitness_fidelity

    assert fitness_fidelity.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert fitness_fidelity.kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(fitness_fidelity.kendall_tau([0.9], [0.8]))


def test_evaluations_to_reach_follows_trial_order():
    pts = [(0.5, 0.5), (0.2, 0.9), (0.3, 0.3)]  # HV after 1, 2, 3: 0.25, 0.28, 0.50
    assert ev.hv_trajectory(pts) == pytest.approx([0.25, 0.28, 0.50])
    assert ev.evaluations_to_reach(pts, 0.28) == 2
    assert ev.evaluations_to_reach(pts, 0.30) == 3
    assert ev.evaluations_to_reach(pts, 0.60) is None
    assert ev.hypervolume([(1.2, 0.1)]) == 0.0  # outside the reference box


def _search(test, ratio, points):
    return {"test_accuracy": test, "compression_ratio": ratio, "points": points}


def _units(seed: int, limited: float, unlimited_ratio: float) -> dict:
    fp = {"fp32": {"test_accuracy": 0.90 + seed * 0.01},
          "fp32_distilled": {"test_accuracy": 0.91 + seed * 0.01}}  # fmt: skip
    uni = {f"uniform{b}": {"test_accuracy": 0.8} for b in (8, 4, 2)}
    return {
        "limited": {**_search(limited, 9.0, [(0.2, 0.1), (0.1, 0.5)]), **fp, "wall_s": 60},
        "unlimited": _search(0.95, unlimited_ratio, [(0.1, 0.3)]),
        "random": _search(0.85, 8.5, [(0.3, 0.1), (0.25, 0.6)]),
        "uniform": uni,
    }


def test_cell_aggregate_claims_pairs_and_hypervolume():
    units = {s: _units(s, 0.92 + s * 0.01, 5.0 if s < 2 else 3.0) for s in (0, 1, 2)}
    del units[2]["random"]  # seed 2 unfinished: excluded and listed as missing
    units[0]["convergence"] = {"val_accuracy": 0.97, "val_accuracy_doubled": 0.972}
    c = aggregate.aggregate_cell("mnist5k/lenet5", units, [0, 1, 2], [0, 1, 2])
    assert c["seeds"] == [0, 1] and c["uniform_seeds"] == [0, 1]
    assert c["missing"] == ["mnist5k/lenet5 seed 2 random", "mnist5k/lenet5 seed 0 fidelity"]
    # the unfinished seed is shown beside the table, against its own stronger FP32 (0.93)
    part = c["partial"][2]
    assert part["units"] == ["limited", "unlimited", "uniform"]
    assert part["stronger_fp32"] == "fp32_distilled"
    assert part["models"]["limited"]["difference"] == pytest.approx(0.94 - 0.93)
    assert part["models"]["uniform8"]["difference"] == pytest.approx(0.80 - 0.93)
    assert sorted(part["models"]) == ["limited", "uniform2", "uniform4", "uniform8", "unlimited"]
    line = render.partial_line(2, part)
    assert line.startswith(
        "seed 2, outside the table (3 of 4 units; missing: random): "
        "FP32 92.00%, distilled 93.00%; MOGAQNN /8 94.00% at 9.0x (+1.00 pp)"
    )
    # a seed whose three searches are done is in the table without its uniform QAT unit
    del units[1]["uniform"]
    fewer = aggregate.aggregate_cell("mnist5k/lenet5", units, [0, 1, 2], [0, 1, 2])
    assert fewer["seeds"] == [0, 1] and fewer["uniform_seeds"] == [0]
    assert fewer["test_accuracy"]["uniform8"]["n"] == 1 and fewer["gap_by_seed"]["uniform8"] == []
    assert fewer["test_accuracy"]["limited"]["n"] == 2
    units[1]["uniform"] = _units(1, 0.93, 5.0)["uniform"]
    assert c["stronger_fp32"] == "fp32_distilled"
    assert c["test_accuracy"]["limited"]["mean"] == pytest.approx(0.925)
    assert c["paired"]["limited"]["mean"] == pytest.approx(0.01)  # 0.92-0.91, 0.93-0.92
    assert c["paired"]["limited"]["low"] == pytest.approx(0.01)  # no spread: zero width
    eight, four = c["claim"]["8x"], c["claim"]["4x"]
    assert eight["met"] and eight["sources"] == ["limited"]
    assert four["met"] and four["sources"] == ["unlimited"]  # 5x >= 4x: the unlimited model
    assert four["mean_test_accuracy"] == pytest.approx(0.95)
    h = c["hypervolume"]
    assert h["evaluations"] == [2, 2]
    assert h["limited"]["values"][0] == pytest.approx(0.1 * 0.5 + 0.8 * 0.9)  # 0.77
    assert h["random"]["values"][0] == pytest.approx(0.05 * 0.4 + 0.7 * 0.9)  # 0.65
    # random's final HV (0.65): MOGAQNN's first point alone (0.72) reaches it
    assert h["evaluations_to_random_final"] == {"limited": [1, 1], "random": [2, 2]}
    assert ev.claim_line(eight).startswith("at 8x claim met: MOGAQNN (limited) 92.50%")
    # the claim plot's points: (compression, test - the stronger FP32's) per finished seed
    gaps = c["gap_by_seed"]
    assert gaps["limited"] == [pytest.approx([9.0, 0.01])] * 2
    assert gaps["unlimited"] == [pytest.approx([5.0, 0.04]), pytest.approx([5.0, 0.03])]
    assert gaps["uniform8"] == []  # these units record no compression for uniform QAT


def test_search_to_final_val_change_pools_seed_cells_and_pairs_limited_with_random():
    units = {s: _units(s, 0.92, 5.0) for s in (0, 1)}
    for s, (lim, rnd) in enumerate([(-0.02, 0.01), (0.01, 0.00)]):
        units[s]["limited"] |= {"search_val_accuracy": 0.95, "val_accuracy": 0.95 + lim}
        units[s]["random"] |= {"search_val_accuracy": 0.94, "val_accuracy": 0.94 + rnd}
    cell = aggregate.aggregate_cell("mnist5k/lenet5", units, [0, 1], [0, 1])
    assert cell["search_to_final_val"]["limited"] == [pytest.approx(-0.02), pytest.approx(0.01)]
    assert cell["search_to_final_val"]["unlimited"] == [None, None]  # the fields are missing
    other = {0: _units(0, 0.92, 5.0)}
    other[0]["limited"] |= {"search_val_accuracy": 0.90, "val_accuracy": 0.93}  # no random pair
    summary = aggregate.search_to_final_summary(
        {"a": cell, "b": aggregate.aggregate_cell("mnist5k/vgg11", other, [0], [0])}
    )
    assert summary["limited"]["n"] == 3
    assert summary["limited"]["mean"] == pytest.approx((-0.02 + 0.01 + 0.03) / 3)
    assert summary["unlimited"]["n"] == 0
    pair = summary["limited_minus_random"]  # -0.03 and +0.01; the unpaired seed-cell is left out
    assert pair["n"] == 2 and pair["lower"] == 1 and pair["mean"] == pytest.approx(-0.01)


def test_claim_falls_back_and_fails_where_it_should():
    limited = {"test_accuracy": 0.90, "compression_ratio": 8.5}
    unlimited = {"test_accuracy": 0.97, "compression_ratio": 2.0}
    pick = ev.pick_for_threshold(4.0, limited, unlimited)
    assert pick["source"] == "limited"  # the unlimited model compresses only 2x
    c = ev.claim_at(4.0, [pick, None], [0.91, 0.91], "fp32")
    assert not c["met"] and "1 seed(s) without a model" in c["why"] and "pp below" in c["why"]
    assert ev.claim_line(c).startswith("at 4x claim not met")
    ahead = ev.pick_for_threshold(4.0, {"test_accuracy": 0.95, "compression_ratio": 9.0}, None)
    assert ev.claim_at(4.0, [ahead], [0.91], "fp32", fp32_converged=None)["met"]
    under = ev.claim_at(4.0, [ahead], [0.91], "fp32", fp32_converged=False)
    assert not under["met"] and under["why"] == "FP32 not converged at this budget"


def test_a_uniform_unit_counts_only_when_its_models_started_from_the_fp32_base(tmp_path):
    budget = {"pretrain_epochs": 1}
    path = plan.unit_path(tmp_path, "mnist5k/lenet5", 0, "uniform")
    plan.write_unit(path, {"budget": budget, "uniform8": {"test_accuracy": 0.9}})
    assert plan.read_unit(path, budget) is None  # a supernet-slice start: run it again
    plan.write_unit(path, {"budget": budget, "start": plan.UNIFORM_START})
    assert plan.read_unit(path, budget)["start"] == "fp32 base"
    limited = plan.unit_path(tmp_path, "mnist5k/lenet5", 0, "limited")
    plan.write_unit(limited, {"budget": budget})  # the searches' units carry no start
    assert plan.read_unit(limited, budget) == {"budget": budget}


def test_evidence_markdown_states_the_headline_and_missing_runs(tmp_path):
    units = {s: _units(s, 0.92 + s * 0.01, 5.0) for s in (0, 1)}
    done = aggregate.aggregate_cell("mnist5k/lenet5", units, [0, 1], [0, 1])
    empty = aggregate.aggregate_cell("mnist5k/vgg11", {}, [0, 1], [0, 1])
    for c in (done, empty):
        c["budget"] = {}
    doc = {"profile": "standard", "smoke_check": False, "command": "c", "commit": "abc",
           "units_ran_at": ["abc"], "machine": "m", "seeds": [0, 1],
           "cells": {"mnist5k/lenet5": done, "mnist5k/vgg11": empty},
           "missing": done["missing"] + empty["missing"]}  # fmt: skip
    text = render.evidence_markdown(doc)
    assert "Claim met in 1 of 2 cells at 4x, 1 of 2 at 8x (1 of 2 cells have a finished" in text
    assert (
        "At 8x: the claim holds in mnist5k/lenet5; it does not in mnist5k/vgg11 (no finished seed)."
    ) in text
    assert "Smoke check" not in text
    assert "mnist5k/vgg11 seed 1 random" in text  # listed among the missing runs
    assert "outside the table" not in text  # no seed has only some of its units
    started = aggregate.aggregate_cell(
        "mnist5k/vgg11", {0: {"uniform": units[0]["uniform"]}}, [0], [0]
    )
    assert render.partial_line(0, started["partial"][0]) == (
        "seed 0, outside the table (1 of 4 units; missing: limited, unlimited, random): FP32 —; "
        "uniform 8-bit 80.00%; uniform 4-bit 80.00%; uniform 2-bit 80.00%")  # fmt: skip
    doc["cells"]["mnist5k/vgg11"] = started | {"budget": {}}
    assert "- mnist5k/vgg11: no finished seed\n  - seed 0, outside the table" in (
        render.evidence_markdown(doc))  # fmt: skip
    doc["cells"]["mnist5k/vgg11"] = empty
    assert "fine-tune to the final training" not in text  # the units record no such val
    for s in (0, 1):
        units[s]["limited"] |= {"search_val_accuracy": 0.95, "val_accuracy": 0.94}
        units[s]["random"] |= {"search_val_accuracy": 0.94, "val_accuracy": 0.945}
    doc["cells"]["mnist5k/lenet5"] = aggregate.aggregate_cell(
        "mnist5k/lenet5", units, [0, 1], [0, 1]
    )
    doc["search_to_final_val"] = aggregate.search_to_final_summary(doc["cells"])
    text = render.evidence_markdown(doc)
    assert "- MOGAQNN /8: -1.00 ± 0.00 (n 2)" in text
    assert "- MOGAQNN /8 − random /8, paired: -1.50 pp on average, lower in 2 of 2" in text
    # the claim plot draws a finished cell and an empty one side by side
    png = render.plot_claim(doc, tmp_path / "claim.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def _repo(tmp_path, monkeypatch):
    """A git repository standing in for the checkout, and a fresh start-of-process cache."""

    def git(*args):
        out = subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c",
                              "user.email=t@t", *args], check=True, capture_output=True,
                             text=True)  # fmt: skip
        return out.stdout.strip()

    git("init", "-q")
    (tmp_path / "mogaqnn").mkdir()
    (tmp_path / "mogaqnn" / "a.py").write_text("1")
    (tmp_path / "README.md").write_text("1")
    git("add", "mogaqnn/a.py", "README.md")
    git("commit", "-qm", "one")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    monkeypatch.setattr(provenance, "code_commit",
                        functools.cache(provenance.code_commit.__wrapped__))  # fmt: skip
    return git


def test_a_unit_records_the_commit_its_process_started_at(tmp_path, monkeypatch):
    # A unit of the standard profile runs for hours; a commit made meanwhile is not the code
    # that ran it.
    git = _repo(tmp_path, monkeypatch)
    started = git("rev-parse", "--short", "HEAD")
    provenance.code_commit()

    def unit():
        (tmp_path / "mogaqnn" / "a.py").write_text("2")
        git("commit", "-qam", "two")
        return {"value": 1}

    runner.timed(tmp_path / "unit.json", {"b": 1}, "unit", unit)
    assert json.loads((tmp_path / "unit.json").read_text())["commit"] == started
    assert git("rev-parse", "HEAD") != started


def test_changed_code_is_marked_and_prose_or_written_results_are_not(tmp_path, monkeypatch):
    git = _repo(tmp_path, monkeypatch)
    results = tmp_path / "benchmarks" / "results" / "r.json"
    results.parent.mkdir(parents=True)
    results.write_text("{}")
    git("add", str(results))
    git("commit", "-qm", "results")
    results.write_text('{"new": 1}')  # a benchmark's own output: still the committed code
    (tmp_path / "README.md").write_text("edited")
    assert provenance.code_commit() == git("rev-parse", "--short", "HEAD")
    provenance.code_commit.cache_clear()
    (tmp_path / "mogaqnn" / "a.py").write_text("edited")
    assert provenance.code_commit() == git("rev-parse", "--short", "HEAD") + "+uncommitted"


def test_recipe_ablation_continues_a_cell_of_its_config_and_restarts_another(tmp_path):
    import recipe_ablation

    from mogaqnn import SearchConfig
    from mogaqnn.run import RunDir

    config = SearchConfig(model="lenet5", dataset="mnist5k", out=str(tmp_path / "cell"))
    RunDir(tmp_path / "cell").prepare(config)
    (tmp_path / "cell" / "study.journal").write_text("half a search")
    # a different device is how it runs, not what it computes: the same run
    assert recipe_ablation.continue_or_clear(tmp_path / "cell", config.replace(device="cpu"))
    assert (tmp_path / "cell" / "study.journal").exists()
    assert not recipe_ablation.continue_or_clear(tmp_path / "cell", config.replace(seed=1))
    assert not (tmp_path / "cell").exists()


@functools.cache  # the same plan is asked for twice
def _plan(*extra):
    script = BENCHMARKS / "paper_table.py"
    out = subprocess.run([sys.executable, str(script), "--profile", "standard", "--cells",
                          "lenet5:fashion-mnist", "--seeds", "0,1,2", "--plan", *extra],
                         check=True, capture_output=True, text=True, env=CHECKOUT,
                         cwd=script.parents[1])  # fmt: skip
    return out.stdout


def test_the_plan_runs_its_own_seed_count_unless_every_seed_is_asked_for():
    assert "fashion-mnist/lenet5: seeds [0], " in _plan()  # the plan's one Fashion-MNIST seed
    assert "fashion-mnist/lenet5: seeds [0, 1, 2], " in _plan("--all-seeds")


def test_arms_names_units_and_a_wrong_one_is_refused_in_a_sentence():
    def hours(*extra) -> float:
        return float(_plan(*extra).split("fashion-mnist/lenet5: seeds [0], ~")[1].split(" h")[0])

    every, some, uniform = hours(), hours("--arms", "uniform,random"), hours("--arms", "uniform")
    assert every > some > uniform > 0  # uniform QAT alone: no supernet, no search
    script = BENCHMARKS / "paper_table.py"
    out = subprocess.run([sys.executable, str(script), "--profile", "standard", "--arms",
                          "uniform,fp32", "--plan"], capture_output=True, text=True,
                         env=CHECKOUT, cwd=script.parents[1])  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("--arms: 'uniform,fp32' is not a list of limited, unlimited, random, uniform"
            in out.stderr)  # fmt: skip


def _without_run_lines(text: str) -> list[str]:
    """Markdown lines but those that say which commit and machine aggregated them."""
    return [x for x in text.splitlines() if not x.startswith(("Commit: ", "Machine: "))]


def test_the_committed_table_is_its_units_aggregated_again(tmp_path):
    """benchmarks/results/paper_table_standard.{json,md} are what --aggregate makes of the
    committed units, but for the commit and machine that aggregated them."""
    results = BENCHMARKS / "results"
    doc = aggregate.aggregate("standard", results / "paper_table_standard",
                              plan.table_plan("standard"), [0, 1, 2],
                              "python benchmarks/paper_table.py --profile standard --seeds 0,1,2 "
                              "--aggregate")  # fmt: skip
    render.write(doc, tmp_path / "table.json")
    committed = json.loads((results / "paper_table_standard.json").read_text())
    mine = json.loads((tmp_path / "table.json").read_text())
    for d in (committed, mine):
        del d["commit"], d["machine"]
    assert mine == committed
    md = (results / "paper_table_standard.md").read_text()
    assert _without_run_lines((tmp_path / "table.md").read_text()) == _without_run_lines(md)


def test_seed_units_survive_a_lost_run_directory(tmp_path):
    """uniform QAT takes the FP32 base from whichever sibling search still has it, and the
    convergence check needs no search: a checkout without runs/ continues."""
    d = tmp_path / "s0"
    for arm in ("limited", "random"):
        (d / arm).mkdir(parents=True)
    (d / "random" / "base.pt").write_bytes(b"")
    assert runner.base_run(d) == d / "random"
    (d / "limited" / "base.pt").write_bytes(b"")
    assert runner.base_run(d) == d / "limited"
    budget = {"pretrain_epochs": 0.05, "final_epochs": 0.05, "batch_size": 64}
    config = runner.standard_config("mnist5k/lenet5", budget, 0, tmp_path / "gone",
                                    arm="limited", workers=1, device="cpu")  # fmt: skip
    unit = runner.convergence_unit(config, "cpu")
    assert not (tmp_path / "gone").exists()
    # no sibling kept a base: uniform QAT's is trained alone where the limited search runs
    lost = tmp_path / "lost"
    limited = runner.standard_config("mnist5k/lenet5", budget, 0, lost / "limited",
                                     arm="limited", workers=1, device="cpu")  # fmt: skip
    assert runner.pretrained_run(lost, limited) == lost / "limited"
    assert (lost / "limited" / "base.pt").exists()
    assert not (lost / "limited" / "study.journal").exists()  # the base alone
    assert runner.pretrained_run(d, limited) == d / "limited"  # a sibling's base: nothing trained
    # uniform QAT starts from that base itself: no supernet (the search's fitness start) needed
    assert limited.fitness == "supernet" and not (lost / "limited" / "supernet.pt").exists()
    uniform = runner.uniform_unit(lost / "limited", "cpu")
    assert uniform["start"] == "fp32 base"
    base_val = torch.load(lost / "limited" / "base.pt", weights_only=True)["val_accuracy"]
    assert uniform["uniform8"]["val_accuracy"] == pytest.approx(base_val, abs=0.05)
    assert uniform["uniform8"]["compression_ratio"] > 3.5
    once, twice = unit["val_accuracy"], unit["val_accuracy_doubled"]
    assert unit["epochs_doubled"] == pytest.approx(0.2) and 0 < once < 1 and 0 < twice < 1
    assert unit["difference_pp"] == pytest.approx(100 * (twice - once))
    assert unit["converged"] == (abs(unit["difference_pp"]) < 0.5)
