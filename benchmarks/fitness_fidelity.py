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
from mogaqnn.fitness import SUPERNET, make_evaluator
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
FITNESSES = ("widen", "scratch", "supernet")


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b (nan for fewer than two pairs)."""
    return float(kendalltau(a, b).statistic) if len(a) > 1 else float("nan")


def random_genomes(space: SearchSpace, n: int, seed: int) -> list[Genome]:
    rng = random.Random(seed)
    return [
        Genome(
            tuple(rng.choice(space.weight_bit_choices) for _ in space.layers),
            tuple(rng.choice(space.act_bit_choices) for _ in space.layers),
            tuple(rng.choice(space.ratio_choices) for _ in space.groups),
        )
        for _ in range(n)
    ]


def budget_of(cfg: mogaqnn.SearchConfig) -> dict[str, Any]:
    keys = ("dataset", "seed", "pretrain_epochs", "search_epochs", "final_epochs",
            "search_train_samples", "search_val_samples", "final_init", "expansion_ratios",
            "weight_bits", "act_bits")  # fmt: skip
    return {k: cfg.to_dict()[k] for k in keys}


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


def run_model(model: str, args, path: Path) -> None:
    cfg = config_for(model, args)
    budget = budget_of(cfg)
    done = {(r["model"], r["individual"]) for r in read_lines(path) if r["budget"] == budget}
    if all((model, i) in done for i in range(args.individuals)):
        return
    search = Search(cfg)
    search.run_dir.root.mkdir(parents=True, exist_ok=True)
    setup = search.setup(pretrain=True)  # the FP32 base, cached as base.pt
    data, device = setup.data, setup.device
    evaluators, supernet_s = {}, None
    for fitness in args.fitnesses:
        t0 = time.perf_counter()
        had = (search.run_dir.root / SUPERNET).exists()
        evaluators[fitness] = make_evaluator(
            cfg.replace(fitness=fitness), setup.base, setup.graph, setup.space, data,
            setup.evaluator.device, None, root=search.run_dir.root, pretrain=True,
        )  # fmt: skip
        if fitness == "supernet" and not had:
            supernet_s = time.perf_counter() - t0
    if supernet_s is not None:
        with open(path.with_suffix(".supernet.jsonl"), "a") as f:
            f.write(json.dumps({"model": model, "budget": budget, "seconds": supernet_s}) + "\n")
    genomes = random_genomes(setup.space, args.individuals, args.seed)
    for i, genome in enumerate(genomes):
        if (model, i) in done:
            continue
        row: dict[str, Any] = {"model": model, "individual": i, "genome_key": genome.key(),
                               "ratios": list(genome.ratios),
                               "mean_weight_bits": genome.mean_weight_bits(),
                               "budget": budget, "fitness": {}}  # fmt: skip
        for fitness, ev in evaluators.items():
            try:
                e = ev(genome)
                row["fitness"][fitness] = {"val_accuracy": e.val_accuracy, "seconds": e.seconds}
            except mogaqnn.train.TrainingDiverged as exc:
                row["fitness"][fitness] = {"val_accuracy": 0.0, "seconds": None,
                                           "failed": str(exc)}  # fmt: skip
        t0 = time.perf_counter()
        quantized = setup.recipe.final_model(genome)
        row["final"] = {"val_accuracy": evaluate_accuracy(quantized, data.val, device=device),
                        "seconds": time.perf_counter() - t0}  # fmt: skip
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{model} #{i}: final val {row['final']['val_accuracy']:.2%}, "
            + ", ".join(f"{k} {v['val_accuracy']:.2%}" for k, v in row["fitness"].items()),
            flush=True,
        )


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
    rows = [r for r in read_lines(path) if r["budget"] == budget_of(config_for(r["model"], args))]
    supernet = {r["model"]: r for r in read_lines(path.with_suffix(".supernet.jsonl"))
                if r["budget"] == budget_of(config_for(r["model"], args))}  # fmt: skip
    lines = [
        "| model | fitness | individuals | s / evaluation | one-off s | Kendall's tau |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for model in args.models:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        final = [r["final"]["val_accuracy"] for r in mine]
        final_s = sum(r["final"]["seconds"] for r in mine) / len(mine)
        for fitness in FITNESSES:
            have = [r for r in mine if fitness in r["fitness"]]
            if len(have) < 2:
                continue
            fit = [r["fitness"][fitness]["val_accuracy"] for r in have]
            ref = [r["final"]["val_accuracy"] for r in have]
            secs = [
                r["fitness"][fitness]["seconds"] for r in have if r["fitness"][fitness]["seconds"]
            ]
            one_off = (
                supernet[model]["seconds"] if fitness == "supernet" and model in supernet else 0
            )
            lines.append(f"| {model} | {fitness} | {len(have)} | {sum(secs) / len(secs):.2f} | "
                         f"{one_off:.0f} | {kendall_tau(fit, ref):+.3f} |")  # fmt: skip
        lines.append(f"| {model} | (final protocol) | {len(final)} | {final_s:.2f} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="lenet5,resnet20")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--individuals", type=int, default=20)
    p.add_argument("--fitnesses", default=",".join(FITNESSES))
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
