"""The statistics of the paper table's ``standard`` profile, on plain numbers and unit dicts.

Pure functions (no torch, no training): mean and spread over seeds, the paired difference
MOGAQNN - stronger FP32 with its 95% t-interval and its verdict, hypervolume, and Kendall's
tau. benchmarks/papertable/ runs the units; tests/test_evidence.py checks these on
hand-made units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import moocore
import numpy as np
from scipy import stats

# Hypervolume on (error, size / FP32 size), both minimised; the FP32 model sits at size
# ratio 1, so the box holds every individual smaller than FP32 with any accuracy.
HV_REFERENCE = (1.0, 1.0)
# A claim's verdicts over seeds (``verdict``), in the headline's order
VERDICTS = ("beyond noise", "tie", "fails", "n/a")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; nan for one value)."""
    if not values:
        return float("nan"), float("nan")
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else float("nan")


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, std and n as JSON keeps them: None where undefined (no value; std of one)."""
    m, s = mean_std(values)
    return {"mean": None if math.isnan(m) else m, "std": None if math.isnan(s) else s,
            "n": len(values)}  # fmt: skip


def paired_interval(diffs: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean of paired differences (one per seed) and its t-interval; no interval for one."""
    m, s = mean_std(diffs)
    n = len(diffs)
    if n < 2:
        return {"n": n, "mean": m if n else None, "low": None, "high": None}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * s / math.sqrt(n)
    return {"n": n, "mean": m, "low": m - half, "high": m + half}


def side(interval: dict[str, Any], zero: float = 0.0) -> str | None:
    """Where a ``paired_interval`` lies against ``zero``: "above", "contains", "below";
    None without an interval (fewer than two values)."""
    if interval["low"] is None:
        return None
    if interval["low"] > zero:
        return "above"
    return "below" if interval["high"] < zero else "contains"


CLAIM_SIDES = {"above": "beyond noise", "contains": "tie", "below": "fails"}


def verdict(diffs: Sequence[float | None], converged: bool | None = None) -> dict[str, Any]:
    """The claim over seeds from each seed's difference to the stronger FP32 baseline (None:
    the seed has no final-trained model that small): its interval (``paired_interval``) and
    verdict: "beyond noise" when the interval lies above zero, "tie" when it contains zero,
    "fails" when it lies below or any seed has no model, "n/a" with fewer than two seeds or
    against an FP32 baseline whose convergence check failed (``converged`` False: beating an
    under-trained baseline does not count)."""
    values = [d for d in diffs if d is not None]
    out = {**paired_interval(values), "without_model": len(diffs) - len(values)}
    if not diffs:
        return {**out, "verdict": "n/a", "why": "no seed"}
    if out["without_model"]:
        why = f"{out['without_model']} of {len(diffs)} seed(s) without a model that small"
        return {**out, "verdict": "fails", "why": why}
    if converged is False:
        return {**out, "verdict": "n/a", "why": "FP32 not converged at this budget"}
    where = side(out)
    if where is None:
        return {**out, "verdict": "n/a", "why": "one seed"}
    return {**out, "verdict": CLAIM_SIDES[where], "why": f"95% interval {where} zero"}


def hypervolume(points: Sequence[Sequence[float]] | np.ndarray,
                ref: Sequence[float] = HV_REFERENCE) -> float:  # fmt: skip
    """HV of (error, size ratio) points; points outside the reference box add nothing."""
    r = np.asarray(ref, dtype=float)
    pts = np.asarray(points, dtype=float).reshape(-1, len(r))
    inside = pts[np.all(pts < r, axis=1)]
    return float(moocore.hypervolume(inside, ref=r)) if len(inside) else 0.0


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b of two rankings (scipy.stats.kendalltau); None below two pairs or
    where either side is constant (tau undefined)."""
    if len(a) < 2:
        return None
    tau = float(stats.kendalltau(a, b).statistic)
    return None if math.isnan(tau) else tau
