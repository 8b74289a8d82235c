"""Do LSQ's learned scales move at the right pace under Adam?

Adam moves every parameter by about its learning rate per step, whatever the parameter's
magnitude, so LSQ's gradient scaling (which balances scale and weight updates under SGD)
does not hold: an 8-bit weight scale of ~1e-3 moves by up to half of itself per step at
qat_lr 5e-4. This benchmark fine-tunes uniform W/A-bit individuals of a finished run (its
Evaluator: fitness start, subset, budget) with fixed ranges, LSQ, and LSQ whose scales get
the learning rate times ``--scale-lr`` factors (the ``lsq_scale_lr`` config key), over a few
training seeds; val accuracy only.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/lsq_scale_lr.py RUN_DIR [--bits 8,2] \\
        [--scale-lr 1,0.1] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

from mogaqnn.genome import Genome
from mogaqnn.run import load_run, load_run_data
from mogaqnn.search import run_evaluator
from mogaqnn.train import evaluate_accuracy, train_model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--bits", default="8,2")
    p.add_argument("--scale-lr", default="1,0.1")
    p.add_argument("--seeds", default="0,1")
    args = p.parse_args()
    run = load_run(args.run_dir)
    data = load_run_data(run)
    evaluator = run_evaluator(run, data, device="cpu")
    n, g = len(evaluator.space.layers), len(evaluator.space.groups)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{args.run_dir}: {run.config.model} on {run.config.dataset}, qat_lr "
          f"{run.config.qat_lr:g}, val subset {len(evaluator.val_data)} images")  # fmt: skip
    for bits in (int(b) for b in args.bits.split(",")):
        genome = Genome((bits,) * n, (max(bits, 2),) * n, (1.0,) * g)
        arms = [("fixed", 1.0)] + [("lsq", float(f)) for f in args.scale_lr.split(",")]
        for mode, factor in arms:
            settings = dataclasses.replace(evaluator.settings, scale_lr=factor)
            ev = dataclasses.replace(evaluator, quant_ranges=mode, settings=settings)
            accs = []
            for seed in seeds:
                model = ev.build(genome)
                train_model(model, ev.train_data, ev.settings, seed=seed, device="cpu")
                accs.append(evaluate_accuracy(model, ev.val_data, device="cpu"))
            label = mode if mode == "fixed" else f"lsq, scale lr x{factor:g}"
            print(f"w{bits}a{max(bits, 2)} {label:<20} val {statistics.fmean(accs):.2%} "
                  f"{[round(a, 4) for a in accs]}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
