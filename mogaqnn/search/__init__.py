"""The NSGA-II search (Optuna) over quantization and expansion: the evolution, its workers,
the final choice and training, and what a search writes and prints."""

from ._final import FINAL_DIR
from ._reference import REFERENCE_BITS, REFERENCE_FILE
from ._results import SearchResult, claim, claim_line, claims_lines, format_result_table
from ._search import Search
from ._select import Choice, choose
from ._store import open_storage, read_study, truncate_journal
from ._trials import completed, pareto_front, trial_generation
from ._workers import run_worker

__all__ = [
    "FINAL_DIR",
    "REFERENCE_BITS",
    "REFERENCE_FILE",
    "Choice",
    "Search",
    "SearchResult",
    "choose",
    "claim",
    "claim_line",
    "claims_lines",
    "completed",
    "format_result_table",
    "open_storage",
    "pareto_front",
    "read_study",
    "run_worker",
    "trial_generation",
    "truncate_journal",
]
