"""The evidence benchmarks' bookkeeping, on hand-made units and runs (no training but one
FP32 convergence check of a fraction of an epoch): the paper table's standard-profile
statistics (benchmarks/_evidence.py and the cell aggregation of benchmarks/papertable/),
the committed table and the README's headline aggregated again from its units, which
commit a result ran at (benchmarks/_provenance.py), and which half-finished recipe-ablation
cells continue."""

import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _evidence as ev  # noqa: E402
import _provenance as provenance  # noqa: E402
from papertable import aggregate, plan, render  # noqa: E402
from papertable import units as runner  # noqa: E402

from mogaqnn import SearchConfig  # noqa: E402

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


def test_verdicts_follow_the_interval_and_a_seed_without_a_model_fails():
    assert ev.verdict([0.010, 0.012, 0.011])["verdict"] == "beyond noise"
    tie = ev.verdict([0.01, -0.005, 0.002])
    assert tie["verdict"] == "tie" and tie["low"] < 0 < tie["high"] and tie["n"] == 3
    assert ev.verdict([-0.010, -0.012, -0.011])["verdict"] == "fails"
    one = ev.verdict([0.02])
    assert one["verdict"] == "n/a" and one["mean"] == pytest.approx(0.02) and one["low"] is None
    assert ev.verdict([])["verdict"] == "n/a" and ev.verdict([])["mean"] is None
    # a seed whose search trained no candidate that small: no model, whatever the others say
    lost = ev.verdict([0.02, None, 0.03])
    assert lost["verdict"] == "fails" and lost["without_model"] == 1 and lost["n"] == 2
    assert "1 of 3 seed(s) without a model" in lost["why"]
    # beating an FP32 baseline that did not converge at its budget does not count
    assert ev.verdict([0.010, 0.012, 0.011], converged=False)["verdict"] == "n/a"
    assert ev.side(ev.paired_interval([1.1, 1.2, 1.15]), 1.0) == "above"
    assert ev.side(ev.paired_interval([1.1]), 1.0) is None


def test_hypervolume_and_kendall_tau():
    assert ev.hypervolume([(0.5, 0.5), (0.2, 0.9), (0.3, 0.3)]) == pytest.approx(0.50)
    assert ev.hypervolume([(1.2, 0.1)]) == 0.0  # outside the reference box
    assert ev.hypervolume([]) == 0.0
    assert ev.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert ev.kendall_tau([0.9], [0.8]) is None  # no pair
    assert ev.kendall_tau([0.9, 0.9], [0.8, 0.7]) is None  # a constant ranking: undefined


def _cand(trial, test, ratio, search_val, val):
    return {"trial": trial, "genome_key": f"g{trial}", "chosen": False, "test_accuracy": test,
            "compression_ratio": ratio, "search_val_accuracy": search_val, "val_accuracy": val,
            "size_kib": 100 / ratio, "train_seconds": 1.0}  # fmt: skip


def _unit(cands, fp32=0.90, distilled=0.91, uniform=(8, 4, 2), points=((0.2, 0.1),)):
    """A search unit as units.search_unit writes it: result.json's claims (the candidate with
    the best final val at least that small, against the stronger FP32 baseline on test),
    final_candidates, uniform_qat, both FP32 baselines, and the evaluated points."""
    ref = max(fp32, distilled)
    claims = []
    for t in plan.CLAIM_THRESHOLDS:
        at = [c for c in cands if c["compression_ratio"] >= t]
        if not at:
            claims.append({"compression": t, "trial": None})
            continue
        best = max(at, key=lambda c: (c["val_accuracy"], c["compression_ratio"]))
        claims.append({"compression": t, "trial": best["trial"],
                       "val_accuracy": best["val_accuracy"], "test_accuracy": best["test_accuracy"],
                       "reference": "fp32" if fp32 >= distilled else "fp32_distilled",
                       "reference_test_accuracy": ref,
                       "test_accuracy_difference": best["test_accuracy"] - ref,
                       "compression_ratio": best["compression_ratio"],
                       "met": best["test_accuracy"] >= ref})  # fmt: skip
    return {"claims": claims, "final_candidates": cands,
            "uniform_qat": [{"bits": b, "test_accuracy": ref - 0.01 * (9 - b),
                             "val_accuracy": 0.9, "compression_ratio": 32 / b} for b in uniform],
            "fp32": {"test_accuracy": fp32}, "fp32_distilled": {"test_accuracy": distilled},
            "points": [list(p) for p in points], "wall_s": 60.0}  # fmt: skip


