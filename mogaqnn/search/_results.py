"""What a finished search keeps and shows: result.json, pareto.csv, the printed table and
the paper's claim (smaller AND at least as accurate on test as the stronger FP32 baseline)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from ..config import SearchConfig
from ..genome import Genome
from ..recipe import BASELINE_DISTILL_WEIGHT
from ..run import atomic_write_text, subset
from ..size import KIB_BITS, fp32_size_bits
from ._loop import clone_retries
from ._trials import FAIL_REASON, completed, pareto_front, trial_generation

__all__ = [
    "SearchResult",
    "claim",
    "claim_line",
    "claims_by_compression",
    "claims_lines",
    "format_result_table",
    "result_document",
    "write_pareto_csv",
]


@dataclass(frozen=True)
class SearchResult:
    """What result.json holds, with the run directory it came from."""

    run_dir: Path
    data: dict[str, Any]

    @property
    def chosen(self) -> dict[str, Any]:
        return self.data["chosen"]

    @property
    def fp32(self) -> dict[str, Any]:
        return self.data["fp32"]

    def table(self) -> str:
        return format_result_table(self.data)


def result_document(
    config: SearchConfig, data, base, graph, space, genome: Genome, chosen, study, last_population,
    front, final, timing, environment: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """result.json: what ran, the dataset, the model, both FP32 baselines, the claim, the
    chosen model, the search's counts and the timings."""
    cfg = config
    fp32_bits = fp32_size_bits(base, graph.bn_fold)
    size = final["chosen"]["size"]
    base_params = sum(p.numel() for p in base.parameters())
    trials = completed(study)
    return {
        "mogaqnn_version": environment["mogaqnn_version"],
        "environment": environment,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "dataset": {
            "name": data.name,
            "train": len(data.train),
            "val": len(data.val),
            "test": len(data.test),
            "classes": data.num_classes,
            "search_train": len(subset(data.train, cfg.search_train_samples, cfg.seed)),
            "search_val": len(subset(data.val, cfg.search_val_samples, cfg.seed)),
        },
        "model": {
            "name": cfg.model,
            "parameters": base_params,
            "quantized_layers": list(space.layers),
            "expansion_groups": [
                {"group": g.name, "width": g.width, "layers": g.producers + g.passthrough}
                for g in graph.groups
            ],
            "not_widened": graph.not_widened,
        },
        "fp32": {
            "epochs": cfg.pretrain_epochs + cfg.final_epochs,
            "val_accuracy": final["fp32"]["val_accuracy"],
            "test_accuracy": final["fp32"]["test_accuracy"],
            "size_bits": fp32_bits,
            "size_kib": fp32_bits / KIB_BITS,
        },
        "fp32_distilled": {
            "epochs": cfg.pretrain_epochs + cfg.final_epochs,
            "distill_weight": cfg.distill_weight or BASELINE_DISTILL_WEIGHT,
            "val_accuracy": final["fp32_distilled"]["val_accuracy"],
            "test_accuracy": final["fp32_distilled"]["test_accuracy"],
            "size_bits": fp32_bits,
            "size_kib": fp32_bits / KIB_BITS,
        },
        "claim": claim(final, fp32_bits, size.total_bits),
        "chosen": {
            "trial": chosen.number,
            "generation": trial_generation(chosen),
            "genome_key": genome.key(),
            "epochs": cfg.pretrain_epochs + cfg.final_epochs,
            "search_val_accuracy": chosen.user_attrs["val_accuracy"],
            "val_accuracy": final["chosen"]["val_accuracy"],
            "test_accuracy": final["chosen"]["test_accuracy"],
            "size_bits": size.total_bits,
            "size_kib": size.kib,
            "size_breakdown_bits": {
                "weights": size.weight_bits,
                "scales": size.scale_bits,
                "biases": size.bias_bits,
                "float": size.float_bits,
                "activation_scales": size.act_scale_bits,
            },
            "compression_ratio": fp32_bits / size.total_bits,
            "mean_weight_bits": genome.mean_weight_bits(),
            "parameter_ratio": final["chosen"]["parameters"] / base_params,
            **space.describe(genome),
        },
        "search": {
            "population": cfg.population,
            "generations": cfg.generations,
            "evaluations": len(trials),
            "trained": sum(not t.user_attrs.get("cache_hit") for t in trials),
            "cache_hits": sum(bool(t.user_attrs.get("cache_hit")) for t in trials),
            "clone_retries": clone_retries(study),
            "failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
            "last_population": sorted(t.number for t in last_population),
            "front": sorted(t.number for t in front),
        },
        "final_candidates": [_candidate_row(c, fp32_bits) for c in final["candidates"]],
        "uniform_qat": [_uniform_row(u, fp32_bits, cfg) for u in final["uniform_qat"]],
        "claims": claims_by_compression(final, fp32_bits, cfg.claim_compressions),
        "final_diverged": final["diverged"],
        # search_s counts this process only; a resumed search's evaluations ran
        # across processes, and their summed duration is in the study
        "timing": {
            **timing,
            "evaluations_s": sum(
                t.duration.total_seconds() for t in trials if t.duration is not None
            ),
        },
    }


