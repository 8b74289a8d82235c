"""The fitness of an individual: where it starts at its width (the base widened, a short
training from scratch, or a slice of a weight-sharing supernet), how it is quantized,
calibrated and briefly fine-tuned, and its accuracy on the search's val subset."""

from ._evaluate import (
    CALIBRATION_SAMPLES,
    Evaluation,
    Evaluator,
    accuracy_until_dominated,
    calibration_indices,
    wilson_upper,
)
from ._make import bops_counter, make_evaluator, run_evaluator
from ._starts import SUPERNET, fitness_start
from ._supernet import SandwichLoss, train_supernet

__all__ = [
    "CALIBRATION_SAMPLES",
    "SUPERNET",
    "Evaluation",
    "Evaluator",
    "SandwichLoss",
    "accuracy_until_dominated",
    "bops_counter",
    "calibration_indices",
    "fitness_start",
    "make_evaluator",
    "run_evaluator",
    "train_supernet",
    "wilson_upper",
]
