"""The fitness of an individual: where it starts at its width (the base widened, a short
training from scratch, a slice of a weight-sharing supernet, or a slice at its widths and bits
of a quantization-aware one), how it is quantized, calibrated and briefly fine-tuned, and its
accuracy on the search's val subset."""

from ._evaluate import (
    CALIBRATION_SAMPLES,
    Evaluation,
    Evaluator,
    accuracy_until_dominated,
    calibration_indices,
    wilson_upper,
)
from ._make import bops_counter, make_evaluator, run_evaluator
from ._quant_supernet import (
    QuantSandwichLoss,
    QuantSupernetStart,
    calibrate_quant_supernet,
    make_quant_supernet,
    slice_quant_supernet,
    train_quant_supernet,
)
from ._starts import QUANT_SUPERNET, SUPERNET, fitness_start
from ._supernet import SandwichLoss, train_supernet

__all__ = [
    "CALIBRATION_SAMPLES",
    "QUANT_SUPERNET",
    "SUPERNET",
    "Evaluation",
    "Evaluator",
    "QuantSandwichLoss",
    "QuantSupernetStart",
    "SandwichLoss",
    "accuracy_until_dominated",
    "bops_counter",
    "calibrate_quant_supernet",
    "calibration_indices",
    "fitness_start",
    "make_evaluator",
    "make_quant_supernet",
    "run_evaluator",
    "slice_quant_supernet",
    "train_quant_supernet",
    "train_supernet",
    "wilson_upper",
]
