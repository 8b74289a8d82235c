"""What the table runs: its cells, its arms, each profile's budgets, the hours a cell is
estimated to take, and where each unit's JSON lies. No training."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mogaqnn.config import SearchConfig  # the package's defaults

MODELS = ("lenet5", "alexnet", "vgg11", "resnet20", "mobilenetv2")
DATASETS = ("fashion-mnist", "mnist5k")  # the run order: Fashion-MNIST first (issue 38)
DATASET_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist5k": "MNIST-5k"}
PROFILES = ("standard", "standard-smoke")
CLAIM_THRESHOLDS = (4.0, 8.0)  # the claims the table judges: at >= 4x and at >= 8x


@dataclass(frozen=True)
class SearchArm:
    """A search each (cell, seed) runs: the config keys the arm sets, its name in the tables
    and its (legend, colour, marker) in the plot."""

    settings: dict[str, Any]
    label: str
    plot: tuple[str, str, str]


# The arms, in run order: the one place that names them. One unit each per (cell, seed).
# "mogaqnn" is the search (NSGA-II) and its final stage: k final-trained candidates of its
# front, both FP32 baselines and uniform 8/4/2-bit QAT from the FP32 base (the package's
# uniform_qat_bits), every model tested once. "random" samples at random with the same
# population x generations and the same final stage, from the mogaqnn arm's FP32 base,
# supernet and finished final trainings (copied when its run directory still has them:
# the same seed and recipe train the same models); it trains no uniform QAT: from the same
# base and seed it would train the mogaqnn arm's three uniform models again.
SEARCHES = {
    "mogaqnn": SearchArm({"sampler": "nsga2"}, "MOGAQNN", ("MOGAQNN", "tab:red", "o")),
    "random": SearchArm({"sampler": "random", "uniform_qat_bits": ()}, "random search",
                        ("random search", "tab:blue", "v")),
}  # fmt: skip
ARMS = tuple(SEARCHES)
ONCE = ("convergence",)  # a unit of a cell's first seed
# What a unit's table sets per unit (its cell, seed and arm): not a package default.
PER_UNIT = ("model", "dataset", "seed", "sampler", "uniform_qat_bits")

# Seconds per FP32 epoch at 1 torch thread on MNIST-5k's 3,600 training images (QAT costs
# ~1.4x), measured 2026-11-27 on this 2-core CPU with the other core busy (0.25 epoch each;
# LeNet-5 from 40 epochs): LeNet-5 0.7, AlexNet 4.9, VGG-11 3.9, MobileNetV2 13.4,
# ResNet-20 13.6; rounded up for a loaded machine.
EPOCH_S = {"lenet5": 1.0, "alexnet": 5.0, "vgg11": 4.0, "resnet20": 14.0, "mobilenetv2": 14.0}
TRAIN_IMAGES = {"mnist5k": 3600, "fashion-mnist": 54000}  # 15x the images

# Budgets of the standard profile. The table sets only what it must: population x
# generations, the epochs and the search's subsets per cell (below, chosen before any test
# accuracy of the table was seen), and claim_compressions (the thresholds it judges, 4x
# and 8x; the candidates include the best of the front at each). Everything else (select,
# min_compression, final_candidates, fitness, early_stop_sigmas, the recipe, ...) is the
# package's default, being decided by measurements: a unit records the defaults it ran at
# (``package_defaults``) and counts as done only while they are still the defaults.
# FP32 epochs (pretrain at lr 2e-3, then final at qat_lr 5e-4) by convergence on val
# (seed 0, measured 2026-11-27; val is 400 images on MNIST-5k, so 1 image is 0.25 pp):
# LeNet-5 96.50% at 8+2, 97.50% at 16+4, 97.50% at 32+8 -> 16+4; VGG-11 97.00% at 6+2,
# 97.25% at 12+4, 97.25% at 24+8 -> 12+4; AlexNet 12+4 was not converged (val 97.75% ->
# 98.75% at twice, 4699451) -> 24+8, nor was 24+8 (98.50% -> 99.00%, 3964098) -> 48+16;
# ResNet-20 12+4; MobileNetV2 12+4 was not converged (95.75% -> 96.25% at twice, 2 of 400
# val images, 829fee0) -> 24+8, nor was 24+8 (96.25% -> 97.50%, 1eab0f9) -> 48+16;
# Fashion-MNIST (15x the images per epoch) a third to a half of MNIST-5k's epochs. Every
# cell checks its own budget (unit ``convergence``, the record's units converged at every
# one of these budgets).
# Search: 1 epoch on a subset of the training split: 2,000 images on MNIST-5k (ResNet-20:
# 1,000, for time), 4,000 of Fashion-MNIST's 54,000 (ResNet-20: 2,000), val on 2,000 of
# Fashion-MNIST's 6,000; the final stage always trains on the whole split. Three seeds per
# cell on both datasets ("seeds": how many of --seeds the plan runs).
# Estimated wall hours (estimate_s, --workers 2, three seeds, the package's defaults of
# this commit: final_candidates 1; rough, x2 either way; each unit records its wall time
# and the search's timing, so a later session can correct the costs), in run order:
#   fashion-mnist/lenet5 2.4, fashion-mnist/vgg11 8.3, fashion-mnist/alexnet 10.4,
#   fashion-mnist/resnet20 17.0, fashion-mnist/mobilenetv2 24.1 (Fashion-MNIST 62 h);
#   mnist5k/lenet5 0.6, mnist5k/vgg11 2.1, mnist5k/alexnet 3.5, mnist5k/resnet20 5.0,
#   mnist5k/mobilenetv2 7.3 (MNIST-5k 18 h); total ~81 h: about ten 8-hour sessions on this
#   CPU, resumable per unit. The longest unit, Fashion-MNIST / MobileNetV2's mogaqnn (~5.4 h,
#   most of it the supernet), fits one session only when the session starts with it.
STANDARD_COMMON: dict[str, Any] = {"population": 16, "generations": 8, "search_epochs": 1.0,
                                   "claim_compressions": CLAIM_THRESHOLDS}  # fmt: skip
PER_DATASET: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"search_val_samples": 2000, "seeds": 3},
    "mnist5k": {"seeds": 3},
}
# per dataset and model: pretrain epochs, final epochs, search-train images
EPOCHS_AND_SUBSET = {
    "fashion-mnist": {"lenet5": (8, 2, 4000), "alexnet": (6, 2, 4000), "vgg11": (6, 2, 4000),
                      "mobilenetv2": (5, 1, 4000), "resnet20": (4, 1, 2000)},
    "mnist5k": {"lenet5": (16, 4, 2000), "alexnet": (48, 16, 2000), "vgg11": (12, 4, 2000),
                "mobilenetv2": (48, 16, 2000), "resnet20": (12, 4, 1000)},
}  # fmt: skip
# every cell's budget of the standard profile, but STANDARD_COMMON
STANDARD: dict[str, dict[str, Any]] = {
    f"{dataset}/{model}": {"pretrain_epochs": p, "final_epochs": f, "search_train_samples": n,
                           **PER_DATASET[dataset]}
    for dataset, models in EPOCHS_AND_SUBSET.items()
    for model, (p, f, n) in models.items()
}  # fmt: skip
# standard-smoke: the standard machinery on a budget of minutes (a check, not a result).
STANDARD_SMOKE: dict[str, Any] = {
    "population": 4, "generations": 2, "search_epochs": 1.0, "batch_size": 64,
    "pretrain_epochs": 0.3, "final_epochs": 0.1, "search_train_samples": 128,
    "search_val_samples": 100, "weight_bits": (2, 3, 4), "expansion_ratios": (1.0, 1.25, 1.5),
    "claim_compressions": CLAIM_THRESHOLDS, "seeds": 3,
}  # fmt: skip


UNDER_TRAINED_PP = 0.5  # val gain from twice the FP32 epochs that calls a budget under-trained


def budget_converged(gain_pp: float) -> bool:
    """Whether an FP32 budget is trained enough: twice its epochs gain less than
    UNDER_TRAINED_PP of val accuracy. One-sided: a drop is noise or over-fitting, not an
    under-trained baseline that a search could beat unfairly."""
    return gain_pp < UNDER_TRAINED_PP


def standard_budget(profile: str, cell: str) -> dict[str, Any]:
    """A cell's budget: the search's config keys the table sets, and "seeds" (how many the
    plan runs)."""
    if profile == "standard-smoke":
        return dict(STANDARD_SMOKE)
    return {**STANDARD_COMMON, **STANDARD[cell]}


def package_defaults(budget: dict[str, Any]) -> dict[str, Any]:
    """The package's defaults of every key that defines what a search computes
    (``SearchConfig.identity``) and that neither ``budget`` nor the unit sets: what a unit
    of ``budget`` runs at besides its budget, as JSON reads it back."""
    return jsonable({k: v for k, v in SearchConfig().identity().items()
                     if k not in budget and k not in PER_UNIT})  # fmt: skip


def defaults_hold(recorded: dict[str, Any] | None, budget: dict[str, Any]) -> bool:
    """Whether every package default a unit recorded is still the default (a key added to
    the package since, whose default keeps the old behaviour, does not stale a unit)."""
    if recorded is None:
        return False
    now = package_defaults(budget)
    return all(now[k] == v for k, v in recorded.items() if k in now)


def final_candidates(budget: dict[str, Any]) -> int:
    """k: the final-trained candidates per search (the budget's, else the package's)."""
    return int(budget.get("final_candidates", SearchConfig().final_candidates))


# Costs in FP32 epochs of the cell's dataset, calibrated on the record's units
# (results/paper_table_standard_2026-11, --workers 2): an evaluation of the search 5.6 epochs
# of its subset (1 QAT epoch at a mean width cost ~2x, 2.8, took 1.3-2.9x that with its val
# pass: median ~2x); the supernet SUPERNET_EPOCHS_PER_EPOCH per pretrain epoch (below); a
# final-trained candidate P + F at its width (2 P + 2.8 F; random search's seeded uniform
# choices at ratio 1.0 took about half); uniform QAT 2 F a model (the record's 1.5-2x over 1.4 F).
SEARCH_EPOCHS_PER_EVALUATION = 5.6
# The supernet's seconds per pretrain epoch over the cell's FP32 epoch, per model, in the
# standard profile's mogaqnn units committed by 8a1cab9 that trained one (timing.supernet_s
# over P x the convergence check's epoch, 1 thread): LeNet-5 6.6-8.1, VGG-11 9.6-12.0,
# AlexNet 4.8-14.5 (mean 11.1), ResNet-20 13.5 and 17.7 (Fashion-MNIST's lost unit: 17.1);
# MobileNetV2 none yet, counted as ResNet-20. It was one 8 for all, half of ResNet-20's.
SUPERNET_EPOCHS_PER_EPOCH = {"lenet5": 7.5, "alexnet": 11.0, "vgg11": 11.0, "resnet20": 16.0,
                             "mobilenetv2": 16.0}  # fmt: skip
UNIFORM_EPOCHS_PER_F = 2.0
# The main process's training (base, supernet, final stage; not the search's workers, one
# thread each) at 2 torch threads on this 2-core CPU, one lane alone: Fashion-MNIST /
# ResNet-20's supernet took 14.5 min an epoch against 23.7 at 1 thread (1.6x, 037f29f). More
# threads than measured count as the most measured.
MAIN_THREADS_SPEEDUP = {1: 1.0, 2: 1.6}


def main_threads_speedup(threads: int) -> float:
    return MAIN_THREADS_SPEEDUP[min(max(threads, 1), max(MAIN_THREADS_SPEEDUP))]


def measured_epoch_s(convergence: dict[str, Any] | None) -> float | None:
    """A cell's seconds per FP32 epoch as its convergence unit measured them (3 (P + F)
    epochs, one process, 1 thread); None before it has run. Fashion-MNIST / LeNet-5's
    took 4.2 s an epoch where EPOCH_S says 15 (30cee47)."""
    if not convergence or not convergence.get("wall_s"):
        return None
    return convergence["wall_s"] / (convergence["epochs"] + convergence["epochs_doubled"])


def unit_s(cell: str, budget: dict[str, Any], workers: int,
           epoch_s: float | None = None, threads: int = 1) -> dict[str, float]:  # fmt: skip
    """Wall seconds of each of a cell's units on this CPU (the main process on ``threads``
    torch threads, each search worker on one), from ``epoch_s`` (the cell's measured seconds
    per FP32 epoch, at 1 thread) or else EPOCH_S, and the costs above. ``mogaqnn``: the
    base (P), the supernet, its search split over the workers, k final-trained candidates,
    both FP32 baselines (2 F) and uniform 8/4/2-bit QAT. ``random``: its search and k
    candidates (base, supernet and FP32 baselines copied from the mogaqnn arm; where runs/
    was lost in between, it trains the base and supernet again). ``convergence``: the FP32
    recipe at its budget and at twice it, 3 (P + F)."""
    dataset, model = cell.split("/")
    epoch = epoch_s or EPOCH_S[model] * TRAIN_IMAGES[dataset] / 3600
    p, f = budget["pretrain_epochs"], budget["final_epochs"]
    evals = budget["population"] * budget["generations"]
    search = (evals * budget["search_train_samples"] / TRAIN_IMAGES[dataset]
              * SEARCH_EPOCHS_PER_EVALUATION / workers)  # fmt: skip
    candidates = final_candidates(budget) * (2 * p + 2.8 * f)
    uniform = len(SearchConfig().uniform_qat_bits) * UNIFORM_EPOCHS_PER_F * f
    main = epoch / main_threads_speedup(threads)  # an epoch of the main process
    return {
        "convergence": main * 3 * (p + f),
        "mogaqnn": main * (p + SUPERNET_EPOCHS_PER_EPOCH[model] * p + candidates + 2 * f
                           + uniform)
        + epoch * search,
        "random": main * candidates + epoch * search,
    }  # fmt: skip


def estimate_s(cell: str, budget: dict[str, Any], seeds: int, workers: int,
               arms: tuple[str, ...] = ARMS, epoch_s: float | None = None,
               threads: int = 1) -> float:  # fmt: skip
    """Wall seconds of a cell: ``seeds`` x its ``arms``' units, and its convergence check."""
    units = unit_s(cell, budget, workers, epoch_s, threads)
    return seeds * sum(units[a] for a in arms) + units["convergence"]


