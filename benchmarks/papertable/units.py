"""Running the units of a (cell, seed): the two searches, each with its final stage, and
the FP32 convergence check, each written as one JSON as soon as it exists.

Every model is trained by the search (``mogaqnn.search``: its final stage trains k
candidates of the front, both FP32 baselines and uniform QAT from the FP32 base through
``mogaqnn.Recipe``), the convergence check by the float recipe and the FP32 baseline's
(``pretrain_float``, ``Recipe.fp32_model``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _provenance  # benchmarks/_provenance.py
import numpy as np
import torch

import mogaqnn
from mogaqnn import Recipe
from mogaqnn.data import load_dataset
from mogaqnn.errors import NoAnswerError
from mogaqnn.models import create_model
from mogaqnn.recipe import pretrain_float
from mogaqnn.run import expansion_graph, load_config_dataset, resolve_device, search_space
from mogaqnn.search import FINAL_DIR, read_study
from mogaqnn.size import KIB_BITS, fp32_size_bits

from .plan import (
    ARMS,
    SEARCHES,
    budget_converged,
    jsonable,
    package_defaults,
    read_unit,
    unit_path,
    write_unit,
)


def fp32_kib_of(model: str, dataset: str) -> float:
    """The FP32 size of ``model`` on ``dataset`` as result.json counts it (BatchNorm folded;
    benchmarks/recipe_ablation.py's limits)."""
    data = load_dataset(dataset, val_fraction=0.1, seed=0)  # only the shapes are used
    net = create_model(model, in_channels=data.in_channels, num_classes=data.num_classes,
                       image_size=data.image_size)  # fmt: skip
    example = torch.zeros(2, data.in_channels, data.image_size, data.image_size)
    return fp32_size_bits(net, expansion_graph(net, example, "auto").bn_fold) / KIB_BITS


def standard_config(cell: str, budget: dict[str, Any], seed: int, out: Path, *, arm: str,
                    workers: int, device: str) -> mogaqnn.SearchConfig:  # fmt: skip
    """The search of ``arm`` (a key of SEARCHES) for a (cell, seed) at ``budget``: the
    budget's keys, the arm's, and the package's defaults for every other."""
    dataset, model = cell.split("/")
    search_keys = {k: v for k, v in budget.items() if k != "seeds"}
    return mogaqnn.SearchConfig(
        model=model, dataset=dataset, seed=seed, device=device, out=str(out), progress=False,
        workers=workers, **SEARCHES[arm].settings, **search_keys,
    )  # fmt: skip


# what a search unit keeps of result.json: everything the table reads, and the record of
# what ran (config, selection, the search's counts, timing, environment)
RESULT_KEYS = ("claims", "final_candidates", "uniform_qat", "fp32", "fp32_distilled", "chosen",
               "selection", "search", "final_diverged", "timing", "environment",
               "config")  # fmt: skip


def evaluated_points(run_dir: Path, fp32_bits: int) -> np.ndarray:
    """(val error, size / FP32 size) of every completed evaluation, in trial order."""
    pts = [(t.values[0], t.user_attrs["size_bits"] / fp32_bits) for t in read_study(run_dir).trials
           if t.state.name == "COMPLETE"]  # fmt: skip
    return np.array(pts, dtype=float).reshape(-1, 2)


def search_unit(config: mogaqnn.SearchConfig) -> dict[str, Any]:
    """One search and its final stage: RESULT_KEYS of its result.json, and its evaluations
    in trial order (``points``). A search without an answer (NoAnswerError: nothing met the
    size target, the final training diverged) is a result too (``failed``); any other error
    (a missing dataset, a killed worker, a bad run directory) stops the runner, since a unit
    written with it would be skipped as done once the cause is mended."""
    try:
        r = mogaqnn.search(config)
    except NoAnswerError as exc:
        return {"failed": str(exc)}
    unit = {k: r.data.get(k) for k in RESULT_KEYS}
    unit["points"] = evaluated_points(Path(config.out), r.fp32["size_bits"]).tolist()
    return unit


def seed_sibling(src: Path, dst: Path, config: mogaqnn.SearchConfig) -> None:
    """Give a sibling search (random) the mogaqnn run's FP32 base, supernet, uniform-bit
    reference points and finished final trainings (the FP32 baselines, float models at a
    width, candidates by genome key): the same seed, data and recipe train the same files,
    so it reads them instead of training them again. Only before the sibling starts."""
    if (dst / "config.json").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("base.pt", "supernet.pt", "reference_points.json"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    finished = sorted((src / FINAL_DIR).glob("*.pt"))  # not the .partial of a cut training
    if finished:
        (dst / FINAL_DIR).mkdir(exist_ok=True)
        for f in finished:
            shutil.copy2(f, dst / FINAL_DIR / f.name)
    (dst / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def convergence_unit(config: mogaqnn.SearchConfig, device: str) -> dict[str, Any]:
    """The FP32 baseline's recipe (the float recipe's P epochs at lr, then F at qat_lr) at its
    budget and at twice it, each from the same seed, and whether it converged
    (``budget_converged``). It needs no search, so it runs before a cell's searches and an
    under-trained budget costs minutes instead of the cell's hours."""
    data = load_config_dataset(config)  # the search's splits (seed, val fraction, data dir)
    dev = resolve_device(device)
    val = []
    for scale in (1, 2):
        cfg = config.replace(pretrain_epochs=scale * config.pretrain_epochs,
                             final_epochs=scale * config.final_epochs)  # fmt: skip
        torch.manual_seed(cfg.seed)  # the base's initial weights, as a search seeds them
        base = create_model(cfg.model, in_channels=data.in_channels,
                            num_classes=data.num_classes, image_size=data.image_size)  # fmt: skip
        pretrain_float(cfg, base.to(dev), data, dev)
        graph = expansion_graph(base, data.train.x[:2].to(dev), cfg.expansion)
        recipe = Recipe(cfg, base, graph, search_space(cfg, base, graph), data, dev)
        val.append(recipe.accuracy(recipe.fp32_model(distilled=False)))
    once, twice = val
    gain_pp = round((twice - once) * 100, 6)  # 0.5 pp is 2 of MNIST-5k's 400 val images
    return {"epochs": config.pretrain_epochs + config.final_epochs, "val_accuracy": once,
            "epochs_doubled": 2 * (config.pretrain_epochs + config.final_epochs),
            "val_accuracy_doubled": twice, "difference_pp": gain_pp,
            "converged": budget_converged(gain_pp)}  # fmt: skip


def timed(path: Path, budget: dict[str, Any], label: str,
          fn: Callable[[], dict[str, Any]]) -> None:  # fmt: skip
    """Run a unit unless it is done at this budget and the package's defaults; written with
    them, its wall time and the commit its process started at."""
    if read_unit(path, budget) is not None:
        print(f"{label}: done, skipped", flush=True)
        return
    t0 = time.perf_counter()
    unit = {"budget": budget, "defaults": package_defaults(budget), **fn()}
    unit["wall_s"] = time.perf_counter() - t0
    unit["commit"] = _provenance.code_commit()
    write_unit(path, unit)
    print(f"{label}: {unit['wall_s'] / 60:.1f} min", flush=True)


def run_directory(runs: Path, cell: str, seed: int, budget: dict[str, Any]) -> Path:
    """Where a (cell, seed)'s searches run; the hash of the budget and the package's defaults
    keeps another budget's (or other defaults') run directories, which a search would refuse
    to continue with a new config, apart."""
    key = {**jsonable(budget), "defaults": package_defaults(budget)}
    tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return runs / cell.replace("/", "-") / f"s{seed}-{tag[:8]}"


def run_seed(cell: str, seed: int, budget: dict[str, Any], root: Path, runs: Path,
             args) -> None:  # fmt: skip
    """A (cell, seed)'s units (those of ``args.arms``), in ARMS' order: the random search
    starts from the mogaqnn run's files (``seed_sibling``)."""
    d = run_directory(runs, cell, seed, budget)
    first = ARMS[0]
    for arm in (a for a in ARMS if a in args.arms):
        config = standard_config(cell, budget, seed, d / arm, arm=arm, workers=args.workers,
                                 device=args.device)  # fmt: skip
        if arm != first:
            seed_sibling(d / first, d / arm, config)
        timed(unit_path(root, cell, seed, arm), budget, f"{cell} seed {seed} {arm}",
              lambda config=config: search_unit(config))  # fmt: skip


def run_convergence(cell: str, seed: int, budget: dict[str, Any], root: Path, runs: Path,
                    args) -> bool:  # fmt: skip
    """The cell's convergence check (first seed), before its searches; False: not converged,
    and the cell's searches are not worth their hours at this budget."""
    first = ARMS[0]
    config = standard_config(cell, budget, seed, run_directory(runs, cell, seed, budget) / first,
                             arm=first, workers=args.workers, device=args.device)  # fmt: skip
    path = unit_path(root, cell, seed, "convergence")
    timed(path, budget, f"{cell} convergence", lambda: convergence_unit(config, args.device))
    unit = read_unit(path, budget)
    converged = budget_converged(unit["difference_pp"])  # today's rule, not the stored flag
    print(f"{cell}: FP32 val {unit['val_accuracy']:.2%} at {unit['epochs']:g} epochs, "
          f"{unit['val_accuracy_doubled']:.2%} at {unit['epochs_doubled']:g}: "
          f"{'converged' if converged else 'NOT converged'}", flush=True)  # fmt: skip
    if not converged and args.profile == "standard":
        print(f"{cell}: its FP32 budget is under-trained; raise its epochs in EPOCHS_AND_SUBSET "
              f"(benchmarks/papertable/plan.py): its searches are skipped", flush=True)  # fmt: skip
    return converged
