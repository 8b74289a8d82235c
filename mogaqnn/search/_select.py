"""The final choice: the last population's rank-0 front under the size target, the
candidates that the final recipe trains, and the configured rule among them.

The rule first picks from the search's val accuracies (``choose``: the front, and the
individual the rule prefers); ``final_candidates`` adds the best of the front at each claim
compression, the best bits-for-width seed and then individuals spread over the front's
sizes, up to k; after their final training the rule chooses again among them, by their
final val accuracy (``choose_trained``).

``accuracy`` (the default) takes the most accurate (ties to the smaller): with the size
target it is the paper's claim, smaller and more accurate. ``match-fp32`` takes the smallest
individual whose val accuracy reaches the FP32 reference (the FP32 base fine-tuned by the
search's recipe; after the final training, the stronger FP32 baseline), else the most
accurate; ``smallest`` the smallest.

``match-fp32`` uses no margin over the reference: on small validation subsets the smallest
individual that "matches" often matched by luck, but raising the reference did not pay on
test. Six demo-budget runs of LeNet-5 on MNIST-5k (seeds 0-2, no limit and FP32/8), each
rule's choice trained with the final recipe (benchmarks/selection_rules.py,
results/selection_rules_demo.md): final val minus the stronger FP32's, margin 0 / 1 / 2
standard errors / accuracy: -0.04 / +0.17 / +0.33 / +0.33 pp (std ~0.9), compression 12.4 /
9.7 / 9.5 / 9.5x, test -0.38 / -0.20 / -0.28 / -0.28 pp: within noise, at a quarter less
compression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial

from ..errors import NoAnswerError
from ..size import KIB_BITS
from ._trials import pareto_front

__all__ = ["Choice", "Trained", "choose", "choose_trained", "final_candidates", "size_limit_kib"]


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
        raise NoAnswerError(
            f"no evaluated individual meets the size target of {max_size_kib:.2f} KiB "
            f"(max_size_kib, min_compression); the smallest has {smallest:.2f} KiB: relax the "
            "target or allow fewer bits"
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


def size_limit_kib(
    max_size_kib: float | None, min_compression: float | None, fp32_bits: int
) -> float | None:
    """The size target in KiB: the tighter of ``max_size_kib`` and the size ``min_compression``
    times smaller than FP32 (None: no target)."""
    limits = [] if max_size_kib is None else [max_size_kib]
    if min_compression is not None:
        limits.append(fp32_bits / min_compression / KIB_BITS)
    return min(limits) if limits else None


def final_candidates(
    choice: Choice,
    k: int,
    fp32_bits: int,
    claim_compressions: Sequence[float],
    width_seeds: Sequence[FrozenTrial] = (),
) -> list[FrozenTrial]:
    """Up to ``k`` individuals for the final recipe: the rule's choice, the most accurate
    (by search val) at least each claim compression smaller than FP32, the most accurate of
    ``width_seeds`` (the bits-for-width individuals under the size target: fewer bits, more
    channels, whose gain the search's short evaluation cannot see, while trained at their
    width they beat FP32), then the individual of ``choice.front`` farthest in log size from
    those picked, until k are picked, so they spread instead of being k near-twins."""
    front = sorted(choice.front, key=lambda t: (t.values[1], t.values[0], t.number))
    picked = [choice.trial]
    for target in sorted(claim_compressions):
        at = [t for t in front if fp32_bits / t.values[1] >= target]
        if at and (best := _most_accurate(at)) not in picked:
            picked.append(best)
    if width_seeds and (best := _most_accurate(width_seeds)) not in picked:
        picked.append(best)
    while len(picked) < k and any(t not in picked for t in front):
        rest = [t for t in front if t not in picked]
        picked.append(max(rest, key=lambda t: min(
            abs(math.log(t.values[1] / p.values[1])) for p in picked)))  # fmt: skip
    return picked[:k]


@dataclass(frozen=True)
class Trained:
    """A candidate after its final training: its trial, final val accuracy and size."""

    trial: FrozenTrial
    val_accuracy: float
    size_bits: int


def choose_trained(
    trained: Sequence[Trained], rule: str, fp32_val_accuracy: float
) -> tuple[Trained, str]:
    """The rule among final-trained candidates, by their final val accuracy: ``accuracy``
    the most accurate (ties to the smaller), ``smallest`` the smallest, ``match-fp32`` the
    smallest whose val accuracy reaches the stronger FP32 baseline's, else the most
    accurate. Returns the choice and one sentence saying why."""

    def most_accurate(ts: Sequence[Trained]) -> Trained:
        return min(ts, key=lambda t: (-t.val_accuracy, t.size_bits, t.trial.number))

    def smallest(ts: Sequence[Trained]) -> Trained:
        return min(ts, key=lambda t: (t.size_bits, -t.val_accuracy, t.trial.number))

    n = len(trained)
    if rule == "smallest":
        return smallest(trained), f"the smallest of the {n} final-trained candidate(s)"
    if rule == "match-fp32":
        matching = [t for t in trained if t.val_accuracy >= fp32_val_accuracy]
        if matching:
            return smallest(matching), (
                f"the smallest of the {len(matching)} of {n} final-trained candidate(s) whose "
                f"val accuracy reaches the stronger FP32 baseline's {fp32_val_accuracy:.2%}"
            )
        return most_accurate(trained), (
            f"none of the {n} final-trained candidate(s) reaches the stronger FP32 baseline's "
            f"val accuracy {fp32_val_accuracy:.2%}, so the most accurate"
        )
    return most_accurate(trained), (
        f"the most accurate of the {n} final-trained candidate(s) by final val accuracy"
    )
