"""The units' figures per cell and over cells: mean +- std over seeds, the paired
differences against the stronger FP32 baseline with their 95% t-intervals, the claim at 4x
and 8x, hypervolume and evaluations to reach random search's (benchmarks/_evidence.py).
Reads the units' JSON only: no training."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import _evidence as ev  # benchmarks/_evidence.py
import _provenance  # benchmarks/_provenance.py
import numpy as np
import optuna
import torch

import mogaqnn

from .plan import (
    ARMS,
    CLAIM_THRESHOLDS,
    COMPRESSION_TARGET,
    FIDELITY_CELLS,
    ONCE,
    SEARCH_ARMS,
    UNIFORM_BITS,
    jsonable,
    read_unit,
    unit_path,
)

Units = dict[int, dict[str, dict[str, Any]]]  # a cell's units: units[seed][arm]


def collect_units(root: Path, plan: dict[str, dict[str, Any]],
                  seeds: list[int]) -> dict[str, Units]:  # fmt: skip
    """Every finished unit of each cell at its budget."""
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
    ran_at = sorted({u.get("commit", "?") for c in units.values() for s in c.values()
                     for u in s.values()})  # fmt: skip
    cells = {c: aggregate_cell(c, units[c], seeds[: plan[c]["seeds"]], seeds) for c in plan}
    for c in cells:
        cells[c]["budget"] = {k: v for k, v in jsonable(plan[c]).items() if k != "seeds"}
    return {"profile": profile, "smoke_check": profile != "standard", "command": command,
            "commit": _provenance.code_commit(), "units_ran_at": ran_at, "machine": machine(),
            "seeds": seeds, "cells": cells, "search_to_final_val": search_to_final_summary(cells),
            "missing": [m for c in cells.values() for m in c["missing"]]}  # fmt: skip


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
            f"threads, torch {torch.__version__}, optuna {optuna.__version__}, mogaqnn "
            f"{mogaqnn.__version__}, Python {platform.python_version()}, load average at "
            f"start {load:.1f}")  # fmt: skip


def aggregate_cell(cell: str, units: Units, planned: list[int],
                   all_seeds: list[int]) -> dict[str, Any]:  # fmt: skip
    """One cell's figures over the seeds whose searches are all done (uniform QAT's over
    those of them that have it)."""
    done = sorted(s for s, u in units.items() if all(a in u for a in SEARCH_ARMS))
    missing = [f"{cell} seed {s} {a}" for s in all_seeds for a in ARMS
               if a not in units.get(s, {})]  # fmt: skip
    once = ONCE if cell in FIDELITY_CELLS else ONCE[:1]
    if all_seeds:
        missing += [f"{cell} seed {all_seeds[0]} {a}" for a in once
                    if a not in units.get(all_seeds[0], {})]  # fmt: skip
    out: dict[str, Any] = {"cell": cell, "seeds": done, "planned_seeds": planned,
                           "missing": missing}  # fmt: skip
    out["wall_s"] = sum(u.get("wall_s", 0.0) for s in units for u in units[s].values())
    first = units.get(all_seeds[0], {}) if all_seeds else {}
    out["convergence"] = {k: v for k, v in first.get("convergence", {}).items() if k != "budget"}
    out["fidelity"] = {k: v for k, v in first.get("fidelity", {}).items()
                       if k not in ("budget", "rows")} or None  # fmt: skip
    out["partial"] = {s: partial_seed(units[s]) for s in sorted(units)
                      if s not in done and any(a in units[s] for a in ARMS)}  # fmt: skip
    out["uniform_seeds"] = [s for s in done if "uniform" in units[s]]
    if not done:
        return out
    u = [units[s] for s in done]
    acc: dict[str, list[float]] = {
        "fp32": [x["limited"]["fp32"]["test_accuracy"] for x in u if x["limited"].get("fp32")],
        "fp32_distilled": [x["limited"]["fp32_distilled"]["test_accuracy"] for x in u
                           if x["limited"].get("fp32_distilled")],
    }  # fmt: skip
    for bits in UNIFORM_BITS:
        acc[f"uniform{bits}"] = [uniform_row(x, bits)["test_accuracy"] for x in u
                                 if "test_accuracy" in uniform_row(x, bits)]  # fmt: skip
    for arm in SEARCH_ARMS:
        acc[arm] = [x[arm]["test_accuracy"] for x in u if "test_accuracy" in x[arm]]
    out["test_accuracy"] = {k: dict(zip(("mean", "std"), ev.mean_std(v)), n=len(v))
                            for k, v in acc.items()}  # fmt: skip
    # val after the search's fine-tune -> val after the final training, per finished seed
    # (None where a unit lacks either): how well the search's estimate of its choice holds
    out["search_to_final_val"] = {
        arm: [x[arm]["val_accuracy"] - x[arm]["search_val_accuracy"]
              if {"val_accuracy", "search_val_accuracy"} <= x[arm].keys() else None for x in u]
        for arm in SEARCH_ARMS
    }  # fmt: skip
    out["compression"] = {arm: ev.mean_std([x[arm]["compression_ratio"] for x in u
                                            if "compression_ratio" in x[arm]])[0]
                          for arm in SEARCH_ARMS}  # fmt: skip
    ref = ev.stronger_fp32(acc) if acc["fp32"] else None
    out["stronger_fp32"] = ref
    if ref is None:
        return out
    ref_by_seed = [x["limited"][ref]["test_accuracy"] for x in u]
    # (compression, test accuracy - the stronger FP32's) per seed and arm: the claim plot
    arms = {f"uniform{b}": lambda x, b=b: uniform_row(x, b) for b in UNIFORM_BITS}
    arms |= {a: lambda x, a=a: x[a] for a in SEARCH_ARMS}
    out["gap_by_seed"] = {
        arm: [[get(x)["compression_ratio"], get(x)["test_accuracy"] - r] for x, r
              in zip(u, ref_by_seed) if {"compression_ratio", "test_accuracy"} <= get(x).keys()]
        for arm, get in arms.items()
    }  # fmt: skip
    out["paired"] = {
        arm: ev.paired_interval([x[arm]["test_accuracy"] - r for x, r in zip(u, ref_by_seed)
                                 if "test_accuracy" in x[arm]])
        for arm in ("limited", "unlimited")
    }  # fmt: skip
    out["claim"] = {}
    for t in CLAIM_THRESHOLDS:
        chosen = [ev.pick_for_threshold(t, x["limited"], None if t >= COMPRESSION_TARGET
                                        else x["unlimited"]) for x in u]  # fmt: skip
        out["claim"][f"{t:g}x"] = ev.claim_at(t, chosen, ref_by_seed, ref,
                                              out["convergence"].get("converged"))  # fmt: skip
    hv = {arm: [] for arm in ("limited", "random")}
    reach = {arm: [] for arm in ("limited", "random")}
    evaluations = []
    for x in u:
        n = min(len(x["limited"]["points"]), len(x["random"]["points"]))  # equal evaluations
        target = ev.hypervolume(np.array(x["random"]["points"][:n]))
        for arm in hv:
            pts = x[arm]["points"][:n]
            hv[arm].append(ev.hypervolume(np.array(pts)))
            reach[arm].append(ev.evaluations_to_reach(pts, target))
        evaluations.append(n)
    out["hypervolume"] = {
        "reference_point": list(ev.HV_REFERENCE), "evaluations": evaluations,
        **{arm: dict(zip(("mean", "std"), ev.mean_std(v)), values=v) for arm, v in hv.items()},
        "evaluations_to_random_final": reach,
    }  # fmt: skip
    return out


def uniform_row(u: dict[str, dict[str, Any]], bits: int) -> dict[str, Any]:
    """A seed's uniform QAT model at ``bits`` ({} where the seed has no uniform unit)."""
    return u.get("uniform", {}).get(f"uniform{bits}", {})


