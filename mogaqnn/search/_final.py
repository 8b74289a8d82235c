"""The final stage: the candidates, the FP32 baselines and uniform QAT trained by the final
recipe, the rule's choice among the candidates by their final val accuracy, and every model
tested once, at the end.

A candidate whose final training diverges is recorded and the next individual of the front,
in the rule's order, is trained in its place (a resume would only repeat it). Every trained
model is kept in the run directory's ``final/`` folder, so a resumed run reads it back, and
``mogaqnn export --individual N`` exports any final-trained candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial
from torch import nn

from ..errors import NoAnswerError
from ..recipe import Recipe
from ..run import atomic_torch_save, read_checkpoint
from ..size import model_size
from ..train import TrainingDiverged
from ._select import Trained, choose_trained

__all__ = ["FINAL_DIR", "train_final_models"]

FINAL_DIR = "final"  # the run directory's folder of final trainings


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.endswith("_scale"))


def train_final_models(
    recipe: Recipe,
    candidates: Sequence[FrozenTrial],
    next_of_front: Callable[[list[FrozenTrial]], FrozenTrial | None],
    rule: str,
    root: Path,
    final_checkpoint: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train the FP32 baselines, the uniform QAT models and ``candidates`` (a diverged one
    replaced by ``next_of_front(tried)``), choose among the candidates by ``rule`` on final
    val accuracy, test every model once, and keep the chosen in ``final_checkpoint``."""
    t0 = time.perf_counter()
    keep = root / FINAL_DIR
    space, cfg = recipe.space, recipe.config
    models: dict[str, nn.Module] = {}
    out: dict[str, Any] = {"diverged": [], "uniform_qat": [], "candidates": []}
    for name, distilled in (("fp32", False), ("fp32_distilled", True)):
        try:
            models[name] = recipe.fp32_model(distilled=distilled, keep=keep)
        except TrainingDiverged as exc:
            raise NoAnswerError(
                f"the final training of the {name} baseline diverged ({exc}); lower qat_lr"
            ) from exc
        out[name] = {"val_accuracy": recipe.accuracy(models[name], "val")}
    for bits in cfg.uniform_qat_bits:
        genome = space.uniform(bits, bits, 1.0)
        row: dict[str, Any] = {"bits": bits, "genome_key": genome.key()}
        try:
            models[f"uniform{bits}"] = model = recipe.final_model(
                genome, init="widen", keep=keep, name=f"uniform{bits}"
            )
        except TrainingDiverged as exc:
            out["uniform_qat"].append({**row, "failed": str(exc)})
            continue
        size = model_size(model, recipe.graph.bn_fold).total_bits
        row.update(val_accuracy=recipe.accuracy(model, "val"), size_bits=size)
        out["uniform_qat"].append(row)

    trained: list[Trained] = []
    queue, tried = list(candidates), []
    while queue:
        trial = queue.pop(0)
        tried.append(trial)
        genome = space.decode(trial.params)
        started = time.perf_counter()
        try:
            models[genome.key()] = model = recipe.final_model(genome, keep=keep)
        except TrainingDiverged as exc:
            out["diverged"].append(
                {"trial": trial.number, "genome_key": genome.key(), "reason": str(exc)}
            )
            nxt = next_of_front(tried + queue)
            if nxt is not None:
                log(f"final training of trial {trial.number} diverged ({exc}); training trial "
                    f"{nxt.number}, the next individual of the front, instead")  # fmt: skip
                queue.append(nxt)
            continue
        size = model_size(model, recipe.graph.bn_fold)
        trained.append(Trained(trial, recipe.accuracy(model, "val"), size.total_bits))
        out["candidates"].append({
            "trial": trial, "genome_key": genome.key(), "val_accuracy": trained[-1].val_accuracy,
            "size": size, "parameters": _parameters(model),
            "seconds": time.perf_counter() - started,  # ~0 when read back by a resume
        })  # fmt: skip
    if not trained:
        last = out["diverged"][-1]["reason"] if out["diverged"] else "none trained"
        raise NoAnswerError(
            f"the final training diverged for every individual of the front "
            f"({len(out['diverged'])}, last: {last}); lower qat_lr"
        )

    fp32_val = max(out["fp32"]["val_accuracy"], out["fp32_distilled"]["val_accuracy"])
    chosen, reason = choose_trained(trained, rule, fp32_val)
    # the test split, read once per model, after every choice is made
    for name in ("fp32", "fp32_distilled"):
        out[name]["test_accuracy"] = recipe.accuracy(models[name], "test")
    for row in out["uniform_qat"]:
        if "failed" not in row:
            row["test_accuracy"] = recipe.accuracy(models[f"uniform{row['bits']}"], "test")
    for row in out["candidates"]:
        row["test_accuracy"] = recipe.accuracy(models[row["genome_key"]], "test")
        row["chosen"] = row["trial"].number == chosen.trial.number
    out["chosen"] = next(r for r in out["candidates"] if r["chosen"])
    out["final_reason"] = reason
    # final.pt: the chosen model, as its own file in final/ holds it
    key = out["chosen"]["genome_key"]
    atomic_torch_save(read_checkpoint(keep / f"{key}.pt", ""), final_checkpoint)
    out["seconds"] = time.perf_counter() - t0
    return out
