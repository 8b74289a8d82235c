"""The statistics of the paper table's ``standard`` profile, on plain numbers and unit dicts.

Pure functions (no torch, no training): mean and spread over seeds, the paired difference
MOGAQNN - stronger FP32 with its 95% t-interval, the claim at a compression threshold,
hypervolume and the number of evaluations a search needs to reach a target hypervolume.
benchmarks/papertable/ runs the units; tests/test_evidence.py checks these on hand-made
units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import moocore
import numpy as np
from scipy import stats

# Hypervolume on (val error, size / FP32 size), both minimised; the FP32 model sits at
# size ratio 1, so the box holds every individual smaller than FP32 with any accuracy.
HV_REFERENCE = (1.0, 1.0)
FP32_ARMS = ("fp32", "fp32_distilled")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; nan for one value)."""
    if not values:
        return float("nan"), float("nan")
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else float("nan")


def paired_interval(diffs: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean of paired differences (one per seed) and its t-interval; no interval for one."""
    m, s = mean_std(diffs)
    n = len(diffs)
    if n < 2:
        return {"n": n, "mean": m, "low": None, "high": None}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * s / math.sqrt(n)
    return {"n": n, "mean": m, "low": m - half, "high": m + half}


def hypervolume(points: np.ndarray, ref: Sequence[float] = HV_REFERENCE) -> float:
    """HV of (error, size ratio) points; points outside the reference box add nothing."""
    r = np.asarray(ref, dtype=float)
    pts = np.asarray(points, dtype=float).reshape(-1, len(r))
    inside = pts[np.all(pts < r, axis=1)]
    return float(moocore.hypervolume(inside, ref=r)) if len(inside) else 0.0


def hv_trajectory(points: Sequence[Sequence[float]], ref: Sequence[float] = HV_REFERENCE) -> list:
    """HV of the first k evaluations, k = 1..len(points), in trial order."""
    return [hypervolume(np.asarray(points[: k + 1]), ref) for k in range(len(points))]


def evaluations_to_reach(
    points: Sequence[Sequence[float]], target: float, ref: Sequence[float] = HV_REFERENCE
) -> int | None:
    """The fewest evaluations (in trial order) whose HV reaches ``target``; None if never."""
    for k, hv in enumerate(hv_trajectory(points, ref), start=1):
        if hv >= target - 1e-12:
            return k
    return None


def stronger_fp32(fp32: dict[str, list[float]]) -> str:
    """The FP32 baseline (plain or distilled) with the higher mean test accuracy."""
    have = [a for a in FP32_ARMS if fp32.get(a)]
    return max(have, key=lambda a: mean_std(fp32[a])[0])


def claim_at(
    threshold: float,
    chosen: Sequence[dict[str, Any] | None],
    reference: Sequence[float],
    reference_name: str,
    fp32_converged: bool | None = None,
) -> dict[str, Any]:
    """Is the mean test accuracy of the chosen models (one per seed; None where the search
    found nothing) at least the stronger FP32 baseline's, every one compressed at least
    ``threshold`` times? ``reference``: that baseline's test accuracy per seed. A baseline
    whose convergence check failed (``fp32_converged`` False) is under-trained: beating it
    does not count."""
    missing = sum(c is None or "test_accuracy" not in c for c in chosen)
    ok = [c for c in chosen if c is not None and "test_accuracy" in c]
    out: dict[str, Any] = {"threshold": threshold, "reference": reference_name,
                           "seeds": len(chosen), "without_model": missing}  # fmt: skip
    if not ok:
        return {**out, "met": False, "why": "no chosen model"}
    acc, _ = mean_std([c["test_accuracy"] for c in ok])
    ref, _ = mean_std(list(reference))
    low = min(c["compression_ratio"] for c in ok)
    out.update(mean_test_accuracy=acc, reference_mean=ref, difference=acc - ref,
               min_compression=low, sources=sorted({c.get("source", "") for c in ok}))  # fmt: skip
    why = []
    if missing:
        why.append(f"{missing} seed(s) without a model")
    if low < threshold:
        why.append(f"compression {low:.1f}x below {threshold:g}x")
    if acc < ref:
        why.append(f"{(ref - acc) * 100:.2f} pp below {reference_name}")
    if fp32_converged is False:
        why.append("FP32 not converged at this budget")
    return {**out, "met": not why, "why": "; ".join(why)}


def pick_for_threshold(
    threshold: float, limited: dict[str, Any] | None, unlimited: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The model judged at ``threshold``: the unlimited search's chosen one when it is
    compressed at least that much, else the limited search's (whose limit is FP32 / 8)."""
    for name, r in (("unlimited", unlimited), ("limited", limited)):
        if r and "test_accuracy" in r and r["compression_ratio"] >= threshold:
            return {**r, "source": name}
    if limited and "test_accuracy" in limited:
        return {**limited, "source": "limited"}
    return None


def claim_line(c: dict[str, Any]) -> str:
    t = f"{c['threshold']:g}x"
    if "mean_test_accuracy" not in c:
        return f"at {t} claim not met ({c['why']})"
    verdict = "claim met" if c["met"] else "claim not met"
    why = "" if c["met"] else f" ({c['why']})"
    return (f"at {t} {verdict}{why}: MOGAQNN ({'/'.join(c['sources'])}) "
            f"{c['mean_test_accuracy']:.2%} vs {c['reference']} {c['reference_mean']:.2%} "
            f"({c['difference'] * 100:+.2f} pp, {c['min_compression']:.1f}x or more, "
            f"{c['seeds'] - c['without_model']} seed(s))")  # fmt: skip