def write_pareto_csv(path: Path, study, space, last_population, front, chosen) -> None:
    last = {t.number for t in last_population}
    on_front = {t.number for t in pareto_front(completed(study))}
    params = list(space.parameters())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", "generation", "state", "val_accuracy", "size_kib", "size_bits",
                "cache_hit", "in_last_population", "on_front", "chosen", "fail_reason", "bops",
                *params])  # fmt: skip
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        w.writerow([
            t.number, trial_generation(t), t.state.name, ua.get("val_accuracy", ""),
            ua.get("size_kib", ""), ua.get("size_bits", ""), int(bool(ua.get("cache_hit"))),
            int(t.number in last), int(t.number in on_front), int(t.number == chosen.number),
            _fail_reason(t), ua.get("bops", ""), *(t.params.get(p, "") for p in params),
        ])  # fmt: skip
    atomic_write_text(path, buf.getvalue())


def _fail_reason(t) -> str:
    if FAIL_REASON in t.user_attrs:
        return t.user_attrs[FAIL_REASON]
    return "interrupted (its genome was queued again)" if t.state.name == "FAIL" else ""


def _candidate_row(c: dict[str, Any], fp32_bits: int) -> dict[str, Any]:
    t = c["trial"]
    return {
        "trial": t.number, "genome_key": c["genome_key"], "chosen": c["chosen"],
        "search_val_accuracy": t.user_attrs["val_accuracy"], "val_accuracy": c["val_accuracy"],
        "test_accuracy": c["test_accuracy"], "size_bits": c["size"].total_bits,
        "size_kib": c["size"].kib, "compression_ratio": fp32_bits / c["size"].total_bits,
        "train_seconds": c["seconds"],
    }  # fmt: skip


def _uniform_row(u: dict[str, Any], fp32_bits: int, cfg: SearchConfig) -> dict[str, Any]:
    if "failed" in u:
        return dict(u)
    return {**u, "size_kib": u["size_bits"] / KIB_BITS,
            "compression_ratio": fp32_bits / u["size_bits"],
            "epochs": cfg.pretrain_epochs + cfg.final_epochs}  # fmt: skip


def claims_by_compression(
    final: dict[str, Any], fp32_bits: int, compressions: Sequence[float]
) -> list[dict[str, Any]]:
    """The claim at each size target: the final-trained candidate with the highest final val
    accuracy (ties to the smaller) at least that many times smaller than FP32, against the
    stronger FP32 baseline on test; ``trial`` None where no candidate is that small."""
    out = []
    for target in compressions:
        at = [c for c in final["candidates"] if fp32_bits / c["size"].total_bits >= target]
        if not at:
            out.append({"compression": target, "trial": None})
            continue
        best = max(at, key=lambda c: (c["val_accuracy"], -c["size"].total_bits))
        judged = claim({**final, "chosen": best}, fp32_bits, best["size"].total_bits)
        out.append({"compression": target, "trial": best["trial"].number,
                    "val_accuracy": best["val_accuracy"],
                    "test_accuracy": best["test_accuracy"], **judged})  # fmt: skip
    return out


def claim(final: dict[str, Any], fp32_bits: int, size_bits: int) -> dict[str, Any]:
    """The paper's claim, smaller AND at least as accurate on test, judged against the
    stronger (higher test accuracy) of the plain and the distilled FP32 baseline."""
    baselines = [n for n in ("fp32", "fp32_distilled") if final.get(n) is not None]
    reference = max(baselines, key=lambda n: final[n]["test_accuracy"])
    gap = final["chosen"]["test_accuracy"] - final[reference]["test_accuracy"]
    return {
        "reference": reference,
        "reference_test_accuracy": final[reference]["test_accuracy"],
        "test_accuracy_difference": gap,
        "compression_ratio": fp32_bits / size_bits,
        "met": size_bits < fp32_bits and gap >= 0,
    }


def claim_line(r: dict[str, Any]) -> str:
    c = r.get("claim")
    if c is None:
        return ""
    name = {"fp32": "FP32 baseline", "fp32_distilled": "distilled FP32 baseline"}[c["reference"]]
    diff, ratio = c["test_accuracy_difference"], c["compression_ratio"]
    if c["met"]:
        return (f"claim met: {ratio:.1f}x smaller and {diff * 100:+.2f} pp test accuracy "
                f"against the stronger {name}")  # fmt: skip
    misses = []
    if diff < 0:
        misses.append(f"{-diff * 100:.2f} pp less test accuracy than the stronger {name}")
    if ratio <= 1:
        misses.append(f"not smaller ({ratio:.2f}x)")
    return f"claim missed: {' and '.join(misses)} (at {ratio:.1f}x compression)"