def partial_seed(u: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A seed with some of its units but not all its searches: what they measured, shown
    beside the table (a seed enters the table's means, claims and HV with every search).
    The FP32 baselines are the ones its searches trained; its models' differences are
    against the stronger."""
    search = next((u[a] for a in SEARCH_ARMS if u.get(a, {}).get("fp32")), {})
    fp32 = {k: search[k]["test_accuracy"] for k in ev.FP32_ARMS if search.get(k)}
    models = {a: u[a] for a in SEARCH_ARMS if "test_accuracy" in u.get(a, {})}
    models |= {f"uniform{b}": uniform_row(u, b) for b in UNIFORM_BITS
               if "test_accuracy" in uniform_row(u, b)}  # fmt: skip
    ref = ev.stronger_fp32({k: [v] for k, v in fp32.items()}) if fp32 else None
    return {
        "units": [a for a in ARMS if a in u], "fp32": fp32, "stronger_fp32": ref,
        "models": {k: {"test_accuracy": m["test_accuracy"],
                       "compression_ratio": m.get("compression_ratio"),
                       "difference": m["test_accuracy"] - fp32[ref] if ref else None}
                   for k, m in models.items()},
    }  # fmt: skip


def search_to_final_summary(cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The cells' search-to-final val changes pooled over every finished (cell, seed): per arm
    mean +- std, and MOGAQNN (limited) minus random paired by seed-cell."""
    changes = [c.get("search_to_final_val", {}) for c in cells.values()]
    out: dict[str, Any] = {}
    for arm in SEARCH_ARMS:
        v = [d for c in changes for d in c.get(arm, []) if d is not None]
        out[arm] = dict(zip(("mean", "std"), ev.mean_std(v)), n=len(v))
    diff = [lim - rnd for c in changes
            for lim, rnd in zip(c.get("limited", []), c.get("random", []))
            if lim is not None and rnd is not None]  # fmt: skip
    out["limited_minus_random"] = {"mean": ev.mean_std(diff)[0], "n": len(diff),
                                   "lower": sum(d < 0 for d in diff)}  # fmt: skip
    return out
