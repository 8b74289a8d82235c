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
