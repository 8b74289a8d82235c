"""Architectures at a width without the base's function: fresh initialisation, slicing.

Net2Wider (``_widen.py``) copies channels, so a widened network computes the narrow one's
function. Two other ways to reach a width live here:

- ``fresh_at_width``: the widened architecture, re-initialised (seeded) as the model's own
  constructor initialises it, to be trained from scratch at its width;
- ``slice_model`` / ``channel_masks``: the first ``k`` channels of every group of a wider
  network (a weight-sharing supernet, as slimmable networks and once-for-all do; per block
  for groups that grouped convolutions read). A slice computes exactly what the wide
  network computes with its parameters multiplied by ``channel_masks``, which is how the
  supernet trains every width with one set of weights.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ModelError
from ._graph import Consumer, ModelGraph, Segment
from ._widen import _grow_per_channel, _input_map, widen_model, widened_width

__all__ = ["fresh_at_width", "group_widths", "scaled_graph", "slice_model", "channel_masks"]


def group_widths(graph: ModelGraph, ratios: Sequence[float]) -> list[int]:
    """The width of every group at ``ratios`` (the widths ``widen_model`` gives)."""
    _check(graph, ratios)
    return [widened_width(g.width, r, g.blocks) for g, r in zip(graph.groups, ratios)]


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

    def scaled(c: Consumer) -> Consumer:
        segments = tuple(
            s if s.group < 0 else Segment(s.group, widths[s.group], s.multiplier)
            for s in c.segments
        )
        return dataclasses.replace(c, segments=segments)

    groups = [
        dataclasses.replace(g, width=w, consumers=[scaled(c) for c in g.consumers])
        for g, w in zip(graph.groups, widths)
    ]
    return dataclasses.replace(
        graph, groups=groups, per_channel=[scaled(c) for c in graph.per_channel]
    )


@dataclass
class _Cut:
    """What a slice keeps of one module: output channels (``rows``, weight dim 0, bias and
    a BatchNorm's or depthwise conv's channels) and input columns (``cols``, weight dim 1;
    a grouped conv's are the same columns inside each block)."""

    rows: torch.Tensor | None = None
    cols: torch.Tensor | None = None
    per_channel: bool = False  # BatchNorm or depthwise conv: one value per channel


def _kept(width: int, blocks: int, k: int) -> torch.Tensor | None:
    """The channels a slice at width ``k`` keeps: the first ``k / blocks`` of each block,
    since grouped convolutions read a group block by block (None: all of them)."""
    if k == width:
        return None
    per_block, kept = width // blocks, k // blocks
    return (torch.arange(blocks)[:, None] * per_block + torch.arange(kept)[None, :]).flatten()


def _cuts(graph: ModelGraph, widths: Sequence[int]) -> dict[str, _Cut]:
    """Module name -> what the slice at ``widths`` keeps of it: the one plan that both
    ``slice_model`` and ``channel_masks`` follow."""
    _check(graph, widths)
    kept: list[torch.Tensor | None] = []
    for g, k in zip(graph.groups, widths):
        # A width that splits a block is the nearest whole number of blocks, as
        # widened_width rounds it: widened_width(w, r) so rounded is widened_width(w, r, blocks).
        k = max(g.blocks, g.blocks * int(round(k / g.blocks)))
        if not 1 <= k <= g.width:
            raise ModelError(f"group {g.name} has {g.width} channels; cannot keep {k}")
        kept.append(_kept(g.width, g.blocks, k))
    cuts: dict[str, _Cut] = {}
    consumers: dict[str, Consumer] = {}
    for g, keep in zip(graph.groups, kept):
        if keep is None:
            continue
        for name in g.producers:
            cuts.setdefault(name, _Cut()).rows = keep
        for name in g.passthrough:
            cuts[name] = _Cut(rows=keep, per_channel=True)
        consumers.update((c.module, c) for c in g.consumers)
    for c in graph.per_channel:  # over a concatenation: each segment keeps its channels
        if any(s.group >= 0 and kept[s.group] is not None for s in c.segments):
            cuts[c.module] = _Cut(rows=_input_map(c, kept)[0], per_channel=True)
    for name, c in consumers.items():
        cols = _input_map(c, kept)[0]  # first-k maps: every divisor is 1
        cuts.setdefault(name, _Cut()).cols = _block_local(cols, c) if c.groups > 1 else cols
    return cuts


def _block_local(cols: torch.Tensor, consumer: Consumer) -> torch.Tensor:
    """A grouped conv's weight holds each block's inputs at 0..in/groups: the kept input
    channels as positions inside their block, the same in every block."""
    block = consumer.segments[0].channels // consumer.groups
    local = cols.view(consumer.groups, -1) - (torch.arange(consumer.groups) * block)[:, None]
    if not (local == local[0]).all():
        raise ModelError(f"{consumer.module} would keep different channels in its blocks")
    return local[0]


@torch.no_grad()
def slice_model(wide: nn.Module, wide_graph: ModelGraph, widths: Sequence[int]) -> nn.Module:
    """A copy of ``wide`` that keeps the first ``widths[i]`` channels of group ``i`` (in
    whole blocks, the first of each, for groups that grouped convs read): producers' output
    channels, BatchNorm and depthwise channels (segment by segment over a concatenation),
    and consumers' input channels (every spatial position of a flattened channel)."""
    model = copy.deepcopy(wide)
    for name, cut in _cuts(wide_graph, widths).items():
        mod = model.get_submodule(name)
        if cut.per_channel:
            _grow_per_channel(mod, cut.rows)
            continue
        device = mod.weight.device
        weight = mod.weight
        if cut.rows is not None:
            weight = weight[cut.rows.to(device)]
            if mod.bias is not None:
                mod.bias = nn.Parameter(mod.bias[cut.rows.to(device)].clone())
        if cut.cols is not None:
            weight = weight[:, cut.cols.to(device)]
        mod.weight = nn.Parameter(weight.clone())
        if isinstance(mod, nn.Conv2d):
            mod.out_channels, mod.in_channels = len(weight), weight.shape[1] * mod.groups
        else:
            mod.out_features, mod.in_features = weight.shape  # type: ignore[assignment]
    return model


def channel_masks(
    wide: nn.Module, wide_graph: ModelGraph, widths: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Parameter name -> 0/1 mask, broadcastable to the parameter, that zeroes what
    ``slice_model`` drops: producers' output rows (weights, biases), BatchNorm / depthwise
    channels, and consumers' input columns (weight dim 1). With these masks the wide network
    computes what the slice computes, in train mode too: a channel past the width may still
    carry a value (``sigmoid(0)``, a BatchNorm's shift), but no consumer reads it."""
    masks: dict[str, torch.Tensor] = {}
    for name, cut in _cuts(wide_graph, widths).items():
        mod = wide.get_submodule(name)
        for pname in ("weight", "bias"):
            p = getattr(mod, pname, None)
            if not isinstance(p, torch.Tensor):
                continue
            kept = [(0, cut.rows)]  # a bias or a per-channel weight has rows only
            if pname == "weight" and not cut.per_channel:
                kept.append((1, cut.cols))
            factors = [_keep(p, dim, index) for dim, index in kept if index is not None]
            if factors:  # rows x columns: broadcasts to the weight
                masks[f"{name}.{pname}" if name else pname] = functools.reduce(
                    operator.mul, factors
                )
    return masks


def _keep(p: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """A 0/1 mask of ``p``'s dtype, of size 1 except along ``dim``, with ones at ``index``."""
    shape = [1] * p.dim()
    shape[dim] = p.shape[dim]
    mask = torch.zeros(p.shape[dim], dtype=p.dtype, device=p.device)
    mask[index.to(p.device)] = 1
    return mask.view(shape)


def _check(graph: ModelGraph, values: Sequence) -> None:
    if len(values) != len(graph.groups):
        raise ModelError(f"{len(values)} values given for {len(graph.groups)} expansion groups")
