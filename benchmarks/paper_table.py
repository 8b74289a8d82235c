"""The paper's table: MOGAQNN beside FP32, uniform QAT and random search, per CNN and dataset.

**The evidence: ``--profile standard``** (three seeds, converged FP32 budgets, 16 x 8
evaluations per search; see STANDARD below for the budgets and the hours per cell):

    python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --workers 2 --plan
    python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --workers 2
    python benchmarks/paper_table.py --profile standard --cells lenet5:mnist5k --workers 2

Per (cell, seed) it runs four units, each written as one JSON under
``benchmarks/results/paper_table_standard/<dataset>-<model>/s<seed>-<arm>.json`` as soon as
it exists (rerunning the command skips finished units; a unit of another budget is redone):
``limited`` (MOGAQNN, size limit FP32 size / 8), ``unlimited`` (MOGAQNN, no limit),
``random`` (random sampling, the limit, the same evaluations) and ``uniform`` (8/4/2-bit
QAT). Each search trains both FP32 baselines (plain and distilled). Once per cell (first
seed): ``convergence`` (the FP32 recipe at twice the epochs: converged when val accuracy
moves < 0.5 pp) and, for LeNet-5 and ResNet-20 on MNIST-5k, ``fidelity`` (Kendall's tau
of search val accuracy vs final test accuracy over 20 individuals of the limited run's
last front and population, benchmarks/fitness_fidelity.py's ``fidelity_from_run``).
The units are aggregated (benchmarks/_evidence.py: mean +- std, paired 95% t-intervals,
the claim at 4x and 8x, hypervolume and evaluations to reach random search's) into
``benchmarks/results/paper_table_standard.{json,md,png}``; the .md is the README's Evidence
section. ``--profile standard-smoke`` runs the same machinery on a budget of minutes and
writes under runs/ (a check, not a result).

**The older one-seed profiles** (``--quick``, ``--smoke``, ``--full``) are smoke checks,
not evidence: budgets far from convergence, one seed. For every cell, with one seed:

- **FP32**: the pretrained base plus ``final_epochs`` more (the search's own baseline);
- **uniform QAT** at 8, 4 and 2 bits (weights and activations, no expansion): the same base,
  built as the search's Evaluator builds an individual, then ``final_epochs`` of QAT like the
  chosen model;
- **MOGAQNN**: ``mogaqnn.search`` with ``max_size_kib = FP32 size / 8`` and the default rule;
- **random search**: the same search with ``sampler = "random"`` (Optuna's RandomSampler),
  the same space, number of evaluations, constraint and FP32 base (``base.pt`` is copied);
- the **hypervolume** of each search's evaluated set on (val error, size / FP32 size), with
  reference point (1, 1), and the same with reference point (1, 1/8), the constrained region.

Every model gets ``pretrain_epochs + final_epochs`` epochs in all. The test split is read
once per final model; nothing here is chosen by test accuracy.

    python benchmarks/paper_table.py --quick                 # CPU: all ten cells, < 90 min
    python benchmarks/paper_table.py --full --device cuda    # GPU: the default search budget
    python benchmarks/paper_table.py --quick --models lenet5 --datasets mnist5k

Writes ``benchmarks/results/paper_table.json`` (resumable: cells already in it are skipped)
and ``benchmarks/results/paper_table.md``; the searches' run directories go under
``runs/paper_table/``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import _evidence as ev  # benchmarks/_evidence.py, beside this file
import _provenance  # benchmarks/_provenance.py, beside this file
import moocore
import numpy as np
import optuna
import torch
from fitness_fidelity import fidelity_from_run

import mogaqnn
from mogaqnn.data import Augmentation, load_dataset
from mogaqnn.errors import MogaqnnError
from mogaqnn.fitness import run_evaluator
from mogaqnn.models import create_model
from mogaqnn.run import (
    augmentation_for,
    expansion_graph,
    load_config_dataset,
    load_run,
    train_settings,
)
from mogaqnn.search._store import STUDY_NAME, open_storage
from mogaqnn.size import KIB_BITS, fp32_size_bits, model_size
from mogaqnn.train import TrainSettings, evaluate_accuracy, train_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("lenet5", "alexnet", "vgg11", "resnet20", "mobilenetv2")
DATASETS = ("mnist5k", "fashion-mnist")
UNIFORM_BITS = (8, 4, 2)
COMPRESSION_TARGET = 8.0  # max_size_kib = FP32 size / 8
HV_REFS = {"1,1": (1.0, 1.0), "1,1/8": (1.0, 1.0 / COMPRESSION_TARGET)}

# Budgets. quick: sized by wall time for a shared 2-core CPU (about 0.05-1 s per batch-64
# QAT step, LeNet-5 to MobileNetV2), so Fashion-MNIST's 54k images get a fraction of an
# epoch with about as many steps as MNIST-5k's epochs; val_fraction 0.03 keeps the final
# models' val pass short there. The quick space is narrower (weights 2-4 bits, ratios up
# to 1.5): in the default space (2-8 bits, ratios to 2.0) hardly any random genome, and so
# no individual of a 3-generation NSGA-II, meets FP32 size / 8 (a smoke run found none in
# 8 evaluations of LeNet-5 or ResNet-20). Both searches share the space. full: the
# package's defaults (population 16, 8 generations, 8 + 4 epochs), meant for a GPU.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "common": {"population": 4, "generations": 3, "search_train_samples": 384,
                   "weight_bits": (2, 3, 4), "expansion_ratios": (1.0, 1.25, 1.5),
                   "search_val_samples": 200, "search_epochs": 1.0, "batch_size": 64},
        "mnist5k": {"pretrain_epochs": 1.5, "final_epochs": 0.5, "val_fraction": 0.1},
        "fashion-mnist": {"pretrain_epochs": 0.12, "final_epochs": 0.04, "val_fraction": 0.03},
    },
    "smoke": {  # a check that the script runs end to end, in minutes; not a result
        "common": {"population": 4, "generations": 2, "search_train_samples": 128,
                   "weight_bits": (2, 3, 4), "expansion_ratios": (1.0, 1.25, 1.5),
                   "search_val_samples": 100, "search_epochs": 1.0, "batch_size": 64},
        "mnist5k": {"pretrain_epochs": 0.3, "final_epochs": 0.1, "val_fraction": 0.1},
        "fashion-mnist": {"pretrain_epochs": 0.02, "final_epochs": 0.005, "val_fraction": 0.03},
    },
    "full": {
        "common": {"population": 16, "generations": 8, "search_train_samples": 2000,
                   "search_epochs": 1.0, "batch_size": 64},
        "mnist5k": {"pretrain_epochs": 8.0, "final_epochs": 4.0, "val_fraction": 0.1},
        "fashion-mnist": {"pretrain_epochs": 8.0, "final_epochs": 4.0, "val_fraction": 0.1},
    },
}  # fmt: skip


def cell_config(profile: str, model: str, dataset: str, seed: int, device: str,
                out: Path, fp32_kib: float, sampler: str) -> mogaqnn.SearchConfig:  # fmt: skip
    p = PROFILES[profile]
    return mogaqnn.SearchConfig(
        model=model, dataset=dataset, seed=seed, device=device, out=str(out), progress=False,
        max_size_kib=fp32_kib / COMPRESSION_TARGET, sampler=sampler,
        **p["common"], **p[dataset],
    )  # fmt: skip


def fp32_kib_of(model: str, dataset: str) -> float:
    """The FP32 size of ``model`` on ``dataset`` as result.json counts it (BatchNorm folded)."""
    data = load_dataset(dataset, val_fraction=0.1, seed=0)  # only the shapes are used
    net = create_model(model, in_channels=data.in_channels, num_classes=data.num_classes,
                       image_size=data.image_size)  # fmt: skip
    example = torch.zeros(2, data.in_channels, data.image_size, data.image_size)
    return fp32_size_bits(net, expansion_graph(net, example, "auto").bn_fold) / KIB_BITS


def evaluated_points(run_dir: Path, fp32_bits: int) -> np.ndarray:
    """(val error, size / FP32 size) of every completed evaluation, read from the study."""
    storage = open_storage(f"journal:{run_dir / 'study.journal'}")
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    pts = [(t.values[0], t.user_attrs["size_bits"] / fp32_bits) for t in study.trials
           if t.state.name == "COMPLETE"]  # fmt: skip
    return np.array(pts, dtype=float).reshape(-1, 2)


def hypervolume(points: np.ndarray, ref: tuple[float, float]) -> float:
    r = np.array(ref)
    inside = points[np.all(points < r, axis=1)]  # points outside the box add nothing
    return float(moocore.hypervolume(inside, ref=r)) if len(inside) else 0.0


def run_search(config: mogaqnn.SearchConfig) -> dict[str, Any]:
    """One search; a search that finds no individual within the size limit is a result too."""
    try:
        r = mogaqnn.search(config)
    except MogaqnnError as exc:
        return {"failed": str(exc)}
    ch = r.chosen
    return {
        "test_accuracy": ch["test_accuracy"], "val_accuracy": ch["val_accuracy"],
        "search_val_accuracy": ch["search_val_accuracy"], "size_kib": ch["size_kib"],
        "compression_ratio": ch["compression_ratio"],
        "mean_weight_bits": ch["mean_weight_bits"], "parameter_ratio": ch["parameter_ratio"],
        "epochs": ch["epochs"], "evaluations": r.data["search"]["evaluations"],
        "trained": r.data["search"]["trained"], "fp32": r.fp32, "search_s":
        r.data["timing"]["search_s"], "total_s": r.data["timing"]["total_s"],
        "resumed": r.data["timing"].get("resumed"),
        "evaluations_s": r.data["timing"].get("evaluations_s"),
    }  # fmt: skip


def seed_random_run(src: Path, dst: Path, config: mogaqnn.SearchConfig) -> None:
    """Give a sibling search (random, or unlimited) the MOGAQNN run's FP32 base, supernet
    and uniform-bit report points (same seed, subset and budget: the files it would
    train) instead of recomputing them."""
    if (dst / "config.json").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("base.pt", "supernet.pt", "reference_points.json"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    (dst / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def fp32_baseline(run_dir: Path, device: str) -> dict[str, Any]:
    """The search's FP32 baseline (base + final_epochs at qat_lr, seed), trained here only
    when neither search got to its final training (no individual met the size limit)."""
    run = load_run(run_dir)
    cfg = run.config
    data = load_dataset(cfg.dataset, val_fraction=cfg.val_fraction, seed=cfg.seed)
    settings = TrainSettings(epochs=cfg.final_epochs, lr=cfg.qat_lr, batch_size=cfg.batch_size,
                             optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
                             augmentation=Augmentation(cfg.augment_crop, data.augment_flip
                                                       and cfg.augment_crop > 0))  # fmt: skip
    model = run.base
    if cfg.final_epochs > 0:
        train_model(model, data.train, settings, seed=cfg.seed, device=device)
    bits = fp32_size_bits(model, run.graph.bn_fold)
    return {"epochs": cfg.pretrain_epochs + cfg.final_epochs,
            "val_accuracy": evaluate_accuracy(model, data.val, device=device),
            "test_accuracy": evaluate_accuracy(model, data.test, device=device),
            "size_bits": bits, "size_kib": bits / KIB_BITS,
            "trained_by": "paper_table"}  # fmt: skip


UNIFORM_START = "fp32 base"  # what a uniform unit's models start from (units record it)


def uniform_qat(run_dir: Path, device: str) -> dict[str, Any]:
    """Uniform 8/4/2-bit QAT from the run's FP32 base itself, quantized and calibrated like
    an individual, then the chosen model's final recipe (final_epochs, qat_lr, same seed).
    Not from the fitness's start: under the supernet fitness that is the supernet's
    base-width slice (what the standard profile's first uniform units started from, read
    as not done now), which is not the uniform QAT baseline, and which a lost runs/ would
    need trained again."""
    run = load_run(run_dir)
    cfg = run.config
    data = load_dataset(cfg.dataset, val_fraction=cfg.val_fraction, seed=cfg.seed)
    # build() is given the float model below, so the evaluator needs no fitness start (whose
    # supernet a lost runs/ would not have)
    widen = dataclasses.replace(run, config=cfg.replace(fitness="widen"))
    evaluator = run_evaluator(widen, data, device=device)
    aug = Augmentation(cfg.augment_crop, data.augment_flip and cfg.augment_crop > 0)
    settings = TrainSettings(epochs=cfg.final_epochs, lr=cfg.qat_lr, batch_size=cfg.batch_size,
                             optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
                             augmentation=aug)  # fmt: skip
    fp32_bits = fp32_size_bits(run.base, run.graph.bn_fold)
    out: dict[str, Any] = {"start": UNIFORM_START}
    for bits in UNIFORM_BITS:
        model = evaluator.build(run.space.uniform(bits, bits, 1.0),
                                float_model=copy.deepcopy(run.base))  # fmt: skip
        size = model_size(model, run.graph.bn_fold)
        row: dict[str, Any] = {"size_kib": size.kib, "compression_ratio":
                               fp32_bits / size.total_bits, "mean_weight_bits": float(bits),
                               "parameter_ratio": 1.0,
                               "epochs": cfg.pretrain_epochs + cfg.final_epochs}  # fmt: skip
        try:
            if cfg.final_epochs > 0:
                train_model(model, data.train, settings, seed=cfg.seed, device=evaluator.device)
            row["val_accuracy"] = evaluate_accuracy(model, data.val, device=evaluator.device)
            row["test_accuracy"] = evaluate_accuracy(model, data.test, device=evaluator.device)
        except Exception as exc:  # e.g. 2-bit training diverging: a result, not a crash
            row["failed"] = f"{type(exc).__name__}: {exc}"
        out[f"uniform{bits}"] = row
    return out


def run_cell(profile: str, model: str, dataset: str, seed: int, device: str,
             runs: Path) -> dict[str, Any]:  # fmt: skip
    t0 = time.perf_counter()
    fp32_kib = fp32_kib_of(model, dataset)
    cell_dir = runs / f"{dataset}-{model}"
    cfg = cell_config(profile, model, dataset, seed, device, cell_dir / "mogaqnn", fp32_kib,
                      "nsga2")  # fmt: skip
    moga = run_search(cfg)
    rnd_cfg = cell_config(profile, model, dataset, seed, device, cell_dir / "random", fp32_kib,
                          "random")  # fmt: skip
    seed_random_run(cell_dir / "mogaqnn", cell_dir / "random", rnd_cfg)
    rand = run_search(rnd_cfg)
    uniform = uniform_qat(cell_dir / "mogaqnn", device)
    fp32_bits = round(fp32_kib * KIB_BITS)
    hv: dict[str, Any] = {}
    for key, ref in HV_REFS.items():
        a = hypervolume(evaluated_points(cell_dir / "mogaqnn", fp32_bits), ref)
        b = hypervolume(evaluated_points(cell_dir / "random", fp32_bits), ref)
        hv[key] = {"mogaqnn": a, "random": b, "ratio": a / b if b > 0 else None}
    fp32 = moga.get("fp32") or rand.get("fp32") or fp32_baseline(cell_dir / "mogaqnn", device)
    claim = None
    if fp32 is not None and "test_accuracy" in moga:
        claim = moga["test_accuracy"] >= fp32["test_accuracy"]
    return {
        "model": model, "dataset": dataset, "seed": seed, "profile": profile,
        "config": {k: v for k, v in cfg.identity().items() if k not in ("sampler",)},
        "fp32": fp32, "fp32_size_kib": fp32_kib, "max_size_kib": fp32_kib / COMPRESSION_TARGET,
        "uniform": uniform, "mogaqnn": moga, "random": rand, "hypervolume": hv,
        "claim_met": claim, "wall_s": time.perf_counter() - t0,
    }  # fmt: skip


# -- the standard profile: three seeds, resumable per (cell, seed, arm) unit --------------
# Seconds per FP32 epoch at 1 torch thread on MNIST-5k's 3,600 training images (QAT costs
# ~1.4x), measured 2026-11-27 on this 2-core CPU with the other core busy (0.25 epoch each;
# LeNet-5 from 40 epochs): LeNet-5 0.7, AlexNet 4.9, VGG-11 3.9, MobileNetV2 13.4,
# ResNet-20 13.6; rounded up for a loaded machine.
EPOCH_S = {"lenet5": 1.0, "alexnet": 5.0, "vgg11": 4.0, "resnet20": 14.0, "mobilenetv2": 14.0}
TRAIN_IMAGES = {"mnist5k": 3600, "fashion-mnist": 54000}  # 15x the images
SEARCH_ARMS = ("limited", "unlimited", "random")  # the arms that search; uniform QAT does not
ARMS = (*SEARCH_ARMS, "uniform")
FIDELITY_CELLS = ("mnist5k/lenet5", "mnist5k/resnet20")
FIDELITY_INDIVIDUALS = 20
CLAIM_THRESHOLDS = (4.0, 8.0)

# Budgets of the standard profile, chosen before any test accuracy of the table was seen.
# FP32 epochs (pretrain at lr 2e-3, then final at qat_lr 5e-4) by convergence on val
# (seed 0, measured 2026-11-27 with this recipe; val is 400 images on MNIST-5k, so 1 image
# is 0.25 pp): LeNet-5 96.50% at 8+2, 97.50% at 16+4, 97.50% at 32+8 -> 16+4; VGG-11
# 97.00% at 6+2, 97.25% at 12+4, 97.25% at 24+8 -> 12+4; AlexNet 97.00% at 6+2, 97.75%
# at 12+4, 98.00% at 24+8 -> 12+4; MobileNetV2 and ResNet-20 take 12+4 too (not
# measured: ~11 min each at 14 s per epoch, too long for this session), Fashion-MNIST
# (15x the images per epoch) a third to a half of MNIST-5k's epochs. Every cell checks its
# own budget (unit ``convergence``) and prints "converged" / "NOT converged".
# Search: the package's population 16 x 8 generations, default space (2-8 bits, ratios
# 1-2) and fitness (supernet), 1 epoch on a subset of the training split: 2,000 images on
# MNIST-5k (ResNet-20: 1,000, for time), 4,000 of Fashion-MNIST's 54,000 (ResNet-20:
# 2,000); the finals always train on the whole split. "seeds": how many of --seeds the
# plan runs (every MNIST-5k cell 3, every Fashion-MNIST cell 1, as the issue allows); the
# rest are listed as missing runs.
# Estimated wall hours (estimate_s, --workers 2, the planned seeds; rough, x2 either way;
# each unit records its wall time, so a later session can correct EPOCH_S), in run order:
#   mnist5k/lenet5 1.0, fashion-mnist/lenet5 1.5, mnist5k/vgg11 2.1, mnist5k/alexnet 2.6,
#   fashion-mnist/vgg11 3.7, fashion-mnist/alexnet 4.5, mnist5k/mobilenetv2 7.0,
#   fashion-mnist/resnet20 7.1, mnist5k/resnet20 8.0 (2.7 of them the fidelity check),
#   fashion-mnist/mobilenetv2 9.4; total ~47 h. So the profile does NOT fit one 8-hour
#   session on this CPU, not even with the reduced plan (above): it runs over about
#   six sessions (resumable per unit), the first covering the four cheapest cells;
#   fashion-mnist/mobilenetv2 exceeds one session even with one seed.
# lsq_scale_lr: the package default since 2475984 (each scale learns at a rate relative to
# its size), named here so that the units of the shared rate (kept as a record in
# results/paper_table_standard_shared_rate) are not read as this budget's.
STANDARD_COMMON: dict[str, Any] = {"population": 16, "generations": 8, "search_epochs": 1.0,
                                   "batch_size": 64, "lsq_scale_lr": 10.0}  # fmt: skip
STANDARD: dict[str, dict[str, Any]] = {
    "mnist5k/lenet5": {"pretrain_epochs": 16, "final_epochs": 4, "search_train_samples": 2000,
                       "val_fraction": 0.1, "seeds": 3},  # ~1.0 h
    # AlexNet: 12 + 4 epochs was not converged (val 97.75 % -> 98.75 % at twice, 4699451)
    "mnist5k/alexnet": {"pretrain_epochs": 24, "final_epochs": 8, "search_train_samples": 2000,
                        "val_fraction": 0.1, "seeds": 3},
    "mnist5k/vgg11": {"pretrain_epochs": 12, "final_epochs": 4, "search_train_samples": 2000,
                      "val_fraction": 0.1, "seeds": 3},  # ~2.1 h
    "mnist5k/mobilenetv2": {"pretrain_epochs": 12, "final_epochs": 4,
                            "search_train_samples": 2000, "val_fraction": 0.1,
                            "seeds": 3},  # ~7.0 h
    "mnist5k/resnet20": {"pretrain_epochs": 12, "final_epochs": 4, "search_train_samples": 1000,
                         "val_fraction": 0.1, "seeds": 3},  # ~8.0 h with fidelity
    "fashion-mnist/lenet5": {"pretrain_epochs": 8, "final_epochs": 2,
                             "search_train_samples": 4000, "search_val_samples": 2000,
                             "val_fraction": 0.1, "seeds": 1},  # ~1.5 h
    "fashion-mnist/alexnet": {"pretrain_epochs": 6, "final_epochs": 2,
                              "search_train_samples": 4000, "search_val_samples": 2000,
                              "val_fraction": 0.1, "seeds": 1},  # ~4.5 h
    "fashion-mnist/vgg11": {"pretrain_epochs": 6, "final_epochs": 2,
                            "search_train_samples": 4000, "search_val_samples": 2000,
                            "val_fraction": 0.1, "seeds": 1},  # ~3.7 h
    "fashion-mnist/mobilenetv2": {"pretrain_epochs": 5, "final_epochs": 1,
                                  "search_train_samples": 4000, "search_val_samples": 2000,
                                  "val_fraction": 0.1, "seeds": 1},  # ~9.4 h
    "fashion-mnist/resnet20": {"pretrain_epochs": 4, "final_epochs": 1,
                               "search_train_samples": 2000, "search_val_samples": 2000,
                               "val_fraction": 0.1, "seeds": 1},  # ~7.1 h
}  # fmt: skip
# standard-smoke: the standard machinery on a budget of minutes (a check, not a result).
STANDARD_SMOKE: dict[str, Any] = {
    "population": 4, "generations": 2, "search_epochs": 1.0, "batch_size": 64,
    "pretrain_epochs": 0.3, "final_epochs": 0.1, "search_train_samples": 128,
    "search_val_samples": 100, "val_fraction": 0.1, "weight_bits": (2, 3, 4),
    "expansion_ratios": (1.0, 1.25, 1.5), "seeds": 3,
}  # fmt: skip


def standard_budget(profile: str, cell: str) -> dict[str, Any]:
    if profile == "standard-smoke":
        return dict(STANDARD_SMOKE)
    return {**STANDARD_COMMON, **STANDARD[cell]}


def estimate_s(cell: str, budget: dict[str, Any], seeds: int, workers: int,
               arms: tuple[str, ...] = ARMS) -> float:  # fmt: skip
    """Wall seconds of a cell on this CPU (1 thread per process), from EPOCH_S. Per seed:
    base P epochs; supernet P epochs at ~10x an epoch (four widths per step, the widest 2x)
    plus ~16 s of slicing per 3,600 images (LeNet-5's supernet took 26 s per epoch where its
    base takes ~1: benchmarks/results/fitness_fidelity.md); three searches of 16 x 8
    evaluations, 1 QAT epoch on the subset at a mean width cost ~2x, split over the workers;
    per search the chosen model (P + F at its width ~2x) and both FP32 baselines (2 F);
    uniform QAT 3 x F; once per cell the convergence check 2 (P + F); fidelity (two cells)
    20 x (2 P + 2.8 F). ``arms``: the units run (uniform QAT alone needs only the base)."""
    dataset, model = cell.split("/")
    epoch = EPOCH_S[model] * TRAIN_IMAGES[dataset] / 3600
    p, f = budget["pretrain_epochs"], budget["final_epochs"]
    evals = budget["population"] * budget["generations"]
    searches = sum(a in arms for a in SEARCH_ARMS)
    search = searches * evals * budget["search_train_samples"] / TRAIN_IMAGES[dataset] * 2.8
    supernet = p * (10 + 16 / EPOCH_S[model]) if searches else 0.0
    per_seed = (p + supernet + search / workers + searches * (2 * p + 2.8 * f + 2 * f)
                + (3 * 1.4 * f if "uniform" in arms else 0.0))  # fmt: skip
    once = 2 * (p + f) + (FIDELITY_INDIVIDUALS * (2 * p + 2.8 * f) if cell in FIDELITY_CELLS
                          else 0)  # fmt: skip
    return epoch * (seeds * per_seed + once)


def unit_path(root: Path, cell: str, seed: int, arm: str) -> Path:
    dataset, model = cell.split("/")
    return root / f"{dataset}-{model}" / f"s{seed}-{arm}.json"


def read_unit(path: Path, budget: dict[str, Any]) -> dict[str, Any] | None:
    """A finished unit of this budget; None when absent, cut short, of another budget, or a
    uniform unit whose models did not start from the FP32 base (run again)."""
    try:
        unit = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if path.stem.endswith("-uniform") and unit.get("start") != UNIFORM_START:
        return None
    return unit if unit.get("budget") == _jsonable(budget) else None


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d))


def write_unit(path: Path, unit: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(unit, indent=2) + "\n")
    tmp.replace(path)  # atomic: a kill leaves the old unit or none


def standard_config(cell: str, budget: dict[str, Any], seed: int, out: Path, *, sampler: str,
                    limited: bool, workers: int, device: str) -> mogaqnn.SearchConfig:  # fmt: skip
    dataset, model = cell.split("/")
    fp32_kib = fp32_kib_of(model, dataset)
    search_keys = {k: v for k, v in budget.items() if k != "seeds"}
    return mogaqnn.SearchConfig(
        model=model, dataset=dataset, seed=seed, device=device, out=str(out), progress=False,
        max_size_kib=fp32_kib / COMPRESSION_TARGET if limited else None, sampler=sampler,
        workers=workers, **search_keys,
    )  # fmt: skip


def search_unit(config: mogaqnn.SearchConfig) -> dict[str, Any]:
    """One search's chosen model, both FP32 baselines, and its evaluations in trial order."""
    row = run_search(config)
    run_dir = Path(config.out)
    result = json.loads((run_dir / "result.json").read_text()) if "failed" not in row else {}
    fp32_bits = round(fp32_kib_of(config.model, config.dataset) * KIB_BITS)
    try:
        row["points"] = evaluated_points(run_dir, fp32_bits).tolist()  # trial order
    except KeyError:  # the search failed before it created its study
        row["points"] = []
    row["fp32_distilled"] = result.get("fp32_distilled")
    row["claim"] = result.get("claim")
    return row


