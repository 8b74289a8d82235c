"""The FP32 reference of the ``match-fp32`` rule: the base fine-tuned by the evaluation
recipe, unquantized, at ratio 1.0, on the search's train subset, measured on its val subset.

Computed once per run and kept in the study (a resume reads it back), so it costs one
evaluation. It uses the Evaluator's own subsets, training settings and seed; any
quantization-specific part of the recipe does not apply to a float model.
"""

from __future__ import annotations

import copy

import optuna

from ..train import evaluate_accuracy, train_model
from ._evaluate import Evaluator

__all__ = ["FP32_REFERENCE_ATTR", "fp32_fine_tuned_accuracy", "fp32_reference_accuracy"]

FP32_REFERENCE_ATTR = "fp32_search_val_accuracy"  # study user attr


def fp32_fine_tuned_accuracy(evaluator: Evaluator) -> float:
    """Val accuracy of the FP32 base after the fine-tuning every individual gets."""
    model = copy.deepcopy(evaluator.base).to(evaluator.device)
    train_model(model, evaluator.train_data, evaluator.settings, seed=evaluator.seed,
                device=evaluator.device)  # fmt: skip
    return evaluate_accuracy(model, evaluator.val_data, device=evaluator.device)


def fp32_reference_accuracy(study: optuna.Study, evaluator: Evaluator) -> float:
    """The run's FP32 reference accuracy, from the study or measured now and stored."""
    stored = study.user_attrs.get(FP32_REFERENCE_ATTR)
    if stored is None:
        stored = fp32_fine_tuned_accuracy(evaluator)
        study.set_user_attr(FP32_REFERENCE_ATTR, stored)
    return float(stored)
