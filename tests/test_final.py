"""The final training: both FP32 baselines, and the claim judged against the stronger."""

import json

import pytest

from mogaqnn import Search
from mogaqnn.search._search import claim, claim_line
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


def test_a_distilling_search_trains_and_reports_both_fp32_baselines(tmp_path):
    result = Search(_tiny(tmp_path / "run", distill_weight=0.5, weight_bits=(4,))).run()
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