def convergence_unit(config: mogaqnn.SearchConfig, device: str) -> dict[str, Any]:
    """The FP32 recipe (P epochs at lr, then F at qat_lr: how a search trains its FP32
    baseline) at its budget and at twice it, each from the same seed; converged: val
    accuracy < 0.5 pp apart. It needs no search, so it runs before a cell's searches and an
    under-trained budget costs minutes instead of the cell's hours."""
    data = load_config_dataset(config)  # the search's splits (seed, val fraction, data dir)
    aug = augmentation_for(config, data)
    val = []
    for scale in (1, 2):
        torch.manual_seed(config.seed)
        model = create_model(config.model, in_channels=data.in_channels,
                             num_classes=data.num_classes, image_size=data.image_size)  # fmt: skip
        for epochs, lr in ((config.pretrain_epochs, config.lr),
                           (config.final_epochs, config.qat_lr)):  # fmt: skip
            train_model(model, data.train, train_settings(config, scale * epochs, lr, aug),
                        seed=config.seed, device=device)  # fmt: skip
        val.append(evaluate_accuracy(model, data.val, device=device))
    once, twice = val
    return {"epochs": config.pretrain_epochs + config.final_epochs, "val_accuracy": once,
            "epochs_doubled": 2 * (config.pretrain_epochs + config.final_epochs),
            "val_accuracy_doubled": twice, "difference_pp": (twice - once) * 100,
            "converged": abs(twice - once) < 0.005}  # fmt: skip


