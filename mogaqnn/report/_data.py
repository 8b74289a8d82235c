"""Everything the report shows, computed once from a run directory (plots render it apart).

The uniform 8/4/2-bit reference points need evaluations of their own: they are evaluated
once with the search's Evaluator (same subset, budget and seeds as every trial) and kept
in ``reference_points.json``, so a later report reads them instead of training again.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import moocore
import numpy as np
import torch

from ..data import DatasetSplits
from ..errors import RunDirError
from ..run import (
    RunContext,
    RunDir,
    atomic_write_text,
    load_run,
    load_run_data,
    read_checkpoint,
    read_result,
)
from ..search import Evaluator, run_evaluator
from ..train import TrainingDiverged

__all__ = [
    "HV_REFERENCE",
    "REFERENCE_BITS",
    "LayerPolicy",
    "Point",
    "ReportData",
    "reference_points",
    "report_data",
]

REFERENCE_BITS = (8, 4, 2)
HV_REFERENCE = (1.0, 1.0)  # (val error, size / FP32 size): worst error, no compression
HV_REFERENCE_BOPS = (1.0, 1.0, 1.0)  # three objectives: and BOPs / FP32 BOPs
REFERENCE_FILE = "reference_points.json"


@dataclass(frozen=True)
class Point:
    label: str
    error: float  # validation error in [0, 1]
    size_bits: int
    trial: int | None = None
    generation: int | None = None
    bops: int | None = None  # bit operations per sample
    mean_weight_bits: float | None = None  # over the quantized layers (trials only)
    mean_ratio: float | None = None  # over the expansion groups (trials only)


@dataclass(frozen=True)
class LayerPolicy:
    layer: str
    weight_bits: int
    act_bits: int
    width: int  # output channels of the FP32 base
    new_width: int  # output channels of the chosen individual

    @property
    def ratio(self) -> float:
        return self.new_width / self.width


@dataclass(frozen=True)
class ReportData:
    run_dir: Path
    title: str
    trials: list[Point]  # every completed evaluation
    last_population: list[Point]
    front: list[Point]  # the last population's front, the one the choice was made from
    chosen: Point  # its search-time val error, as the other points
    fp32: Point  # the final FP32 baseline (pretrain + final epochs), val error on all of val
    references: list[Point]  # uniform bits, ratio 1.0; empty when they cannot be evaluated
    references_note: str
    fp32_size_bits: int
    hypervolume: list[tuple[int, float]]  # (generation, HV of every evaluation so far)
    hv_reference: tuple[float, ...]  # 2 or 3 coordinates, as the run's objectives
    policy: list[LayerPolicy]
    result: dict[str, Any]
    config: dict[str, Any]


def _read_trials(path: Path) -> list[Point]:
    if not path.is_file():
        raise RunDirError(f"{path.parent} has no pareto.csv; the search has not finished")
    points = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["state"] != "COMPLETE" or not row["val_accuracy"]:
                continue
            gen = int(row["generation"]) if row["generation"] not in ("", "None") else None
            bits = [float(v) for k, v in row.items() if k.startswith("w:") and v]
            ratios = [float(v) for k, v in row.items() if k.startswith("x:") and v]
            points.append(Point(f"trial {row['trial']}", 1.0 - float(row["val_accuracy"]),
                                int(row["size_bits"]), int(row["trial"]), gen,
                                int(row["bops"]) if row.get("bops") else None,
                                sum(bits) / len(bits) if bits else None,
                                sum(ratios) / len(ratios) if ratios else 1.0))  # fmt: skip
    return points


def reference_points(
    run: RunContext, evaluator: Evaluator | None = None, data: DatasetSplits | None = None
) -> list[Point]:
    """Uniform 8/4/2-bit individuals (weights and activations, every ratio 1.0), from
    ``reference_points.json`` or evaluated now and stored there."""
    path = run.root / REFERENCE_FILE
    genomes = {b: run.space.uniform(b, b, 1.0) for b in REFERENCE_BITS}
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))["points"]
            keys = {p["genome_key"] for p in stored}
            if keys == {g.key() for g in genomes.values()}:
                return _points(stored)
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass  # unreadable or of another space: evaluate again below
    if evaluator is None:
        evaluator = run_evaluator(run, load_run_data(run, data))
    # Not a trial of the search, so not in its evaluations log.
    evaluator = dataclasses.replace(evaluator, log_path=None)
    stored = []
    for bits, genome in genomes.items():
        point = {"label": f"uniform {bits}-bit", "weight_bits": bits, "act_bits": bits,
                 "ratio": 1.0, "genome_key": genome.key()}  # fmt: skip
        try:
            ev = evaluator(genome)
        except TrainingDiverged as exc:  # as a search individual can: no point to plot
            stored.append({**point, "failed": f"{type(exc).__name__}: {exc}"})
            continue
        stored.append({**point, "val_accuracy": ev.val_accuracy, "size_bits": ev.size_bits})
    cfg = run.config
    doc = {
        "about": "uniform-bit references, evaluated like every trial of the search",
        "budget": {"search_epochs": cfg.search_epochs, "search_train_samples":
                   cfg.search_train_samples, "qat_lr": cfg.qat_lr, "seed": cfg.seed},
        "points": stored,
    }  # fmt: skip
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return _points(stored)


def _points(stored: list[dict]) -> list[Point]:
    return [Point(p["label"], 1.0 - p["val_accuracy"], p["size_bits"])
            for p in stored if "failed" not in p]  # fmt: skip


def _hypervolume(
    trials: list[Point], fp32_bits: int, fp32_bops: int | None = None
) -> list[tuple[int, float]]:
    """HV, per generation, of every evaluation up to it, on (error, size / FP32 size) against
    :data:`HV_REFERENCE`, or with ``fp32_bops`` (three objectives) on (error, size / FP32
    size, BOPs / FP32 BOPs) against :data:`HV_REFERENCE_BOPS`; points outside the reference
    box add nothing."""
    ref = np.array(HV_REFERENCE if fp32_bops is None else HV_REFERENCE_BOPS)
    gens = sorted({t.generation for t in trials if t.generation is not None})
    out = []
    for g in gens:
        pts = np.array([(t.error, t.size_bits / fp32_bits)
                        + (() if fp32_bops is None else (t.bops / fp32_bops,))
                        for t in trials if t.generation is not None and t.generation <= g
                        and (fp32_bops is None or t.bops is not None)])  # fmt: skip
        pts = pts[np.all(pts < ref, axis=1)] if len(pts) else pts
        out.append((g, float(moocore.hypervolume(pts, ref=ref)) if len(pts) else 0.0))
    return out


def _fp32_point(fp32: dict[str, Any], base_val_accuracy: float) -> Point:
    """The FP32 baseline the chosen model is compared with (pretrained, then trained as many
    final epochs); a result.json without its val accuracy gets the pretrained base, so named."""
    bops = int(fp32["bops"]) if fp32.get("bops") else None
    if fp32.get("val_accuracy") is not None:
        return Point(f"FP32 baseline ({fp32['epochs']:g} epochs)", 1.0 - fp32["val_accuracy"],
                     int(fp32["size_bits"]), bops=bops)  # fmt: skip
    error = 1.0 - base_val_accuracy if not math.isnan(base_val_accuracy) else math.nan
    return Point("FP32 base (pretrained only)", error, int(fp32["size_bits"]), bops=bops)


def _out_widths(path: Path, layers: list[str]) -> dict[str, int]:
    sd = read_checkpoint(path, "the search has not pretrained its base yet")["state_dict"]
    return {n: int(sd[f"{n}.weight"].shape[0]) for n in layers if f"{n}.weight" in sd}


def report_data(
    run_dir: str | Path | RunContext,
    *,
    evaluator: Evaluator | None = None,
    data: DatasetSplits | None = None,
    model: torch.nn.Module | None = None,
) -> ReportData:
    """Collect the report's numbers. Reference points are evaluated (once) when missing,
    with ``evaluator`` when given (the search passes its own)."""
    run = run_dir if isinstance(run_dir, RunContext) else load_run(run_dir, model=model)
    rd = RunDir(run.root)
    result = read_result(run)
    trials = _read_trials(rd.pareto_csv)
    by_number = {t.trial: t for t in trials}
    search = result["search"]
    chosen_no = result["chosen"]["trial"]
    fp32_bits = int(result["fp32"]["size_bits"])
    three = "bops" in result.get("config", {}).get("objectives", ())
    fp32_bops = int(result["fp32"]["bops"]) if three and result["fp32"].get("bops") else None
    try:
        references, note = reference_points(run, evaluator, data), ""
    except RunDirError as exc:  # e.g. Python data that a later `mogaqnn report` cannot load
        references, note = [], f"uniform-bit references not evaluated: {exc}"
    layers = list(result["model"]["quantized_layers"])
    base_w = _out_widths(rd.base_checkpoint, layers)
    final_w = _out_widths(rd.final_checkpoint, layers)
    ch = result["chosen"]
    policy = [
        LayerPolicy(spec["layer"], spec["weight_bits"], spec["act_bits"], base_w[spec["layer"]],
                    final_w[spec["layer"]])
        for spec in ch["layers"]
    ]  # fmt: skip
    return ReportData(
        run_dir=run.root,
        title=f"{result['model']['name']} on {result['dataset']['name']}",
        trials=trials,
        last_population=[by_number[n] for n in search["last_population"] if n in by_number],
        front=[by_number[n] for n in search["front"] if n in by_number],
        chosen=by_number.get(chosen_no) or Point(f"trial {chosen_no}",
                                                 1.0 - ch["search_val_accuracy"], ch["size_bits"]),
        fp32=_fp32_point(result["fp32"], run.base_val_accuracy),
        references=references,
        references_note=note,
        fp32_size_bits=fp32_bits,
        hypervolume=_hypervolume(trials, fp32_bits, fp32_bops),
        hv_reference=HV_REFERENCE if fp32_bops is None else HV_REFERENCE_BOPS,
        policy=policy,
        result=result,
        config=result.get("config", run.config.to_dict()),
    )  # fmt: skip
