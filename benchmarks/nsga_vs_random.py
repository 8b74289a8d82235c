"""Does NSGA-II beat random search once evaluations are cheap and many?

For each seed, two searches of the same space, budget and final stage, LeNet-5 on
Fashion-MNIST by default: NSGA-II (``sampler = nsga2``) and random search (``sampler =
random``), both with the ``quant-supernet`` fitness (a slice of one quantization-aware
supernet, BatchNorm recalibrated, no fine-tuning) so that population x generations can reach
1,000 or more evaluations. The random search starts from the NSGA-II run's base and supernet
(copied: the same seed trains the same ones). Reported per seed and as the mean over seeds
with the paired t-interval: the hypervolume of every evaluation (val error, size / FP32 size;
reference point (1, 1/4): only individuals at least 4x smaller count), NSGA-II / random;
and both searches' chosen models after the final training (test accuracy, compression).

    python benchmarks/nsga_vs_random.py --seeds 0,1,2
    python benchmarks/nsga_vs_random.py --aggregate

Resumable: one JSON per (seed, sampler) under ``benchmarks/results/nsga_vs_random/``; run
directories under ``runs/nsga_vs_random/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _evidence import hypervolume, mean_std, paired_interval
from _provenance import code_commit

import mogaqnn
from mogaqnn.fitness import QUANT_SUPERNET
from mogaqnn.run import atomic_write_text, describe_device
from mogaqnn.search import completed, read_study

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "nsga_vs_random"
RUNS = ROOT / "runs" / "nsga_vs_random"
HV_REF = (1.0, 0.25)  # (val error, size / FP32 size): the individuals at least 4x smaller
SAMPLERS = ("nsga2", "random")
BUDGET: dict[str, Any] = {
    "model": "lenet5", "dataset": "fashion-mnist", "fitness": "quant-supernet",
    "search_epochs": 0.0, "population": 50, "generations": 20, "search_val_samples": 2000,
    "final_candidates": 1, "uniform_qat_bits": (),
}  # fmt: skip


def config(seed: int, sampler: str) -> mogaqnn.SearchConfig:
    out = RUNS / f"{sampler}-s{seed}"
    return mogaqnn.SearchConfig(seed=seed, sampler=sampler, out=str(out), progress=False,
                                **BUDGET)  # fmt: skip


def share_supernet(cfg: mogaqnn.SearchConfig, seed: int) -> None:
    """Random search starts from NSGA-II's base and supernet (same seed, same training)."""
    out, src = Path(cfg.out), Path(config(seed, "nsga2").out)
    if out.exists() or not (src / QUANT_SUPERNET).exists():
        return
    out.mkdir(parents=True)
    for name in ("base.pt", QUANT_SUPERNET):
        shutil.copy2(src / name, out / name)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def run_unit(seed: int, sampler: str) -> dict[str, Any]:
    cfg = config(seed, sampler)
    if sampler != "nsga2":
        share_supernet(cfg, seed)
    t0 = time.perf_counter()
    r = mogaqnn.Search(cfg).run().data
    fp32_bits = r["fp32"]["size_bits"]
    points = [(1.0 - t.user_attrs["val_accuracy"], t.user_attrs["size_bits"] / fp32_bits)
              for t in completed(read_study(cfg.out))]  # fmt: skip
    return {
        "seed": seed, "sampler": sampler, "commit": code_commit(), "budget": BUDGET,
        "device": describe_device("cpu"), "wall_s": time.perf_counter() - t0,
        "evaluations": len(points), "hypervolume": hypervolume(np.array(points), HV_REF),
        "chosen": {k: r["chosen"][k] for k in ("trial", "val_accuracy", "test_accuracy",
                                                "compression_ratio", "search_val_accuracy")},
        "fp32": r["fp32"], "fp32_distilled": r["fp32_distilled"], "claims": r["claims"],
        "timing": r["timing"],
    }  # fmt: skip