def run_standard(args, profile: str, cells: list[str], seeds: list[int]) -> int:
    # the smoke check's figures mean nothing: they stay under runs/ (not committed)
    results = RESULTS if profile == "standard" else ROOT / "runs" / "results"
    root = results / f"paper_table_{profile}"
    runs = Path(args.runs).parent / f"paper_table_{profile}"
    command = "python benchmarks/paper_table.py " + " ".join(sys.argv[1:])
    plan = {c: standard_budget(profile, c) for c in cells}

    def run_seeds(cell: str) -> list[int]:  # the seeds this invocation runs for a cell
        return seeds if args.all_seeds else seeds[: plan[cell]["seeds"]]

    order = sorted(cells, key=lambda c: estimate_s(c, plan[c], plan[c]["seeds"], args.workers))
    print("plan (estimated wall time at 1 thread per process, "
          f"--workers {args.workers}):", flush=True)  # fmt: skip
    for c in order:
        hours = estimate_s(c, plan[c], len(run_seeds(c)), args.workers, args.arms) / 3600
        print(f"  {c}: seeds {run_seeds(c)}, ~{hours:.1f} h", flush=True)
    total = sum(estimate_s(c, plan[c], len(run_seeds(c)), args.workers, args.arms)
                for c in order)  # fmt: skip
    print(f"  total ~{total / 3600:.1f} h", flush=True)
    if args.plan:
        return 0
    # the outputs always cover every cell, whichever cells this invocation runs
    every = {c: standard_budget(profile, c) for c in STANDARD}
    table = dict(sorted(every.items(),
                        key=lambda cb: estimate_s(*cb, cb[1]["seeds"], args.workers)))  # fmt: skip
    if args.aggregate:  # only the outputs, from the units already there
        write_outputs(profile, root, table, seeds, command, results)
        print(f"wrote {results / f'paper_table_{profile}'}.{{json,md,png}}", flush=True)
        return 0
    for cell in order:
        budget = plan[cell]
        converged = run_convergence(cell, seeds[0], budget, root, runs, args)
        if args.check_convergence or not (converged or profile == "standard-smoke"):
            continue  # (the smoke check's budget is under-trained by design)
        for seed in run_seeds(cell):
            run_seed(cell, seed, budget, root, runs, args, fidelity=seed == seeds[0])
        write_outputs(profile, root, table, seeds, command, results)
    doc = write_outputs(profile, root, table, seeds, command, results)
    print(
        f"wrote {results / f'paper_table_{profile}'}.{{json,md,png}}; missing runs: "
        f"{len(doc['missing'])}",
        flush=True,
    )
    return 0


