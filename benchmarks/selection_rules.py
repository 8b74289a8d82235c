"""Which individual of the last front to train: selection rules compared on finished runs.

``match-fp32`` takes the smallest individual of the front whose search val accuracy reaches
the FP32 reference. On a small validation subset (MNIST-5k's 400 images: one image is
0.25 pp) the smallest "matching" individual often matched by luck (the winner's curse), so
the trained model falls short of FP32. This benchmark asks whether a margin helps: the
reference raised by ``m`` binomial standard errors of the search's val accuracy,
``sqrt(p (1 - p) / n)``, for each ``m`` of ``--margins``, against ``accuracy`` (the most
accurate of the front).

For each finished run (``--runs``, run directories), each rule's choice is read from the
run's ``pareto.csv`` and ``result.json`` (the same ``choose`` the search calls), and every
distinct chosen individual is trained with the run's final recipe (start, epochs, seed),
then evaluated on val and test. The rule is judged on val only: its final val accuracy
minus the stronger FP32 baseline's (plain or distilled, by val) of the same run; test is
written beside it for the record. Resumable: one JSON line per (run, trial).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/selection_rules.py \\
        --runs runs/recipe_ablation/lenet5-select_match_fp32-s* [--margins 0,0.5,1,2]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _provenance import code_commit  # benchmarks/_provenance.py, beside this file
from fitness_fidelity import read_lines  # benchmarks/fitness_fidelity.py, beside this file

import mogaqnn
from mogaqnn import Recipe
from mogaqnn.run import load_run, load_run_data, read_result, trial_genome
from mogaqnn.search import choose

RESULTS = Path(__file__).resolve().parent / "results"
COMMIT = code_commit()  # at import: the code this process runs


def last_population(run_dir: Path) -> list[SimpleNamespace]:
    """The run's last population as the (values, number) records ``choose`` reads."""
    with open(run_dir / "pareto.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["state"] == "COMPLETE"]
    return [
        SimpleNamespace(number=int(r["trial"]),
                        values=[1.0 - float(r["val_accuracy"]), float(r["size_bits"])])
        for r in rows
        if r["in_last_population"] == "1"
    ]  # fmt: skip


def rule_choices(run_dir: Path, margins: list[float]) -> dict[str, int]:
    """Trial number chosen by each rule: ``match+M`` (the reference raised by M standard
    errors of the search's val accuracy) and ``accuracy``."""
    run = load_run(run_dir)
    cfg = run.config
    result = read_result(run)
    reference = result["selection"].get("fp32_search_val_accuracy")
    if reference is None:
        raise SystemExit(f"{run_dir}: not a match-fp32 run (no FP32 reference in result.json)")
    population = last_population(run_dir)
    n_val = _search_val_count(run)
    se = math.sqrt(reference * (1 - reference) / n_val)
    out = {}
    for m in margins:
        out[f"match+{m:g}se"] = choose(population, population, "match-fp32", cfg.max_size_kib,
                                       reference + m * se).trial.number  # fmt: skip
    out["accuracy"] = choose(population, population, "accuracy", cfg.max_size_kib).trial.number
    return out


def _search_val_count(run) -> int:
    data = load_run_data(run)
    n = run.config.search_val_samples
    return min(n, len(data.val)) if n else len(data.val)


def train_trial(run_dir: Path, trial: int, device: str,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The run's final recipe for one trial (``overrides``: config keys changed for this
    training only): final val and test accuracy."""
    run = load_run(run_dir)
    run = dataclasses.replace(run, config=run.config.replace(**(overrides or {})))
    recipe = Recipe.of_run(run, device=device)
    genome = trial_genome(run, trial)
    t0 = time.perf_counter()
    row: dict[str, Any] = {"run": str(run_dir), "trial": trial, "genome_key": genome.key()}
    try:
        model = recipe.final_model(genome)
        row["val_accuracy"] = recipe.accuracy(model, "val")
        row["test_accuracy"] = recipe.accuracy(model, "test")
    except mogaqnn.train.TrainingDiverged as exc:
        row["failed"] = str(exc)
    row["seconds"] = time.perf_counter() - t0
    return row


def run_facts(run_dir: Path) -> dict[str, Any]:
    """The run's FP32 baselines (the stronger by val) and each trial's size ratio."""
    result = read_result(load_run(run_dir))
    fp32 = max((result["fp32"], result["fp32_distilled"]), key=lambda r: r["val_accuracy"])
    with open(run_dir / "pareto.csv", newline="", encoding="utf-8") as f:
        sizes = {int(r["trial"]): float(r["size_bits"]) for r in csv.DictReader(f)}
    return {"fp32": fp32, "fp32_bits": result["fp32"]["size_bits"], "sizes": sizes}


def summarise(runs: list[Path], choices: dict[str, dict[str, int]], trained: dict) -> str:
    rules = list(next(iter(choices.values())))
    lines = [
        "| rule | runs | val gap pp (judged) | compression | test gap pp (record) |",
        "| --- | --- | --- | --- | --- |",
    ]
    facts_of = {str(run): run_facts(run) for run in runs}  # read once, not per rule
    for rule in rules:
        val_gap, test_gap, comp = [], [], []
        for run in runs:
            facts = facts_of[str(run)]
            row = trained.get((str(run), choices[str(run)][rule]))
            if not row or "val_accuracy" not in row:
                continue
            val_gap.append((row["val_accuracy"] - facts["fp32"]["val_accuracy"]) * 100)
            test_gap.append((row["test_accuracy"] - facts["fp32"]["test_accuracy"]) * 100)
            comp.append(facts["fp32_bits"] / facts["sizes"][choices[str(run)][rule]])
        lines.append(f"| {rule} | {len(val_gap)} | {_ms(val_gap)} | {_ms(comp, 1, '')}x | "
                     f"{_ms(test_gap)} |")  # fmt: skip
    return "\n".join(lines)


def _ms(v: list[float], digits: int = 2, sign: str = "+") -> str:
    if not v:
        return "-"
    sd = statistics.stdev(v) if len(v) > 1 else float("nan")
    return f"{statistics.fmean(v):{sign}.{digits}f} ± {sd:.{digits}f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="finished match-fp32 run directories")
    p.add_argument("--margins", default="0,0.5,1,2", help="margins in standard errors")
    p.add_argument("--out", default=str(RESULTS / "selection_rules.jsonl"))
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    runs = [Path(r) for r in args.runs if (Path(r) / "result.json").is_file()]
    out = Path(args.out)
    trained = {(r["run"], r["trial"]): r for r in read_lines(out)}
    choices = {}
    for run in runs:
        choices[str(run)] = rule_choices(run, margins)
        print(f"{run}: {choices[str(run)]}", flush=True)
        for trial in sorted(set(choices[str(run)].values())):
            if (str(run), trial) in trained:
                continue
            row = train_trial(run, trial, args.device)
            row["commit"] = COMMIT
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            trained[(str(run), trial)] = row
            print(f"  trial {trial}: final val {row.get('val_accuracy', float('nan')):.2%} "
                  f"({row['seconds']:.0f} s)", flush=True)  # fmt: skip
    table = summarise(runs, choices, trained)
    md = out.with_suffix(".md")
    md.write_text(
        "# Selection rules on finished runs\n\n"
        f"command: `python benchmarks/selection_rules.py {' '.join(sys.argv[1:])}`, "
        f"commit {COMMIT}\n\nGap: the chosen model's final accuracy minus the stronger FP32 "
        "baseline's (by val), pp, mean ± std over runs; judged on val, test for the record.\n\n"
        + table
        + "\n"
    )
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