def run_order(cells: list[str] | dict[str, Any],
              budgets: dict[str, dict[str, Any]]) -> list[str]:  # fmt: skip
    """Fashion-MNIST's cells first (DATASETS' order), each dataset's cheapest first."""

    def key(c: str) -> tuple[int, float]:
        return DATASETS.index(c.split("/")[0]), estimate_s(c, budgets[c], budgets[c]["seeds"], 1)

    return sorted(cells, key=key)


def table_plan(profile: str) -> dict[str, dict[str, Any]]:
    """Every cell's budget in the run order (the tables' order too), whichever cells an
    invocation runs and with how many workers."""
    every = {c: standard_budget(profile, c) for c in STANDARD}
    return {c: every[c] for c in run_order(every, every)}


def jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` as it reads back from JSON (tuples become lists): how a unit's budget compares."""
    return json.loads(json.dumps(d))


def unit_path(root: Path, cell: str, seed: int, arm: str) -> Path:
    dataset, model = cell.split("/")
    return root / f"{dataset}-{model}" / f"s{seed}-{arm}.json"


def read_unit(path: Path, budget: dict[str, Any]) -> dict[str, Any] | None:
    """A finished unit of this budget at the package's defaults; None when absent, cut
    short, of another budget, or run at defaults that have changed since (run again)."""
    try:
        unit = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if unit.get("budget") != jsonable(budget) or not defaults_hold(unit.get("defaults"), budget):
        return None
    return unit


def write_unit(path: Path, unit: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(unit, indent=2) + "\n")
    tmp.replace(path)  # atomic: a kill leaves the old unit or none
