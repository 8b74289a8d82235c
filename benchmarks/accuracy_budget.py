"""Accuracy budget of one individual of a finished run: where does its accuracy go?

Val accuracy (never test) of the FP32 base; of the individual widened but not quantized
(16-bit weights and activations, numerically float); with only its weights quantized; with
only its activations quantized; with both (the individual itself). Each right after
building (calibrated, no training), after the search's fine-tune (the run's Evaluator: its
subset, budget, seed and recipe) and, with ``--final``, after the final training (the run's
final start, ``final_init``, and recipe on the full training split, distilled from the base
when the run distils), beside the FP32 baseline (the base given the same final epochs).
Then per-layer sensitivity: every layer at 8/8 bits (the individual's widths), one layer's
weights or activations at ``--low`` bits, after the search's fine-tune; the drop says where
low precision hurts.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/accuracy_budget.py RUN_DIR \\
        [--individual chosen|N] [--final] [--low 2] [--no-sensitivity]
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from mogaqnn import Recipe
from mogaqnn.genome import Genome
from mogaqnn.run import RunDir, load_run, trial_genome
from mogaqnn.train import evaluate_accuracy

FLOAT_BITS = 16  # numerically float for these networks, through the same quantized layers


def individual_arg(text: str) -> str | int:
    """``chosen`` (the run's final model) or a trial number of its pareto.csv."""
    if text == "chosen":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither 'chosen' nor a trial number"
        ) from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--individual", type=individual_arg, default="chosen")
    p.add_argument("--final", action="store_true", help="also after the final training")
    p.add_argument("--low", type=int, default=2, help="bits of the sensitivity probe")
    p.add_argument("--no-sensitivity", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run_dir)
    cfg = run.config
    recipe = Recipe.of_run(run, device="cpu")
    data, evaluator = recipe.data, recipe.evaluator
    if args.individual == "chosen":
        path = RunDir(run.root).final_checkpoint
        genome = recipe.read(path, "the search has not finished")[1]
    else:
        genome = trial_genome(run, args.individual)
    n = len(genome.weight_bits)
    flt = (FLOAT_BITS,) * n
    variants = {
        "widened, float": Genome(flt, flt, genome.ratios),
        "weights quantized": Genome(genome.weight_bits, flt, genome.ratios),
        "activations quantized": Genome(flt, genome.act_bits, genome.ratios),
        "both (the individual)": genome,
    }
    print(f"{run.root}: {cfg.model} on {cfg.dataset}, individual {args.individual}, "
          f"genome {genome.key()}; val accuracy in % (search subset {len(evaluator.val_data)} "
          f"images, full val {len(data.val)})")  # fmt: skip
    print(f"FP32 base: search val {evaluate_accuracy(run.base, evaluator.val_data):.2%}, "
          f"full val {recipe.accuracy(run.base):.2%}")  # fmt: skip
    head = f"{'variant':<24}{'built':>9}{'fine-tuned':>12}"
    print(head + (f"{'final (full val)':>18}" if args.final else ""))
    for name, g in variants.items():
        built = evaluate_accuracy(evaluator.build(g), evaluator.val_data)
        tuned = evaluator(g).val_accuracy
        line = f"{name:<24}{built:>9.2%}{tuned:>12.2%}"
        if args.final:  # the run's final recipe (final_init, epochs, teacher)
            line += f"{recipe.accuracy(recipe.final_model(g)):>18.2%}"
        print(line, flush=True)
    if args.final:  # the plain FP32 baseline: the base given the same final epochs
        fp32 = recipe.accuracy(recipe.fp32_model(distilled=False))
        print(f"{'FP32 baseline':<24}{'':>9}{'':>12}{fp32:>18.2%}")
    if args.no_sensitivity:
        return
    eight = Genome((8,) * n, (8,) * n, genome.ratios)
    ref = evaluator(eight).val_accuracy
    print(f"\nsensitivity: all layers 8/8 bits fine-tuned {ref:.2%}; drop when one layer has "
          f"{args.low}-bit weights or activations (pp)")  # fmt: skip
    print(f"{'layer':<22}{'weights':>10}{'activations':>13}")
    for i, layer in enumerate(run.space.layers):
        w = list(eight.weight_bits)
        a = list(eight.act_bits)
        w[i] = args.low
        a[i] = args.low
        dw = evaluator(dataclasses.replace(eight, weight_bits=tuple(w))).val_accuracy - ref
        da = evaluator(dataclasses.replace(eight, act_bits=tuple(a))).val_accuracy - ref
        print(f"{layer:<22}{dw * 100:>+10.2f}{da * 100:>+13.2f}", flush=True)


if __name__ == "__main__":
    main()
