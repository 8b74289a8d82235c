"""Does width pay? The same architectures widened from the base or trained at their width.

For each model, dataset and seed, and each variant (FP32 x1.0/x1.5/x2.0; 4-bit x1.5, 3-bit
x1.5, 3-bit x2.0, 2-bit x2.0: weight bits of every layer, activations at 8 bits, every
expansion group at the ratio), two protocols with the same total epochs:

- **widened**: the pretrained FP32 base (``pretrain_epochs``) widened by Net2Wider (copies,
  ``widen_noise``), quantized and calibrated as the search builds an individual, then
  ``final_epochs`` at ``qat_lr`` (FP32 x1.0 widened is the search's FP32 baseline);
- **scratch**: the architecture re-initialised at its width, pretrained in float exactly as
  the base (``pretrain_epochs`` at ``lr``), then quantized and calibrated the same way, then
  the same ``final_epochs`` (``final_init = "scratch"``).

Val accuracy (the full val split) decides; test accuracy is read once per trained model.

    python benchmarks/width_protocol.py                       # 2 models x 2 datasets x 3 seeds
    python benchmarks/width_protocol.py --models lenet5 --datasets mnist5k --seeds 0,1

Resumable cell by cell: ``benchmarks/results/width_protocol.json`` keeps every finished
(model, dataset, seed, variant, protocol) with its budget; ``width_protocol.md`` has the
table (mean +- std over seeds). Every model is trained by ``mogaqnn.Recipe``: the quantized
ones by its final recipe (``init`` widen or scratch), the FP32 ones by its FP32 baseline's
final epochs. Base, float-at-width and final checkpoints under ``runs/width_protocol/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _provenance import code_commit  # benchmarks/_provenance.py, beside this file
from torch import nn

import mogaqnn
from mogaqnn import Recipe
from mogaqnn.expand import widen_model
from mogaqnn.run import atomic_write_text, describe_device
from mogaqnn.size import KIB_BITS, fp32_size_bits, model_size

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ACT_BITS = 8
# (label, weight bits or None for float, ratio of every expansion group)
VARIANTS = (
    ("FP32 x1.0", None, 1.0), ("FP32 x1.5", None, 1.5), ("FP32 x2.0", None, 2.0),
    ("4-bit x1.5", 4, 1.5), ("3-bit x1.5", 3, 1.5), ("3-bit x2.0", 3, 2.0),
    ("2-bit x2.0", 2, 2.0),
)  # fmt: skip
PROTOCOLS = ("widened", "scratch")


def fp32_final(recipe: Recipe, net: nn.Module) -> nn.Module:
    """The FP32 baseline's final epochs (plain) given to a float network at its width: the
    recipe of a run whose base is that network (Recipe.fp32_model trains the base only)."""
    wide = Recipe(recipe.config, net, recipe.graph, recipe.space, recipe.data, recipe.device)
    return wide.fp32_model(distilled=False)


def run_cell_group(model: str, dataset: str, seed: int, args, doc: dict, save) -> None:
    cfg = mogaqnn.SearchConfig(
        model=model, dataset=dataset, seed=seed, device=args.device, progress=False,
        pretrain_epochs=args.pretrain_epochs,
        # base.pt and the float models are cached there: one directory per pretraining budget
        out=str(args.runs / f"{model}_{dataset}_s{seed}_p{args.pretrain_epochs:g}"),
        final_epochs=args.final_epochs, expansion_ratios=(1.0, 1.5, 2.0),
        fitness="widen",  # no supernet: the widened cells build as the widen fitness does
    )  # fmt: skip
    budget = budget_of(cfg)
    done = {(c["variant"], c["protocol"]) for c in doc["cells"]
            if (c["model"], c["dataset"], c["seed"]) == (model, dataset, seed)
            and c["budget"] == budget}  # fmt: skip
    todo = [(v, p) for v in VARIANTS for p in PROTOCOLS if (v[0], p) not in done]
    if not todo:
        return
    search = mogaqnn.Search(cfg)
    root = search.run_dir.root
    root.mkdir(parents=True, exist_ok=True)
    setup = search.setup(pretrain=True)  # the FP32 base, cached as base.pt
    recipe, graph, space = setup.recipe, setup.graph, setup.space
    fp32_bits = fp32_size_bits(setup.base)
    for (label, bits, ratio), protocol in todo:
        t0 = time.perf_counter()
        genome = space.uniform(bits or 8, ACT_BITS, ratio)
        if bits is not None and protocol == "widened":  # the final recipe from the base
            net = recipe.final_model(genome, init="widen")
        elif bits is not None:  # from scratch: the float pretraining and the final model are
            # kept in root, one directory per pretraining budget (the name: the final epochs)
            net = recipe.final_model(genome, init="scratch", keep=root,
                                     name=f"f{cfg.final_epochs:g}-{genome.key()}")  # fmt: skip
        elif protocol == "widened":
            net = fp32_final(recipe, widen_model(setup.base, graph, genome.ratios,
                                                 noise_std=cfg.widen_noise,
                                                 seed=genome.seed(seed)))  # fmt: skip
        else:  # trained at its width in float (kept in root), then the FP32 final epochs
            float_model = recipe.float_at_width(space.uniform(8, 8, ratio), keep=root)
            net = fp32_final(recipe, float_model)
        size = fp32_size_bits(net) if bits is None else model_size(net, graph.bn_fold).total_bits
        cell = {
            "model": model, "dataset": dataset, "seed": seed, "variant": label,
            "protocol": protocol, "weight_bits": bits, "act_bits": ACT_BITS if bits else None,
            "ratio": ratio, "budget": budget,
            "val_accuracy": recipe.accuracy(net, "val"),
            "test_accuracy": recipe.accuracy(net, "test"),
            "size_kib": size / KIB_BITS, "compression": fp32_bits / size,
            "seconds": time.perf_counter() - t0, "commit": args.commit,
            "device": describe_device(recipe.device),
        }  # fmt: skip
        doc["cells"].append(cell)
        save()
        print(f"{model} {dataset} seed {seed} {label:<11} {protocol:<8} val "
              f"{cell['val_accuracy']:.2%} test {cell['test_accuracy']:.2%} "
              f"{cell['size_kib']:.1f} KiB ({cell['seconds']:.0f} s)", flush=True)  # fmt: skip


def budget_of(cfg: mogaqnn.SearchConfig) -> dict[str, Any]:
    """What a cell's figures depend on besides model, dataset, seed, variant and protocol."""
    return {"pretrain_epochs": cfg.pretrain_epochs, "final_epochs": cfg.final_epochs,
            "lr": cfg.lr, "qat_lr": cfg.qat_lr, "batch_size": cfg.batch_size}  # fmt: skip


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * sd:.2f}"


