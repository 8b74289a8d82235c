"""Architectures at a width without the base's function: fresh initialisation, slicing.

Net2Wider (``_widen.py``) copies channels, so a widened network computes the narrow one's
function. Two other ways to reach a width live here:

- ``fresh_at_width``: the widened architecture, re-initialised (seeded) as the model's own
  constructor initialises it, to be trained from scratch at its width;
- ``slice_model`` / ``channel_masks``: the first ``k`` channels of every group of a wider
  network (a weight-sharing supernet, as slimmable networks and once-for-all do). A slice
  computes exactly what the wide network computes when the channels past ``k`` are zeroed
  (``channel_masks``), which is how the supernet trains every width with one set of weights.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ModelError
from ._graph import ModelGraph, Segment
from ._widen import (
    _grow_input,
    _grow_output,
    _grow_per_channel,
    _input_map,
    widen_model,
    widened_width,
)

__all__ = ["fresh_at_width", "group_widths", "scaled_graph", "slice_model", "channel_masks"]


def group_widths(graph: ModelGraph, ratios: Sequence[float]) -> list[int]:
    """The width of every group at ``ratios`` (the widths ``widen_model`` gives)."""
    _check(graph, ratios)
    return [widened_width(g.width, r) for g, r in zip(graph.groups, ratios)]


@torch.no_grad()
def fresh_at_width(
    base: nn.Module, graph: ModelGraph, ratios: Sequence[float], *, seed: int
) -> nn.Module:
    """The architecture of ``base`` widened by ``ratios``, with freshly initialised weights
    and BatchNorm statistics (``base`` is not modified)."""
    device = next(base.parameters()).device
    model = widen_model(copy.deepcopy(base).cpu(), graph, ratios)  # index maps live on the CPU
    torch.manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()  # torch's default init; BatchNorm also resets its statistics
    _zoo_init(model)
    return model.to(device)


def _zoo_init(model: nn.Module) -> None:
    """The zoo models that apply ``init_weights`` in their constructor get it again (and
    MobileNetV2's residual blocks their zero-initialised last BatchNorm)."""
    from ..models._layers import init_weights
    from ..models.alexnet import AlexNet
    from ..models.mobilenetv2 import InvertedResidual, MobileNetV2
    from ..models.resnet import CifarResNet
    from ..models.vgg import VGG

    if isinstance(model, (AlexNet, CifarResNet, MobileNetV2, VGG)):
        init_weights(model)
    if isinstance(model, MobileNetV2):
        for block in model.modules():
            if isinstance(block, InvertedResidual) and block.use_residual:
                nn.init.zeros_(block.conv[-1].weight)


def scaled_graph(graph: ModelGraph, ratios: Sequence[float]) -> ModelGraph:
    """The graph of ``graph``'s model widened by ``ratios``: same groups, new widths."""
    widths = group_widths(graph, ratios)

    def seg(s: Segment) -> Segment:
        return s if s.group < 0 else Segment(s.group, widths[s.group], s.multiplier)

    groups = []
    for g, w in zip(graph.groups, widths):
        consumers = [dataclasses.replace(c, segments=tuple(seg(s) for s in c.segments))
                     for c in g.consumers]  # fmt: skip
        groups.append(dataclasses.replace(g, width=w, consumers=consumers))
    return dataclasses.replace(graph, groups=groups)


@torch.no_grad()
def slice_model(wide: nn.Module, wide_graph: ModelGraph, widths: Sequence[int]) -> nn.Module:
    """A copy of ``wide`` that keeps the first ``widths[i]`` channels of group ``i``:
    producers' output channels, BatchNorm and depthwise channels, and consumers' input
    channels (every spatial position of a flattened channel)."""
    _check(wide_graph, widths)
    model = copy.deepcopy(wide)
    maps: list[torch.Tensor | None] = []
    for g, k in zip(wide_graph.groups, widths):
        if not 1 <= k <= g.width:
            raise ModelError(f"group {g.name} has {g.width} channels; cannot keep {k}")
        maps.append(torch.arange(k) if k < g.width else None)
    consumers = {}
    for g, m in zip(wide_graph.groups, maps):
        if m is None:
            continue
        for name in g.producers:
            _grow_output(model.get_submodule(name), m, len(m), 0.0, torch.Generator())
        for name in g.passthrough:
            _grow_per_channel(model.get_submodule(name), m)
        for c in g.consumers:
            consumers[c.module] = c
    for name, consumer in consumers.items():
        index, _ = _input_map(consumer, maps)  # first-k maps: every divisor is 1
        mod = model.get_submodule(name)
        _grow_input(
            mod, index.to(mod.weight.device), torch.ones(len(index), device=mod.weight.device)
        )
    return model


def channel_masks(
    wide: nn.Module, wide_graph: ModelGraph, widths: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Parameter name -> 0/1 mask that zeroes the channels past ``widths[i]`` of group ``i``
    in producers (weights, biases) and BatchNorm / depthwise layers (weights, biases): with
    these masks the wide network computes what ``slice_model`` computes (in train mode too:
    a zeroed channel stays zero through BatchNorm, so it feeds nothing to the consumers)."""
    _check(wide_graph, widths)
    masks: dict[str, torch.Tensor] = {}
    for g, k in zip(wide_graph.groups, widths):
        if k >= g.width:
            continue
        for name in g.producers + g.passthrough:
            mod = wide.get_submodule(name)
            for pname in ("weight", "bias"):
                p = getattr(mod, pname, None)
                if p is None:
                    continue
                mask = torch.zeros(p.shape[0], *([1] * (p.dim() - 1)), device=p.device)
                mask[:k] = 1.0
                masks[f"{name}.{pname}" if name else pname] = mask
    return masks


def _check(graph: ModelGraph, values: Sequence) -> None:
    if len(values) != len(graph.groups):
        raise ModelError(f"{len(values)} values given for {len(graph.groups)} expansion groups")
