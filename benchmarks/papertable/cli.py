"""``python benchmarks/paper_table.py``: the plan, the units a session runs, the outputs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _provenance  # benchmarks/_provenance.py
import torch

from mogaqnn.errors import MogaqnnError

from . import plan, render
from .aggregate import aggregate
from .units import run_convergence, run_seed

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
HEADLINE_PAGES = [ROOT / "README.md", ROOT / "docs" / "evidence.md"]


def main(argv: list[str] | None = None) -> int:
    _provenance.code_commit()  # read before any unit runs: the code this process loaded
    p = argparse.ArgumentParser(
        description="The paper's table: MOGAQNN beside FP32, uniform QAT and random search, "
        "per CNN and dataset (benchmarks/papertable/)."
    )
    p.add_argument(
        "--profile",
        choices=plan.PROFILES,
        default="standard",
        help="standard: the evidence (results under benchmarks/results/); standard-smoke: the "
        "same machinery on a budget of minutes, a check written under runs/results/",
    )
    p.add_argument("--cells", default=None, help="model:dataset,... (default: all ten)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--workers", type=int, default=1, help="worker processes per search")
    p.add_argument(
        "--plan",
        action="store_true",
        help="print the cells, seeds and estimated hours, run nothing",
    )
    p.add_argument(
        "--check-convergence",
        action="store_true",
        help="run only each cell's FP32 convergence check (minutes; a cell's searches are "
        "skipped where it fails anyway)",
    )
    p.add_argument(
        "--aggregate",
        action="store_true",
        help="rewrite the .json, .md and .png from the units, run nothing",
    )
    p.add_argument(
        "--all-seeds",
        action="store_true",
        help="run every seed of --seeds, also where the plan asks for fewer (the extra seeds "
        "count in the table like the planned ones)",
    )
    p.add_argument(
        "--arms",
        default=",".join(plan.ARMS),
        help=f"the searches to run per seed, of {','.join(plan.ARMS)} (default: both; the others "
        "are left as they are; the convergence check runs in any case)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared CPU)")
    p.add_argument(
        "--runs",
        type=Path,
        default=ROOT / "runs",
        help="the searches' run directories go under RUNS/paper_table_<profile>/ (and the "
        "smoke check's results under RUNS/results/)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cells = list(plan.STANDARD)
    if args.cells:
        cells = []
        for spec in args.cells.split(","):
            model, _, dataset = spec.partition(":")
            if model not in plan.MODELS or dataset not in plan.DATASETS:
                p.error(
                    f"--cells: {spec!r} is not model:dataset with a model of "
                    f"{', '.join(plan.MODELS)} and a dataset of {', '.join(plan.DATASETS)}"
                )
            cells.append(f"{dataset}/{model}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        p.error(f"--seeds: {args.seeds!r} is not a comma-separated list of integers")
    args.arms = [a for a in args.arms.split(",") if a]
    if not args.arms or set(args.arms) - set(plan.ARMS):
        p.error(f"--arms: {','.join(args.arms)!r} is not a list of {', '.join(plan.ARMS)}")
    try:
        return run(args, cells, seeds)
    except MogaqnnError as exc:  # a missing dataset, a run directory of another run: one line
        print(f"paper_table: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, cells: list[str], seeds: list[int]) -> int:
    """The plan of ``cells`` (hours per cell, and what remains), then (unless only the plan
    or the outputs are asked for) each cell's convergence check and, where it converged,
    its seeds' units, Fashion-MNIST first and each dataset's cheapest cell first; the
    outputs, over every cell, after each cell and at the end."""
    profile = args.profile
    # the smoke check's figures mean nothing: they stay under runs/ (not committed)
    results = RESULTS if profile == "standard" else args.runs / "results"
    root = results / f"paper_table_{profile}"
    runs = args.runs / f"paper_table_{profile}"
    out = results / f"paper_table_{profile}.json"
    budgets = {c: plan.standard_budget(profile, c) for c in cells}

    def run_seeds(cell: str) -> list[int]:  # the seeds this invocation runs for a cell
        return seeds if args.all_seeds else seeds[: budgets[cell]["seeds"]]

    order = plan.run_order(cells, budgets)
    if not args.aggregate:  # the outputs alone train nothing: no hours to plan
        print_plan(order, budgets, run_seeds, root, args)
    if args.plan:
        return 0
    table = plan.table_plan(profile)  # the outputs cover every cell, whichever cells run
    # the outputs name the command that remakes them from the units, whichever run wrote them
    command = (
        f"python benchmarks/paper_table.py --profile {profile} "
        f"--seeds {','.join(map(str, seeds))} --aggregate"
    )

    def write() -> dict:
        doc = aggregate(profile, root, table, seeds, command)
        render.write(doc, out)
        if profile == "standard":  # the headline the README and docs/evidence.md quote
            render.write_headline(doc, HEADLINE_PAGES)
        return doc

    if args.aggregate:  # only the outputs, from the units already there
        write()
        print(f"wrote {out.with_suffix('')}.{{json,md,png}}", flush=True)
        return 0
    for cell in order:
        budget = budgets[cell]
        converged = run_convergence(cell, seeds[0], budget, root, runs, args)
        if args.check_convergence or not (converged or profile == "standard-smoke"):
            continue  # (the smoke check's budget is under-trained by design)
        for seed in run_seeds(cell):
            run_seed(cell, seed, budget, root, runs, args)
        write()
    doc = write()
    print(f"wrote {out.with_suffix('')}.{{json,md,png}}; missing runs: {len(doc['missing'])}",
          flush=True)  # fmt: skip
    return 0


def print_plan(order: list[str], budgets: dict, run_seeds, root: Path,
               args: argparse.Namespace) -> None:  # fmt: skip
    """Per cell in run order: its seeds, its estimated hours (at the epoch time its
    convergence check measured, once it has run), and what remains of it (the units not yet
    done at this budget and the package's defaults)."""
    print(f"plan (estimated wall hours, the main process at --threads {args.threads}, "
          f"--workers {args.workers} at 1 thread each; "
          f"units per seed: {', '.join(args.arms)}; once per cell: convergence):",
          flush=True)  # fmt: skip
    total = left = 0.0
    todo_units = 0
    for c in order:
        b, s = budgets[c], run_seeds(c)
        check = plan.read_unit(plan.unit_path(root, c, s[0], "convergence"), b) if s else None
        measured = plan.measured_epoch_s(check)
        units = plan.unit_s(c, b, args.workers, measured, args.threads)
        hours = plan.estimate_s(c, b, len(s), args.workers, tuple(args.arms), measured,
                                args.threads)  # fmt: skip
        todo = [(seed, a) for seed in s for a in args.arms
                if plan.read_unit(plan.unit_path(root, c, seed, a), b) is None]  # fmt: skip
        if s and check is None:
            todo.append((s[0], "convergence"))
        remaining = sum(units[a] for _, a in todo)
        total, left, todo_units = total + hours, left + remaining, todo_units + len(todo)
        per_unit = ", ".join(f"{a} {units[a] / 3600:.1f}" for a in ("convergence", *args.arms))
        epochs = "measured epochs" if measured else "estimated epochs"
        print(f"  {c}: seeds {s}, ~{hours / 3600:.1f} h ({per_unit} h a unit, {epochs}); to run: "
              f"{len(todo)} of {len(s) * len(args.arms) + 1} units, ~{remaining / 3600:.1f} h",
              flush=True)  # fmt: skip
    print(f"  total ~{total / 3600:.1f} h; to run: {todo_units} units, ~{left / 3600:.1f} h",
          flush=True)  # fmt: skip
