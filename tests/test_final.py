"""The final training: both FP32 baselines, and the claim judged against the stronger."""

import json

import pytest
import torch

from mogaqnn import Search
from mogaqnn.export import export_packed, load_packed, load_run_data, load_run_model
from mogaqnn.search import claim, claim_line
from tests.test_failed import _tiny


def _final(chosen, plain, distilled=None):
    out = {"chosen": {"test_accuracy": chosen}, "fp32": {"test_accuracy": plain}}
    out["fp32_distilled"] = None if distilled is None else {"test_accuracy": distilled}
    return out


def test_claim_is_judged_against_the_stronger_fp32_baseline():
    c = claim(_final(0.975, 0.970, 0.980), fp32_bits=800, size_bits=100)
    assert c["reference"] == "fp32_distilled" and not c["met"]
    assert c["test_accuracy_difference"] == pytest.approx(-0.005)
    line = claim_line({"claim": c})
    assert line == (
        "claim missed: 0.50 pp less test accuracy than the stronger distilled FP32 baseline "
        "(at 8.0x compression)"
    )
    met = claim(_final(0.975, 0.970), fp32_bits=800, size_bits=200)
    assert met["reference"] == "fp32" and met["met"]
    assert claim_line({"claim": met}).startswith("claim met: 4.0x smaller and +0.50 pp")
    assert not claim(_final(0.99, 0.97), fp32_bits=800, size_bits=800)["met"]  # not smaller


def test_a_distilling_lsq_search_reports_both_fp32_baselines_and_exports(tmp_path):
    config = _tiny(tmp_path / "run", distill_weight=0.5, weight_bits=(4,), quant_ranges="lsq",
                   uniform_qat_bits=())  # fmt: skip
    result = Search(config).run()
    stored = json.loads((tmp_path / "run" / "result.json").read_text())
    plain, distilled = stored["fp32"], stored["fp32_distilled"]
    assert distilled is not None and distilled["epochs"] == plain["epochs"]
    assert distilled["size_bits"] == plain["size_bits"]
    stronger = max(plain["test_accuracy"], distilled["test_accuracy"])
    c = stored["claim"]
    assert c["reference_test_accuracy"] == stronger
    assert c["test_accuracy_difference"] == pytest.approx(
        stored["chosen"]["test_accuracy"] - stronger
    )
    table = result.table()
    assert "FP32 distilled" in table
    assert ("claim met" in table) != ("claim missed" in table)
    # a trial exported again is trained as the search trained it, teacher included
    from tests.test_export import _searched_only

    row = _searched_only(tmp_path / "run")
    again = load_run_model(tmp_path / "run", int(row["trial"]))
    assert again.val_accuracy == pytest.approx(float(row["val_accuracy"]))
    # the learned step sizes travel through final.pt into the packed file
    run_model = load_run_model(tmp_path / "run")
    assert run_model.model.get_submodule(result.chosen["layers"][0]["layer"]).range_mode == "lsq"
    exported = export_packed(run_model, tmp_path / "m.mogaqnn")
    x = load_run_data(run_model.run).test.x[:64]
    with torch.no_grad():
        expected = run_model.model(x)
        got = load_packed(exported.path)(x)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_a_run_that_does_not_distil_still_judges_against_the_distilled_baseline(tiny_run_dir):
    stored = json.loads((tiny_run_dir / "result.json").read_text())
    assert stored["config"]["distill_weight"] == 0
    assert stored["fp32_distilled"]["distill_weight"] == 0.5
    stronger = max(stored["fp32"]["test_accuracy"], stored["fp32_distilled"]["test_accuracy"])
    assert stored["claim"]["reference_test_accuracy"] == stronger


def test_k_candidates_under_a_size_target_are_final_trained_chosen_by_val_and_tested(tmp_path):
    from mogaqnn.recipe import read_trained

    out = tmp_path / "run"
    config = _tiny(out, min_compression=6.0, final_candidates=3, select="accuracy",
                   claim_compressions=(6.0, 12.0), uniform_qat_bits=(8, 2))  # fmt: skip
    result = Search(config).run()
    stored = json.loads((out / "result.json").read_text())
    cands = stored["final_candidates"]
    fp32_kib = stored["fp32"]["size_kib"]
    assert 1 <= len(cands) <= 3 and len({c["trial"] for c in cands}) == len(cands)
    assert set(c["trial"] for c in cands) <= set(stored["search"]["front"])
    assert all(c["compression_ratio"] >= 6.0 for c in cands)  # under the target
    assert stored["selection"]["size_limit_kib"] == pytest.approx(fp32_kib / 6.0)
    # the rule chose again among them, by their final val accuracy
    best = max(cands, key=lambda c: (c["val_accuracy"], -c["size_bits"]))
    assert [c["trial"] for c in cands if c["chosen"]] == [best["trial"]]
    assert stored["chosen"]["trial"] == best["trial"]
    assert stored["chosen"]["test_accuracy"] == best["test_accuracy"]
    # every candidate tested once, each kept as trained in final/ (what export reads)
    for c in cands:
        assert 0.0 <= c["test_accuracy"] <= 1.0
        model, genome = read_trained(out / "final" / f"{c['genome_key']}.pt", *_run_parts(out),
                                     "")  # fmt: skip
        assert genome.key() == c["genome_key"]
    other = next((c for c in cands if not c["chosen"]), None)
    if other is not None:
        exported = load_run_model(out, other["trial"])
        assert exported.val_accuracy is None  # read as trained, not fine-tuned again
    # uniform QAT beside them, from the FP32 base
    assert [u["bits"] for u in stored["uniform_qat"]] == [8, 2]
    assert all(0.0 <= u["test_accuracy"] <= 1.0 for u in stored["uniform_qat"] if "failed" not in u)
    # the claim at each size target: the best final val at least that small, or none
    at6, at12 = stored["claims"]
    assert at6["compression"] == 6.0 and at6["trial"] == best["trial"]
    small = [c for c in cands if c["compression_ratio"] >= 12.0]
    assert (at12["trial"] is None) == (not small)
    table = result.table()
    assert "uniform QAT 8-bit" in table and "at >= 6x:" in table and "at >= 12x:" in table
    assert "final stage:" in table


def _run_parts(out):
    from mogaqnn.run import load_run

    run = load_run(out)
    return run.base, run.graph, run.space
