"""The report of a run: Pareto plot, hypervolume, policy of the chosen individual, HTML page.

The numbers are computed once by :func:`report_data`; :func:`plot_pareto`,
:func:`plot_hypervolume`, :func:`plot_policy` and :func:`render_html` only render them
(matplotlib is imported when a plot is drawn, with the Agg backend).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ._data import (
    HV_REFERENCE,
    REFERENCE_BITS,
    LayerPolicy,
    Point,
    ReportData,
    reference_points,
    report_data,
)

__all__ = [
    "HV_REFERENCE",
    "REFERENCE_BITS",
    "LayerPolicy",
    "Point",
    "ReportData",
    "plot_final",
    "plot_hypervolume",
    "plot_pareto",
    "plot_policy",
    "reference_points",
    "render_html",
    "report_data",
    "write_report",
]


def plot_pareto(data: ReportData, path: str | Path) -> Path:
    from ._plots import plot_pareto as render

    return render(data, path)


def plot_final(data: ReportData, path: str | Path) -> Path:
    from ._plots import plot_final as render

    return render(data, path)


def plot_hypervolume(data: ReportData, path: str | Path) -> Path:
    from ._plots import plot_hypervolume as render

    return render(data, path)


def plot_policy(data: ReportData, path: str | Path) -> Path:
    from ._plots import plot_policy as render

    return render(data, path)


def render_html(data: ReportData, images: dict[str, Path], path: str | Path) -> Path:
    from ._html import render_html as render

    return render(data, images, path)


def write_report(run_dir: str | Path, *, model: nn.Module | None = None) -> Path:
    """Write final.png, pareto.png, hypervolume.png, policy.png and report.html into ``run_dir``;
    return the HTML page's path (``model``: the module of a run searched with a Python
    model, which the directory cannot rebuild)."""
    rd = report_data(run_dir, model=model)
    root = rd.run_dir
    images = {
        "Final-trained models: test accuracy against size": plot_final(rd, root / "final.png"),
        "Pareto front of the search": plot_pareto(rd, root / "pareto.png"),
        "Hypervolume per generation": plot_hypervolume(rd, root / "hypervolume.png"),
        "Policy of the chosen individual": plot_policy(rd, root / "policy.png"),
    }
    return render_html(rd, images, root / "report.html")
