"""Resident memory of repeated evaluations: after 200 within 20% of after 20.

The Evaluator is used directly (no Optuna), with a tiny budget, on LeNet-5 / MNIST-5k:
random genomes are widened, quantized, calibrated, QAT-trained and scored one after
another, as a long search does. A reference kept per evaluation (a model, an optimizer,
a graph of tensors) would grow the resident set linearly.

    OMP_NUM_THREADS=1 python benchmarks/eval_memory.py [--evaluations 200]

Exit status 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mogaqnn import Search, SearchConfig  # noqa: E402
from mogaqnn.genome import Genome  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluations", type=int, default=200)
    ap.add_argument("--early", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        config = SearchConfig(
            out=str(Path(tmp) / "run"), pretrain_epochs=0.2, search_epochs=0.1,
            search_train_samples=640, search_val_samples=256, progress=False, seed=0,
        )  # fmt: skip
        setup = Search(config).setup(pretrain=True)
        evaluator, space = setup.evaluator, setup.space
        evaluator.log_path = None
        rng = random.Random(0)
        params = space.parameters()
        figures: dict[int, float] = {}
        start = time.perf_counter()
        for i in range(1, args.evaluations + 1):
            genome: Genome = space.decode({k: rng.choice(v) for k, v in params.items()})
            evaluator(genome)
            if i in (args.early, args.evaluations) or i % 50 == 0:
                gc.collect()
                figures[i] = rss_mib()
                print(f"after {i:4d} evaluations: RSS {figures[i]:7.1f} MiB "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    early, late = figures[args.early], figures[args.evaluations]
    ratio = late / early
    print(f"\nRSS after {args.evaluations} / after {args.early}: {late:.1f} / {early:.1f} MiB "
          f"= {ratio:.3f} (goal <= 1.20)")  # fmt: skip
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
