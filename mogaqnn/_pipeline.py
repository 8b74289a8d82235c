"""A search followed by its report: what ``mogaqnn.search()`` and the CLI run.

The search package does not import the report (the report reads runs that the search
wrote); this module, above both, composes them.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .config import SearchConfig
from .data import DatasetSplits
from .report import write_report
from .search import Search, SearchResult

__all__ = ["run_and_report", "search"]


def run_and_report(job: Search) -> SearchResult:
    """Run ``job`` and write its report when it searched (a finished run is only read)."""
    result = job.run()
    if job.finished_setup is not None:
        page = write_report(result.run_dir, model=job.user_model)
        job.log(f"report: {page}")
    return result


def search(
    config: SearchConfig | None = None,
    *,
    model: nn.Module | str | None = None,
    data: DatasetSplits | None = None,
    **overrides: Any,
) -> SearchResult:
    """Run a MOGAQNN search and its report; return its result (also in the run directory)."""
    return run_and_report(Search(config, model=model, data=data, **overrides))