def _row(name: str, test: float, kib: float, ratio: float, epochs: float, val: str = "") -> str:
    return f"{name:<26}{val:>9}{test:>10.2%}{kib:>11.2f}{ratio:>12.1f}x{epochs:>7g}"


def claims_lines(r: dict[str, Any]) -> list[str]:
    """One line per claim compression: the best final-trained candidate at that size."""
    lines = []
    for c in r.get("claims", []):
        head = f"at >= {c['compression']:g}x:"
        if c["trial"] is None:
            lines.append(f"{head} no final-trained candidate is that small")
            continue
        ref = {"fp32": "FP32", "fp32_distilled": "distilled FP32"}[c["reference"]]
        verdict = "met" if c["met"] else "missed"
        lines.append(f"{head} trial {c['trial']} at {c['compression_ratio']:.1f}x, "
                     f"{c['test_accuracy_difference'] * 100:+.2f} pp test accuracy against the "
                     f"stronger FP32 baseline ({ref}): claim {verdict}")  # fmt: skip
    return lines


def format_result_table(r: dict[str, Any]) -> str:
    fp, ch = r["fp32"], r["chosen"]
    lines = [
        f"{'model':<26}{'val acc':>9}{'test acc':>10}{'size KiB':>11}{'compression':>13}"
        f"{'epochs':>7}",
        _row("FP32 baseline", fp["test_accuracy"], fp["size_kib"], 1.0, fp["epochs"],
             f"{fp['val_accuracy']:.2%}"),
    ]  # fmt: skip
    fd = r.get("fp32_distilled")
    if fd is not None:
        lines.append(_row("FP32 distilled", fd["test_accuracy"], fd["size_kib"], 1.0,
                          fd["epochs"], f"{fd['val_accuracy']:.2%}"))  # fmt: skip
    for u in r.get("uniform_qat", []):
        name = f"uniform QAT {u['bits']}-bit"
        if "failed" in u:
            lines.append(f"{name:<26}diverged ({u['failed']})")
            continue
        lines.append(_row(name, u["test_accuracy"], u["size_kib"], u["compression_ratio"],
                          u["epochs"], f"{u['val_accuracy']:.2%}"))  # fmt: skip
    for c in r.get("final_candidates", []):
        name = f"MOGAQNN ({'chosen, ' if c['chosen'] else ''}trial {c['trial']})"
        lines.append(_row(name, c["test_accuracy"], c["size_kib"], c["compression_ratio"],
                          ch["epochs"], f"{c['val_accuracy']:.2%}"))  # fmt: skip
    if not r.get("final_candidates"):  # a result.json written before candidates existed
        lines.append(_row("MOGAQNN (chosen)", ch["test_accuracy"], ch["size_kib"],
                          ch["compression_ratio"], ch["epochs"]))  # fmt: skip
    lines += [claim_line(r), *claims_lines(r), "", f"{'layer':<22}{'w bits':>8}{'a bits':>8}"]
    for layer in ch["layers"]:
        lines.append(f"{layer['layer']:<22}{layer['weight_bits']:>8}{layer['act_bits']:>8}")
    if ch["groups"]:
        lines += ["", f"{'expansion group':<22}{'ratio':>8}{'width':>12}"]
        for g in ch["groups"]:
            lines.append(
                f"{g['group']:<22}{g['ratio']:>8.2f}{g['width']:>6} -> {g['new_width']:<4}"
            )
    s = r["search"]
    for d in r.get("final_diverged", []):
        lines += ["", f"final training of trial {d['trial']} diverged ({d['reason']}); "
                  "the next individual of the front was trained in its place"]  # fmt: skip
    t = r["timing"]
    lines += [
        "",
        f"search: {s['evaluations']} evaluations ({s['trained']} trained, "
        f"{s['cache_hits']} cache hits, {s['failed']} failed), seed {r['seed']}, "
        f"{t['total_s']:.0f} s",
    ]
    if "final_s" in t and r.get("final_candidates"):
        lines.append(f"final stage: {len(r['final_candidates'])} candidate(s), 2 FP32 baselines "
                     f"and {len(r.get('uniform_qat', []))} uniform QAT model(s) trained in "
                     f"{t['final_s']:.0f} s")  # fmt: skip
    if ch.get("bops") is not None and fp.get("bops"):
        lines.append(f"bit operations per sample: chosen {ch['bops']:.4g}, FP32 {fp['bops']:.4g} "
                     f"({fp['bops'] / ch['bops']:.1f}x fewer)")  # fmt: skip
    if "selection" in r:
        lines.append(f"chosen by the {r['selection']['rule']} rule: {r['selection']['reason']}")
    return "\n".join(lines)
