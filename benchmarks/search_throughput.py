"""Evaluations per minute of the demo search, and the share of its wall time spent outside
QAT training and validation (Optuna, model building, widening, quantizing, bookkeeping).

    python benchmarks/search_throughput.py [--population 16 --generations 8] [--threads N]

Goal: the share outside training and validation under 10%.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

import mogaqnn
from mogaqnn.search import read_study


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        config = mogaqnn.SearchConfig(population=args.population, generations=args.generations,
                                      seed=args.seed, out=str(out), progress=False)  # fmt: skip
        mogaqnn.search(config)
        result = json.loads((out / "result.json").read_text())
        trials = [t for t in read_study(out).trials if t.state.name == "COMPLETE"]
        inside = sum(t.user_attrs.get("train_seconds", 0.0) for t in trials)
    wall = result["timing"]["search_s"]
    evals = result["search"]["evaluations"]
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch "
          f"{torch.__version__}; demo search: lenet5 on mnist5k, population {args.population}, "
          f"{args.generations} generations, seed {args.seed}")  # fmt: skip
    print(f"search wall time            {wall:8.1f} s")
    print(f"evaluations                 {evals:8d} ({result['search']['trained']} trained, "
          f"{result['search']['cache_hits']} cache hits)")  # fmt: skip
    print(f"evaluations per minute      {evals / wall * 60:8.1f}")
    print(f"in QAT training + validation{inside:8.1f} s")
    share = 1 - inside / wall
    print(f"share outside them          {share:8.1%}  (goal < 10%: "
          f"{'met' if share < 0.10 else 'missed'})")  # fmt: skip


if __name__ == "__main__":
    main()
