"""Recipe ablation: what each step of the quantized-training recipe adds, at the demo budget.

One row per step, added in turn to the row before (today's code first), for LeNet-5 and
ResNet-20 on MNIST-5k, several seeds. A cell is one full search (``mogaqnn.search``) of one
model, row and seed; it writes one JSON under ``--results`` and is skipped when that JSON
exists, so an interrupted run continues cell by cell, and a cell cut short continues its
search (mogaqnn's resume) when its config is unchanged. The summary (mean +- std over seeds of
the val and test accuracy of the chosen model and of both FP32 baselines, compression,
evaluations per minute) goes to ``--results``/summary.md.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/recipe_ablation.py \\
        [--models lenet5,resnet20] [--seeds 0,1,2] [--cells today,calibration,...] [--tiny]

Adding a row is one line in ROWS: (name, config keys it changes from the row before).
Keys starting with ``_`` are not config keys but switches of this script (``_first_128``
restores the calibration on the first 128 training images that the code used before).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from _provenance import code_commit  # benchmarks/_provenance.py, beside this file
from papertable.units import fp32_kib_of  # benchmarks/papertable/, beside this file

from mogaqnn import SearchConfig, search
from mogaqnn.fitness import Evaluator
from mogaqnn.run import RunDir, describe_device

ROWS: list[tuple[str, dict[str, Any]]] = [
    # the code before issues 10-12: first-128 calibration, fixed ranges, no distillation,
    # widened copies of the base for the fitness and the final model, random first
    # generation, the most accurate of the front
    (
        "today",
        {
            "_first_128": True,
            "quant_ranges": "fixed",
            "distill_weight": 0.0,
            "bn_reestimate_batches": 0,
            "fitness": "widen",
            "final_init": "widen",
            "seed_population": False,
            "select": "accuracy",
        },
    ),
    ("calibration", {"_first_128": False}),  # seeded, every class
    ("following_ranges", {"quant_ranges": "lsq"}),  # the measured better of ema and lsq
    ("distillation", {"distill_weight": 0.7, "distill_temperature": 4.0}),
    ("bn_reestimation", {"bn_reestimate_batches": 8}),
    # validation accuracy turned both off by default (train.py): back to the defaults
    ("recipe_defaults", {"distill_weight": 0.0, "bn_reestimate_batches": 0}),
    ("seeding", {"seed_population": True}),
    ("fitness_supernet", {"fitness": "supernet"}),
    ("final_init_scratch", {"final_init": "scratch"}),
    ("select_match_fp32", {"select": "match-fp32"}),  # every package default
    ("limit_8x", {"_size_limit": 8}),  # the defaults with max_size_kib = FP32 size / 8
    # The rows above ran (their files say at which commit) when LSQ's scales shared one
    # absolute rate, lr x lsq_scale_lr, at 1 (this row: 0.1, the default of
    # dfc8653-01c0050); from the lsq_relative_rate row on, each scale's rate is relative
    # to its size.
    ("lsq_scale_lr", {"lsq_scale_lr": 0.1, "_size_limit": None}),
    # every package default again, with each scale's rate relative to its size (x10)
    ("lsq_relative_rate", {"lsq_scale_lr": 10.0}),
    ("lsq_relative_rate_8x", {"_size_limit": 8}),
    # distillation from the base was turned off (train.py) on widened copies; the chosen
    # model now trains from scratch at its width: the defaults with it on, no limit, at the
    # distilled FP32 baseline's weight (0.5), so that both baselines stay those of the rows above
    ("distill_at_width", {"distill_weight": 0.5, "_size_limit": None}),
    # the accuracy budget (results/accuracy_budget) put the gap in 2-bit weights, which the
    # search's short fine-tune rates better than the final training does: the defaults
    # without 2-bit weights (val: LeNet-5 +0.38, ResNet-20 -0.25 pp paired; README), so the
    # default keeps them
    ("weights_from_3_bits", {"distill_weight": 0.0, "weight_bits": (3, 4, 5, 6, 7, 8)}),
    # MNIST-5k's 400 val images (0.25 pp each) decide both the ranking and match-fp32's
    # comparison with the FP32 reference, so the smallest individual that seems to reach it
    # may only have been lucky on val: the defaults with twice the val share (800 images;
    # every model, FP32 included, trains on 3,200 instead of 3,600). LeNet-5, six seeds: the
    # gap closed (-0.05 pp) only because FP32 lost 0.34 pp; the chosen model's test accuracy
    # did not move (96.65 vs 96.62 %), so the default stays 0.1 (README)
    ("val_share_20", {"weight_bits": SearchConfig().weight_bits, "val_fraction": 0.2}),
]
DEMO = {"dataset": "mnist5k", "population": 16, "generations": 8}
TINY = {"population": 4, "generations": 1, "pretrain_epochs": 0.5, "search_epochs": 0.2,
        "final_epochs": 0.2, "search_train_samples": 200, "search_val_samples": 100}  # fmt: skip
RESULTS = Path("benchmarks/results/recipe_ablation")
COMMIT = code_commit()  # at import: the code this process runs


def cumulative_rows() -> list[tuple[str, dict[str, Any]]]:
    """Each row's full overrides: its own keys on top of every row before it."""
    out, acc = [], {}
    for name, delta in ROWS:
        acc = {**acc, **delta}
        out.append((name, dict(acc)))
    return out


@contextmanager
def first_128_calibration(on: bool):
    """The old calibration: the first 128 training images (one class on MNIST-5k)."""
    if not on:
        yield
        return
    original = Evaluator.calibration_images
    Evaluator.calibration_images = lambda self: self.train_data.x[:128]  # type: ignore[method-assign]
    try:
        yield
    finally:
        Evaluator.calibration_images = original  # type: ignore[method-assign]


