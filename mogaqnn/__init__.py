"""mogaqnn: MOGAQNN — NSGA-II over per-layer mixed-precision quantization and channel expansion.

>>> import mogaqnn
>>> result = mogaqnn.search(model="lenet5", dataset="mnist5k", out="runs/x")  # doctest: +SKIP
>>> print(result.table())  # doctest: +SKIP
"""

from ._pipeline import search
from ._version import __version__
from .config import SearchConfig
from .data import DatasetSplits, LabelledImages, list_datasets, load_dataset
from .errors import (
    ConfigError,
    DatasetError,
    ExportError,
    ModelError,
    MogaqnnError,
    NoAnswerError,
    RunDirError,
)
from .export import load_packed
from .genome import Genome, SearchSpace, build_individual
from .models import create_model, list_models, register_model
from .recipe import Recipe
from .search import Search, SearchResult
from .size import fp32_size_bits, model_size

__all__ = [
    "ConfigError",
    "DatasetError",
    "DatasetSplits",
    "ExportError",
    "Genome",
    "LabelledImages",
    "ModelError",
    "MogaqnnError",
    "NoAnswerError",
    "Recipe",
    "RunDirError",
    "Search",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "__version__",
    "build_individual",
    "create_model",
    "fp32_size_bits",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_packed",
    "model_size",
    "register_model",
    "search",
]