def _seed(s: int, gain: float) -> dict:
    """A seed's two units: MOGAQNN's candidates at 5x and 9x, ``gain`` above random's."""
    d = 0.91 + 0.01 * s  # the stronger (distilled) baseline
    mog = [_cand(1, d + gain, 9.0, 0.95, 0.93), _cand(2, d + gain + 0.01, 5.0, 0.96, 0.95),
           _cand(3, d - 0.02, 12.0, 0.90, 0.90)]  # fmt: skip
    rnd = [_cand(7, d - 0.01, 10.0, 0.94, 0.92), _cand(8, d, 4.5, 0.93, 0.94)]
    return {"mogaqnn": _unit(mog, 0.90 + 0.01 * s, d, points=[(0.2, 0.1), (0.1, 0.5)]),
            "random": _unit(rnd, 0.90 + 0.01 * s, d, uniform=(), points=[(0.3, 0.1)])}  # fmt: skip


def test_cell_aggregate_claims_hypervolume_tau_and_missing_units():
    units = {s: _seed(s, g) for s, g in ((0, 0.004), (1, 0.006), (2, 0.005))}
    del units[2]["random"]  # seed 2 without its random search: MOGAQNN counts it, HV does not
    # stored by an older, two-sided rule (a 0.5 pp drop called under-trained): judged again
    units[0]["convergence"] = {"val_accuracy": 0.97, "val_accuracy_doubled": 0.965,
                               "difference_pp": -0.5, "converged": False}  # fmt: skip
    c = aggregate.aggregate_cell("mnist5k/lenet5", units, [0, 1, 2])
    assert c["convergence"]["converged"] is True
    assert c["seeds"] == {"mogaqnn": [0, 1, 2], "random": [0, 1]}
    assert c["missing"] == ["mnist5k/lenet5 seed 2 random"]
    # at >= 8x: trial 1 (9x, the best final val at that size), +0.4 / +0.6 / +0.5 pp
    eight = c["claims"]["8x"]["mogaqnn"]
    assert eight["differences"] == [pytest.approx(g) for g in (0.004, 0.006, 0.005)]
    assert eight["mean"] == pytest.approx(0.005) and eight["verdict"] == "beyond noise"
    assert eight["low"] == pytest.approx(0.005 - 4.302652729911275 * 0.001 / math.sqrt(3))
    assert eight["compression"]["mean"] == pytest.approx(9.0)
    assert eight["references"] == ["fp32_distilled"]
    # at >= 4x: trial 2 (5x, val 0.95), one point more accurate
    assert c["claims"]["4x"]["mogaqnn"]["mean"] == pytest.approx(0.015)
    # random search: -1 pp at 10x on both seeds (sd 0: an interval of width 0, below zero)
    rnd = c["claims"]["8x"]["random"]
    assert rnd["differences"] == [pytest.approx(-0.01)] * 2 and rnd["verdict"] == "fails"
    assert c["claims"]["4x"]["random"]["mean"] == pytest.approx(0.0)  # trial 8, level
    # the baselines come from the mogaqnn units' final stage
    assert c["test_accuracy"]["fp32_distilled"]["mean"] == pytest.approx(0.92)
    assert c["test_accuracy"]["fp32"]["n"] == 3
    assert sorted(c["uniform"]) == ["2", "4", "8"] and c["uniform"]["8"]["n"] == 3
    assert c["uniform"]["4"]["compression"] == pytest.approx(8.0)
    # hypervolume of the final-trained fronts on (test error, size ratio), per seed with both
    h = c["hypervolume"]
    assert h["seeds"] == [0, 1] and h["reference_point"] == [1.0, 1.0]
    m0 = ev.hypervolume([(1 - (0.914), 1 / 9), (1 - 0.924, 1 / 5), (1 - 0.89, 1 / 12)])
    r0 = ev.hypervolume([(1 - 0.90, 1 / 10), (1 - 0.91, 1 / 4.5)])
    assert h["final"]["mogaqnn"][0] == pytest.approx(m0)
    assert h["final"]["ratio"][0] == pytest.approx(m0 / r0)
    assert h["final"]["n"] == 2 and h["final"]["side"] in ("above", "contains", "below")
    assert h["search"]["ratio"][0] == pytest.approx(
        ev.hypervolume([(0.2, 0.1)]) / ev.hypervolume([(0.3, 0.1)])  # equal evaluations: 1
    )
    # Kendall's tau of search val against final val over the candidates, pooled over seeds
    tau = c["kendall_tau"]["mogaqnn"]
    assert tau["n"] == 9 and tau["per_seed"] == [pytest.approx(1.0)] * 3
    pooled = ev.kendall_tau([0.95, 0.96, 0.90] * 3, [0.93, 0.95, 0.90] * 3)
    assert tau["tau"] == pytest.approx(pooled)
    assert tau["final_minus_search_val"]["mean"] == pytest.approx(-0.01)
    assert c["kendall_tau"]["random"]["per_seed"] == [pytest.approx(-1.0)] * 2
    # the plot's points: against each seed's stronger FP32
    assert c["plot"]["fp32_distilled"] == [[1.0, 0.0]] * 3
    assert c["plot"]["mogaqnn"][0][0] == pytest.approx([9.0, 0.004])
    assert len(c["plot"]["uniform"]) == 9 and c["plot"]["random"][0][1] == [4.5, 0.0]