def _timed(path: Path, budget: dict[str, Any], label: str, fn) -> None:
    if read_unit(path, budget) is not None:
        print(f"{label}: done, skipped", flush=True)
        return
    t0 = time.perf_counter()
    unit = {"budget": budget, **fn()}
    unit["wall_s"] = time.perf_counter() - t0
    unit["commit"] = _provenance.code_commit()
    write_unit(path, unit)
    print(f"{label}: {unit['wall_s'] / 60:.1f} min", flush=True)


def run_directory(runs: Path, cell: str, seed: int, budget: dict[str, Any]) -> Path:
    """Where a (cell, seed)'s searches run; the budget's hash keeps another budget's run
    directories (which a search would refuse to continue with a new config) apart."""
    tag = hashlib.sha256(json.dumps(_jsonable(budget), sort_keys=True).encode()).hexdigest()
    return runs / cell.replace("/", "-") / f"s{seed}-{tag[:8]}"


def run_seed(cell, seed, budget, root, runs, args, fidelity: bool) -> None:
    """A (cell, seed)'s four units; with ``fidelity``, the cell's fidelity check right after
    the limited search, while the run directory it trains from (which a session's end may
    take) is there."""
    d = run_directory(runs, cell, seed, budget)
    cfgs = {
        "limited": standard_config(cell, budget, seed, d / "limited", sampler="nsga2",
                                   limited=True, workers=args.workers, device=args.device),
        "unlimited": standard_config(cell, budget, seed, d / "unlimited", sampler="nsga2",
                                     limited=False, workers=args.workers, device=args.device),
        "random": standard_config(cell, budget, seed, d / "random", sampler="random",
                                  limited=True, workers=args.workers, device=args.device),
    }  # fmt: skip
    for arm in (a for a in SEARCH_ARMS if a in args.arms):
        if arm != "limited":
            seed_random_run(base_run(d), d / arm, cfgs[arm])
        _timed(unit_path(root, cell, seed, arm), budget, f"{cell} seed {seed} {arm}",
               lambda arm=arm: search_unit(cfgs[arm]))  # fmt: skip
        if arm == "limited" and fidelity and (cell in FIDELITY_CELLS or args.fidelity_all):
            run_fidelity(cell, seed, budget, root, cfgs["limited"], args)
    if "uniform" in args.arms:
        _timed(unit_path(root, cell, seed, "uniform"), budget, f"{cell} seed {seed} uniform",
               lambda: uniform_qat(pretrained_run(d, cfgs["limited"]), args.device))  # fmt: skip


