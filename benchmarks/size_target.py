"""The answer at a size target: is the chosen model smaller AND more accurate than FP32?

For each cell (model, dataset) and seed, one search per variant at the package's defaults:

- ``target``: the most accurate of ``k`` final-trained candidates at >= 4x (``select =
  accuracy``, ``min_compression = 4``, ``final_candidates = K``), the claim read at >= 4x and
  at >= 8x (``claim_compressions = 4,8``);
- ``match-fp32``: the previous default (the smallest individual whose search val reaches
  FP32, one final training, no size target).

Each search's final stage trains its candidates in a fixed order (the rule's choice, the
best at each claim compression, then spread over the front), so one run with ``K``
candidates also says what ``k < K`` would have chosen: the first ``k`` candidates, the one
with the highest final val accuracy among those at the size target. Every choice is made by
val accuracy; test accuracy is read once per model by the search and only reported. The
paired difference per seed is chosen model - stronger FP32 baseline (by test, as the search's
claim); the interval is the t-interval over seeds.

    python benchmarks/size_target.py --cells lenet5:mnist5k --seeds 0,1,2,3,4,5
    python benchmarks/size_target.py --aggregate        # the tables from the units, no runs

Resumable unit by unit: ``benchmarks/results/size_target/<cell>/<variant>-s<seed>.json``;
the searches' run directories under ``runs/size_target/`` (a search resumes there).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from _evidence import mean_std, paired_interval  # benchmarks/_evidence.py, beside this file
from _provenance import code_commit

import mogaqnn
from mogaqnn.fitness import SUPERNET
from mogaqnn.run import atomic_write_text, describe_device

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "size_target"
RUNS = ROOT / "runs" / "size_target"
K = 5
TARGETS = (4.0, 8.0)
VARIANTS: dict[str, dict[str, Any]] = {
    "target": {"select": "accuracy", "min_compression": TARGETS[0], "final_candidates": K,
               "claim_compressions": TARGETS},
    # the candidate rule before the bits-for-width seed was a candidate (its units kept)
    "target-spread": {"select": "accuracy", "min_compression": TARGETS[0], "final_candidates": K,
                      "claim_compressions": TARGETS},
    "match-fp32": {"select": "match-fp32", "min_compression": None, "final_candidates": 1,
                   "claim_compressions": TARGETS},
}  # fmt: skip
CELLS = ("lenet5:fashion-mnist", "lenet5:mnist5k", "resnet20:mnist5k")


def config(cell: str, variant: str, seed: int) -> mogaqnn.SearchConfig:
    model, dataset = cell.split(":")
    out = RUNS / cell.replace(":", "-") / f"{variant}-s{seed}"
    return mogaqnn.SearchConfig(model=model, dataset=dataset, seed=seed, out=str(out),
                                progress=False, **VARIANTS[variant])  # fmt: skip


def share_base(cfg: mogaqnn.SearchConfig, cell: str, seed: int) -> None:
    """The variants of a seed differ only after the supernet: a sibling's base and supernet
    are copied in rather than trained again (same seed, data, model and budgets)."""
    out = Path(cfg.out)
    if out.exists():
        return
    for variant in VARIANTS:
        other = Path(config(cell, variant, seed).out)
        if (other / "base.pt").exists() and (other / SUPERNET).exists():
            out.mkdir(parents=True)
            for name in ("base.pt", SUPERNET):
                shutil.copy2(other / name, out / name)
            (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            return


def run_unit(cell: str, variant: str, seed: int) -> dict[str, Any]:
    cfg = config(cell, variant, seed)
    share_base(cfg, cell, seed)
    t0 = time.perf_counter()
    r = mogaqnn.Search(cfg).run().data
    keep = ("fp32", "fp32_distilled", "final_candidates", "uniform_qat", "claims", "timing",
            "environment", "selection")  # fmt: skip
    return {"cell": cell, "variant": variant, "seed": seed, "commit": code_commit(),
            "device": describe_device("cpu"), "wall_s": time.perf_counter() - t0,
            **{k: r.get(k) for k in keep}}  # fmt: skip


def unit_path(cell: str, variant: str, seed: int) -> Path:
    return RESULTS / cell.replace(":", "-") / f"{variant}-s{seed}.json"


def chosen_at(unit: dict[str, Any], k: int, target: float) -> dict[str, Any] | None:
    """What the search would have chosen with its first ``k`` candidates: the highest final
    val accuracy (ties to the smaller) at least ``target`` times smaller than FP32."""
    at = [c for c in unit["final_candidates"][:k] if c["compression_ratio"] >= target]
    return max(at, key=lambda c: (c["val_accuracy"], -c["size_bits"])) if at else None


def stronger_fp32(unit: dict[str, Any]) -> dict[str, Any]:
    return max((unit["fp32"], unit["fp32_distilled"]), key=lambda f: f["test_accuracy"])


def aggregate(units: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cell, variant, k and target: the chosen model - stronger FP32 (test, paired over
    seeds), its val difference, compression, and the final stage's hours."""
    out: dict[str, Any] = {}
    for u in units:
        out.setdefault(u["cell"], {}).setdefault(u["variant"], []).append(u)
    table: dict[str, Any] = {}
    for cell, variants in out.items():
        for variant, us in variants.items():
            us = sorted(us, key=lambda u: u["seed"])
            kmax = max(len(u["final_candidates"]) for u in us)
            for k in range(1, kmax + 1):
                for target in TARGETS:
                    rows = [(u, c) for u in us if (c := chosen_at(u, k, target)) is not None]
                    fp = [stronger_fp32(u) for u, _ in rows]
                    test = [c["test_accuracy"] - f["test_accuracy"] for (_, c), f in zip(rows, fp)]
                    val = [c["val_accuracy"] - max(u["fp32"]["val_accuracy"],
                                                   u["fp32_distilled"]["val_accuracy"])
                           for u, c in rows]  # fmt: skip
                    hours = [sum(c["train_seconds"] for c in u["final_candidates"][:k]) / 3600
                             for u in us]  # fmt: skip
                    table.setdefault(cell, {}).setdefault(variant, {})[f"k{k}@{target:g}x"] = {
                        "seeds": [u["seed"] for u, _ in rows],
                        "missing": len(us) - len(rows),
                        "test_diff": paired_interval(test),
                        "val_diff": mean_std(val),
                        "compression": mean_std([c["compression_ratio"] for _, c in rows]),
                        "candidate_hours": mean_std(hours),
                    }
    return table


