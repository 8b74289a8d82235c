"""How well each fitness ranks individuals as the final protocol would: cost and Kendall's tau.

For each model (MNIST-5k by default), ``--individuals`` random genomes of the run's search
space (seeded) are evaluated by every fitness (``widen``, ``scratch``, ``supernet``: see
mogaqnn/fitness/_starts.py) exactly as a search evaluates them, and trained once by the
final protocol (``--final-init``, default ``scratch``: pretraining at the genome's width, then
quantization and the final QAT epochs; ``widen``: the base widened, then the final epochs).
Printed and written per model and fitness: seconds per evaluation (the supernet's one-off
training separately) and Kendall's tau between the fitness (search-subset val accuracy) and
the final protocol's val accuracy (full val split). The test split is never read.

    python benchmarks/fitness_fidelity.py --models lenet5 --individuals 20
    python benchmarks/fitness_fidelity.py --models resnet20 --individuals 20
    python benchmarks/fitness_fidelity.py --from-run RUN_DIR --individuals 20
    python benchmarks/fitness_fidelity.py --models lenet5 --fitnesses supernet,quant-supernet \
        --genomes bits

``quant-supernet`` is evaluated at ``--quant-search-epochs`` (default 0: the slice as it is)
with ``--qat-fraction`` and ``--bn-batches`` (its supernet under ``runs/.../quant_q<F>/``);
its rows say so in the fitness's label, so that settings can be compared on the same
individuals. ``--genomes``: ``random`` (each layer's bits and each group's ratio drawn),
``widths`` (8-bit weights and activations everywhere, ratios drawn: width-varying at fixed
bits) or ``bits`` (every ratio 1.0, bits drawn: bit-varying at a fixed width). A fitness added
later to individuals already trained by the final protocol reuses their final accuracy.

``--from-run``: the individuals of a finished search's last front and population (not random
genomes), each trained with the run's final recipe and tested once; Kendall's tau between
the search's val accuracy and the final test accuracy (benchmarks/papertable/'s standard
profile calls it on two cells).

Resumable per individual: one JSON line per (model, individual) in
``benchmarks/results/fitness_fidelity.jsonl``; lines already there are skipped (the budgets
are part of each line's key, so another budget starts afresh). Summary in
``benchmarks/results/fitness_fidelity.md``. Run directories (base.pt, supernet.pt) go under
``runs/fitness_fidelity/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _provenance import code_commit  # benchmarks/_provenance.py, beside this file
from scipy.stats import kendalltau

import mogaqnn
from mogaqnn import Recipe, Search
from mogaqnn.fitness import QUANT_SUPERNET, SUPERNET, make_evaluator
from mogaqnn.genome import Genome, SearchSpace
from mogaqnn.run import (
    load_run,
    load_run_data,
    read_result,
    trial_genome,
)
from mogaqnn.train import evaluate_accuracy

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FITNESSES = ("widen", "scratch", "supernet", "quant-supernet")
GENOME_SETS = ("random", "widths", "bits")


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b (nan for fewer than two pairs)."""
    return float(kendalltau(a, b).statistic) if len(a) > 1 else float("nan")


def random_genomes(space: SearchSpace, n: int, seed: int, kind: str = "random") -> list[Genome]:
    """``n`` seeded genomes of ``kind`` (GENOME_SETS): every gene drawn, or only the ratios
    (8 bits everywhere, or the most the space allows), or only the bits (ratios 1.0)."""
    rng = random.Random(seed if kind == "random" else f"{seed}:{kind}")
    w8, a8 = max(space.weight_bit_choices), max(space.act_bit_choices)
    out = []
    for _ in range(n):
        w = tuple(rng.choice(space.weight_bit_choices) for _ in space.layers)
        a = tuple(rng.choice(space.act_bit_choices) for _ in space.layers)
        r = tuple(rng.choice(space.ratio_choices) for _ in space.groups)
        if kind == "widths":
            w, a = (min(w8, 8),) * len(w), (min(a8, 8),) * len(a)
        elif kind == "bits":
            r = (1.0,) * len(r)
        out.append(Genome(w, a, r))
    return out