def base_run(d: Path) -> Path:
    """A (cell, seed)'s run directory holding its FP32 base: the searches share one base
    (seed_random_run copies it), and any may be all that is left of a lost runs/."""
    return next((d / a for a in SEARCH_ARMS
                 if (d / a / "base.pt").exists()), d / "limited")  # fmt: skip


def pretrained_run(d: Path, limited: mogaqnn.SearchConfig) -> Path:
    """A run directory with the (cell, seed)'s FP32 base, for uniform QAT: a search's, or,
    where runs/ was lost after its searches' units were written, the limited search's
    directory with the base alone trained again (same seed and recipe: the same base on the
    same machine and threads; the search, if it ever runs there, reads it)."""
    src = base_run(d)
    if not (src / "base.pt").exists():
        mogaqnn.Search(limited).pretrain()
    return src


def run_convergence(cell, seed, budget, root, runs, args) -> bool:
    """The cell's convergence check (first seed), before its searches; False: not converged,
    and the cell's searches are not worth their hours at this budget."""
    config = standard_config(cell, budget, seed, run_directory(runs, cell, seed, budget)
                             / "limited", sampler="nsga2", limited=True, workers=args.workers,
                             device=args.device)  # fmt: skip
    path = unit_path(root, cell, seed, "convergence")
    _timed(path, budget, f"{cell} convergence", lambda: convergence_unit(config, args.device))
    unit = read_unit(path, budget)
    print(f"{cell}: FP32 val {unit['val_accuracy']:.2%} at {unit['epochs']:g} epochs, "
          f"{unit['val_accuracy_doubled']:.2%} at {unit['epochs_doubled']:g}: "
          f"{'converged' if unit['converged'] else 'NOT converged'}", flush=True)  # fmt: skip
    if not unit["converged"] and args.profile == "standard":
        print(f"{cell}: its FP32 budget is under-trained; raise its epochs in STANDARD "
              f"(benchmarks/paper_table.py): its searches are skipped", flush=True)  # fmt: skip
    return unit["converged"]


def run_fidelity(cell, seed, budget, root, config: mogaqnn.SearchConfig, args) -> None:
    """Kendall's tau of the limited search's individuals (first seed), on its run directory
    (``config.out``): searched again where that directory did not outlive a session."""
    d = Path(config.out)
    limited = read_unit(unit_path(root, cell, seed, "limited"), budget) or {}
    fidelity = unit_path(root, cell, seed, "fidelity")
    if "test_accuracy" not in limited:
        print(f"{cell} fidelity: the limited search of seed {seed} chose no model: no check",
              flush=True)  # fmt: skip
        return
    if read_unit(fidelity, budget) is None and not (d / "result.json").exists():
        # the same seed and budget give the same trials; the limited unit stays as it was
        print(f"{cell} fidelity: {d} is gone; searching again", flush=True)
        again = run_search(config)
        print(f"{cell} fidelity: the search again chose test {again.get('test_accuracy')} at "
              f"{again.get('compression_ratio')}x; its unit: {limited['test_accuracy']} at "
              f"{limited['compression_ratio']}x", flush=True)  # fmt: skip
    n = args.fidelity_individuals
    _timed(fidelity, budget, f"{cell} fidelity",
           lambda: fidelity_from_run(d, n, root / cell.replace("/", "-")
                                     / f"s{seed}-fidelity.jsonl", args.device))  # fmt: skip


def aggregate_cell(cell: str, units: dict[int, dict[str, dict[str, Any]]],
                   planned: list[int], all_seeds: list[int]) -> dict[str, Any]:  # fmt: skip
    """One cell's figures over the seeds whose three searches are done (uniform QAT's over
    those of them that have it). ``units[seed][arm]``."""
    done = sorted(s for s, u in units.items() if all(a in u for a in SEARCH_ARMS))
    missing = [f"{cell} seed {s} {a}" for s in all_seeds for a in ARMS
               if a not in units.get(s, {})]  # fmt: skip
    once = ("convergence", "fidelity") if cell in FIDELITY_CELLS else ("convergence",)
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
    """A seed with some of its units but not its three searches: what they measured, shown
    beside the table (a seed enters the table's means, claims and HV with its three
    searches). The FP32 baselines are the ones its searches trained; its models'
    differences are against the stronger."""
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


def collect_units(root: Path, plan: dict[str, dict[str, Any]], seeds: list[int]):
    units: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}
    for cell, budget in plan.items():
        units[cell] = {}
        for s in seeds:
            for arm in (*ARMS, "convergence", "fidelity"):
                u = read_unit(unit_path(root, cell, s, arm), budget)
                if u is not None:
                    units[cell].setdefault(s, {})[arm] = u
    return units


def write_outputs(profile: str, root: Path, plan: dict[str, dict[str, Any]], seeds: list[int],
                  command: str, results: Path = RESULTS) -> dict[str, Any]:  # fmt: skip
    units = collect_units(root, plan, seeds)
    ran_at = sorted({u.get("commit", "?") for c in units.values() for s in c.values()
                     for u in s.values()})  # fmt: skip
    cells = {c: aggregate_cell(c, units[c], seeds[: plan[c]["seeds"]], seeds) for c in plan}
    for c in cells:
        cells[c]["budget"] = {k: v for k, v in _jsonable(plan[c]).items() if k != "seeds"}
    doc = {"profile": profile, "smoke_check": profile != "standard", "command": command,
           "commit": _provenance.code_commit(), "units_ran_at": ran_at, "machine": machine(),
           "seeds": seeds, "cells": cells, "search_to_final_val": search_to_final_summary(cells),
           "missing": [m for c in cells.values() for m in c["missing"]]}  # fmt: skip
    out = results / f"paper_table_{profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    out.with_suffix(".md").write_text(evidence_markdown(doc))
    plot_claim(doc, out.with_suffix(".png"))
    return doc


