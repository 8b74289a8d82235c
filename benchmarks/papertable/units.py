"""Running the units of a (cell, seed): the searches, uniform QAT, the FP32 convergence check
and the fitness fidelity check, each written as one JSON as soon as it exists.

Every model is trained by ``mogaqnn.Recipe``: a search's chosen model and FP32 baselines
by the search itself, uniform QAT by the final recipe from the FP32 base
(``final_model(init="widen")`` at ratio 1.0), the convergence check by the float recipe
and the FP32 baseline's (``pretrain_float``, ``fp32_model``).
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
from fitness_fidelity import fidelity_from_run  # benchmarks/fitness_fidelity.py

import mogaqnn
from mogaqnn import Recipe
from mogaqnn.data import load_dataset
from mogaqnn.errors import MogaqnnError
from mogaqnn.models import create_model
from mogaqnn.recipe import pretrain_float
from mogaqnn.run import (
    expansion_graph,
    load_config_dataset,
    load_run,
    resolve_device,
    search_space,
)
from mogaqnn.search import read_study
from mogaqnn.size import KIB_BITS, fp32_size_bits, model_size
from mogaqnn.train import TrainingDiverged

from .plan import (
    COMPRESSION_TARGET,
    FIDELITY_CELLS,
    SEARCH_ARMS,
    SEARCHES,
    UNIFORM_BITS,
    UNIFORM_START,
    jsonable,
    read_unit,
    unit_path,
    write_unit,
)


def fp32_kib_of(model: str, dataset: str) -> float:
    """The FP32 size of ``model`` on ``dataset`` as result.json counts it (BatchNorm folded)."""
    data = load_dataset(dataset, val_fraction=0.1, seed=0)  # only the shapes are used
    net = create_model(model, in_channels=data.in_channels, num_classes=data.num_classes,
                       image_size=data.image_size)  # fmt: skip
    example = torch.zeros(2, data.in_channels, data.image_size, data.image_size)
    return fp32_size_bits(net, expansion_graph(net, example, "auto").bn_fold) / KIB_BITS


def standard_config(cell: str, budget: dict[str, Any], seed: int, out: Path, *, arm: str,
                    workers: int, device: str) -> mogaqnn.SearchConfig:  # fmt: skip
    """The search of ``arm`` (a key of SEARCHES) for a (cell, seed) at ``budget``."""
    dataset, model = cell.split("/")
    search = SEARCHES[arm]
    fp32_kib = fp32_kib_of(model, dataset)
    search_keys = {k: v for k, v in budget.items() if k != "seeds"}
    return mogaqnn.SearchConfig(
        model=model, dataset=dataset, seed=seed, device=device, out=str(out), progress=False,
        max_size_kib=fp32_kib / COMPRESSION_TARGET if search.limited else None,
        sampler=search.sampler, workers=workers, **search_keys,
    )  # fmt: skip


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


def evaluated_points(run_dir: Path, fp32_bits: int) -> np.ndarray:
    """(val error, size / FP32 size) of every completed evaluation, in trial order."""
    pts = [(t.values[0], t.user_attrs["size_bits"] / fp32_bits) for t in read_study(run_dir).trials
           if t.state.name == "COMPLETE"]  # fmt: skip
    return np.array(pts, dtype=float).reshape(-1, 2)


def search_unit(config: mogaqnn.SearchConfig) -> dict[str, Any]:
    """One search's chosen model, both FP32 baselines, and its evaluations in trial order."""
    row = run_search(config)
    run_dir = Path(config.out)
    result = json.loads((run_dir / "result.json").read_text()) if "failed" not in row else {}
    fp32_bits = round(fp32_kib_of(config.model, config.dataset) * KIB_BITS)
    try:
        row["points"] = evaluated_points(run_dir, fp32_bits).tolist()  # trial order
    except (KeyError, MogaqnnError):  # the search failed before it created its study
        row["points"] = []
    row["fp32_distilled"] = result.get("fp32_distilled")
    row["claim"] = result.get("claim")
    return row


