"""Do LSQ's learned scales move at the right pace under Adam?

Adam moves every parameter by about its learning rate per step, whatever the parameter's
magnitude, so LSQ's gradient scaling (which balances scale and weight updates under SGD)
does not hold: at one shared rate an 8-bit weight scale of ~1e-3 moves by up to half of
itself per step at qat_lr 5e-4, while a 2-bit one (~1e-1) barely moves. Hence each scale's
rate is relative to its size: lr x ``lsq_scale_lr`` x the scale's mean (train.make_optimizer).
This benchmark fine-tunes uniform W/A-bit individuals of a finished run (its Evaluator:
fitness start, subset, budget) with fixed ranges and with LSQ at the ``--scale-lr`` factors,
over a few training seeds; val accuracy only. ``--final``: the final training's budget instead
(the run's ``final_epochs`` at ``qat_lr`` on the whole training split, val on the whole val
split). Before the relative rate (up to 730f1dc) the factors multiplied one absolute rate.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/lsq_scale_lr.py RUN_DIR [--bits 8,2] \\
        [--scale-lr 10,30] [--seeds 0,1] [--final]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
from pathlib import Path

from mogaqnn.fitness import run_evaluator
from mogaqnn.genome import Genome
from mogaqnn.run import augmentation_for, load_run, load_run_data, train_settings
from mogaqnn.train import evaluate_accuracy, train_model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--bits", default="8,2")
    p.add_argument("--scale-lr", default="10,30")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--final", action="store_true", help="the final training's budget")
    args = p.parse_args()
    run = load_run(args.run_dir)
    data = load_run_data(run)
    evaluator = run_evaluator(run, data, device="cpu")
    if args.final:
        cfg = run.config
        final = train_settings(cfg, cfg.final_epochs, cfg.qat_lr, augmentation_for(cfg, data))
        evaluator = dataclasses.replace(evaluator, train_data=data.train, val_data=data.val,
                                        settings=final)  # fmt: skip
    n, g = len(evaluator.space.layers), len(evaluator.space.groups)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{args.run_dir}: {run.config.model} on {run.config.dataset}, qat_lr "
          f"{run.config.qat_lr:g}, {evaluator.settings.epochs:g} epochs on "
          f"{len(evaluator.train_data)} images, val {len(evaluator.val_data)} images")  # fmt: skip
    arms = [("fixed", 1.0)] + [("lsq", float(f)) for f in args.scale_lr.split(",")]
    for bits in (int(b) for b in args.bits.split(",")):
        genome = Genome((bits,) * n, (max(bits, 2),) * n, (1.0,) * g)
        for mode, factor in arms:
            settings = dataclasses.replace(evaluator.settings, scale_lr=factor)
            ev = dataclasses.replace(evaluator, quant_ranges=mode, settings=settings)
            accs = []
            for seed in seeds:
                # the final model of a x1.0 genome starts from the base, not the fitness start
                start = copy.deepcopy(run.base) if args.final else None
                model = ev.build(genome, float_model=start)
                train_model(model, ev.train_data, ev.settings, seed=seed, device="cpu")
                accs.append(evaluate_accuracy(model, ev.val_data, device="cpu"))
            label = mode if mode == "fixed" else f"lsq, scale lr x{factor:g}"
            print(f"w{bits}a{max(bits, 2)} {label:<20} val {statistics.fmean(accs):.2%} "
                  f"{[round(a, 4) for a in accs]}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