def test_a_cell_without_a_candidate_that_small_fails_and_an_empty_cell_waits():
    units = {s: _seed(s, 0.005) for s in (0, 1)}
    units[1]["mogaqnn"]["claims"][1] = {"compression": 8.0, "trial": None}  # none >= 8x
    c = aggregate.aggregate_cell("fashion-mnist/vgg11", units, [0, 1, 2])
    eight = c["claims"]["8x"]["mogaqnn"]
    assert eight["verdict"] == "fails" and eight["differences"] == [pytest.approx(0.005), None]
    assert c["claims"]["4x"]["mogaqnn"]["verdict"] == "beyond noise"  # sd 0, above zero
    assert "fashion-mnist/vgg11 seed 0 convergence" in c["missing"]
    failed = {0: {"mogaqnn": {"failed": "no evaluated individual meets the size target"}}}
    f = aggregate.aggregate_cell("fashion-mnist/vgg11", failed, [0])
    assert f["claims"]["4x"]["mogaqnn"]["verdict"] == "fails"
    assert f["failed"]["mogaqnn"] == {"0": "no evaluated individual meets the size target"}
    empty = aggregate.aggregate_cell("fashion-mnist/vgg11", {}, [0, 1, 2])
    assert empty["claims"]["4x"]["mogaqnn"]["verdict"] == "n/a"
    assert empty["hypervolume"]["final"]["side"] is None and len(empty["missing"]) == 7


def _doc(cells: dict) -> dict:
    for c in cells.values():
        c["budget"] = {}
    return {"profile": "standard", "smoke_check": False, "command": "c", "commit": "abc",
            "units_ran_at": ["abc"], "machine": "m", "seeds": [0, 1, 2], "defaults": None,
            "headline": aggregate.headline(cells, plan.table_plan("standard")), "cells": cells,
            "missing": [m for c in cells.values() for m in c["missing"]]}  # fmt: skip


