"""How the chosen model's final budget is split between float pretraining and QAT.

With ``final_init = "scratch"`` the chosen architecture is pretrained in float for
``pretrain_epochs`` and then quantized for ``final_epochs``, the same total as the FP32
baseline (base + final epochs). Low-bit models may need more of that total quantized. This
benchmark retrains each finished run's chosen individual with ``k`` epochs moved from the
float pretraining to the QAT (``--shifts``), the total unchanged, and compares the final val
accuracy with the run's stronger FP32 baseline (by val); test is written for the record.
Resumable: one JSON line per (run, shift).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/final_split.py \\
        --runs runs/recipe_ablation/lenet5-select_match_fp32-s* [--shifts=-2,0,2,4]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fitness_fidelity import read_lines  # benchmarks/, beside this file
from selection_rules import COMMIT, RESULTS, _ms, run_facts, train_trial

from mogaqnn.run import load_run, read_result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="finished run directories")
    p.add_argument("--shifts", default="0,2,4", help="epochs moved from float to QAT")
    p.add_argument("--out", default=str(RESULTS / "final_split.jsonl"))
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    shifts = [float(k) for k in args.shifts.split(",")]
    runs = [Path(r) for r in args.runs if (Path(r) / "result.json").is_file()]
    out = Path(args.out)
    done = {(r["run"], r["shift"]): r for r in read_lines(out)}
    for run in runs:
        cfg = load_run(run).config
        if cfg.final_init != "scratch":
            raise SystemExit(f"{run}: final_init is {cfg.final_init!r}, not scratch")
        trial = read_result(load_run(run))["chosen"]["trial"]
        for k in shifts:
            if (str(run), k) in done or k > cfg.pretrain_epochs:
                continue
            row = train_trial(run, trial, args.device,
                              {"pretrain_epochs": cfg.pretrain_epochs - k,
                               "final_epochs": cfg.final_epochs + k})  # fmt: skip
            row.update(shift=k, commit=COMMIT)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            done[(str(run), k)] = row
            print(f"{run} trial {trial}, {k:g} epochs moved to QAT: final val "
                  f"{row.get('val_accuracy', float('nan')):.2%}", flush=True)  # fmt: skip
    lines = ["| epochs float + QAT | runs | val gap pp (judged) | test gap pp (record) |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    facts_of = {str(run): run_facts(run) for run in runs}  # read once, not per shift
    cfg = load_run(runs[0]).config
    for k in shifts:
        val, test = [], []
        for run in runs:
            row, facts = done.get((str(run), k)), facts_of[str(run)]
            if row and "val_accuracy" in row:
                val.append((row["val_accuracy"] - facts["fp32"]["val_accuracy"]) * 100)
                test.append((row["test_accuracy"] - facts["fp32"]["test_accuracy"]) * 100)
        lines.append(f"| {cfg.pretrain_epochs - k:g} + {cfg.final_epochs + k:g} | {len(val)} | "
                     f"{_ms(val)} | {_ms(test)} |")  # fmt: skip
    table = "\n".join(lines)
    out.with_suffix(".md").write_text(
        "# Final budget split: float pretraining + QAT of the chosen individual\n\n"
        f"command: `python benchmarks/final_split.py {' '.join(sys.argv[1:])}`, commit "
        f"{COMMIT}\n\nGap: final accuracy minus the run's stronger FP32 baseline's (by val, "
        "its total epochs the same), pp, mean ± std over runs.\n\n" + table + "\n"
    )
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
