"""The results document as the README's Evidence section (markdown) and as the claim plot
(one panel per cell), and both written beside its JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import _evidence as ev  # benchmarks/_evidence.py
import numpy as np

from .plan import ARMS, DATASETS, MODELS, SEARCHES, UNIFORM_BITS, UNIFORM_LABEL

# the tables' name of each arm's model, and the plot's (legend label, colour, marker)
LABELS = {**{a: s.label for a, s in SEARCHES.items()},
          **{f"uniform{b}": f"uniform {b}-bit" for b in UNIFORM_BITS}}  # fmt: skip
PLOT_ARMS = {**{f"uniform{b}": (UNIFORM_LABEL, "0.55", "s") for b in UNIFORM_BITS},
             **{a: s.plot for a, s in SEARCHES.items()}}  # fmt: skip
GAP_RANGE_PP = (-2.0, 1.5)  # shared y range; gaps below it are drawn on its floor, labelled


def write(doc: dict[str, Any], path: Path) -> None:
    """``doc`` as ``path`` (JSON), and beside it as .md and .png."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    path.with_suffix(".md").write_text(evidence_markdown(doc))
    plot_claim(doc, path.with_suffix(".png"))


def plot_claim(doc: dict[str, Any], path: Path) -> Path:
    """One panel per cell (datasets by row, models by column): per arm, test accuracy minus
    the stronger FP32 baseline's against compression, each seed faint and the mean with
    +- std bars; the claim holds in the shaded region right of 4x (or 8x) and above 0."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    cells = doc["cells"]
    datasets = [d for d in DATASETS if any(n.startswith(d + "/") for n in cells)]
    models = [m for m in MODELS if any(n.endswith("/" + m) for n in cells)]
    fig, axes = plt.subplots(len(datasets), len(models), squeeze=False, sharex=True, sharey=True,
                             figsize=(3.1 * len(models), 2.9 * len(datasets)))  # fmt: skip
    lo, hi = GAP_RANGE_PP
    labelled: set[str] = set()  # each label once, in whichever panel draws it first
    panels = [(i, d, j, m) for i, d in enumerate(datasets) for j, m in enumerate(models)]
    for i, dataset, j, model in panels:
        ax, c = axes[i][j], cells.get(f"{dataset}/{model}", {})
        ax.set_xscale("log")
        ax.set_xlim(1.5, 25)
        ax.set_ylim(lo - 0.3, hi)
        ax.axhline(0, color="black", lw=0.8)
        ax.axvspan(4, 25, ymin=(0.3 - lo) / (hi - lo + 0.3), color="tab:green", alpha=0.08)
        for t in (4, 8):
            ax.axvline(t, color="tab:green", ls="--", lw=0.8)
        claim = c.get("claim")
        verdict = ("no finished seed" if not claim else ", ".join(
            f"{t} {'met' if claim[t]['met'] else 'not met'}" for t in ("4x", "8x")))  # fmt: skip
        n = len(c.get("seeds", []))
        seeds = f"{n} seed" + ("" if n == 1 else "s")
        ax.set_title(f"{dataset} / {model} ({seeds})\n{verdict}", fontsize=9)
        for arm, pairs in c.get("gap_by_seed", {}).items():
            label, colour, marker = PLOT_ARMS[arm]
            x, y = np.array([p[0] for p in pairs]), np.array([100 * p[1] for p in pairs])
            if not len(x):
                continue
            ax.scatter(x, np.maximum(y, lo), s=10, color=colour, marker=marker, alpha=0.35)
            my = float(y.mean())
            sx, sy = (float(v.std(ddof=1)) if len(v) > 1 else 0.0 for v in (x, y))
            ax.errorbar(x.mean(), max(my, lo), xerr=sx, yerr=0 if my < lo else sy,
                        color=colour, marker=marker, ms=6, capsize=2, lw=1, mec="black",
                        mew=0.5, label=None if label in labelled else label)  # fmt: skip
            labelled.add(label)
            if my < lo:  # off the shared range: on its floor, with the value
                ax.annotate(f"{my:+.1f}", (x.mean(), lo), xytext=(0, -9), fontsize=7,
                            textcoords="offset points", ha="center", color=colour)  # fmt: skip
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks([2, 4, 8, 16])
        ax.grid(True, alpha=0.3)
        if j == 0:
            ax.set_ylabel("test acc. - stronger FP32 (pp)", fontsize=8)
        if i == len(datasets) - 1:
            ax.set_xlabel("compression vs FP32 (log)", fontsize=8)
    fig.legend(loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("The claim per cell: shaded = at least FP32's test accuracy at >= 4x "
                 "(dashed: 4x, 8x)", fontsize=10)  # fmt: skip
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _spread(a: dict[str, Any]) -> str:
    """The spread suffix: ± std in points, or nothing for a single value."""
    return "" if math.isnan(a["std"]) else f" ± {a['std'] * 100:.2f}"


def _ms(a: dict[str, Any] | None) -> str:
    if not a or not a.get("n"):
        return "—"
    return f"{a['mean']:.2%}{_spread(a)}"


def _pp(a: dict[str, Any]) -> str:
    """A mean +- std of accuracy differences, in points."""
    if not a.get("n"):
        return "—"
    return f"{a['mean'] * 100:+.2f}{_spread(a)} (n {a['n']})"


def _ci(p: dict[str, Any] | None) -> str:
    if not p or p["n"] == 0:
        return "—"
    if p["low"] is None:
        return f"{p['mean'] * 100:+.2f} pp (1 seed)"
    return f"{p['mean'] * 100:+.2f} [{p['low'] * 100:+.2f}, {p['high'] * 100:+.2f}] pp"


def partial_line(seed: int | str, part: dict[str, Any]) -> str:
    """A seed outside the table: its units so far and what they measured."""
    fp32 = ", ".join(f"{'distilled ' if k == 'fp32_distilled' else ''}{v:.2%}"
                     for k, v in part["fp32"].items())  # fmt: skip
    models = "; ".join(
        f"{LABELS[k]} {m['test_accuracy']:.2%}"
        + (f" at {m['compression_ratio']:.1f}x" if m.get("compression_ratio") else "")
        + (f" ({m['difference'] * 100:+.2f} pp)" if m["difference"] is not None else "")
        for k, m in part["models"].items()
    )  # fmt: skip
    missing = [a for a in ARMS if a not in part["units"]]
    return (f"seed {seed}, outside the table ({len(part['units'])} of {len(ARMS)} units; "
            f"missing: {', '.join(missing)}): FP32 {fp32 or '—'}; "
            f"{models or 'no model'}")  # fmt: skip


def evidence_markdown(doc: dict[str, Any]) -> str:
    """The README's Evidence section, regenerated from the aggregated results file."""
    cells = doc["cells"]
    with_claim = [c for c in cells.values() if c.get("claim")]
    met = {t: sum(c["claim"][t]["met"] for c in with_claim) for t in ("4x", "8x")}
    verdicts = {t: ([n for n, c in cells.items() if c.get("claim") and c["claim"][t]["met"]],
                    [n if c.get("claim") else f"{n} (no finished seed)"
                     for n, c in cells.items() if not (c.get("claim") and c["claim"][t]["met"])])
                for t in ("4x", "8x")}  # fmt: skip
    lines = ["## Evidence", ""]
    if doc["smoke_check"]:
        lines += [f"**Smoke check (profile `{doc['profile']}`), not a result**: tiny budgets "
                  "that only show the machinery runs end to end.", ""]  # fmt: skip
    lines += [
        f"Claim met in {met['4x']} of {len(cells)} cells at 4x, {met['8x']} of {len(cells)} at "
        f"8x ({len(with_claim)} of {len(cells)} cells have a finished seed; a cell without "
        "one counts as not met). Met: the mean test accuracy over seeds is at least the "
        "stronger FP32 baseline's (plain or distilled). 8x is judged on the search limited to "
        "FP32 size / 8, 4x on the unlimited search's choice where it compresses 4x or more, "
        "else on the limited one.",
        "",
        *[f"At {t}: the claim holds in {', '.join(ok) or 'no cell'}; "
          + (f"it does not in {', '.join(no)}." if no else "it fails in none.")
          for t, (ok, no) in verdicts.items()],
        "",
        f"Command: `{doc['command']}`  ",
        f"Commit: {doc['commit']} (units ran at {', '.join(doc['units_ran_at']) or '—'})  ",
        f"Machine: {doc['machine']}  ",
        f"Seeds: {', '.join(map(str, doc['seeds']))}; wall time of all units: "
        f"{sum(c['wall_s'] for c in cells.values()) / 3600:.2f} h",
        "",
        "Test accuracy, mean ± std over seeds (pp for std):",
        "",
        "| cell | seeds | FP32 | FP32 distilled | uniform 8 | uniform 4 | uniform 2 | "
        "MOGAQNN /8 | MOGAQNN unlimited | random /8 | MOGAQNN /8 - FP32 (95% CI) | "
        "MOGAQNN unlimited - FP32 (95% CI) | wall h |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, c in cells.items():
        a = c.get("test_accuracy", {})
        ci = {arm: _ci(c.get("paired", {}).get(arm)) for arm in ("limited", "unlimited")}
        comp = c.get("compression", {})

        def arm(k: str, a=a, comp=comp) -> str:
            v = _ms(a.get(k))
            return f"{v} ({comp[k]:.1f}x)" if comp.get(k) and v != "—" else v

        def uni(k: str, a=a, c=c) -> str:  # uniform QAT may have fewer seeds than the searches
            v, n = _ms(a.get(k)), (a.get(k) or {}).get("n", 0)
            return f"{v} (n {n})" if v != "—" and n != len(c["seeds"]) else v

        lines.append(
            f"| {name} | {len(c['seeds'])} | {_ms(a.get('fp32'))} | {_ms(a.get('fp32_distilled'))} "
            f"| {uni('uniform8')} | {uni('uniform4')} | {uni('uniform2')} "
            f"| {arm('limited')} | {arm('unlimited')} | {arm('random')} | {ci['limited']} "
            f"| {ci['unlimited']} "
            f"| {c['wall_s'] / 3600:.2f} |"
        )  # fmt: skip
    lines += ["", "The claim per cell (FP32: the stronger of plain and distilled, by mean test "
              "accuracy; the paired differences above are against it):", ""]  # fmt: skip
    for name, c in cells.items():
        if c.get("claim"):
            lines.append(f"- {name}: " + "; ".join(ev.claim_line(c["claim"][t])
                                                   for t in ("4x", "8x")))  # fmt: skip
        else:
            lines.append(f"- {name}: no finished seed")
        for seed, part in c.get("partial", {}).items():
            lines.append(f"  - {partial_line(seed, part)}")
    lines += ["", "Search quality: hypervolume on (val error, size / FP32 size), reference point "
              f"{tuple(ev.HV_REFERENCE)}, MOGAQNN (limited) vs random search at equal "
              "evaluations (both start from the same uniform-bit individuals, seed_population); "
              "evaluations each needs to reach random search's final HV (per seed; — never).", "",
              "| cell | evaluations | HV MOGAQNN | HV random | ratio | evals to reach (MOGAQNN) "
              "| evals to reach (random) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, c in cells.items():
        h = c.get("hypervolume")
        if not h:
            continue
        ratio = h["limited"]["mean"] / h["random"]["mean"] if h["random"]["mean"] else None
        r = h["evaluations_to_random_final"]

        def fmt(v: list) -> str:
            return ", ".join("—" if x is None else str(x) for x in v)

        def hvs(x: dict[str, Any]) -> str:
            return f"{x['mean']:.4f}" + ("" if math.isnan(x["std"]) else f" ± {x['std']:.4f}")

        lines.append(f"| {name} | {fmt(h['evaluations'])} | {hvs(h['limited'])} | "
                     f"{hvs(h['random'])} | {'—' if ratio is None else f'{ratio:.3f}'} | "
                     f"{fmt(r['limited'])} | {fmt(r['random'])} |")  # fmt: skip
    lines += ["", "FP32 convergence (seed 0; val accuracy at the budget and at twice it; "
              "converged: < 0.5 pp apart):", ""]  # fmt: skip
    for name, c in cells.items():
        v = c.get("convergence")
        if v:
            lines.append(f"- {name}: {v['val_accuracy']:.2%} at {v['epochs']:g} epochs, "
                         f"{v['val_accuracy_doubled']:.2%} at {v['epochs_doubled']:g} "
                         f"({v['difference_pp']:+.2f} pp): "
                         f"{'converged' if v['converged'] else 'NOT converged'}")  # fmt: skip
        else:
            lines.append(f"- {name}: not checked yet")
    fid = {n: c["fidelity"] for n, c in cells.items() if c.get("fidelity")}
    if fid:
        lines += ["", "Fitness fidelity (seed 0; individuals of the limited run's last front and "
                  "population, each trained with the final recipe): Kendall's tau between "
                  "search val accuracy and final test accuracy:", ""]  # fmt: skip
        for n, f in fid.items():
            lines.append(f"- {n}: tau {f['kendall_tau']:+.3f} over {f['individuals']} individuals")
    drift = doc.get("search_to_final_val")
    if drift and drift["limited_minus_random"]["n"]:
        pair = drift["limited_minus_random"]
        lines += ["", "The chosen models' val accuracy from the search's fine-tune to the final "
                  f"training (pooled over {pair['n']} finished seed-cells), mean ± std in pp:",
                  "",
                  *[f"- {label}: {_pp(drift[arm])}" for arm, label in (
                      ("random", "random search /8"), ("limited", "MOGAQNN /8"),
                      ("unlimited", "MOGAQNN unlimited"))],
                  f"- MOGAQNN /8 − random /8, paired: {pair['mean'] * 100:+.2f} pp on average, "
                  f"lower in {pair['lower']} of {pair['n']}"]  # fmt: skip
    lines += [
        "",
        f"Missing runs ({len(doc['missing'])}): "
        + (", ".join(doc["missing"]) if doc["missing"] else "none")
        + ".",
    ]
    return "\n".join(lines) + "\n"