def budget_of(cfg: mogaqnn.SearchConfig, genomes: str = "random") -> dict[str, Any]:
    keys = ("dataset", "seed", "pretrain_epochs", "search_epochs", "final_epochs",
            "search_train_samples", "search_val_samples", "final_init", "expansion_ratios",
            "weight_bits", "act_bits")  # fmt: skip
    budget = {k: cfg.to_dict()[k] for k in keys}
    return budget if genomes == "random" else {**budget, "genomes": genomes}


def fitness_label(fitness: str, args) -> str:
    """The fitness's name in the rows, with its own settings where it has some."""
    if fitness != "quant-supernet":
        return fitness
    return (f"quant-supernet(q{args.qat_fraction:g},bn{args.bn_batches},"
            f"e{args.quant_search_epochs:g})")  # fmt: skip


def fitness_config(cfg: mogaqnn.SearchConfig, fitness: str, args) -> mogaqnn.SearchConfig:
    if fitness != "quant-supernet":
        return cfg.replace(fitness=fitness)
    return cfg.replace(fitness=fitness, search_epochs=args.quant_search_epochs,
                       supernet_qat_fraction=args.qat_fraction,
                       bn_recalibration_batches=args.bn_batches)  # fmt: skip


def merged_rows(path: Path, model: str, budget: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Per individual of ``model`` at ``budget``: its fitnesses from every line, and the
    final protocol's accuracy from the line that has it."""
    merged: dict[int, dict[str, Any]] = {}
    for r in read_lines(path):
        if r["model"] != model or r["budget"] != budget:
            continue
        row = merged.setdefault(r["individual"], {**r, "fitness": {}})
        row["fitness"].update(r["fitness"])
        if "final" in r:
            row["final"] = r["final"]
    return merged


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: it runs again
            continue
    return out


def config_for(model: str, args) -> mogaqnn.SearchConfig:
    return mogaqnn.SearchConfig(
        model=model, dataset=args.dataset, seed=args.seed,
        # base.pt and supernet.pt are cached there: one directory per pretraining budget
        out=str(args.runs / f"{model}_{args.dataset}_s{args.seed}_p{args.pretrain_epochs:g}"),
        pretrain_epochs=args.pretrain_epochs, search_epochs=args.search_epochs,
        final_epochs=args.final_epochs, search_train_samples=args.search_train_samples,
        final_init=args.final_init, device=args.device, progress=False,
        fitness="widen",  # the setup's own evaluator: the supernet is trained (and timed) below
    )  # fmt: skip


SUPERNET_FILES = {"supernet": SUPERNET, "quant-supernet": QUANT_SUPERNET}


def run_model(model: str, args, path: Path) -> None:
    cfg = config_for(model, args)
    budget = budget_of(cfg, args.genomes)
    labels = {f: fitness_label(f, args) for f in args.fitnesses}
    rows = merged_rows(path, model, budget)
    todo = [i for i in range(args.individuals) if i not in rows or "final" not in rows[i]
            or any(label not in rows[i]["fitness"] for label in labels.values())]  # fmt: skip
    if not todo:
        return
    search = Search(cfg)
    search.run_dir.root.mkdir(parents=True, exist_ok=True)
    setup = search.setup(pretrain=True)  # the FP32 base, cached as base.pt
    data, device = setup.data, setup.device
    evaluators = {}
    for fitness in args.fitnesses:
        root = search.run_dir.root
        if fitness == "quant-supernet":  # one supernet per schedule
            root = root / f"quant_q{args.qat_fraction:g}"
            root.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        had = fitness in SUPERNET_FILES and (root / SUPERNET_FILES[fitness]).exists()
        evaluators[fitness] = make_evaluator(
            fitness_config(cfg, fitness, args), setup.base, setup.graph, setup.space, data,
            setup.evaluator.device, None, root=root, pretrain=True,
        )  # fmt: skip
        if fitness in SUPERNET_FILES and not had:
            with open(path.with_suffix(".supernet.jsonl"), "a") as f:
                f.write(json.dumps({"model": model, "budget": budget, "fitness": labels[fitness],
                                    "seconds": time.perf_counter() - t0}) + "\n")  # fmt: skip
    genomes = random_genomes(setup.space, args.individuals, args.seed, args.genomes)
    for i in todo:
        genome = genomes[i]
        old = rows.get(i, {"fitness": {}})
        row: dict[str, Any] = {"model": model, "individual": i, "genome_key": genome.key(),
                               "ratios": list(genome.ratios),
                               "mean_weight_bits": genome.mean_weight_bits(),
                               "budget": budget, "fitness": {}}  # fmt: skip
        for fitness, ev in evaluators.items():
            if labels[fitness] in old["fitness"]:
                continue
            try:
                e = ev(genome)
                row["fitness"][labels[fitness]] = {"val_accuracy": e.val_accuracy,
                                                   "seconds": e.seconds}  # fmt: skip
            except mogaqnn.train.TrainingDiverged as exc:
                row["fitness"][labels[fitness]] = {"val_accuracy": 0.0, "seconds": None,
                                                   "failed": str(exc)}  # fmt: skip
        final = old.get("final")
        if final is None:
            t0 = time.perf_counter()
            quantized = setup.recipe.final_model(genome)
            row["final"] = final = {
                "val_accuracy": evaluate_accuracy(quantized, data.val, device=device),
                "seconds": time.perf_counter() - t0,
            }
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{model} #{i}: final val {final['val_accuracy']:.2%}, "
            + ", ".join(f"{k} {v['val_accuracy']:.2%} ({v['seconds'] or 0:.2f} s)"
                        for k, v in row["fitness"].items()),
            flush=True,
        )  # fmt: skip


