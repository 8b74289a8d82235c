"""The units' figures per cell and over cells (benchmarks/_evidence.py): per claim
threshold and arm the paired difference to the stronger FP32 baseline with its 95%
t-interval and verdict, the hypervolume of the final-trained fronts MOGAQNN / random,
Kendall's tau of the search's val against the final val, the baselines' test accuracy, and
the headline over cells. Reads the units' JSON only: no training."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import _evidence as ev  # benchmarks/_evidence.py
import _provenance  # benchmarks/_provenance.py
import optuna
import torch

import mogaqnn

from .plan import (
    ARMS,
    CLAIM_THRESHOLDS,
    DATASETS,
    ONCE,
    budget_converged,
    jsonable,
    measured_epoch_s,
    read_unit,
    unit_path,
    unit_s,
)

Units = dict[int, dict[str, dict[str, Any]]]  # a cell's units: units[seed][arm]
FP32 = ("fp32", "fp32_distilled")
# the headline's hours are --plan's at --workers 2 --threads 2: one lane alone on this 2-core
# CPU, a worker per core and the main process on both
PLAN_WORKERS = PLAN_THREADS = 2
# the package defaults the markdown names (every one is in each unit's "defaults")
NAMED_DEFAULTS = ("select", "min_compression", "final_candidates", "fitness",
                  "early_stop_sigmas", "final_init", "uniform_qat_bits")  # fmt: skip


def claim_key(t: float) -> str:
    return f"{t:g}x"


def collect_units(root: Path, plan: dict[str, dict[str, Any]],
                  seeds: list[int]) -> dict[str, Units]:  # fmt: skip
    """Every finished unit of each cell at its budget and the package's defaults."""
    units: dict[str, Units] = {}
    for cell, budget in plan.items():
        units[cell] = {}
        for s in seeds:
            for arm in (*ARMS, *ONCE):
                u = read_unit(unit_path(root, cell, s, arm), budget)
                if u is not None:
                    units[cell].setdefault(s, {})[arm] = u
    return units


def aggregate(profile: str, root: Path, plan: dict[str, dict[str, Any]], seeds: list[int],
              command: str) -> dict[str, Any]:  # fmt: skip
    """The results document of ``plan``'s cells (in its order) from the units under ``root``."""
    units = collect_units(root, plan, seeds)
    every = [u for c in units.values() for s in c.values() for u in s.values()]
    ran_at = sorted({u.get("commit", "?") for u in every})
    recorded = next((u["defaults"] for u in every if u.get("defaults")), None)
    cells = {c: aggregate_cell(c, units[c], seeds[: plan[c]["seeds"]]) for c in plan}
    for c in cells:
        cells[c]["budget"] = {k: v for k, v in jsonable(plan[c]).items() if k != "seeds"}
    return {"profile": profile, "smoke_check": profile != "standard", "command": command,
            "commit": _provenance.code_commit(), "units_ran_at": ran_at, "machine": machine(),
            "seeds": seeds,
            "defaults": {k: recorded[k] for k in NAMED_DEFAULTS if k in recorded}
            if recorded else None,
            "headline": headline(cells, plan), "cells": cells,
            "missing": [m for c in cells.values() for m in c["missing"]]}  # fmt: skip


