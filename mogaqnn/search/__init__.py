"""The NSGA-II search (Optuna) over quantization and expansion, and its run directory."""

from ._evaluate import Evaluation, Evaluator
from ._rundir import RunDir
from ._search import Search, SearchResult, format_result_table, resolve_device, search
from ._select import choose_individual
from ._workers import run_worker

__all__ = [
    "Evaluation",
    "Evaluator",
    "RunDir",
    "Search",
    "SearchResult",
    "choose_individual",
    "format_result_table",
    "resolve_device",
    "run_worker",
    "search",
]