def unit_path(seed: int, sampler: str) -> Path:
    return RESULTS / f"{sampler}-s{seed}.json"


def aggregate(units: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(u["seed"], u["sampler"]): u for u in units}
    seeds = sorted({s for s, _ in by if (s, "nsga2") in by and (s, "random") in by})
    ratios = [by[s, "nsga2"]["hypervolume"] / by[s, "random"]["hypervolume"] for s in seeds]
    test = [by[s, "nsga2"]["chosen"]["test_accuracy"] - by[s, "random"]["chosen"]["test_accuracy"]
            for s in seeds]  # fmt: skip
    return {"seeds": seeds, "hv_ratio": paired_interval(ratios), "hv_ratios": ratios,
            "chosen_test_diff": paired_interval(test)}  # fmt: skip


def markdown(units: list[dict[str, Any]], agg: dict[str, Any]) -> str:
    b = BUDGET
    commits = ", ".join(sorted({u["commit"] for u in units}))
    device = units[0]["device"] if units else ""
    lines = [
        "# NSGA-II against random search at many cheap evaluations "
        "(benchmarks/nsga_vs_random.py)", "",
        f"{b['model']} on {b['dataset']}, fitness {b['fitness']} (search_epochs "
        f"{b['search_epochs']:g}), population {b['population']} x {b['generations']} "
        f"generations, val subset {b['search_val_samples']}; hypervolume of every evaluation on "
        f"(val error, size / FP32 size), reference point {HV_REF}. Commit(s): "
        f"{commits}; {device}.",
        "", "| seed | sampler | evaluations | HV | chosen val | chosen test | compression | "
        "FP32 test (plain / distilled) | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for u in sorted(units, key=lambda u: (u["seed"], u["sampler"])):
        c = u["chosen"]
        lines.append(f"| {u['seed']} | {u['sampler']} | {u['evaluations']} | "
                     f"{u['hypervolume']:.5f} | {c['val_accuracy']:.2%} | {c['test_accuracy']:.2%} "
                     f"| {c['compression_ratio']:.1f}x | {u['fp32']['test_accuracy']:.2%} / "
                     f"{u['fp32_distilled']['test_accuracy']:.2%} | "
                     f"{u['wall_s']:.0f} |")  # fmt: skip
    r, d = agg["hv_ratio"], agg["chosen_test_diff"]
    if agg["seeds"]:
        ci = f" [{r['low']:.3f}, {r['high']:.3f}]" if r["low"] is not None else ""
        dci = (f" [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]" if d["low"] is not None
               else "")  # fmt: skip
        lines += ["", f"HV ratio NSGA-II / random over seeds {agg['seeds']}: mean "
                  f"{r['mean']:.3f}{ci} (per seed {', '.join(f'{x:.3f}' for x in agg['hv_ratios'])}"
                  f"); chosen models' test accuracy, NSGA-II - random: {100 * d['mean']:+.2f} pp"
                  f"{dci}. Mean +- std of the HV ratio: {mean_std(agg['hv_ratios'])[0]:.3f} +- "
                  f"{mean_std(agg['hv_ratios'])[1]:.3f}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--aggregate", action="store_true", help="write the table, run nothing")
    args = p.parse_args()
    code_commit()
    if not args.aggregate:
        for seed in (int(s) for s in args.seeds.split(",")):
            for sampler in SAMPLERS:
                path = unit_path(seed, sampler)
                if path.exists():
                    continue
                print(f"seed {seed} {sampler} ...", flush=True)
                unit = run_unit(seed, sampler)
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(unit, indent=2) + "\n")
                print(f"  HV {unit['hypervolume']:.5f}, {unit['wall_s']:.0f} s", flush=True)
    units = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    agg = aggregate(units)
    atomic_write_text(RESULTS.with_suffix(".md"), markdown(units, agg))
    print(markdown(units, agg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