def table(doc: dict, budget: dict[str, Any]) -> str:
    """Mean and spread over seeds of the cells run at ``budget``."""
    mine = [c for c in doc["cells"] if c["budget"] == budget]
    out = []
    pairs = sorted({(c["model"], c["dataset"]) for c in mine})
    for model, dataset in pairs:
        cells = [c for c in mine if (c["model"], c["dataset"]) == (model, dataset)]
        seeds = sorted({c["seed"] for c in cells})
        out += [
            f"### {model}, {dataset} (seeds {', '.join(map(str, seeds))}; accuracy %, mean ± std)",
            "",
            f"ran on {', '.join(sorted({c.get('device', '?') for c in cells}))}, commit "
            f"{', '.join(sorted({c.get('commit', '?') for c in cells}))}; "
            f"{len(cells)} of {len(seeds) * len(VARIANTS) * len(PROTOCOLS)} cells, "
            f"{sum(c['seconds'] for c in cells):.0f} s",
            "",
            "| variant | size KiB | compression | widened val | widened test | scratch val "
            "| scratch test |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for label, _, _ in VARIANTS:
            of_variant = [c for c in cells if c["variant"] == label]
            if not of_variant:
                continue
            row = [
                label,
                f"{of_variant[0]['size_kib']:.1f}",
                f"{of_variant[0]['compression']:.1f}x",
            ]
            for protocol in PROTOCOLS:
                p = [c for c in of_variant if c["protocol"] == protocol]
                row += [_mean_std([c["val_accuracy"] for c in p]),
                        _mean_std([c["test_accuracy"] for c in p])]  # fmt: skip
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="lenet5,resnet20")
    p.add_argument("--datasets", default="fashion-mnist,mnist5k")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--pretrain-epochs", type=float, default=mogaqnn.SearchConfig.pretrain_epochs)
    p.add_argument("--final-epochs", type=float, default=mogaqnn.SearchConfig.final_epochs)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "width_protocol")
    p.add_argument("--out", type=Path, default=RESULTS / "width_protocol.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    doc: dict[str, Any] = {"cells": []}
    if args.out.is_file():
        doc = json.loads(args.out.read_text())
    start = time.perf_counter()
    args.commit = code_commit()

    def save() -> None:
        doc["last_invocation"] = {
            "command": "python " + " ".join(sys.argv), "commit": args.commit,
            "wall_s": time.perf_counter() - start, "threads": args.threads,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        }  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")

    for model in args.models.split(","):
        for dataset in args.datasets.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                run_cell_group(model, dataset, seed, args, doc, save)
    save()
    budget = budget_of(mogaqnn.SearchConfig(pretrain_epochs=args.pretrain_epochs,
                                            final_epochs=args.final_epochs))  # fmt: skip
    text = "\n".join([
        "# Width protocol: widened from the base vs trained at its own width",
        "",
        "command: `python benchmarks/width_protocol.py --models M --datasets D --seeds S "
        f"--pretrain-epochs {args.pretrain_epochs:g} --final-epochs {args.final_epochs:g}` "
        "(with `--device cuda` for the cells run on a GPU); each table says what ran it, at "
        "which commit, and the seconds its cells took (without the bases' pretraining; each "
        "float pretraining at a width counted in the first cell that used it)  ",
        f"budget: pretrain {args.pretrain_epochs:g} + final {args.final_epochs:g} epochs for "
        f"every model (FP32 x1.0 widened is the FP32 baseline); activations {ACT_BITS}-bit",
        "",
        table(doc, budget),
    ])  # fmt: skip
    atomic_write_text(args.out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
