"""Everything the report shows, computed once from a run directory (plots render it apart).

The report trains nothing: the uniform 8/4/2-bit reference points are evaluated by the
search (``reference_points.json``) and only read here.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import moocore
import numpy as np
import torch

from ..errors import RunDirError
from ..run import RunContext, RunDir, load_run, read_checkpoint, read_result
from ..search import REFERENCE_BITS, REFERENCE_FILE

__all__ = [
    "HV_REFERENCE",
    "REFERENCE_BITS",
    "LayerPolicy",
    "Point",
    "ReportData",
    "reference_points",
    "report_data",
]

HV_REFERENCE = (1.0, 1.0)  # (val error, size / FP32 size): worst error, no compression
HV_REFERENCE_BOPS = (1.0, 1.0, 1.0)  # three objectives: and BOPs / FP32 BOPs


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


def reference_points(run: RunContext) -> tuple[list[Point], str]:
    """The uniform-bit reference points the search evaluated (``reference_points.json``),
    and a note when the run has none."""
    path = run.root / REFERENCE_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))["points"]
        return _points(stored), ""
    except FileNotFoundError:
        return [], f"no uniform-bit references: {path.name} is not in this run"
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        return [], f"uniform-bit references not shown: {path.name} is unreadable ({exc})"


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
    run_dir: str | Path | RunContext, *, model: torch.nn.Module | None = None
) -> ReportData:
    """Collect the report's numbers from a finished run (``model``: the module of a run
    searched with a Python model, which the directory cannot rebuild)."""
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
    references, note = reference_points(run)
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
