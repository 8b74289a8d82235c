"""The final choice on a hand-made front: match-fp32, accuracy, smallest, size limit."""

import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from mogaqnn.search import choose
from mogaqnn.size import KIB_BITS


def _trial(number: int, error: float, kib: float):
    t = create_trial(values=[error, kib * KIB_BITS], params={"x": 0.0},
                     distributions={"x": FloatDistribution(0, 1)})  # fmt: skip
    t.number = number
    return t


# val accuracy / KiB: A 95% 100, B 92% 50, C 88% 20 form the front; D (90%, 60) is dominated
A, B, C, D = _trial(0, 0.05, 100), _trial(1, 0.08, 50), _trial(2, 0.12, 20), _trial(3, 0.10, 60)
POPULATION = [A, B, C, D]


@pytest.mark.parametrize(
    ("fp32", "chosen", "applied"),
    [(0.90, B, "match-fp32"), (0.92, B, "match-fp32"), (0.93, A, "match-fp32"),
     (0.85, C, "match-fp32"), (0.99, A, "accuracy")],
)  # fmt: skip
def test_match_fp32_takes_the_smallest_that_reaches_fp32_else_the_most_accurate(
    fp32, chosen, applied
):
    choice = choose(POPULATION, POPULATION, "match-fp32", None, fp32)
    assert [t.number for t in choice.front] == [0, 1, 2]
    assert choice.trial is chosen and choice.rule == applied
    if applied == "accuracy":
        assert choice.reason == (
            "no individual of the front reaches the FP32 reference's 99.00%, so the most accurate"
        )
    else:
        assert f"reaches the FP32 reference's {fp32:.2%}" in choice.reason


def test_the_other_rules_and_the_size_limit():
    assert choose(POPULATION, POPULATION, "accuracy", None).trial is A
    assert choose(POPULATION, POPULATION, "smallest", None).trial is C
    # a limit of 60 KiB leaves B, C, D; D is dominated by B
    limited = choose(POPULATION, POPULATION, "match-fp32", 60.0, 0.90)
    assert limited.trial is B and {t.number for t in limited.front} == {1, 2}
    assert choose(POPULATION, POPULATION, "match-fp32", 60.0, 0.95).trial is B  # fallback


def test_the_size_target_is_the_tighter_of_the_limit_and_the_compression():
    from mogaqnn.search._select import size_limit_kib

    fp32 = 400 * KIB_BITS
    assert size_limit_kib(None, None, fp32) is None
    assert size_limit_kib(None, 4.0, fp32) == pytest.approx(100.0)
    assert size_limit_kib(60.0, 4.0, fp32) == 60.0 and size_limit_kib(150.0, 4.0, fp32) == 100.0


def test_final_candidates_are_the_choice_the_best_per_claim_and_spread_over_the_front():
    from mogaqnn.search._select import final_candidates

    # a front of six, 10 to 320 KiB (FP32: 1,280 KiB), accuracy rising with size
    front = [_trial(i, 0.20 - 0.02 * i, kib) for i, kib in enumerate((10, 20, 40, 80, 160, 320))]
    choice = choose(front, front, "accuracy", None)
    assert choice.trial.number == 5
    fp32 = 1280 * KIB_BITS
    one = final_candidates(choice, 1, fp32, (4.0, 8.0))
    assert [t.number for t in one] == [5]  # k = 1: the rule's choice, as before
    # the choice (4x), the best at >= 8x (160 KiB), then the farthest in log size (10 KiB)
    three = final_candidates(choice, 3, fp32, (4.0, 8.0))
    assert [t.number for t in three] == [5, 4, 0]
    four = final_candidates(choice, 4, fp32, (4.0, 8.0))
    assert [t.number for t in four] == [5, 4, 0, 2]  # 40 KiB: midway between 10 and 160
    assert len(final_candidates(choice, 10, fp32, ())) == len(front)  # never more than all
    # a bits-for-width seed off the front (its width unseen by the search) comes before the
    # spread: the most accurate of them
    wide, wider = _trial(9, 0.15, 300), _trial(10, 0.13, 310)
    with_seeds = final_candidates(choice, 3, fp32, (4.0, 8.0), [wide, wider])
    assert [t.number for t in with_seeds] == [5, 4, 10]
    assert len(final_candidates(choice, 10, fp32, (), [wider])) == len(front) + 1


def test_the_rule_chooses_again_among_the_final_trained_by_their_final_val():
    from mogaqnn.search._select import Trained, choose_trained

    sizes_and_vals = ((100, 0.92), (50, 0.93), (20, 0.90))
    big, mid, small = (Trained(_trial(i, 0.1, kib), val, int(kib * KIB_BITS))
                       for i, (kib, val) in enumerate(sizes_and_vals))  # fmt: skip
    trained = [big, mid, small]
    assert choose_trained(trained, "accuracy", 0.91)[0] is mid  # final val, not search val
    assert choose_trained(trained, "smallest", 0.91)[0] is small
    chosen, reason = choose_trained(trained, "match-fp32", 0.91)
    assert chosen is mid and "reaches the stronger FP32 baseline's 91.00%" in reason
    assert choose_trained(trained, "match-fp32", 0.95)[0] is mid  # none reaches: most accurate
