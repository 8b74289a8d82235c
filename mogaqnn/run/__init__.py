"""A run: its directory and how it is rebuilt from it (config, device, data, graph, space).

The search writes a run; its workers, the export and the report read it back. This package
depends on none of them.
"""

from ._context import RunContext, load_run, load_run_data, read_result, trial_genome
from ._provenance import code_commit, environment
from ._rundir import (
    RunDir,
    TrainingProgress,
    atomic_torch_save,
    atomic_write_text,
    checkpoint_state,
    flocked,
    load_weights,
    read_checkpoint,
)
from ._setup import (
    augmentation_for,
    describe_device,
    expansion_graph,
    load_config_dataset,
    resolve_device,
    search_space,
    subset,
    train_settings,
)

__all__ = [
    "RunContext",
    "RunDir",
    "TrainingProgress",
    "atomic_torch_save",
    "atomic_write_text",
    "augmentation_for",
    "checkpoint_state",
    "code_commit",
    "environment",
    "expansion_graph",
    "flocked",
    "load_config_dataset",
    "load_run",
    "load_run_data",
    "load_weights",
    "read_checkpoint",
    "read_result",
    "describe_device",
    "resolve_device",
    "search_space",
    "subset",
    "train_settings",
    "trial_genome",
]
