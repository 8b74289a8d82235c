"""The paper's table: MOGAQNN beside FP32, uniform QAT and random search, per CNN and dataset.

For every cell (zoo model x dataset), with one seed:

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
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import moocore
import numpy as np
import optuna
import torch

import mogaqnn
from mogaqnn.data import Augmentation, load_dataset
from mogaqnn.errors import MogaqnnError
from mogaqnn.models import create_model
from mogaqnn.run import load_run
from mogaqnn.search import run_evaluator
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
    data = load_dataset(dataset, val_fraction=0.1, seed=0)  # only the shapes are used
    net = create_model(model, in_channels=data.in_channels, num_classes=data.num_classes,
                       image_size=data.image_size)  # fmt: skip
    return fp32_size_bits(net) / KIB_BITS


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
    }  # fmt: skip


def seed_random_run(src: Path, dst: Path, config: mogaqnn.SearchConfig) -> None:
    """Give the random search the MOGAQNN run's FP32 base (and its uniform-bit report
    points, evaluated with the same subset, budget and seeds) instead of recomputing them."""
    if (dst / "config.json").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("base.pt", "reference_points.json"):
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


def uniform_qat(run_dir: Path, device: str) -> dict[str, Any]:
    """Uniform 8/4/2-bit QAT from the run's FP32 base: built like an individual, then the
    chosen model's final recipe (final_epochs, qat_lr, same seed)."""
    run = load_run(run_dir)
    cfg = run.config
    data = load_dataset(cfg.dataset, val_fraction=cfg.val_fraction, seed=cfg.seed)
    evaluator = run_evaluator(run, data, device=device)
    aug = Augmentation(cfg.augment_crop, data.augment_flip and cfg.augment_crop > 0)
    settings = TrainSettings(epochs=cfg.final_epochs, lr=cfg.qat_lr, batch_size=cfg.batch_size,
                             optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
                             augmentation=aug)  # fmt: skip
    fp32_bits = fp32_size_bits(run.base, run.graph.bn_fold)
    out: dict[str, Any] = {}
    for bits in UNIFORM_BITS:
        model = evaluator.build(run.space.uniform(bits, bits, 1.0))
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="profile", action="store_const", const="quick")
    g.add_argument("--full", dest="profile", action="store_const", const="full")
    g.add_argument("--smoke", dest="profile", action="store_const", const="smoke")
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
