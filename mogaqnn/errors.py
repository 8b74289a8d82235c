"""One exception hierarchy: everything a user can cause is a :class:`MogaqnnError`.

The CLI turns these into one line on stderr and exit status 2; anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "MogaqnnError",
    "ConfigError",
    "DatasetError",
    "ModelError",
    "ExpansionBugError",
    "RunDirError",
    "ExportError",
    "EvaluationError",
    "NoAnswerError",
]


class MogaqnnError(Exception):
    """Base class of the errors a user can cause; the message is one sentence with the fix."""


class ConfigError(MogaqnnError):
    """A flag, a TOML key or an API argument is out of range or of the wrong kind."""


class DatasetError(MogaqnnError):
    """A dataset is unknown, missing, corrupt or inconsistent."""


class ModelError(MogaqnnError):
    """A model is unknown, cannot be built, traced or widened as asked."""


class ExpansionBugError(ModelError):
    """A widening that the channel analysis allowed does not run: the analysis is wrong,
    not the user's settings (one sentence all the same, with a way to go on)."""


class RunDirError(MogaqnnError):
    """A run directory holds a different run, or is missing what a command needs."""


class ExportError(MogaqnnError):
    """An exported file is corrupt, truncated or of an unknown format."""


class EvaluationError(MogaqnnError):
    """Evaluating an individual raised something other than a divergence: the model or
    mogaqnn fails on that genome, and the search stops rather than count it as unfit."""


class NoAnswerError(MogaqnnError):
    """The search ran as configured and has no answer: no individual meets the size target,
    too many evaluations failed, or the final training diverged. An outcome of the settings,
    which a benchmark records as its result; any other error is the machine's, the data's or
    the run directory's, and mending it makes the same run worth running again."""