def continue_or_clear(out: Path, config: SearchConfig) -> bool:
    """True when ``out`` holds a half-finished run of ``config``, which the search continues
    (a ResNet-20 cell takes over an hour on this CPU); a run of another config (the defaults
    moved since) is removed, to start again."""
    stored = RunDir(out).stored_config()
    if stored is not None and stored.identity() == config.identity():
        return True
    if out.exists():
        shutil.rmtree(out)
    return False


def run_cell(model: str, row: str, overrides: dict[str, Any], seed: int, args) -> dict[str, Any]:
    config_keys = {k: v for k, v in overrides.items() if not k.startswith("_")}
    if overrides.get("_size_limit"):
        config_keys["max_size_kib"] = fp32_kib_of(model, "mnist5k") / overrides["_size_limit"]
    out = Path(args.runs) / f"{model}-{row}-s{seed}"
    config = SearchConfig.from_mapping({
        **SearchConfig().to_dict(), **DEMO, **(TINY if args.tiny else {}), **config_keys,
        "model": model, "seed": seed, "out": str(out), "progress": False, "device": args.device,
    })  # fmt: skip
    resumed = continue_or_clear(out, config)
    t0 = time.perf_counter()
    with first_128_calibration(bool(overrides.get("_first_128"))):
        r = search(config).data
    wall = time.perf_counter() - t0
    fd = r.get("fp32_distilled")
    return {
        "model": model, "row": row, "seed": seed, "overrides": overrides,
        "chosen_val": r["chosen"]["val_accuracy"], "chosen_test": r["chosen"]["test_accuracy"],
        "fp32_val": r["fp32"]["val_accuracy"], "fp32_test": r["fp32"]["test_accuracy"],
        "fp32_distilled_val": fd["val_accuracy"] if fd else None,
        "fp32_distilled_test": fd["test_accuracy"] if fd else None,
        "compression": r["chosen"]["compression_ratio"],
        # a resumed cell timed only its last part: no rate, and its wall time is a part
        "evaluations_per_min": None if resumed
        else r["search"]["evaluations"] / r["timing"]["search_s"] * 60,
        "claim": r.get("claim"), "wall_s": wall, "resumed": resumed, "tiny": args.tiny,
        "commit": COMMIT,
        "torch_threads": torch.get_num_threads(), "device": describe_device(args.device),
    }  # fmt: skip


def _ms(values: list[float], scale: float = 100.0, fmt: str = ".2f") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = statistics.mean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:{fmt}} ± {std:{fmt}}"


def summary(results: Path) -> str:
    cells = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    order = {name: i for i, (name, _) in enumerate(ROWS)}
    lines = ["# Recipe ablation (MNIST-5k, demo budget)", "",
             "Accuracies in %, mean ± std over seeds; claim: chosen test minus the stronger "
             "FP32 baseline's test accuracy, pp.",
             f"Commits: {', '.join(sorted({str(c.get('commit')) for c in cells}))}; "
             "command: PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/recipe_ablation.py "
             "--models M --seeds S --cells ROWS.", ""]  # fmt: skip
    for model in sorted({c["model"] for c in cells}):
        lines += [f"## {model}", "",
                  "| row | seeds | chosen val | chosen test | FP32 val | FP32 test | FP32 "
                  "distilled val | FP32 distilled test | claim gap pp | compression | "
                  "evaluations/min | ran on |",
                  "|" + " --- |" * 12]  # fmt: skip
        rows = sorted({c["row"] for c in cells if c["model"] == model},
                      key=lambda r: order.get(r, math.inf))  # fmt: skip
        for row in rows:
            cs = [c for c in cells if c["model"] == model and c["row"] == row]
            gaps = [c["claim"]["test_accuracy_difference"] for c in cs if c.get("claim")]
            lines.append(
                f"| {row} | {','.join(str(c['seed']) for c in cs)} | "
                f"{_ms([c['chosen_val'] for c in cs])} | {_ms([c['chosen_test'] for c in cs])} | "
                f"{_ms([c['fp32_val'] for c in cs])} | {_ms([c['fp32_test'] for c in cs])} | "
                f"{_ms([c['fp32_distilled_val'] for c in cs])} | "
                f"{_ms([c['fp32_distilled_test'] for c in cs])} | {_ms(gaps)} | "
                f"{_ms([c['compression'] for c in cs], 1.0, '.1f')} | "
                f"{_ms([c['evaluations_per_min'] for c in cs], 1.0, '.1f')} | "
                f"{', '.join(sorted({c.get('device', 'cpu x1') for c in cs}))} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet5,resnet20")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--cells", default=",".join(n for n, _ in ROWS), help="rows to run")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--runs", default="runs/recipe_ablation", help="run directories")
    p.add_argument("--tiny", action="store_true", help="a smoke-test budget, not a result")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    wanted = set(args.cells.split(","))
    unknown = wanted - {n for n, _ in ROWS}
    if unknown:
        print(f"unknown rows: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for model in args.models.split(","):
        for name, overrides in cumulative_rows():
            if name not in wanted:
                continue
            for seed in (int(s) for s in args.seeds.split(",")):
                path = results / f"{model}-{name}-s{seed}.json"
                if path.exists():
                    continue
                cell = run_cell(model, name, overrides, seed, args)
                path.write_text(json.dumps(cell, indent=2) + "\n")
                print(f"{model} {name} seed {seed}: chosen test {cell['chosen_test']:.4f}, "
                      f"FP32 {cell['fp32_test']:.4f}, {cell['compression']:.1f}x, "
                      f"{cell['wall_s']:.0f} s", flush=True)  # fmt: skip
                (results / "summary.md").write_text(summary(results) + "\n")
    (results / "summary.md").write_text(summary(results) + "\n")
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