def units_left(cells: dict[str, dict[str, Any]],
               plan: dict[str, dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """How many of the planned units are committed, and --plan's estimate of the missing
    ones' wall hours at PLAN_WORKERS and PLAN_THREADS (from each cell's measured epoch time
    once its convergence check has run), so that no page types them."""
    planned, missing_s = 0, 0.0
    for name, c in cells.items():
        planned += len(c["planned_seeds"]) * len(ARMS) + (len(ONCE) if c["planned_seeds"] else 0)
        per_unit = unit_s(name, plan[name], PLAN_WORKERS, measured_epoch_s(c["convergence"]),
                          PLAN_THREADS)  # fmt: skip
        missing_s += sum(per_unit[m.rsplit(" ", 1)[1]] for m in c["missing"])
    missing = sum(len(c["missing"]) for c in cells.values())
    return {"planned": planned, "missing": missing, "missing_h": missing_s / 3600,
            "workers": PLAN_WORKERS, "threads": PLAN_THREADS}  # fmt: skip


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
            f"threads, torch {torch.__version__}, optuna {optuna.__version__}, mogaqnn "
            f"{mogaqnn.__version__}, Python {platform.python_version()}, load average at "
            f"start {load:.1f}")  # fmt: skip


def claim_row(unit: dict[str, Any], threshold: float) -> dict[str, Any] | None:
    """A search unit's claim at ``threshold`` (result.json's ``claims``: the final-trained
    candidate with the best final val at least that small, against the stronger FP32
    baseline on test); None where the search failed or no candidate is that small."""
    for c in unit.get("claims") or []:
        if abs(c["compression"] - threshold) < 1e-9 and c.get("trial") is not None:
            return c
    return None


def candidates(unit: dict[str, Any]) -> list[dict[str, Any]]:
    """A search unit's final-trained candidates ([] where it failed)."""
    return unit.get("final_candidates") or []


def stronger_fp32_test(unit: dict[str, Any]) -> float | None:
    """The seed's stronger FP32 baseline on test (the claims' reference)."""
    tests = [unit[k]["test_accuracy"] for k in FP32 if unit.get(k)]
    return max(tests) if tests else None


def front_points(unit: dict[str, Any]) -> list[list[float]]:
    """(test error, size / FP32 size) of a unit's final-trained candidates."""
    return [[1 - c["test_accuracy"], 1 / c["compression_ratio"]] for c in candidates(unit)]


def aggregate_cell(cell: str, units: Units, planned: list[int]) -> dict[str, Any]:
    """One cell's figures: each arm's over the seeds that have its unit (the planned ones and
    any other that ran, e.g. by --all-seeds), the hypervolume ratio over those that have
    both; ``planned``: the seeds whose units are missing until they run."""
    have = {arm: [s for s in sorted(units) if arm in units[s]] for arm in ARMS}
    missing = [f"{cell} seed {s} {a}" for s in planned for a in ARMS if a not in units.get(s, {})]
    if planned:
        missing += [f"{cell} seed {planned[0]} {a}" for a in ONCE
                    if a not in units.get(planned[0], {})]  # fmt: skip
    first = units.get(planned[0], {}) if planned else {}
    convergence = {k: v for k, v in first.get("convergence", {}).items()
                   if k not in ("budget", "defaults")}  # fmt: skip
    if convergence:  # judged by today's rule, not the flag the unit stored when it ran
        convergence["converged"] = budget_converged(convergence["difference_pp"])
    out: dict[str, Any] = {
        "cell": cell, "seeds": have, "planned_seeds": planned, "missing": missing,
        "wall_s": sum(u.get("wall_s", 0.0) for s in units for u in units[s].values()),
        "convergence": convergence,
        "failed": {arm: {str(s): units[s][arm]["failed"] for s in have[arm]
                         if "failed" in units[s][arm]} for arm in ARMS},
    }  # fmt: skip
    m = [units[s]["mogaqnn"] for s in have["mogaqnn"]]
    out["test_accuracy"] = {k: ev.summary([u[k]["test_accuracy"] for u in m if u.get(k)])
                            for k in FP32}  # fmt: skip
    out["uniform"] = uniform_summary(m)
    out["claims"] = {
        claim_key(t): {arm: claim_summary([units[s][arm] for s in have[arm]], t,
                                          convergence.get("converged"))
                       for arm in ARMS}
        for t in CLAIM_THRESHOLDS
    }  # fmt: skip
    out["hypervolume"] = hypervolume_summary(units)
    out["kendall_tau"] = {arm: tau_summary([units[s][arm] for s in have[arm]]) for arm in ARMS}
    out["plot"] = plot_points(units, have)
    return out


def uniform_summary(m: list[dict[str, Any]]) -> dict[str, Any]:
    """Uniform QAT's test accuracy and compression per bit width over the mogaqnn units
    (their final stage trains it), and how many diverged."""
    rows: dict[int, list[dict[str, Any]]] = {}
    for u in m:
        for r in u.get("uniform_qat") or []:
            rows.setdefault(r["bits"], []).append(r)
    return {
        str(b): {**ev.summary([r["test_accuracy"] for r in rs if "failed" not in r]),
                 "compression": ev.summary([r["compression_ratio"] for r in rs
                                            if "failed" not in r])["mean"],
                 "failed": sum("failed" in r for r in rs)}
        for b, rs in sorted(rows.items(), reverse=True)
    }  # fmt: skip


def claim_summary(us: list[dict[str, Any]], threshold: float,
                  converged: bool | None) -> dict[str, Any]:  # fmt: skip
    """One arm's claim at ``threshold`` over its seeds (in order): each seed's difference
    to its stronger FP32 baseline on test (None: no model that small), the interval and the
    verdict, and the judged models' test accuracy and compression."""
    rows = [claim_row(u, threshold) for u in us]
    diffs = [r["test_accuracy_difference"] if r else None for r in rows]
    judged = [r for r in rows if r]
    return {**ev.verdict(diffs, converged), "differences": diffs,
            "test_accuracy": ev.summary([r["test_accuracy"] for r in judged]),
            "compression": ev.summary([r["compression_ratio"] for r in judged]),
            "references": sorted({r["reference"] for r in judged})}  # fmt: skip


def hypervolume_summary(units: Units) -> dict[str, Any]:
    """Per seed with both searches: the hypervolume of each arm's final-trained front on
    (test error, size / FP32 size), and of its evaluations on (val error, size / FP32 size)
    at equal evaluations; the ratio MOGAQNN / random (None where random's is 0) with its
    interval over seeds and where it lies against 1."""
    both = [s for s in sorted(units) if all(a in units[s] for a in ARMS)]
    out: dict[str, Any] = {"reference_point": list(ev.HV_REFERENCE), "seeds": both}
    for kind in ("final", "search"):
        hv: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for s in both:
            u = units[s]
            if kind == "final":
                pts = {arm: front_points(u[arm]) for arm in ARMS}
            else:
                n = min(len(u[arm].get("points") or []) for arm in ARMS)
                pts = {arm: (u[arm].get("points") or [])[:n] for arm in ARMS}
            for arm in ARMS:
                hv[arm].append(ev.hypervolume(pts[arm]))
        ratio = [a / b if b > 0 else None for a, b in zip(hv["mogaqnn"], hv["random"])]
        interval = ev.paired_interval([r for r in ratio if r is not None])
        out[kind] = {**hv, "ratio": ratio, **interval, "side": ev.side(interval, 1.0)}
    return out


def tau_summary(us: list[dict[str, Any]]) -> dict[str, Any]:
    """Kendall's tau of the search's val accuracy against the final val accuracy over an
    arm's final-trained candidates, pooled over its seeds and per seed, with n; and the
    mean change from one to the other (the search's estimate's bias)."""
    per_seed = [[(c["search_val_accuracy"], c["val_accuracy"]) for c in candidates(u)]
                for u in us]  # fmt: skip
    pooled = [p for ps in per_seed for p in ps]
    return {"tau": ev.kendall_tau([a for a, _ in pooled], [b for _, b in pooled]),
            "n": len(pooled),
            "per_seed": [ev.kendall_tau([a for a, _ in ps], [b for _, b in ps])
                         for ps in per_seed],
            "final_minus_search_val": ev.summary([b - a for a, b in pooled])}  # fmt: skip


def plot_points(units: Units, have: dict[str, list[int]]) -> dict[str, Any]:
    """(compression, test accuracy - the seed's stronger FP32) of every final-trained
    candidate per arm and seed, of both FP32 baselines (at 1x) and of uniform QAT."""
    out: dict[str, Any] = {arm: [] for arm in ARMS}
    out |= {"fp32": [], "fp32_distilled": [], "uniform": []}
    for arm in ARMS:
        for s in have[arm]:
            u = units[s][arm]
            ref = stronger_fp32_test(u)
            if ref is None:
                continue
            out[arm].append([[c["compression_ratio"], c["test_accuracy"] - ref]
                             for c in candidates(u)])  # fmt: skip
            if arm != ARMS[0]:
                continue
            for k in FP32:
                out[k].append([1.0, u[k]["test_accuracy"] - ref])
            rows = [r for r in u.get("uniform_qat") or [] if "failed" not in r]
            out["uniform"] += [[r["bits"], r["compression_ratio"], r["test_accuracy"] - ref]
                               for r in rows]  # fmt: skip
    return out


def headline(cells: dict[str, dict[str, Any]],
             plan: dict[str, dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Over cells, per dataset and in all: at each claim threshold the cells of each verdict
    of MOGAQNN's claim (those without a seed apart) and those whose mean difference is >= 0;
    the cells whose MOGAQNN front (final-trained) lies above random search's by the HV
    ratio's interval, within it, below it, or not yet judged; how many cells have seeds;
    how many units are committed and what the missing ones cost (``units_left``)."""
    scopes = {**{d: [c for c in cells if c.startswith(d + "/")] for d in DATASETS},
              "all": list(cells)}  # fmt: skip
    claims: dict[str, Any] = {}
    for t in CLAIM_THRESHOLDS:
        k = claim_key(t)
        for scope, names in scopes.items():
            no_seed = [n for n in names if not cells[n]["seeds"]["mogaqnn"]]
            judged = {n: cells[n]["claims"][k]["mogaqnn"] for n in names if n not in no_seed}
            claims[f"{scope} {k}"] = {
                **{v: [n for n, c in judged.items() if c["verdict"] == v] for v in ev.VERDICTS},
                "no seed": no_seed,
                "cells": len(names),
                "with_mean": [n for n, c in judged.items() if c["mean"] is not None],
                "mean_at_least_0": [n for n, c in judged.items()
                                    if c["mean"] is not None and c["mean"] >= 0],
            }  # fmt: skip
    hv = {n: c["hypervolume"]["final"] for n, c in cells.items()}
    return {
        "cells": len(cells),
        "with_seed": [n for n, c in cells.items() if c["seeds"]["mogaqnn"]],
        "with_three": [n for n, c in cells.items() if len(c["seeds"]["mogaqnn"]) >= 3],
        "claims": claims,
        "hypervolume": {
            **{side: [n for n, h in hv.items() if h["side"] == side]
               for side in ("above", "contains", "below")},
            "mean_above_1": [n for n, h in hv.items() if h["mean"] is not None and h["mean"] > 1],
            "with_ratio": [n for n, h in hv.items() if h["mean"] is not None],
            "judged": [n for n, h in hv.items() if h["side"] is not None],
        },
        "units": units_left(cells, plan),
    }  # fmt: skip
