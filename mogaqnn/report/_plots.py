"""Matplotlib renderings of :class:`ReportData` (imported only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..size import KIB_BITS
from ._data import ReportData

__all__ = ["plot_final", "plot_hypervolume", "plot_pareto", "plot_policy"]

DPI = 120


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def plot_pareto(data: ReportData, path: str | Path) -> Path:
    """Every evaluated individual on (size, val error), the last front, and references; with
    BOPs as a third objective, a second panel on (BOPs, val error)."""
    plt = _pyplot()
    three = len(data.hv_reference) == 3 and all(t.bops is not None for t in data.front)
    fig, axes = plt.subplots(1, 2 if three else 1, figsize=(13, 5) if three else (7.5, 5),
                             squeeze=False)  # fmt: skip
    _objective_panel(axes[0][0], data, lambda p: p.size_bits / KIB_BITS,
                     "model size (KiB, log scale)", connect=not three)  # fmt: skip
    if three:  # the front of three objectives is no line in either projection
        _objective_panel(axes[0][1], data, lambda p: p.bops, "bit operations per sample "
                         "(log scale)", connect=False)  # fmt: skip
    fig.suptitle(f"MOGAQNN search: {data.title}")
    # the size panel holds every kind of point (the uniform-bit references have no BOPs)
    handles, labels = axes[0][0].get_legend_handles_labels()
    axes[0][-1].legend(handles, labels, fontsize=8, loc="center left",
                       bbox_to_anchor=(1.01, 0.5), frameon=False)  # fmt: skip
    return _save(fig, Path(path))


def _objective_panel(ax: Any, data: ReportData, x_of: Any, xlabel: str, connect: bool) -> None:
    """Val error against one cost (``x_of`` a point's size in KiB or its BOPs)."""
    points = [t for t in data.trials if x_of(t) is not None]
    ax.scatter([x_of(t) for t in points], [100 * t.error for t in points], s=18, c="0.65",
               label="evaluated individuals", zorder=2)  # fmt: skip
    front = sorted((t for t in data.front if x_of(t) is not None), key=x_of)
    ax.plot([x_of(t) for t in front], [100 * t.error for t in front], "o-" if connect else "o",
            color="tab:red", ms=6, lw=1.2, label="last population's front", zorder=3)  # fmt: skip
    for i, ref in enumerate([data.fp32, *data.references]):
        if x_of(ref) is None:
            continue
        style = ({"marker": "*", "s": 180, "c": "black"} if i == 0 else
                 {"marker": "^", "s": 70, "c": f"C{i - 1}", "edgecolors": "black",
                  "linewidths": 0.5})  # fmt: skip
        ax.scatter([x_of(ref)], [100 * ref.error], label=ref.label, zorder=4, **style)
    c = data.chosen
    if x_of(c) is not None:
        ax.scatter([x_of(c)], [100 * c.error], s=160, facecolors="none",
                   edgecolors="tab:green", linewidths=2, zorder=5)  # fmt: skip
        ax.annotate(
            f"chosen ({c.label})\n{100 * (1 - c.error):.1f}% val acc, "
            f"{c.size_bits / KIB_BITS:.1f} KiB",
            (x_of(c), 100 * c.error), xytext=(0.5, 0.93), textcoords="axes fraction",
            ha="center", va="top", fontsize=9, color="tab:green",
            arrowprops={"arrowstyle": "->", "color": "tab:green"},
            bbox={"boxstyle": "round", "fc": "white", "ec": "tab:green", "alpha": 0.9},
        )  # fmt: skip
    ax.set_xscale("log")
    # Plain numbers at 1, 2, 5 x 10^k: the default minor labels (3x10^1 4x10^1) collide.
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation error (%)")
    ax.grid(True, which="both", alpha=0.3)


def plot_hypervolume(data: ReportData, path: str | Path) -> Path:
    """Hypervolume of everything evaluated so far, per generation, on normalised objectives."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    gens = [g + 1 for g, _ in data.hypervolume]
    ax.plot(gens, [hv for _, hv in data.hypervolume], "o-", color="tab:blue")
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume")
    ax.set_xticks(gens)
    ax.set_ylim(0, 1)
    ax.set_title("hypervolume of the evaluated individuals, per generation")
    e_ref, s_ref, *b_ref = data.hv_reference
    bops = f", BOPs {b_ref[0]:g} x FP32" if b_ref else ""
    ax.text(
        0.02, 0.04,
        f"objectives normalised: val error in [0, 1], size / FP32 size"
        f"{', BOPs / FP32 BOPs' if b_ref else ''}\n"
        f"reference point (error {e_ref:g}, size {s_ref:g} x FP32{bops}); the largest HV is 1",
        transform=ax.transAxes, fontsize=8, va="bottom",
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"},
    )  # fmt: skip
    ax.grid(True, alpha=0.3)
    return _save(fig, Path(path))


def plot_policy(data: ReportData, path: str | Path) -> Path:
    """Per layer of the chosen individual: weight and activation bits, and width ratio; at
    the right, width against bits of every evaluated individual."""
    plt = _pyplot()
    n = len(data.policy)
    fig = plt.figure(figsize=(max(6.5, 1.1 * n + 2) + 3.5, 5.5))
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 2], width_ratios=[max(6.5, 1.1 * n + 2), 3.5])
    top = fig.add_subplot(grid[0, 0])
    bottom = fig.add_subplot(grid[1, 0], sharex=top)
    top.tick_params(labelbottom=False)
    _width_against_bits(fig.add_subplot(grid[:, 1]), data)
    x = range(n)
    w = [p.weight_bits for p in data.policy]
    a = [p.act_bits for p in data.policy]
    bars_w = top.bar([i - 0.2 for i in x], w, 0.4, label="weight bits", color="tab:blue")
    bars_a = top.bar([i + 0.2 for i in x], a, 0.4, label="activation bits", color="tab:orange")
    for bars in (bars_w, bars_a):
        top.bar_label(bars, fontsize=8, padding=1)
    top.set_ylabel("bits")
    top.set_ylim(0, max(w + a + [1]) * 1.25)
    top.legend(fontsize=8, loc="upper right", ncols=2)
    top.set_title(f"policy of the chosen individual ({data.chosen.label})")
    ratios = [p.ratio for p in data.policy]
    bars_r = bottom.bar(list(x), ratios, 0.5, color="tab:green")
    bottom.bar_label(bars_r, labels=[f"{p.width}→{p.new_width}" for p in data.policy],
                     fontsize=8, padding=1)  # fmt: skip
    bottom.axhline(1.0, color="0.4", lw=0.8, ls="--")
    bottom.set_ylabel("width ratio")
    bottom.set_ylim(0, max(ratios + [1.0]) * 1.3)
    bottom.set_xticks(list(x), [p.layer for p in data.policy], rotation=30, ha="right")
    return _save(fig, Path(path))


def _width_against_bits(ax: Any, data: ReportData) -> None:
    """Mean width ratio against mean weight bits of every evaluation, colour = val accuracy:
    does the search pay for low bits with width?"""
    pts = [p for p in data.trials if p.mean_weight_bits is not None]
    sc = ax.scatter([p.mean_weight_bits for p in pts], [p.mean_ratio for p in pts], s=14,
                    c=[100 * (1 - p.error) for p in pts], cmap="viridis")  # fmt: skip
    fig = ax.get_figure()
    fig.colorbar(sc, ax=ax, label="val accuracy (%)", fraction=0.08)
    if data.chosen.mean_weight_bits is not None:
        ax.scatter([data.chosen.mean_weight_bits], [data.chosen.mean_ratio], s=90,
                   facecolors="none", edgecolors="tab:red", label="chosen")  # fmt: skip
        ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("mean weight bits")
    ax.set_ylabel("mean width ratio")
    ax.set_title("width against bits (every evaluation)", fontsize=9)


def plot_final(data: ReportData, path: str | Path) -> Path:
    """The final-trained models on (compression, test accuracy): the candidates (the chosen
    one marked), uniform QAT, and both FP32 baselines as lines: where the claim is read."""
    plt = _pyplot()
    r = data.result
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for key, style in (("fp32", "-"), ("fp32_distilled", "--")):
        if key in r:
            ax.axhline(100 * r[key]["test_accuracy"], color="0.3", ls=style, lw=1,
                       label=f"{'FP32' if key == 'fp32' else 'FP32 distilled'} (1x)")  # fmt: skip
    uniform = [u for u in r.get("uniform_qat", []) if "failed" not in u]
    ax.scatter([u["compression_ratio"] for u in uniform],
               [100 * u["test_accuracy"] for u in uniform], marker="s", s=40,
               color="tab:blue", label="uniform QAT (ratio 1.0)", zorder=3)  # fmt: skip
    for u in uniform:
        ax.annotate(f"{u['bits']}-bit", (u["compression_ratio"], 100 * u["test_accuracy"]),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)  # fmt: skip
    cands = sorted(r.get("final_candidates", []), key=lambda c: c["compression_ratio"])
    ax.plot([c["compression_ratio"] for c in cands], [100 * c["test_accuracy"] for c in cands],
            "o-", color="tab:red", lw=1, label="MOGAQNN candidates", zorder=4)  # fmt: skip
    for c in cands:
        if c["chosen"]:
            ax.scatter([c["compression_ratio"]], [100 * c["test_accuracy"]], marker="*", s=220,
                       color="gold", edgecolor="k", label=f"chosen (trial {c['trial']})",
                       zorder=5)  # fmt: skip
    for target in r.get("config", {}).get("claim_compressions", []):
        ax.axvline(target, color="0.75", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("compression against FP32 (log scale; dotted: the claim's size targets)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Final-trained models: {data.title}")
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, Path(path))