# arm -> (legend label, colour, marker)
PLOT_ARMS = {
    "uniform8": ("uniform 8/4/2-bit QAT", "0.55", "s"), "uniform4": (None, "0.55", "s"),
    "uniform2": (None, "0.55", "s"), "random": ("random search, FP32/8", "tab:blue", "v"),
    "limited": ("MOGAQNN, FP32/8", "tab:red", "o"),
    "unlimited": ("MOGAQNN, no limit", "tab:orange", "D"),
}  # fmt: skip
GAP_RANGE_PP = (-2.0, 1.5)  # shared y range; gaps below it are drawn on its floor, labelled


def plot_claim(doc: dict[str, Any], path: Path) -> Path:
    """One panel per cell (datasets by row, models by column): per arm, test accuracy minus
    the stronger FP32 baseline's against compression, each seed faint and the mean with
    +- std bars; the claim holds in the shaded region right of 4x (or 8x) and above 0."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    cells = doc["cells"]
    datasets = [d for d in DATASETS if any(n.startswith(d + "/") for n in cells)]
    models = [m for m in MODELS if any(n.endswith("/" + m) for n in cells)]
    fig, axes = plt.subplots(len(datasets), len(models), squeeze=False, sharex=True, sharey=True,
                             figsize=(3.1 * len(models), 2.9 * len(datasets)))  # fmt: skip
    lo, hi = GAP_RANGE_PP
    labelled: set[str] = set()  # each label once, in whichever panel draws it first
    panels = [(i, d, j, m) for i, d in enumerate(datasets) for j, m in enumerate(models)]
    for i, dataset, j, model in panels:
        ax, c = axes[i][j], cells.get(f"{dataset}/{model}", {})
        ax.set_xscale("log")
        ax.set_xlim(1.5, 25)
        ax.set_ylim(lo - 0.3, hi)
        ax.axhline(0, color="black", lw=0.8)
        ax.axvspan(4, 25, ymin=(0.3 - lo) / (hi - lo + 0.3), color="tab:green", alpha=0.08)
        for t in (4, 8):
            ax.axvline(t, color="tab:green", ls="--", lw=0.8)
        claim = c.get("claim")
        verdict = ("no finished seed" if not claim else ", ".join(
            f"{t} {'met' if claim[t]['met'] else 'not met'}" for t in ("4x", "8x")))  # fmt: skip
        n = len(c.get("seeds", []))
        seeds = f"{n} seed" + ("" if n == 1 else "s")
        ax.set_title(f"{dataset} / {model} ({seeds})\n{verdict}", fontsize=9)
        for arm, pairs in c.get("gap_by_seed", {}).items():
            label, colour, marker = PLOT_ARMS[arm]
            x, y = np.array([p[0] for p in pairs]), np.array([100 * p[1] for p in pairs])
            if not len(x):
                continue
            ax.scatter(x, np.maximum(y, lo), s=10, color=colour, marker=marker, alpha=0.35)
            my = float(y.mean())
            sx, sy = (float(v.std(ddof=1)) if len(v) > 1 else 0.0 for v in (x, y))
            ax.errorbar(x.mean(), max(my, lo), xerr=sx, yerr=0 if my < lo else sy,
                        color=colour, marker=marker, ms=6, capsize=2, lw=1, mec="black",
                        mew=0.5, label=None if label in labelled else label)  # fmt: skip
            labelled.add(label)
            if my < lo:  # off the shared range: on its floor, with the value
                ax.annotate(f"{my:+.1f}", (x.mean(), lo), xytext=(0, -9), fontsize=7,
                            textcoords="offset points", ha="center", color=colour)  # fmt: skip
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks([2, 4, 8, 16])
        ax.grid(True, alpha=0.3)
        if j == 0:
            ax.set_ylabel("test acc. - stronger FP32 (pp)", fontsize=8)
        if i == len(datasets) - 1:
            ax.set_xlabel("compression vs FP32 (log)", fontsize=8)
    fig.legend(loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("The claim per cell: shaded = at least FP32's test accuracy at >= 4x "
                 "(dashed: 4x, 8x)", fontsize=10)  # fmt: skip
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _spread(a: dict[str, Any]) -> str:
    """The spread suffix: ± std in points, or nothing for a single value."""
    return "" if math.isnan(a["std"]) else f" ± {a['std'] * 100:.2f}"


def _ms(a: dict[str, Any] | None) -> str:
    if not a or not a.get("n"):
        return "—"
    return f"{a['mean']:.2%}{_spread(a)}"


def _pp(a: dict[str, Any]) -> str:
    """A mean +- std of accuracy differences, in points."""
    if not a.get("n"):
        return "—"
    return f"{a['mean'] * 100:+.2f}{_spread(a)} (n {a['n']})"


def _ci(p: dict[str, Any] | None) -> str:
    if not p or p["n"] == 0:
        return "—"
    if p["low"] is None:
        return f"{p['mean'] * 100:+.2f} pp (1 seed)"
    return f"{p['mean'] * 100:+.2f} [{p['low'] * 100:+.2f}, {p['high'] * 100:+.2f}] pp"


PARTIAL_LABELS = {"limited": "MOGAQNN /8", "unlimited": "MOGAQNN unlimited",
                  "random": "random /8", **{f"uniform{b}": f"uniform {b}-bit"
                                            for b in UNIFORM_BITS}}  # fmt: skip


def partial_line(seed: int | str, part: dict[str, Any]) -> str:
    """A seed outside the table: its units so far and what they measured."""
    fp32 = ", ".join(f"{'distilled ' if k == 'fp32_distilled' else ''}{v:.2%}"
                     for k, v in part["fp32"].items())  # fmt: skip
    models = "; ".join(
        f"{PARTIAL_LABELS[k]} {m['test_accuracy']:.2%}"
        + (f" at {m['compression_ratio']:.1f}x" if m.get("compression_ratio") else "")
        + (f" ({m['difference'] * 100:+.2f} pp)" if m["difference"] is not None else "")
        for k, m in part["models"].items()
    )  # fmt: skip
    missing = [a for a in ARMS if a not in part["units"]]
    return (f"seed {seed}, outside the table ({len(part['units'])} of {len(ARMS)} units; "
            f"missing: {', '.join(missing)}): FP32 {fp32 or '—'}; "
            f"{models or 'no model'}")  # fmt: skip


def evidence_markdown(doc: dict[str, Any]) -> str:
    """The README's Evidence section, regenerated from the aggregated results file."""
    cells = doc["cells"]
    with_claim = [c for c in cells.values() if c.get("claim")]
    met = {t: sum(c["claim"][t]["met"] for c in with_claim) for t in ("4x", "8x")}
    verdicts = {t: ([n for n, c in cells.items() if c.get("claim") and c["claim"][t]["met"]],
                    [n if c.get("claim") else f"{n} (no finished seed)"
                     for n, c in cells.items() if not (c.get("claim") and c["claim"][t]["met"])])
                for t in ("4x", "8x")}  # fmt: skip
    lines = ["## Evidence", ""]
    if doc["smoke_check"]:
        lines += [f"**Smoke check (profile `{doc['profile']}`), not a result**: tiny budgets "
                  "that only show the machinery runs end to end.", ""]  # fmt: skip
    lines += [
        f"Claim met in {met['4x']} of {len(cells)} cells at 4x, {met['8x']} of {len(cells)} at "
        f"8x ({len(with_claim)} of {len(cells)} cells have a finished seed; a cell without "
        "one counts as not met). Met: the mean test accuracy over seeds is at least the "
        "stronger FP32 baseline's (plain or distilled). 8x is judged on the search limited to "
        "FP32 size / 8, 4x on the unlimited search's choice where it compresses 4x or more, "
        "else on the limited one.",
        "",
        *[f"At {t}: the claim holds in {', '.join(ok) or 'no cell'}; "
          + (f"it does not in {', '.join(no)}." if no else "it fails in none.")
          for t, (ok, no) in verdicts.items()],
        "",
        f"Command: `{doc['command']}`  ",
        f"Commit: {doc['commit']} (units ran at {', '.join(doc['units_ran_at']) or '—'})  ",
        f"Machine: {doc['machine']}  ",
        f"Seeds: {', '.join(map(str, doc['seeds']))}; wall time of all units: "
        f"{sum(c['wall_s'] for c in cells.values()) / 3600:.2f} h",
        "",
        "Test accuracy, mean ± std over seeds (pp for std):",
        "",
        "| cell | seeds | FP32 | FP32 distilled | uniform 8 | uniform 4 | uniform 2 | "
        "MOGAQNN /8 | MOGAQNN unlimited | random /8 | MOGAQNN /8 - FP32 (95% CI) | "
        "MOGAQNN unlimited - FP32 (95% CI) | wall h |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, c in cells.items():
        a = c.get("test_accuracy", {})
        ci = {arm: _ci(c.get("paired", {}).get(arm)) for arm in ("limited", "unlimited")}
        comp = c.get("compression", {})

        def arm(k: str, a=a, comp=comp) -> str:
            v = _ms(a.get(k))
            return f"{v} ({comp[k]:.1f}x)" if comp.get(k) and v != "—" else v

        def uni(k: str, a=a, c=c) -> str:  # uniform QAT may have fewer seeds than the searches
            v, n = _ms(a.get(k)), (a.get(k) or {}).get("n", 0)
            return f"{v} (n {n})" if v != "—" and n != len(c["seeds"]) else v

        lines.append(
            f"| {name} | {len(c['seeds'])} | {_ms(a.get('fp32'))} | {_ms(a.get('fp32_distilled'))} "
            f"| {uni('uniform8')} | {uni('uniform4')} | {uni('uniform2')} "
            f"| {arm('limited')} | {arm('unlimited')} | {arm('random')} | {ci['limited']} "
            f"| {ci['unlimited']} "
            f"| {c['wall_s'] / 3600:.2f} |"
        )  # fmt: skip
    lines += ["", "The claim per cell (FP32: the stronger of plain and distilled, by mean test "
              "accuracy; the paired differences above are against it):", ""]  # fmt: skip
    for name, c in cells.items():
        if c.get("claim"):
            lines.append(f"- {name}: " + "; ".join(ev.claim_line(c["claim"][t])
                                                   for t in ("4x", "8x")))  # fmt: skip
        else:
            lines.append(f"- {name}: no finished seed")
        for seed, part in c.get("partial", {}).items():
            lines.append(f"  - {partial_line(seed, part)}")
    lines += ["", "Search quality: hypervolume on (val error, size / FP32 size), reference point "
              f"{tuple(ev.HV_REFERENCE)}, MOGAQNN (limited) vs random search at equal "
              "evaluations (both start from the same uniform-bit individuals, seed_population); "
              "evaluations each needs to reach random search's final HV (per seed; — never).", "",
              "| cell | evaluations | HV MOGAQNN | HV random | ratio | evals to reach (MOGAQNN) "
              "| evals to reach (random) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, c in cells.items():
        h = c.get("hypervolume")
        if not h:
            continue
        ratio = h["limited"]["mean"] / h["random"]["mean"] if h["random"]["mean"] else None
        r = h["evaluations_to_random_final"]

        def fmt(v: list) -> str:
            return ", ".join("—" if x is None else str(x) for x in v)

        def hvs(x: dict[str, Any]) -> str:
            return f"{x['mean']:.4f}" + ("" if math.isnan(x["std"]) else f" ± {x['std']:.4f}")

        lines.append(f"| {name} | {fmt(h['evaluations'])} | {hvs(h['limited'])} | "
                     f"{hvs(h['random'])} | {'—' if ratio is None else f'{ratio:.3f}'} | "
                     f"{fmt(r['limited'])} | {fmt(r['random'])} |")  # fmt: skip
    lines += ["", "FP32 convergence (seed 0; val accuracy at the budget and at twice it; "
              "converged: < 0.5 pp apart):", ""]  # fmt: skip
    for name, c in cells.items():
        v = c.get("convergence")
        if v:
            lines.append(f"- {name}: {v['val_accuracy']:.2%} at {v['epochs']:g} epochs, "
                         f"{v['val_accuracy_doubled']:.2%} at {v['epochs_doubled']:g} "
                         f"({v['difference_pp']:+.2f} pp): "
                         f"{'converged' if v['converged'] else 'NOT converged'}")  # fmt: skip
        else:
            lines.append(f"- {name}: not checked yet")
    fid = {n: c["fidelity"] for n, c in cells.items() if c.get("fidelity")}
    if fid:
        lines += ["", "Fitness fidelity (seed 0; individuals of the limited run's last front and "
                  "population, each trained with the final recipe): Kendall's tau between "
                  "search val accuracy and final test accuracy:", ""]  # fmt: skip
        for n, f in fid.items():
            lines.append(f"- {n}: tau {f['kendall_tau']:+.3f} over {f['individuals']} individuals")
    drift = doc.get("search_to_final_val")
    if drift and drift["limited_minus_random"]["n"]:
        pair = drift["limited_minus_random"]
        lines += ["", "The chosen models' val accuracy from the search's fine-tune to the final "
                  f"training (pooled over {pair['n']} finished seed-cells), mean ± std in pp:",
                  "",
                  *[f"- {label}: {_pp(drift[arm])}" for arm, label in (
                      ("random", "random search /8"), ("limited", "MOGAQNN /8"),
                      ("unlimited", "MOGAQNN unlimited"))],
                  f"- MOGAQNN /8 − random /8, paired: {pair['mean'] * 100:+.2f} pp on average, "
                  f"lower in {pair['lower']} of {pair['n']}"]  # fmt: skip
    lines += [
        "",
        f"Missing runs ({len(doc['missing'])}): "
        + (", ".join(doc["missing"]) if doc["missing"] else "none")
        + ".",
    ]
    return "\n".join(lines) + "\n"


# -- the markdown table ------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.2%}"


def _row(name: str, r: dict[str, Any], fp32_test: float | None) -> str:
    if "failed" in r:
        return f"| {name} | — | — | — | — | — | failed: {r['failed'][:90]} |"
    delta = ""
    if fp32_test is not None and "test_accuracy" in r:
        delta = f" ({(r['test_accuracy'] - fp32_test) * 100:+.2f} pp)"
    return (f"| {name} | {_pct(r.get('test_accuracy'))}{delta} | {r['size_kib']:.2f} | "
            f"{r['compression_ratio']:.1f}x | {r['mean_weight_bits']:.2f} | "
            f"{r['parameter_ratio']:.2f} | |")  # fmt: skip


def render_markdown(doc: dict[str, Any]) -> str:
    cells = doc["cells"]
    lines = [
        "# Paper table (MOGAQNN vs FP32, uniform QAT and random search)",
        "",
        f"**Smoke check, not evidence** (profile `{doc['profile']}`): one seed, budgets far from "
        "convergence. The evidence is `--profile standard` "
        "(benchmarks/results/paper_table_standard.md).",
        "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {doc['machine']}  ",
        f"Profile `{doc['profile']}`, seed {doc['seed']}; wall time of the cells: "
        f"{sum(c['wall_s'] for c in cells.values()) / 60:.1f} min  ",
        f"Size limit of both searches: FP32 size / {COMPRESSION_TARGET:g}. Every model gets "
        "the same total epochs (pretrain + final). Accuracy deltas are against the FP32 "
        'baseline; "width ratio" is parameters / FP32 parameters.',
        "",
    ]
    missed = []
    for key in sorted(cells, key=lambda k: (DATASETS.index(cells[k]["dataset"]),
                                            MODELS.index(cells[k]["model"]))):  # fmt: skip
        c = cells[key]
        fp = c["fp32"]
        fp_test = fp["test_accuracy"] if fp else None
        budget = c["config"]
        lines += [
            f"## {c['model']} on {c['dataset']}",
            "",
            f"epochs {budget['pretrain_epochs']:g} + {budget['final_epochs']:g}, population "
            f"{budget['population']} x {budget['generations']} generations, "
            f"{budget['search_train_samples']} search-train images, weight bits "
            f"{','.join(map(str, budget['weight_bits']))}, ratios "
            f"{','.join(map(str, budget['expansion_ratios']))}, limit "
            f"{c['max_size_kib']:.2f} KiB; cell wall time {c['wall_s'] / 60:.1f} min",
            "",
            "| method | test acc | size KiB | compression | mean w bits | width ratio | note |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        if fp:
            lines.append(f"| FP32 | {_pct(fp_test)} | {fp['size_kib']:.2f} | 1.0x | 32.00 | "
                         "1.00 | |")  # fmt: skip
        for bits in UNIFORM_BITS:
            lines.append(_row(f"uniform {bits}-bit QAT", c["uniform"][f"uniform{bits}"], fp_test))
        lines.append(_row("MOGAQNN", c["mogaqnn"], fp_test))
        lines.append(_row("random search", c["random"], fp_test))
        if c["claim_met"] is False:
            lines[-2] = lines[-2][:-2] + " **claim missed: below FP32** |"
            missed.append(key)
        elif c["claim_met"] is True:
            lines[-2] = lines[-2][:-2] + " claim met: at least FP32 |"
        hv = c["hypervolume"]
        lines.append("")
        for ref_key, h in hv.items():
            ratio = "—" if h["ratio"] is None else f"{h['ratio']:.3f}"
            lines.append(f"hypervolume, reference ({ref_key}): MOGAQNN {h['mogaqnn']:.4f}, "
                         f"random {h['random']:.4f}, ratio {ratio}  ")  # fmt: skip
        lines.append("")
    lines.append(
        f"Cells where MOGAQNN's test accuracy is below FP32: "
        f"{', '.join(missed) if missed else 'none'} ({len(missed)} of {len(cells)})."
    )
    return "\n".join(lines) + "\n"


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
            f"threads, torch {torch.__version__}, optuna {optuna.__version__}, mogaqnn "
            f"{mogaqnn.__version__}, Python {platform.python_version()}, load average at "
            f"start {load:.1f}")  # fmt: skip


def main() -> int:
    _provenance.code_commit()  # read before any unit runs: the code this process loaded
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="profile", action="store_const", const="quick")
    g.add_argument("--full", dest="profile", action="store_const", const="full")
    g.add_argument("--smoke", dest="profile", action="store_const", const="smoke")
    g.add_argument("--profile", dest="profile", choices=("quick", "smoke", "full", "standard",
                                                         "standard-smoke"))  # fmt: skip
    p.add_argument(
        "--cells", default=None, help="standard profiles: model:dataset,... (default: all ten)"
    )
    p.add_argument("--seeds", default="0,1,2", help="standard profiles: the seeds")
    p.add_argument(
        "--workers", type=int, default=1, help="standard profiles: worker processes per search"
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="standard profiles: print the cells, seeds and estimated hours, run nothing",
    )
    p.add_argument(
        "--check-convergence",
        action="store_true",
        help="standard profiles: run only each cell's FP32 convergence check (minutes; a "
        "cell's searches are skipped where it fails anyway)",
    )
    p.add_argument(
        "--aggregate",
        action="store_true",
        help="standard profiles: rewrite the .json and .md from the units, run nothing",
    )
    p.add_argument(
        "--all-seeds",
        action="store_true",
        help="standard profiles: run every seed of --seeds, also where the plan asks for fewer "
        "(the extra seeds count in the table like the planned ones)",
    )
    p.add_argument(
        "--arms",
        default=",".join(ARMS),
        help=f"standard profiles: the units to run per seed, of {','.join(ARMS)} (default: all; "
        "the others are left as they are)",
    )
    p.add_argument("--fidelity-individuals", type=int, default=FIDELITY_INDIVIDUALS)
    p.add_argument(
        "--fidelity-all",
        action="store_true",
        help="standard profiles: the fidelity check on every cell, not two",
    )
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared CPU)")
    p.add_argument("--output", default=str(RESULTS / "paper_table.json"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "paper_table"))
    args = p.parse_args()
    profile = args.profile or "quick"
    torch.set_num_threads(args.threads)
    if profile.startswith("standard"):
        cells = [f"{d}/{m}" for d in DATASETS for m in MODELS]
        if args.cells:
            cells = []
            for spec in args.cells.split(","):
                model, _, dataset = spec.partition(":")
                if model not in MODELS or dataset not in DATASETS:
                    p.error(
                        f"--cells: {spec!r} is not model:dataset with a model of "
                        f"{', '.join(MODELS)} and a dataset of {', '.join(DATASETS)}"
                    )
                cells.append(f"{dataset}/{model}")
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s]
        except ValueError:
            p.error(f"--seeds: {args.seeds!r} is not a comma-separated list of integers")
        args.arms = [a for a in args.arms.split(",") if a]
        if not args.arms or set(args.arms) - set(ARMS):
            p.error(f"--arms: {','.join(args.arms)!r} is not a list of {', '.join(ARMS)}")
        return run_standard(args, profile, cells, seeds)
    print(
        f"profile {profile}: a smoke check of the machinery (one seed, budgets far from "
        "convergence), not evidence; the evidence is --profile standard",
        flush=True,
    )
    models = [m for m in args.models.split(",") if m]
    datasets = [d for d in args.datasets.split(",") if d]
    for m in models:
        if m not in MODELS:
            p.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    for d in datasets:
        if d not in DATASETS:
            p.error(f"unknown dataset {d!r}; choose from {', '.join(DATASETS)}")
    out = Path(args.output)
    command = "python benchmarks/paper_table.py " + " ".join(sys.argv[1:])
    doc: dict[str, Any] = {"profile": profile, "seed": args.seed, "cells": {}}
    if out.exists():
        doc = json.loads(out.read_text())
        if (doc["profile"], doc["seed"]) != (profile, args.seed):
            p.error(f"{out} holds profile {doc['profile']} seed {doc['seed']}; give another "
                    "--output to run a different profile or seed")  # fmt: skip
    doc.update(command=command, machine=machine())
    runs = Path(args.runs) / f"{profile}-seed{args.seed}"
    start = time.perf_counter()
    for dataset in datasets:
        for model in models:
            key = f"{dataset}/{model}"
            if key in doc["cells"]:
                print(f"{key}: already in {out}, skipped", flush=True)
                continue
            cell = run_cell(profile, model, dataset, args.seed, args.device, runs)
            doc["cells"][key] = cell
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=2) + "\n")  # after every cell: resumable
            out.with_suffix(".md").write_text(render_markdown(doc))
            m, fp = cell["mogaqnn"], cell["fp32"] or {}
            print(f"{key}: FP32 {_pct(fp.get('test_accuracy'))}, MOGAQNN "
                  f"{_pct(m.get('test_accuracy'))} at {m.get('size_kib', float('nan')):.2f} KiB, "
                  f"random {_pct(cell['random'].get('test_accuracy'))}, HV ratio "
                  f"{cell['hypervolume']['1,1']['ratio']}; cell {cell['wall_s'] / 60:.1f} min, "
                  f"elapsed {(time.perf_counter() - start) / 60:.1f} min", flush=True)  # fmt: skip
    if doc["cells"]:
        out.with_suffix(".md").write_text(render_markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