def _pp(x: float) -> str:
    return f"{100 * x:+.2f}"


def markdown(table: dict[str, Any], units: list[dict[str, Any]]) -> str:
    commits = sorted({u["commit"] for u in units})
    lines = ["# The answer at a size target (benchmarks/size_target.py)", "",
             f"Units at commit(s) {', '.join(commits)}; {units[0]['device'] if units else ''} "
             "threads per process as printed by each run. Differences in points (pp), chosen "
             "model - the stronger FP32 baseline; test: mean [95 % t-interval over seeds]; val: "
             "mean +- std; candidate hours: the final trainings of the first k candidates per "
             "seed (FP32 baselines and uniform QAT not counted).", "",
             "| cell | variant | k | target | seeds | test diff | val diff | compression | "
             "candidate hours |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for cell, variants in sorted(table.items()):
        for variant, rows in variants.items():
            for key, r in rows.items():
                if not r["seeds"]:
                    continue  # no seed had a candidate that small
                k, target = key.split("@")
                d = r["test_diff"]
                ci = f" [{_pp(d['low'])}, {_pp(d['high'])}]" if d["low"] is not None else ""
                missing = f" ({r['missing']} without one)" if r["missing"] else ""
                lines.append(
                    f"| {cell} | {variant} | {k[1:]} | >= {target} | {len(r['seeds'])}{missing} "
                    f"| {_pp(d['mean'])}{ci} | {_pp(r['val_diff'][0])} +- "
                    f"{100 * r['val_diff'][1]:.2f} | {r['compression'][0]:.1f}x | "
                    f"{r['candidate_hours'][0]:.3f} |"
                )
    return "\n".join(lines) + "\n"


def read_units() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*/*.json"))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default=",".join(CELLS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--k", type=int, default=K, help="candidates of the target variant")
    p.add_argument("--aggregate", action="store_true", help="write the tables, run nothing")
    args = p.parse_args()
    code_commit()  # the code that runs is the code at start
    VARIANTS["target"]["final_candidates"] = args.k
    if not args.aggregate:
        for cell in args.cells.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                for variant in args.variants.split(","):
                    path = unit_path(cell, variant, seed)
                    if path.exists():
                        continue
                    print(f"{cell} {variant} seed {seed} ...", flush=True)
                    unit = run_unit(cell, variant, seed)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(path, json.dumps(unit, indent=2) + "\n")
                    print(f"  done in {unit['wall_s']:.0f} s", flush=True)
    units = read_units()
    table = aggregate(units)
    atomic_write_text(RESULTS.with_suffix(".json"), json.dumps(table, indent=2) + "\n")
    atomic_write_text(RESULTS.with_suffix(".md"), markdown(table, units))
    print(markdown(table, units))
    return 0


if __name__ == "__main__":
    sys.exit(main())
