"""The NSGA-II search (Optuna) over quantization and expansion, and its workers."""

from ._evaluate import Evaluation, Evaluator
from ._fitness import make_evaluator, run_evaluator
from ._search import Search, SearchResult, format_result_table
from ._select import Choice, choose
from ._store import truncate_journal
from ._workers import run_worker

__all__ = [
    "Choice",
    "Evaluation",
    "Evaluator",
    "Search",
    "SearchResult",
    "choose",
    "format_result_table",
    "make_evaluator",
    "run_evaluator",
    "run_worker",
    "truncate_journal",
]
