"""The final stage: the chosen individual and both FP32 baselines trained by the final recipe,
each tested once.

A final training that diverges is recorded and the next individual of the front, in the
selection rule's order, is trained instead (a resume would only repeat it). Every trained
model is kept in the run directory's ``final/`` folder, so a resumed run reads it back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial
from torch import nn

from ..errors import MogaqnnError
from ..recipe import Recipe
from ..run import atomic_torch_save, read_checkpoint
from ..size import model_size
from ..train import TrainingDiverged

__all__ = ["FINAL_DIR", "train_final_models"]

FINAL_DIR = "final"  # the run directory's folder of final trainings


def _tested(recipe: Recipe, model: nn.Module) -> dict[str, Any]:
    return {"val_accuracy": recipe.accuracy(model, "val"),
            "test_accuracy": recipe.accuracy(model, "test")}  # fmt: skip


def train_final_models(
    recipe: Recipe,
    chosen: FrozenTrial,
    front: Sequence[FrozenTrial],
    next_choice: Callable[[list[FrozenTrial]], FrozenTrial],
    root: Path,
    final_checkpoint: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train and test the FP32 baselines and ``chosen`` (or, when its training diverges, the
    trial ``next_choice`` picks from the rest of the front); keep the chosen model in
    ``final_checkpoint``."""
    keep = root / FINAL_DIR
    out: dict[str, Any] = {"diverged": []}
    for name, distilled in (("fp32", False), ("fp32_distilled", True)):
        try:
            out[name] = _tested(recipe, recipe.fp32_model(distilled=distilled, keep=keep))
        except TrainingDiverged as exc:
            raise MogaqnnError(
                f"the final training of the {name} baseline diverged ({exc}); lower qat_lr"
            ) from exc
    remaining = list(front)
    while True:
        genome = recipe.space.decode(chosen.params)
        try:
            model = recipe.final_model(genome, keep=keep)
            out["chosen"] = _tested(recipe, model)
            break
        except TrainingDiverged as exc:
            out["diverged"].append(
                {"trial": chosen.number, "genome_key": genome.key(), "reason": str(exc)}
            )
            remaining = [t for t in remaining if t.number != chosen.number]
            if not remaining:
                raise MogaqnnError(
                    f"the final training diverged for every individual of the front "
                    f"({len(out['diverged'])}, last: {exc}); lower qat_lr"
                ) from exc
            diverged, chosen = chosen.number, next_choice(remaining)
            log(f"final training of trial {diverged} diverged ({exc}); training trial "
                f"{chosen.number}, the next individual of the front, instead")  # fmt: skip
    out["chosen"]["trial"] = chosen
    out["chosen"]["size"] = model_size(model, recipe.graph.bn_fold)
    out["chosen"]["parameters"] = sum(
        p.numel() for n, p in model.named_parameters() if not n.endswith("_scale")
    )
    # final.pt: the chosen model, as its own file in final/ holds it
    atomic_torch_save(read_checkpoint(keep / f"{genome.key()}.pt", ""), final_checkpoint)
    return out
