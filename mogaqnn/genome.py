"""The genome and its search space, declared once from the base model (no Optuna here).

A genome holds, per quantizable layer, a weight bit width and an input-activation bit
width, and per expansion group a width ratio. ``build_individual`` turns a genome into a
widened, fake-quantized network: genome -> model, a pure function of its inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from .expand import ModelGraph, widen_model, widened_width
from .quant import quantize_model

__all__ = ["Genome", "SearchSpace", "build_individual"]


@dataclass(frozen=True)
class Genome:
    weight_bits: tuple[int, ...]
    act_bits: tuple[int, ...]
    ratios: tuple[float, ...]

    def key(self) -> str:
        """A stable identity: equal genomes (and only those) share a key."""
        raw = json.dumps([self.weight_bits, self.act_bits, self.ratios])
        return hashlib.sha1(raw.encode()).hexdigest()[:16]

    def width_key(self) -> str:
        """The identity of the genome's widths alone: genomes that differ only in their bits
        share the float network at their width."""
        return hashlib.sha1(json.dumps(list(self.ratios)).encode()).hexdigest()[:16]

    def seed(self, base_seed: int) -> int:
        """The evaluation seed: a function of the run seed and the genome alone, so a
        genome gives the same fitness whenever and wherever it is evaluated."""
        return int(hashlib.sha1(f"{base_seed}:{self.key()}".encode()).hexdigest()[:8], 16)

    def mean_weight_bits(self) -> float:
        return sum(self.weight_bits) / max(len(self.weight_bits), 1)


@dataclass(frozen=True)
class SearchSpace:
    """Declared from the model once and then fixed, so NSGA-II's crossover always applies."""

    layers: tuple[str, ...]
    groups: tuple[str, ...]
    group_widths: tuple[int, ...]
    weight_bit_choices: tuple[int, ...]
    act_bit_choices: tuple[int, ...]
    ratio_choices: tuple[float, ...]
    # Per group, the blocks its grouped convolutions read it in (ExpansionGroup.blocks):
    # widths grow in whole blocks. Empty: one block each.
    group_blocks: tuple[int, ...] = ()

    def parameters(self) -> dict[str, tuple[Any, ...]]:
        """Parameter name -> choices, in a fixed order."""
        params: dict[str, tuple[Any, ...]] = {}
        for layer in self.layers:
            params[f"w:{layer}"] = self.weight_bit_choices
            params[f"a:{layer}"] = self.act_bit_choices
        for group in self.groups:
            params[f"x:{group}"] = self.ratio_choices
        return params

    def decode(self, params: Mapping[str, Any]) -> Genome:
        return Genome(
            weight_bits=tuple(int(params[f"w:{n}"]) for n in self.layers),
            act_bits=tuple(int(params[f"a:{n}"]) for n in self.layers),
            ratios=tuple(float(params[f"x:{g}"]) for g in self.groups),
        )

    def encode(self, genome: Genome) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n, w, a in zip(self.layers, genome.weight_bits, genome.act_bits):
            out[f"w:{n}"] = w
            out[f"a:{n}"] = a
        for g, r in zip(self.groups, genome.ratios):
            out[f"x:{g}"] = r
        return out

    def uniform(self, weight_bits: int, act_bits: int, ratio: float = 1.0) -> Genome:
        return Genome(
            (weight_bits,) * len(self.layers), (act_bits,) * len(self.layers),
            (ratio,) * len(self.groups),
        )  # fmt: skip

    def layer_bits(self, genome: Genome) -> dict[str, tuple[int, int]]:
        """Layer name -> (weight bits, activation bits): what ``quantize_model`` takes."""
        return {n: (w, a) for n, w, a in zip(self.layers, genome.weight_bits, genome.act_bits)}

    def describe(self, genome: Genome) -> dict[str, Any]:
        """Per-layer bits and per-group widths (those ``widen_model`` builds), for
        result.json and the report."""
        blocks = self.group_blocks or (1,) * len(self.groups)
        return {
            "layers": [
                {"layer": n, "weight_bits": w, "act_bits": a}
                for n, w, a in zip(self.layers, genome.weight_bits, genome.act_bits)
            ],
            "groups": [
                {"group": g, "ratio": r, "width": width, "new_width": widened_width(width, r, b)}
                for g, width, b, r in zip(self.groups, self.group_widths, blocks, genome.ratios)
            ],
        }


def build_individual(
    base: nn.Module,
    graph: ModelGraph,
    space: SearchSpace,
    genome: Genome,
    *,
    noise_std: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """Widen ``base`` by the genome's ratios, then fake-quantize every layer at its bits.

    ``base`` is not modified. Activation ranges calibrate on the first batch the model sees.
    """
    model = widen_model(base, graph, genome.ratios, noise_std=noise_std, seed=seed)
    return quantize_model(model, space.layer_bits(genome))