def seed_sibling(src: Path, dst: Path, config: mogaqnn.SearchConfig) -> None:
    """Give a sibling search (random, or unlimited) the limited run's FP32 base, supernet
    and uniform-bit report points (same seed, subset and budget: the files it would
    train) instead of recomputing them."""
    if (dst / "config.json").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("base.pt", "supernet.pt", "reference_points.json"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    (dst / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def uniform_unit(run_dir: Path, device: str) -> dict[str, Any]:
    """Uniform 8/4/2-bit QAT from the run's FP32 base itself (the base "widened" at ratio
    1.0), quantized and calibrated like an individual, then the final recipe (final_epochs
    at qat_lr, the run's seed, distilled from the base when the run distils). Not from the
    fitness's start: under the supernet fitness that is the supernet's base-width slice, which
    is not the uniform QAT baseline, and which a lost runs/ would need trained again."""
    run = load_run(run_dir)
    cfg = run.config
    recipe = Recipe.of_run(run, device=device)  # its final recipe reads no supernet
    fp32_bits = fp32_size_bits(run.base, run.graph.bn_fold)
    out: dict[str, Any] = {"start": UNIFORM_START}
    for bits in UNIFORM_BITS:
        row: dict[str, Any] = {"mean_weight_bits": float(bits), "parameter_ratio": 1.0,
                               "epochs": cfg.pretrain_epochs + cfg.final_epochs}  # fmt: skip
        try:
            model = recipe.final_model(run.space.uniform(bits, bits, 1.0), init="widen")
        except TrainingDiverged as exc:  # e.g. at 2 bits: a result, not a crash
            row["failed"] = f"{type(exc).__name__}: {exc}"
        else:
            size = model_size(model, run.graph.bn_fold)
            row |= {"size_kib": size.kib, "compression_ratio": fp32_bits / size.total_bits,
                    "val_accuracy": recipe.accuracy(model, "val"),
                    "test_accuracy": recipe.accuracy(model, "test")}  # fmt: skip
        out[f"uniform{bits}"] = row
    return out


def convergence_unit(config: mogaqnn.SearchConfig, device: str) -> dict[str, Any]:
    """The FP32 baseline's recipe (the float recipe's P epochs at lr, then F at qat_lr) at its
    budget and at twice it, each from the same seed; converged: val accuracy < 0.5 pp apart.
    It needs no search, so it runs before a cell's searches and an under-trained budget
    costs minutes instead of the cell's hours."""
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
    return {"epochs": config.pretrain_epochs + config.final_epochs, "val_accuracy": once,
            "epochs_doubled": 2 * (config.pretrain_epochs + config.final_epochs),
            "val_accuracy_doubled": twice, "difference_pp": (twice - once) * 100,
            "converged": abs(twice - once) < 0.005}  # fmt: skip


def timed(path: Path, budget: dict[str, Any], label: str,
          fn: Callable[[], dict[str, Any]]) -> None:  # fmt: skip
    """Run a unit unless it is done at this budget; written with its wall time and the
    commit its process started at."""
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
    tag = hashlib.sha256(json.dumps(jsonable(budget), sort_keys=True).encode()).hexdigest()
    return runs / cell.replace("/", "-") / f"s{seed}-{tag[:8]}"


def base_run(d: Path) -> Path:
    """A (cell, seed)'s run directory holding its FP32 base: the searches share one base
    (seed_sibling copies it), and any may be all that is left of a lost runs/."""
    return next((d / a for a in SEARCH_ARMS
                 if (d / a / "base.pt").exists()), d / SEARCH_ARMS[0])  # fmt: skip


def pretrained_run(d: Path, first: mogaqnn.SearchConfig) -> Path:
    """A run directory with the (cell, seed)'s FP32 base, for uniform QAT: a search's, or,
    where runs/ was lost after its searches' units were written, the first search's
    directory with the base alone trained again (same seed and recipe: the same base on the
    same machine and threads; the search, if it ever runs there, reads it)."""
    src = base_run(d)
    if not (src / "base.pt").exists():
        mogaqnn.Search(first).pretrain()
    return src


def run_seed(cell: str, seed: int, budget: dict[str, Any], root: Path, runs: Path, args,
             fidelity: bool) -> None:  # fmt: skip
    """A (cell, seed)'s units (those of ``args.arms``); with ``fidelity``, the cell's
    fidelity check right after the first search, while the run directory it trains from
    (which a session's end may take) is there."""
    d = run_directory(runs, cell, seed, budget)
    cfgs = {arm: standard_config(cell, budget, seed, d / arm, arm=arm, workers=args.workers,
                                 device=args.device) for arm in SEARCH_ARMS}  # fmt: skip
    first = SEARCH_ARMS[0]
    for arm in (a for a in SEARCH_ARMS if a in args.arms):
        if arm != first:
            seed_sibling(base_run(d), d / arm, cfgs[arm])
        timed(unit_path(root, cell, seed, arm), budget, f"{cell} seed {seed} {arm}",
              lambda arm=arm: search_unit(cfgs[arm]))  # fmt: skip
        if arm == first and fidelity and (cell in FIDELITY_CELLS or args.fidelity_all):
            run_fidelity(cell, seed, budget, root, cfgs[first], args)
    if "uniform" in args.arms:
        timed(unit_path(root, cell, seed, "uniform"), budget, f"{cell} seed {seed} uniform",
              lambda: uniform_unit(pretrained_run(d, cfgs[first]), args.device))  # fmt: skip


def run_convergence(cell: str, seed: int, budget: dict[str, Any], root: Path, runs: Path,
                    args) -> bool:  # fmt: skip
    """The cell's convergence check (first seed), before its searches; False: not converged,
    and the cell's searches are not worth their hours at this budget."""
    first = SEARCH_ARMS[0]
    config = standard_config(cell, budget, seed, run_directory(runs, cell, seed, budget) / first,
                             arm=first, workers=args.workers, device=args.device)  # fmt: skip
    path = unit_path(root, cell, seed, "convergence")
    timed(path, budget, f"{cell} convergence", lambda: convergence_unit(config, args.device))
    unit = read_unit(path, budget)
    print(f"{cell}: FP32 val {unit['val_accuracy']:.2%} at {unit['epochs']:g} epochs, "
          f"{unit['val_accuracy_doubled']:.2%} at {unit['epochs_doubled']:g}: "
          f"{'converged' if unit['converged'] else 'NOT converged'}", flush=True)  # fmt: skip
    if not unit["converged"] and args.profile == "standard":
        print(f"{cell}: its FP32 budget is under-trained; raise its epochs in EPOCHS_AND_SUBSET "
              f"(benchmarks/papertable/plan.py): its searches are skipped", flush=True)  # fmt: skip
    return unit["converged"]


def run_fidelity(cell: str, seed: int, budget: dict[str, Any], root: Path,
                 config: mogaqnn.SearchConfig, args) -> None:  # fmt: skip
    """Kendall's tau of the first search's individuals (first seed), on its run directory
    (``config.out``): searched again where that directory did not outlive a session."""
    d = Path(config.out)
    first = SEARCH_ARMS[0]
    searched = read_unit(unit_path(root, cell, seed, first), budget) or {}
    fidelity = unit_path(root, cell, seed, "fidelity")
    if "test_accuracy" not in searched:
        print(f"{cell} fidelity: the {first} search of seed {seed} chose no model: no check",
              flush=True)  # fmt: skip
        return
    if read_unit(fidelity, budget) is None and not (d / "result.json").exists():
        # the same seed and budget give the same trials; the search's unit stays as it was
        print(f"{cell} fidelity: {d} is gone; searching again", flush=True)
        again = run_search(config)
        print(f"{cell} fidelity: the search again chose test {again.get('test_accuracy')} at "
              f"{again.get('compression_ratio')}x; its unit: {searched['test_accuracy']} at "
              f"{searched['compression_ratio']}x", flush=True)  # fmt: skip
    n = args.fidelity_individuals
    timed(fidelity, budget, f"{cell} fidelity",
          lambda: fidelity_from_run(d, n, root / cell.replace("/", "-")
                                    / f"s{seed}-fidelity.jsonl", args.device))  # fmt: skip
