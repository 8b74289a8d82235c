"""The final choice: the last population's rank-0 front, then the configured rule."""

from __future__ import annotations

from collections.abc import Sequence

from optuna.trial import FrozenTrial

from ..errors import MogaqnnError
from ..size import KIB_BITS
from ._trials import pareto_front

__all__ = ["choose_individual"]


def _feasible(trials: Sequence[FrozenTrial], max_size_kib: float | None) -> list[FrozenTrial]:
    if max_size_kib is None:
        return list(trials)
    return [t for t in trials if t.values[1] / KIB_BITS <= max_size_kib]


def _rank_key(rule: str):
    if rule == "smallest":
        return lambda t: (t.values[1], t.values[0], t.number)
    return lambda t: (t.values[0], t.values[1], t.number)  # accuracy, ties to the smaller


def choose_individual(
    last_population: Sequence[FrozenTrial],
    all_completed: Sequence[FrozenTrial],
    rule: str,
    max_size_kib: float | None,
) -> tuple[FrozenTrial, list[FrozenTrial]]:
    """Return the chosen trial and the front it was chosen from.

    The front is that of the feasible members of the last population; when none of them
    meets ``max_size_kib``, of every feasible individual evaluated.
    """
    pool = _feasible(last_population, max_size_kib) or _feasible(all_completed, max_size_kib)
    if not pool:
        smallest = min(t.values[1] for t in all_completed) / KIB_BITS if all_completed else 0
        raise MogaqnnError(
            f"no evaluated individual meets max_size_kib = {max_size_kib}; the smallest has "
            f"{smallest:.2f} KiB: raise the limit or allow fewer bits"
        )
    front = pareto_front(pool)
    return min(front, key=_rank_key(rule)), front
