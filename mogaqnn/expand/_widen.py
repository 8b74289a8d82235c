"""Function-preserving widening (Net2WiderNet, Chen et al., 2016) of expansion groups.

A group of width C grows to C' = round(C * ratio). New channel j >= C copies an old
channel chosen at random; every producer, BatchNorm and depthwise conv of the group copies
the same channels, and every consumer divides its incoming weights by the number of
copies, so the widened network computes the same function. Optional noise on the copied
producer weights breaks the symmetry between a channel and its copies.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ModelError
from ._graph import Consumer, ModelGraph

__all__ = ["widened_width", "widen_model"]


def widened_width(width: int, ratio: float, blocks: int = 1) -> int:
    """The width a group of ``width`` channels read in ``blocks`` equal blocks grows to.

    >>> widened_width(6, 1.25), widened_width(16, 1.5), widened_width(84, 1.0)
    (8, 24, 84)
    >>> widened_width(48, 1.3, blocks=4)  # a multiple of the blocks, near 48 * 1.3
    64
    """
    wide = max(width, int(round(width * ratio)))
    return max(width, blocks * int(round(wide / blocks)))


def _channel_map(width: int, new_width: int, blocks: int, gen: torch.Generator) -> torch.Tensor:
    """Old channel of each new one: block b's new channels copy channels of block b."""
    old, new = width // blocks, new_width // blocks
    parts = []
    for b in range(blocks):
        extra = torch.randint(0, old, (new - old,), generator=gen)
        parts.append(b * old + torch.cat([torch.arange(old), extra]))
    return torch.cat(parts)


def _input_map(
    consumer: Consumer, maps: Sequence[torch.Tensor | None]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Old input index and divisor for each new input position of ``consumer``."""
    index, divisor, offset = [], [], 0
    for seg in consumer.segments:
        m = maps[seg.group] if seg.group >= 0 else None
        if m is None:
            m = torch.arange(seg.channels)
        counts = torch.bincount(m, minlength=seg.channels).float()
        spatial = torch.arange(seg.multiplier)
        # channel-major layout: input feature = offset + channel * multiplier + position
        index.append((offset + m[:, None] * seg.multiplier + spatial[None, :]).flatten())
        divisor.append(counts[m].repeat_interleave(seg.multiplier))
        offset += seg.channels * seg.multiplier
    return torch.cat(index), torch.cat(divisor)


@torch.no_grad()
def widen_model(
    model: nn.Module,
    graph: ModelGraph,
    ratios: Sequence[float],
    *,
    noise_std: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """Return a widened deep copy of ``model``; ``ratios[i]`` widens ``graph.groups[i]``."""
    if len(ratios) != len(graph.groups):
        raise ModelError(
            f"{len(ratios)} expansion ratios given for {len(graph.groups)} expansion groups"
        )
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    maps: list[torch.Tensor | None] = []
    for grp, ratio in zip(graph.groups, ratios):
        new_width = widened_width(grp.width, ratio, grp.blocks)
        maps.append(
            _channel_map(grp.width, new_width, grp.blocks, gen) if new_width > grp.width else None
        )

    consumers: dict[str, Consumer] = {}
    for grp, m in zip(graph.groups, maps):
        if m is None:
            continue
        for name in grp.producers:
            _grow_output(model.get_submodule(name), m, grp.width, noise_std, gen)
        for name in grp.passthrough:
            _grow_per_channel(model.get_submodule(name), m)
        for c in grp.consumers:
            consumers[c.module] = c
    for name, consumer in consumers.items():
        index, divisor = _input_map(consumer, maps)
        if consumer.groups > 1:
            _grow_grouped_input(model.get_submodule(name), index, divisor, consumer)
        else:
            _grow_input(model.get_submodule(name), index, divisor)
    for per_channel in graph.per_channel:
        if any(s.group >= 0 and maps[s.group] is not None for s in per_channel.segments):
            index, _ = _input_map(per_channel, maps)
            _grow_per_channel(model.get_submodule(per_channel.module), index)
    return model


def _grow_output(
    mod: nn.Module, m: torch.Tensor, width: int, noise_std: float, gen: torch.Generator
) -> None:
    m = m.to(mod.weight.device)  # the maps live on the CPU (seeded generator), any model not
    w = mod.weight[m].clone()
    if noise_std > 0:
        noise = (torch.randn(w[width:].shape, generator=gen) * noise_std).to(w.device)
        w[width:] = w[width:] * (1 + noise)  # only the copies: the originals stay exact
    mod.weight = nn.Parameter(w)
    if getattr(mod, "bias", None) is not None:
        mod.bias = nn.Parameter(mod.bias[m].clone())
    if isinstance(mod, nn.Conv2d):
        mod.out_channels = len(m)
    else:
        mod.out_features = len(m)  # type: ignore[assignment]


def _device(mod: nn.Module) -> torch.device:
    for t in (*mod.parameters(recurse=False), *mod.buffers(recurse=False)):
        return t.device
    return torch.device("cpu")


def _grow_per_channel(mod: nn.Module, m: torch.Tensor) -> None:
    """BatchNorm (affine and running statistics) or a depthwise conv: copy per channel."""
    m = m.to(_device(mod))
    if isinstance(mod, nn.Conv2d):  # depthwise: weight [C, 1, k, k], groups == C
        mod.weight = nn.Parameter(mod.weight[m].clone())
        if mod.bias is not None:
            mod.bias = nn.Parameter(mod.bias[m].clone())
        mod.in_channels = mod.out_channels = mod.groups = len(m)
        return
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        if mod.affine:
            mod.weight = nn.Parameter(mod.weight[m].clone())
            mod.bias = nn.Parameter(mod.bias[m].clone())
        if mod.track_running_stats:
            mod.running_mean = mod.running_mean[m].clone()
            mod.running_var = mod.running_var[m].clone()
        mod.num_features = len(m)
        return
    raise ModelError(f"cannot widen a {type(mod).__name__} per channel")


def _grow_input(mod: nn.Module, index: torch.Tensor, divisor: torch.Tensor) -> None:
    shape = (1, -1) + (1,) * (mod.weight.dim() - 2)
    index, divisor = index.to(mod.weight.device), divisor.to(mod.weight.device)
    mod.weight = nn.Parameter(mod.weight[:, index] / divisor.view(shape))
    if isinstance(mod, nn.Conv2d):
        mod.in_channels = len(index)
    else:
        mod.in_features = len(index)  # type: ignore[assignment]


def _grow_grouped_input(
    mod: nn.Module, index: torch.Tensor, divisor: torch.Tensor, consumer: Consumer
) -> None:
    """A grouped conv's weight holds, per output channel, only its block's inputs: block b
    reads the new channels of input block b, each an old channel of the same block."""
    groups = consumer.groups
    old_block = consumer.segments[0].channels // groups
    new_block = len(index) // groups
    local = index.view(groups, new_block) - (torch.arange(groups) * old_block)[:, None]
    local = local.to(mod.weight.device)
    div = divisor.view(groups, new_block).to(mod.weight.device)
    out_block = mod.weight.shape[0] // groups
    rows = []
    for b in range(groups):
        w = mod.weight[b * out_block : (b + 1) * out_block]
        rows.append(w[:, local[b]] / div[b].view(1, -1, 1, 1))
    mod.weight = nn.Parameter(torch.cat(rows))
    mod.in_channels = len(index)
