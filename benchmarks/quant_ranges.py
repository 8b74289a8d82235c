"""Which quantization ranges to keep: val accuracy of the search's fitness per range mode.

LeNet-5 (or ``--model``), FP32 base pretrained once per dataset, then the same genomes
(uniform 2/3/4 bits at ratio 1.0 and 1.5, plus random ones) evaluated exactly as the
search evaluates them (the run's Evaluator: 2,000 training images, ``search_epochs``,
``qat_lr``) with each ``quant_ranges`` mode, for several evaluation seeds. Decisions by
val accuracy only.

    PYTHONPATH=. python benchmarks/quant_ranges.py [--datasets mnist5k,fashion-mnist]
        [--modes fixed,ema,lsq] [--random 4] [--seeds 0,1] [--epochs 1] [--pretrain-epochs 8]
        [--variant distill_weight=0 --variant distill_weight=0.7,qat_lr=0.001 ...]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from mogaqnn import SearchConfig
from mogaqnn.fitness import make_evaluator
from mogaqnn.genome import Genome
from mogaqnn.models import create_model
from mogaqnn.recipe import pretrain_float
from mogaqnn.run import expansion_graph, load_config_dataset, search_space
from mogaqnn.train import evaluate_accuracy


def genomes(space, n_random: int) -> list[Genome]:
    out = [space.uniform(b, b, r) for r in (1.0, 1.5) for b in (2, 3, 4)]
    rng = random.Random(0)
    for _ in range(n_random):
        params = {k: rng.choice(v) for k, v in space.parameters().items()}
        out.append(space.decode(params))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist5k,fashion-mnist")
    p.add_argument("--modes", default="fixed,ema,lsq")
    p.add_argument("--random", type=int, default=4)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=float, default=None, help="search_epochs (config default)")
    p.add_argument("--pretrain-epochs", type=float, default=None)
    p.add_argument("--model", default="lenet5")
    p.add_argument("--genomes", type=int, default=None, help="keep only the first N genomes")
    p.add_argument("--variant", action="append", default=None,
                   help="config overrides key=value,key=value of one recipe variant; "
                   "repeat to compare variants on the same FP32 base")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(1)
    variants = [dict(kv.split("=", 1) for kv in v.split(",") if kv) for v in args.variant or [""]]
    for dataset in args.datasets.split(","):
        # the base widened, the fitness of the published figures (results/quant_ranges.txt
        # predates the fitness option): no run directory, no supernet to train or read
        cfg = SearchConfig(model=args.model, dataset=dataset, device="cpu", progress=False,
                           fitness="widen")  # fmt: skip
        overrides = {"search_epochs": args.epochs, "pretrain_epochs": args.pretrain_epochs}
        cfg = SearchConfig.from_mapping(
            {**cfg.to_dict(), **{k: v for k, v in overrides.items() if v is not None}}
        )
        data = load_config_dataset(cfg)
        torch.manual_seed(cfg.seed)  # the same base for every invocation
        base = create_model(cfg.model, in_channels=data.in_channels,
                            num_classes=data.num_classes, image_size=data.image_size)  # fmt: skip
        t0 = time.perf_counter()
        pretrain_float(cfg, base, data, torch.device("cpu")).eval()
        print(f"{dataset}: FP32 base val {evaluate_accuracy(base, data.val):.4f} "
              f"({cfg.pretrain_epochs:g} epochs, {time.perf_counter() - t0:.0f} s)")  # fmt: skip
        graph = expansion_graph(base, data.train.x[:2], cfg.expansion)
        space = search_space(cfg, base, graph)
        gs = genomes(space, args.random)[: args.genomes]
        for extra, mode in ((e, m) for e in variants for m in args.modes.split(",")):
            accs, secs = [], []
            vcfg = SearchConfig.from_mapping({**cfg.to_dict(), **extra, "quant_ranges": mode})
            for seed in (int(s) for s in args.seeds.split(",")):
                ev = make_evaluator(vcfg.replace(seed=seed), base, graph, space, data,
                                    torch.device("cpu"), None)  # fmt: skip
                for g in gs:
                    e = ev(g)
                    accs.append(e.val_accuracy)
                    secs.append(e.train_seconds)
            label = ",".join(f"{k}={v}" for k, v in extra.items()) or "config defaults"
            print(f"  {label} {mode:<6} mean val {statistics.mean(accs):.4f} "
                  f"(min {min(accs):.4f}) over {len(accs)} evaluations, train "
                  f"{statistics.mean(secs):.2f} s each  [{' '.join(f'{a:.3f}' for a in accs)}]",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