def front_individuals(result: dict[str, Any], rows: list[dict[str, str]], n: int) -> list[int]:
    """Up to ``n`` distinct trials of a finished run: its last front, then the rest of its
    last population, then (a population of 16 holds fewer than 20) the latest other
    completed trials that were trained, not read from the cache."""
    front = result["search"]["front"]
    picked = front + [t for t in result["search"]["last_population"] if t not in front]
    later = sorted(
        (
            int(r["trial"])
            for r in rows
            if r["state"] == "COMPLETE" and r["cache_hit"] == "0" and int(r["trial"]) not in picked
        ),
        reverse=True,
    )
    return (picked + later)[:n]


def fidelity_from_run(run_dir: Path, n: int, path: Path, device: str = "cpu") -> dict[str, Any]:
    """``n`` individuals of a finished run's last front and population, each trained with the
    run's final recipe (final_init, pretrain + final epochs, seed) and tested once: Kendall's
    tau between the search's val accuracy and the final test accuracy. Resumable: one JSON
    line per individual in ``path``."""
    run = load_run(run_dir)
    result = read_result(run)
    rows = _pareto_rows(run_dir)
    trials = front_individuals(result, rows, n)
    done = {r["trial"]: r for r in read_lines(path)}
    data = load_run_data(run)
    recipe = Recipe.of_run(run, data=data, device=device)
    search_val = {int(r["trial"]): float(r["val_accuracy"]) for r in rows if r["val_accuracy"]}
    for number in trials:
        if number in done:
            continue
        genome = trial_genome(run, number)
        t0 = time.perf_counter()
        row: dict[str, Any] = {"trial": number, "genome_key": genome.key(),
                               "search_val_accuracy": search_val[number]}  # fmt: skip
        try:
            row["test_accuracy"] = recipe.accuracy(recipe.final_model(genome), "test")
        except mogaqnn.train.TrainingDiverged as exc:
            row["failed"] = str(exc)
        row["seconds"] = time.perf_counter() - t0
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
        done[number] = row
        print(
            f"{run_dir.name} trial {number}: search val {row['search_val_accuracy']:.2%}, "
            f"final test {row.get('test_accuracy', float('nan')):.2%}",
            flush=True,
        )
    rows = [done[t] for t in trials if "test_accuracy" in done[t]]
    tau = kendall_tau([r["search_val_accuracy"] for r in rows], [r["test_accuracy"] for r in rows])
    return {"run": str(run_dir), "individuals": len(rows), "kendall_tau": tau, "rows": rows}