def test_headline_counts_verdicts_per_dataset_and_front_wins(tmp_path):
    # beyond noise at 4x and 8x, a tie, fails
    gains = {"fashion-mnist/lenet5": (0.004, 0.006, 0.005),
             "fashion-mnist/vgg11": (0.01, -0.01, 0.005),
             "mnist5k/lenet5": (-0.01, -0.012, -0.011)}  # fmt: skip
    cells = {}
    for name in plan.table_plan("standard"):
        g = gains.get(name)
        units = {s: _seed(s, x) for s, x in enumerate(g)} if g else {}
        if name == "mnist5k/vgg11":
            units = {0: _seed(0, 0.002)}  # one seed: n/a, its mean counted
        cells[name] = aggregate.aggregate_cell(name, units, [0, 1, 2])
    doc = _doc(cells)
    h = doc["headline"]
    eight = h["claims"]["fashion-mnist 8x"]
    assert eight["beyond noise"] == ["fashion-mnist/lenet5"]
    assert eight["tie"] == ["fashion-mnist/vgg11"] and len(eight["no seed"]) == 3
    assert eight["mean_at_least_0"] == ["fashion-mnist/lenet5", "fashion-mnist/vgg11"]
    assert h["claims"]["mnist5k 8x"]["fails"] == ["mnist5k/lenet5"]
    assert h["claims"]["mnist5k 8x"]["n/a"] == ["mnist5k/vgg11"]
    assert h["claims"]["all 4x"]["cells"] == 10 and len(h["claims"]["all 4x"]["no seed"]) == 6
    assert len(h["with_seed"]) == 4 and len(h["with_three"]) == 3
    assert h["hypervolume"]["judged"] == ["fashion-mnist/lenet5", "fashion-mnist/vgg11",
                                          "mnist5k/lenet5"]  # fmt: skip
    text = render.headline_markdown(doc)
    assert "| Fashion-MNIST at ≥ 8× | 1 | 1 | 0 | 0 | 3 | 2 of 2 |" in text
    assert "| MNIST-5k at ≥ 8× | 0 | 0 | 1 | 1 | 3 | 1 of 2 |" in text
    assert "| all 10 cells at ≥ 4× | 1 | 2 | 0 | 1 | 6 | 3 of 4 |" in text  # lenet5 -0.1: a tie
    assert "Cells with seeds: 4 of 10 (3 with three). At ≥ 4× beyond noise: " in text
    assert f"Units committed: {70 - len(doc['missing'])} of 70; the {len(doc['missing'])} " in text
    done = {**doc, "headline": {**h, "units": {**h["units"], "missing": 0, "missing_h": 0.0}}}
    assert "Units committed: all 70.\n" in render.headline_markdown(done)
    assert "in 3 of the 3 cells with two or more seeds of both" in text  # every front wins
    md = render.evidence_markdown(doc)
    assert md.startswith("# The paper table (profile `standard`)\n\n" + text)
    assert "| fashion-mnist/lenet5 | 3/3 | +1.50 [" in md
    assert "n/a (no seed)" in md and "n/a (one seed)" in md
    png = render.plot_fronts(doc, tmp_path / "fronts.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_headline_block_is_replaced_between_its_markers():
    page = f"intro\n{render.HEADLINE_START}\nold\n{render.HEADLINE_END}\nafter\n"
    new = render.replace_headline(page, "new\n", "page")
    assert new == f"intro\n{render.HEADLINE_START}\nnew\n{render.HEADLINE_END}\nafter\n"
    assert render.headline_block(new) == "new\n"
    with pytest.raises(ValueError, match="has no"):
        render.replace_headline("no markers", "x", "page")


def test_a_unit_counts_at_its_budget_while_its_package_defaults_hold(tmp_path):
    budget = {"pretrain_epochs": 1, "seeds": 3}
    path = plan.unit_path(tmp_path, "mnist5k/lenet5", 0, "mogaqnn")
    defaults = plan.package_defaults(budget)
    assert "pretrain_epochs" not in defaults and "seed" not in defaults
    assert {"select", "final_candidates", "min_compression", "fitness"} <= defaults.keys()
    plan.write_unit(path, {"budget": budget, "defaults": defaults})
    assert plan.read_unit(path, budget) is not None
    assert plan.read_unit(path, {**budget, "pretrain_epochs": 2}) is None  # another budget
    changed = {**defaults, "final_candidates": defaults["final_candidates"] + 1}
    plan.write_unit(path, {"budget": budget, "defaults": changed})
    assert plan.read_unit(path, budget) is None  # a default changed since: run it again
    fewer = {k: v for k, v in defaults.items() if k != "fitness"}  # a key it did not know
    plan.write_unit(path, {"budget": budget, "defaults": fewer})
    assert plan.read_unit(path, budget) is not None
    plan.write_unit(path, {"budget": budget})  # no record of its defaults
    assert plan.read_unit(path, budget) is None


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


def test_a_missing_dataset_stops_the_runner_in_a_sentence_and_writes_no_unit(
    tmp_path, monkeypatch, capsys
):
    """A search without an answer is a unit (``failed``), but a missing dataset or a killed
    worker is the machine's: a unit written with it would be skipped as done once mended."""
    from papertable import cli

    from mogaqnn.errors import DatasetError, MogaqnnError, NoAnswerError

    config = SearchConfig(model="lenet5", dataset="mnist5k", out=str(tmp_path / "run"))
    monkeypatch.setattr(runner.mogaqnn, "search", lambda c: (_ for _ in ()).throw(
        NoAnswerError("no evaluated individual meets the size target")))  # fmt: skip
    assert runner.search_unit(config) == {"failed": "no evaluated individual meets the size "
                                                    "target"}  # fmt: skip
    for machine_error in (DatasetError("dataset 'fashion-mnist' was not found"),
                          MogaqnnError("mogaqnn-worker-1 stopped with exit code -9")):  # fmt: skip
        monkeypatch.setattr(runner.mogaqnn, "search",
                            lambda c, e=machine_error: (_ for _ in ()).throw(e))  # fmt: skip
        with pytest.raises(type(machine_error)):
            runner.search_unit(config)
    # through the command line, where the convergence check is the first to read the data
    monkeypatch.setattr(runner, "load_config_dataset", lambda c: (_ for _ in ()).throw(
        DatasetError("dataset 'fashion-mnist' was not found; install it")))  # fmt: skip
    code = cli.main(["--profile", "standard-smoke", "--cells", "lenet5:fashion-mnist",
                     "--seeds", "0", "--runs", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err == "paper_table: dataset 'fashion-mnist' was not found; install it\n"
    assert not list((tmp_path / "results").rglob("*.json"))


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
def _plan(*extra, cells="lenet5:fashion-mnist"):
    script = BENCHMARKS / "paper_table.py"
    out = subprocess.run([sys.executable, str(script), "--profile", "standard", "--cells", cells,
                          "--seeds", "0,1,2", "--plan", *extra],
                         check=True, capture_output=True, text=True, env=CHECKOUT,
                         cwd=script.parents[1])  # fmt: skip
    return out.stdout


def test_the_plan_runs_fashion_mnist_first_three_seeds_a_cell_and_says_what_remains():
    every = ",".join(f"{m}:{d}" for d in plan.DATASETS for m in plan.MODELS)
    lines = [x.strip() for x in _plan(cells=every).splitlines() if x.startswith("  ")]
    cells = [x.split(":")[0] for x in lines[:-1]]
    assert cells == list(plan.table_plan("standard"))  # the tables' order is the run order
    assert [c.split("/")[0] for c in cells] == ["fashion-mnist"] * 5 + ["mnist5k"] * 5
    assert all(": seeds [0, 1, 2], ~" in x and " of 7 units, ~" in x for x in lines[:-1])
    assert lines[-1].startswith("total ~") and "; to run: " in lines[-1]
    assert "fashion-mnist/lenet5: seeds [0, 1, 2, 3], " in _plan("--all-seeds", "--seeds",
                                                                "0,1,2,3")  # fmt: skip


def test_the_headline_counts_the_missing_units_and_their_hours_as_the_plan_does():
    every = ",".join(f"{m}:{d}" for d in plan.DATASETS for m in plan.MODELS)
    total = _plan("--workers", "2", "--threads", "2", cells=every).splitlines()[-1]
    doc = json.loads((BENCHMARKS / "results" / "paper_table_standard.json").read_text())
    u = doc["headline"]["units"]
    assert f"; to run: {u['missing']} units, ~{u['missing_h']:.1f} h" in total
    assert u["missing"] == len(doc["missing"]) and u["workers"] == u["threads"] == 2
    budgets = plan.table_plan("standard").values()
    assert u["planned"] == sum(b["seeds"] * len(plan.ARMS) + len(plan.ONCE) for b in budgets)


def test_arms_names_units_and_a_wrong_one_is_refused_in_a_sentence():
    def hours(*extra) -> float:
        return float(_plan(*extra).split("fashion-mnist/lenet5: seeds [0, 1, 2], ~")[1]
                     .split(" h")[0])  # fmt: skip

    both, mogaqnn = hours(), hours("--arms", "mogaqnn")
    assert both > mogaqnn > hours("--arms", "random") > 0  # the supernet is the mogaqnn arm's
    script = BENCHMARKS / "paper_table.py"
    out = subprocess.run([sys.executable, str(script), "--profile", "standard", "--arms",
                          "mogaqnn,uniform", "--plan"], capture_output=True, text=True,
                         env=CHECKOUT, cwd=script.parents[1])  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--arms: 'mogaqnn,uniform' is not a list of mogaqnn, random" in out.stderr


def test_the_estimate_counts_k_candidates_both_searches_and_the_mogaqnn_final_stage():
    budget = plan.standard_budget("standard", "fashion-mnist/lenet5")
    one = plan.unit_s("fashion-mnist/lenet5", budget, 2)
    more = plan.unit_s("fashion-mnist/lenet5", {**budget, "final_candidates": 3}, 2)
    candidate = 15.0 * (2 * 8 + 2.8 * 2)  # P + F at ~2x the width, 15 s an epoch
    k = plan.final_candidates(budget)
    assert more["random"] - one["random"] == pytest.approx((3 - k) * candidate)
    assert more["mogaqnn"] - one["mogaqnn"] == pytest.approx((3 - k) * candidate)
    assert one["mogaqnn"] - one["random"] > 9 * 8 * 15  # the base and the supernet
    assert plan.estimate_s("fashion-mnist/lenet5", budget, 3, 2) == pytest.approx(
        3 * (one["mogaqnn"] + one["random"]) + one["convergence"]
    )


def _without_run_lines(text: str) -> list[str]:
    """Markdown lines but those that say which commit and machine aggregated them."""
    return [x for x in text.splitlines() if not x.startswith(("Commit: ", "Machine: "))]


def test_the_committed_table_and_headline_are_its_units_aggregated_again(tmp_path):
    """benchmarks/results/paper_table_standard.{json,md} are what --aggregate makes of the
    committed units, but for the commit and machine that aggregated them; the headline in
    README.md and docs/evidence.md is what they render: it is never typed."""
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
    block = render.headline_markdown(doc)
    for page in ("README.md", "docs/evidence.md"):
        assert render.headline_block((BENCHMARKS.parent / page).read_text()) == block, (
            f"{page}'s headline differs from the committed units': run "
            "`python benchmarks/paper_table.py --profile standard --aggregate`"
        )


def test_the_convergence_check_needs_no_run_directory_and_random_search_copies_finished_files(
    tmp_path, monkeypatch
):
    """The convergence check needs no search: a checkout without runs/ continues. The
    random search starts from the mogaqnn run's base, supernet and finished final
    trainings, copied before it starts."""
    budget = {"pretrain_epochs": 0.05, "final_epochs": 0.05, "batch_size": 64}
    config = runner.standard_config("mnist5k/lenet5", budget, 0, tmp_path / "gone",
                                    arm="mogaqnn", workers=1, device="cpu")  # fmt: skip
    unit = runner.convergence_unit(config, "cpu")
    assert not (tmp_path / "gone").exists()
    once, twice = unit["val_accuracy"], unit["val_accuracy_doubled"]
    assert unit["epochs_doubled"] == pytest.approx(0.2) and 0 < once < 1 and 0 < twice < 1
    assert unit["difference_pp"] == pytest.approx(100 * (twice - once))
    assert unit["converged"] == plan.budget_converged(unit["difference_pp"])
    # the arms: the package's defaults but the sampler, and no uniform QAT for random search
    defaults = SearchConfig()
    rnd = runner.standard_config("mnist5k/lenet5", budget, 0, tmp_path / "s0" / "random",
                                 arm="random", workers=1, device="cpu")  # fmt: skip
    assert (config.sampler, rnd.sampler) == ("nsga2", "random") and rnd.uniform_qat_bits == ()
    assert config.uniform_qat_bits == defaults.uniform_qat_bits
    for key in ("select", "min_compression", "final_candidates", "fitness"):
        assert getattr(config, key) == getattr(rnd, key) == getattr(defaults, key)
    src = tmp_path / "s0" / "mogaqnn"
    (src / "final").mkdir(parents=True)
    for name in ("base.pt", "supernet.pt", "final/fp32.pt", "final/g1.pt", "final/g2.pt.partial"):
        (src / name).write_bytes(name.encode())
    runner.seed_sibling(src, rnd.out and tmp_path / "s0" / "random", rnd)
    dst = tmp_path / "s0" / "random"
    assert (dst / "supernet.pt").read_bytes() == b"supernet.pt"
    assert sorted(p.name for p in (dst / "final").iterdir()) == ["fp32.pt", "g1.pt"]
    assert json.loads((dst / "config.json").read_text())["sampler"] == "random"
    (src / "final" / "g3.pt").write_bytes(b"")
    runner.seed_sibling(src, dst, rnd)  # the random run has begun: left as it is
    assert not (dst / "final" / "g3.pt").exists()
    # other package defaults: another run directory (a search refuses another's config)
    runs = tmp_path / "runs"
    here = runner.run_directory(runs, "mnist5k/lenet5", 0, budget)
    monkeypatch.setattr(runner, "package_defaults", lambda b: {"final_candidates": 99})
    assert runner.run_directory(runs, "mnist5k/lenet5", 0, budget) != here


def test_the_smoke_profile_runs_a_cell_and_seed_end_to_end(tmp_path):
    """The machinery on a budget of seconds: convergence, both searches with their final
    stages, the aggregate; under --runs, never the README's headline."""
    readme = (BENCHMARKS.parent / "README.md").read_text()
    script = BENCHMARKS / "paper_table.py"
    subprocess.run([sys.executable, str(script), "--profile", "standard-smoke", "--cells",
                    "lenet5:mnist5k", "--seeds", "0", "--runs", str(tmp_path)], check=True,
                   capture_output=True, text=True, env={**CHECKOUT, "OMP_NUM_THREADS": "1"},
                   cwd=script.parents[1], timeout=300)  # fmt: skip
    root = tmp_path / "results" / "paper_table_standard-smoke"
    budget = plan.standard_budget("standard-smoke", "mnist5k/lenet5")
    mog, rnd, conv = (plan.read_unit(plan.unit_path(root, "mnist5k/lenet5", 0, a), budget)
                      for a in ("mogaqnn", "random", "convergence"))  # fmt: skip
    assert conv is not None and "converged" in conv
    for u in (mog, rnd):
        assert [c["compression"] for c in u["claims"]] == [4.0, 8.0]
        assert u["final_candidates"] and u["points"] and u["timing"]["final_s"] > 0
        assert u["fp32"]["test_accuracy"] > 0 and u["environment"] and u["commit"]
    assert [r["bits"] for r in mog["uniform_qat"]] == [8, 4, 2] and rnd["uniform_qat"] == []
    # the random search read the mogaqnn run's FP32 baselines: the same models
    assert rnd["fp32"]["test_accuracy"] == mog["fp32"]["test_accuracy"]
    assert rnd["timing"]["pretrain_s"] == 0.0  # its base was copied
    doc = json.loads((tmp_path / "results" / "paper_table_standard-smoke.json").read_text())
    assert doc["smoke_check"] and doc["cells"]["mnist5k/lenet5"]["seeds"]["mogaqnn"] == [0]
    assert doc["defaults"]["final_candidates"] == SearchConfig().final_candidates
    # the outputs name the command that remakes them from the units, not the run that wrote them
    assert doc["command"] == ("python benchmarks/paper_table.py --profile standard-smoke "
                              "--seeds 0 --aggregate")  # fmt: skip
    assert (BENCHMARKS.parent / "README.md").read_text() == readme
    again = subprocess.run([sys.executable, str(script), "--profile", "standard-smoke",
                            "--seeds", "0", "--runs", str(tmp_path), "--aggregate"], check=True,
                           capture_output=True, text=True, env=CHECKOUT,
                           cwd=script.parents[1])  # fmt: skip
    assert "plan (" not in again.stdout and again.stdout.startswith("wrote ")  # trains nothing


def test_the_estimate_uses_the_epoch_time_the_cells_convergence_check_measured():
    budget = plan.standard_budget("standard", "fashion-mnist/lenet5")
    assert plan.measured_epoch_s(None) is None  # before the check has run: EPOCH_S
    check = {"epochs": 10, "epochs_doubled": 20, "wall_s": 120.0}  # 3 (P + F) epochs
    assert plan.measured_epoch_s(check) == pytest.approx(4.0)
    estimated = plan.unit_s("fashion-mnist/lenet5", budget, 2)
    measured = plan.unit_s("fashion-mnist/lenet5", budget, 2, plan.measured_epoch_s(check))
    epoch = plan.EPOCH_S["lenet5"] * plan.TRAIN_IMAGES["fashion-mnist"] / 3600
    for arm in ("convergence", "mogaqnn", "random"):
        assert measured[arm] == pytest.approx(estimated[arm] * 4.0 / epoch)
    assert measured["convergence"] == pytest.approx(check["wall_s"])


def test_an_fp32_budget_is_under_trained_only_when_twice_the_epochs_gain_half_a_point():
    # MNIST-5k / LeNet-5 at 20 and 40 epochs: 97.50 % then 97.00 % val, 2 of 400 images lost
    assert plan.budget_converged(-0.5) and plan.budget_converged(0.25)
    assert not plan.budget_converged(0.5) and not plan.budget_converged(1.0)
