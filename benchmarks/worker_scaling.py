"""Evaluations per minute with one worker and with two, side by side in one run.

Goal: on a 2-core machine, two workers (``--workers 2``, one thread each) evaluate at least
1.6x as many individuals per minute as one worker. Each configuration runs the real
command (``mogaqnn resume DIR --workers N``) on a copy of the same run directory, which
holds the same FP32 base, so the runs differ only in how they evaluate. Only trained
evaluations count (cache hits are nearly free); the default search space is large, so
cache hits are rare.

Two figures per configuration:
  steady:  evaluations per minute while the workers evaluate, leaving out each worker's
           first evaluation (a fresh process pays one-off costs there: imports, first
           kernels); this is the goal's figure;
  overall: trained evaluations / the whole search phase, worker start-up included.

    OMP_NUM_THREADS=1 python benchmarks/worker_scaling.py [--population 8 --generations 3]
        [--two-threads]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mogaqnn import Search, SearchConfig  # noqa: E402
from mogaqnn.run import RunDir  # noqa: E402
from mogaqnn.search import read_study  # noqa: E402


def run(args: list[str], threads: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, "-m", "mogaqnn", *args], env=env,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"mogaqnn {' '.join(args)} failed:\n{proc.stderr}")


def rates(run_dir: Path) -> dict[str, float]:
    trained = [t for t in read_study(run_dir).get_trials(deepcopy=False)
               if t.state.name == "COMPLETE" and not t.user_attrs.get("cache_hit")]  # fmt: skip
    by_worker = defaultdict(list)
    for t in trained:
        by_worker[t.user_attrs["worker"]].append(t)
    steady = [t for ts in by_worker.values()
              for t in sorted(ts, key=lambda t: t.datetime_start)[1:]]  # fmt: skip
    window = (max(t.datetime_complete for t in steady)
              - min(t.datetime_start for t in steady)).total_seconds()  # fmt: skip
    search_s = json.loads((run_dir / "result.json").read_text())["timing"]["search_s"]
    return {
        "trained": len(trained),
        "workers": len(by_worker),
        "steady": 60 * len(steady) / window,
        "overall": 60 * len(trained) / search_s,
        "mean_eval_s": sum(t.user_attrs["seconds"] for t in trained) / len(trained),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--search-train-samples", type=int, default=2000)
    ap.add_argument(
        "--two-threads",
        action="store_true",
        help="also measure one worker with two threads (slow on a busy machine)",
    )
    args = ap.parse_args()
    flags = [
        "population", args.population, "generations", args.generations, "seed", 0,
        "pretrain_epochs", 1, "search_epochs", 1, "final_epochs", 0,
        "search_train_samples", args.search_train_samples, "device", "cpu", "progress", False,
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        base_run = Path(tmp) / "base"
        # The shared FP32 base: pretrained once here; each configuration below resumes a
        # copy of this directory (config.json and base.pt, an empty study).
        config = SearchConfig.from_mapping(
            {**dict(zip(flags[::2], flags[1::2])), "out": str(base_run)}, "the benchmark"
        )
        torch.set_num_threads(1)
        RunDir(base_run).prepare(config)
        Search(config).setup(pretrain=True)
        configs = [("1 worker, 1 thread", 1, 1), ("2 workers, 1 thread each", 2, 1)]
        if args.two_threads:
            configs.append(("1 worker, 2 threads", 1, 2))
        figures = {}
        for name, workers, threads in configs:
            d = Path(tmp) / f"w{workers}t{threads}"
            d.mkdir()
            for f in ("config.json", "base.pt"):
                shutil.copy(base_run / f, d / f)
            load = os.getloadavg()[0]
            run(["resume", str(d), "--workers", str(workers)], threads=threads)
            figures[name] = r = rates(d)
            print(f"{name:<26} trained {r['trained']:3d}  steady {r['steady']:6.1f}/min  "
                  f"overall {r['overall']:6.1f}/min  mean evaluation {r['mean_eval_s']:.2f} s  "
                  f"(load average before: {load:.1f})", flush=True)  # fmt: skip
    two = figures["2 workers, 1 thread each"]
    print()
    singles = [n for n in figures if n.startswith("1 worker")]
    for name in singles:
        one = figures[name]
        print(f"2 workers vs {name}: steady {two['steady'] / one['steady']:.2f}x, "
              f"overall {two['overall'] / one['overall']:.2f}x")  # fmt: skip
    print(f"\n{os.cpu_count()} CPUs, torch {torch.__version__}, python {sys.version.split()[0]}")
    best_one = max(figures[n]["steady"] for n in singles)
    ok = two["steady"] >= 1.6 * best_one
    print(f"goal (steady, against the faster single worker) >= 1.6x: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