def _pareto_rows(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(Path(run_dir) / "pareto.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def summary(path: Path, args) -> str:
    lines = [
        "| model | genomes | fitness | individuals | s / evaluation | one-off s | Kendall's tau |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model in args.models:
        budget = budget_of(config_for(model, args), args.genomes)
        one_off = {r.get("fitness", "supernet"): r["seconds"]
                   for r in read_lines(path.with_suffix(".supernet.jsonl"))
                   if r["model"] == model and r["budget"] == budget}  # fmt: skip
        mine = [r for r in merged_rows(path, model, budget).values() if "final" in r]
        if not mine:
            continue
        final = [r["final"]["val_accuracy"] for r in mine]
        final_s = sum(r["final"]["seconds"] for r in mine) / len(mine)
        found = sorted({label for r in mine for label in r["fitness"]},
                       key=lambda f: (FITNESSES.index(f.split("(")[0]), f))  # fmt: skip
        for label in found:
            have = [r for r in mine if label in r["fitness"]]
            if len(have) < 2:
                continue
            fit = [r["fitness"][label]["val_accuracy"] for r in have]
            ref = [r["final"]["val_accuracy"] for r in have]
            secs = [r["fitness"][label]["seconds"] for r in have if r["fitness"][label]["seconds"]]
            lines.append(f"| {model} | {args.genomes} | {label} | {len(have)} | "
                         f"{sum(secs) / len(secs):.3f} | {one_off.get(label, 0):.0f} | "
                         f"{kendall_tau(fit, ref):+.3f} |")  # fmt: skip
        lines.append(f"| {model} | {args.genomes} | (final protocol) | {len(final)} | "
                     f"{final_s:.2f} | | |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="lenet5,resnet20")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--individuals", type=int, default=20)
    p.add_argument("--fitnesses", default=",".join(FITNESSES[:3]))
    p.add_argument("--genomes", default="random", choices=GENOME_SETS)
    p.add_argument("--quant-search-epochs", type=float, default=0.0,
                   help="QAT epochs of each quant-supernet slice (0: none)")  # fmt: skip
    p.add_argument("--qat-fraction", type=float,
                   default=mogaqnn.SearchConfig.supernet_qat_fraction)  # fmt: skip
    p.add_argument("--bn-batches", type=int,
                   default=mogaqnn.SearchConfig.bn_recalibration_batches)  # fmt: skip
    p.add_argument("--final-init", default="scratch", choices=("scratch", "widen"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrain-epochs", type=float, default=mogaqnn.SearchConfig.pretrain_epochs)
    p.add_argument("--search-epochs", type=float, default=mogaqnn.SearchConfig.search_epochs)
    p.add_argument("--final-epochs", type=float, default=mogaqnn.SearchConfig.final_epochs)
    p.add_argument("--search-train-samples", type=int,
                   default=mogaqnn.SearchConfig.search_train_samples)  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "fitness_fidelity")
    p.add_argument("--out", type=Path, default=RESULTS / "fitness_fidelity.jsonl")
    p.add_argument("--from-run", type=Path, default=None,
                   help="a finished search's directory: rank --individuals of its last front "
                   "and population by the final recipe instead (its budget and seed)")  # fmt: skip
    args = p.parse_args(argv)
    if args.from_run is not None:
        torch.set_num_threads(args.threads)
        lines = args.out.with_name(f"fitness_fidelity_{args.from_run.name}.jsonl")
        r = fidelity_from_run(args.from_run, args.individuals, lines, args.device)
        print(
            f"{args.from_run}: Kendall's tau {r['kendall_tau']:+.3f} between search val "
            f"accuracy and final test accuracy over {r['individuals']} individuals"
        )
        return 0
    args.models = [m for m in args.models.split(",") if m]
    args.fitnesses = [f for f in args.fitnesses.split(",") if f]
    if unknown := [f for f in args.fitnesses if f not in FITNESSES]:
        p.error(f"unknown fitness {unknown[0]!r}; choose from {', '.join(FITNESSES)}")
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    code_commit()  # read before the runs: the code this process loaded
    start = time.perf_counter()
    for model in args.models:
        run_model(model, args, args.out)
    table = summary(args.out, args)
    text = "\n".join([
        "# Fitness fidelity: cost per evaluation and Kendall's tau with the final protocol",
        "",
        f"command: `python {' '.join(sys.argv)}`  ",
        f"commit {code_commit()}, {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {args.threads} thread(s), OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS')}, "
        f"this invocation {time.perf_counter() - start:.0f} s  ",
        f"dataset {args.dataset}, seed {args.seed}, final protocol: final_init={args.final_init}, "
        f"pretrain {args.pretrain_epochs:g} + final {args.final_epochs:g} epochs; fitness: "
        f"{args.search_epochs:g} epoch(s) on {args.search_train_samples} samples",
        "",
        table,
        "",
    ])  # fmt: skip
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
