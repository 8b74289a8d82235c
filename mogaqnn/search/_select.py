"""The final choice: the last population's rank-0 front, then the configured rule.

``match-fp32`` (the default) aims at the paper's claim with validation data only: the
smallest individual of the front whose val accuracy reaches the FP32 base fine-tuned by the
same recipe; when none does, the most accurate. ``accuracy`` takes the most accurate (ties
to the smaller), ``smallest`` the smallest.

No margin over the reference: on small validation subsets the smallest individual that
"matches" often matched by luck, but raising the reference did not pay on test. Six
demo-budget runs of LeNet-5 on MNIST-5k (seeds 0-2, no limit and FP32/8), each rule's choice
trained with the final recipe (benchmarks/selection_rules.py, results/selection_rules_demo.md):
final val minus the stronger FP32's, margin 0 / 1 / 2 standard errors / accuracy: -0.04 /
+0.17 / +0.33 / +0.33 pp (std ~0.9), compression 12.4 / 9.7 / 9.5 / 9.5x, test -0.38 /
-0.20 / -0.28 / -0.28 pp: within noise, at a quarter less compression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial

from ..errors import MogaqnnError
from ..size import KIB_BITS
from ._trials import pareto_front

__all__ = ["Choice", "choose"]


@dataclass(frozen=True)
class Choice:
    trial: FrozenTrial
    front: list[FrozenTrial]
    rule: str  # the rule that chose: the configured one, or "accuracy" as match-fp32's fallback
    reason: str  # one sentence for the output


def _feasible(trials: Sequence[FrozenTrial], max_size_kib: float | None) -> list[FrozenTrial]:
    if max_size_kib is None:
        return list(trials)
    return [t for t in trials if t.values[1] / KIB_BITS <= max_size_kib]


def _val_accuracy(t: FrozenTrial) -> float:
    return 1.0 - t.values[0]


def _most_accurate(front: Sequence[FrozenTrial]) -> FrozenTrial:
    return min(front, key=lambda t: (t.values[0], t.values[1], t.number))


def _smallest(front: Sequence[FrozenTrial]) -> FrozenTrial:
    return min(front, key=lambda t: (t.values[1], t.values[0], t.number))


def choose(
    last_population: Sequence[FrozenTrial],
    all_completed: Sequence[FrozenTrial],
    rule: str,
    max_size_kib: float | None,
    fp32_accuracy: float | None = None,
) -> Choice:
    """The chosen trial, the front it was chosen from, and why.

    The front is that of the feasible members of the last population; when none of them
    meets ``max_size_kib``, of every feasible individual evaluated. ``fp32_accuracy`` is
    the reference of ``match-fp32``.
    """
    pool = _feasible(last_population, max_size_kib) or _feasible(all_completed, max_size_kib)
    if not pool:
        smallest = min(t.values[1] for t in all_completed) / KIB_BITS if all_completed else 0
        raise MogaqnnError(
            f"no evaluated individual meets max_size_kib = {max_size_kib}; the smallest has "
            f"{smallest:.2f} KiB: raise the limit or allow fewer bits"
        )
    front = pareto_front(pool)
    if rule == "smallest":
        return Choice(_smallest(front), front, rule, "the smallest individual of the front")
    if rule == "match-fp32":
        if fp32_accuracy is None:
            raise ValueError("match-fp32 needs the FP32 reference accuracy")
        matching = [t for t in front if _val_accuracy(t) >= fp32_accuracy]
        if matching:
            chosen = _smallest(matching)
            return Choice(chosen, front, rule,
                          f"the smallest of the {len(matching)} individual(s) of the front whose "
                          f"val accuracy reaches the FP32 reference's "
                          f"{fp32_accuracy:.2%}")  # fmt: skip
        chosen = _most_accurate(front)
        return Choice(chosen, front, "accuracy",
                      f"no individual of the front reaches the FP32 reference's "
                      f"{fp32_accuracy:.2%}, so the most accurate")  # fmt: skip
    return Choice(_most_accurate(front), front, "accuracy",
                  "the most accurate individual of the front (ties to the smaller)")  # fmt: skip
