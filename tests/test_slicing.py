"""Slicing a supernet equals masking it: for random CNNs built from the blocks the expansion
analysis allows, the wide network with its parameters multiplied by ``channel_masks``
computes what ``slice_model`` computes, in eval and in train mode."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

from mogaqnn.errors import ModelError
from mogaqnn.expand import (
    analyze_model,
    channel_masks,
    fresh_at_width,
    group_widths,
    scaled_graph,
    slice_model,
    widen_model,
    widened_width,
)
from mogaqnn.genome import SearchSpace

# Activations with f(0) != 0 (sigmoid, softplus, hardsigmoid, exp) are the ones that feed a
# masked channel's constant to the next layer.
ACTIVATIONS = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "softplus": nn.Softplus,
    "hardsigmoid": nn.Hardsigmoid, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh,
    "elu": nn.ELU,
}  # fmt: skip


class Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(torch.tanh(x))  # f(0) = 1, bounded


def _act(name: str) -> nn.Module:
    return Exp() if name == "exp" else ACTIVATIONS[name]()


class Residual(nn.Module):
    def __init__(self, c: int, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), _act(act))

    def forward(self, x):
        return x + self.body(x)


class Dense(nn.Module):
    """DenseNet: the input beside new channels, then ``after`` over the concatenation."""

    def __init__(self, c: int, w: int, after: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, w, 3, padding=1)
        self.after = {
            "none": nn.Identity(),
            "bn": nn.BatchNorm2d(c + w),
            "dw": nn.Conv2d(c + w, c + w, 3, padding=1, groups=c + w),
        }[after]

    def forward(self, x):
        return self.after(torch.cat([x, self.conv(x)], dim=1))


class GroupedBranches(nn.Module):
    """Two grouped convs on one input, concatenated, then BatchNorm over the concatenation
    (the user CNN of issue 35)."""

    def __init__(self, c: int, w: int, act: str) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, 2 * w, 3, padding=1, groups=2)
        self.b = nn.Conv2d(c, 2 * w, 1, groups=2)
        self.bn = nn.BatchNorm2d(4 * w)
        self.act = _act(act)

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.a(x), self.b(x)], dim=1)))


class ResNeXt(nn.Module):
    """1x1 down, grouped 3x3, 1x1 up, residual add (ResNeXt, RegNet)."""

    def __init__(self, c: int, w: int, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, 2 * w, 1), nn.BatchNorm2d(2 * w), _act(act),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1, groups=2), nn.BatchNorm2d(2 * w), _act(act),
            nn.Conv2d(2 * w, c, 1), nn.BatchNorm2d(c),
        )  # fmt: skip

    def forward(self, x):
        return torch.relu(x + self.body(x))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, act: str) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(c, 3, 1), _act(act), nn.Conv2d(3, c, 1))

    def forward(self, x):
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))


BLOCKS = ["conv", "bn", "act", "residual", "dense", "dense_bn", "dense_dw", "grouped",
          "grouped_branches", "resnext", "dw", "se", "pool", "avgpool"]  # fmt: skip


def _block(kind: str, c: int, w: int, act: str) -> tuple[nn.Module, int]:
    """A block reading ``c`` channels, and the channels it gives."""
    if kind == "conv":
        return nn.Conv2d(c, w, 3, padding=1), w
    if kind == "bn":
        return nn.BatchNorm2d(c, affine=w % 2 == 0), c
    if kind == "act":
        return _act(act), c
    if kind == "residual":
        return Residual(c, act), c
    if kind.startswith("dense"):
        return Dense(c, w, kind.partition("_")[2] or "none"), c + w
    if kind == "grouped":
        if c % 2:
            return nn.Conv2d(c, 2 * w, 1), 2 * w
        return nn.Conv2d(c, 2 * w, 3, padding=1, groups=2), 2 * w
    if kind == "grouped_branches":
        if c % 2:
            return nn.Conv2d(c, 4 * w, 1), 4 * w
        return GroupedBranches(c, w, act), 4 * w
    if kind == "resnext":
        return ResNeXt(c, w, act), c
    if kind == "dw":
        return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.BatchNorm2d(c)), c
    if kind == "se":
        return SqueezeExcite(c, act), c
    if kind == "pool":
        return nn.MaxPool2d(2), c
    if kind == "avgpool":
        return nn.AvgPool2d(3, stride=1, padding=1), c
    raise AssertionError(kind)


class RandomCNN(nn.Module):
    def __init__(self, blocks: list[str], widths: list[int], acts: list[str], head: str) -> None:
        super().__init__()
        c, side = 4, 8
        layers: list[nn.Module] = [nn.Conv2d(1, c, 3, padding=1)]
        for kind, w, act in zip(blocks, widths, acts):
            if kind == "pool":  # down to 4x4 at most, so the head's 2x2 pooling still pools
                kind, side = ("pool", side // 2) if side > 4 else ("avgpool", side)
            layer, c = _block(kind, c, w, act)
            layers.append(layer)
        self.features = nn.Sequential(*layers)
        if head == "flatten":  # flattened channels, a hidden Linear with BatchNorm1d
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(c * 4, 6), nn.BatchNorm1d(6),
                nn.Sigmoid(), nn.Linear(6, 3),
            )  # fmt: skip
        else:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 3))

    def forward(self, x):
        return self.head(self.features(x))


@torch.no_grad()
def _randomise(model: nn.Module, gen: torch.Generator) -> None:
    """BatchNorm statistics and affine parameters, and biases, away from their init."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen, dtype=torch.float64) - 0.5)
            m.running_var.copy_(0.5 + torch.rand(n, generator=gen, dtype=torch.float64))
            if m.affine:
                m.weight.copy_(0.5 + torch.rand(n, generator=gen, dtype=torch.float64))
                m.bias.copy_(torch.rand(n, generator=gen, dtype=torch.float64) - 0.5)
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.copy_(torch.rand(m.bias.shape, generator=gen, dtype=torch.float64) - 0.5)


def _masked(wide: nn.Module, masks: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """What the supernet trainer computes (search/_fitness_start.py, train_supernet)."""
    params = {n: p * masks[n] for n, p in wide.named_parameters() if n in masks}
    return functional_call(wide, params, (x,))


def check_slicing_equals_masking(model: nn.Module, x: torch.Tensor, seed: int) -> int:
    """Slice a supernet of ``model`` at random widths and compare; the number of groups."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double().eval()
    x = x.double()
    graph = analyze_model(model, x)
    widest = [float(torch.tensor([1.0, 1.5, 2.0])[torch.randint(3, (1,), generator=gen)])
              for _ in graph.groups]  # fmt: skip
    wide = fresh_at_width(model, graph, widest, seed=seed).double()
    _randomise(wide, gen)
    wide_graph = scaled_graph(graph, widest)
    for g, w in zip(wide_graph.groups, group_widths(graph, widest)):
        assert g.width == w
    for _ in range(2):
        widths = [g.blocks * int(torch.randint(1, g.width // g.blocks + 1, (1,), generator=gen))
                  for g in wide_graph.groups]  # fmt: skip
        masks = channel_masks(wide, wide_graph, widths)
        sliced = slice_model(wide, wide_graph, widths)
        for g, k in zip(wide_graph.groups, widths):
            for name in g.producers + g.passthrough:
                mod = sliced.get_submodule(name)
                assert getattr(mod, "num_features", None) or mod.weight.shape[0] == k, name
                assert getattr(mod, "num_features", k) == k, name
        with torch.no_grad():
            want = sliced.eval()(x)
            torch.testing.assert_close(_masked(wide.eval(), masks, x), want, rtol=1e-9, atol=1e-9)
            # Train mode: BatchNorm normalises by the batch (copies: it updates statistics).
            want = copy.deepcopy(sliced).train()(x)
            got = _masked(copy.deepcopy(wide).train(), masks, x)
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    return len(graph.groups)


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=5),
    widths=st.lists(st.sampled_from([2, 3, 4]), min_size=5, max_size=5),
    acts=st.lists(st.sampled_from([*ACTIVATIONS, "exp"]), min_size=5, max_size=5),
    head=st.sampled_from(["flatten", "gap"]),
    seed=st.integers(0, 3),
)
def test_a_slice_computes_what_the_masked_supernet_computes(blocks, widths, acts, head, seed):
    torch.manual_seed(seed)
    model = RandomCNN(blocks, widths, acts, head)
    check_slicing_equals_masking(model, torch.randn(4, 1, 8, 8), seed)


@pytest.mark.parametrize(
    "blocks",
    [
        ["grouped_branches", "act"],
        ["resnext", "dense_bn", "conv", "grouped"],
        ["dense_dw", "conv", "se"],
    ],
)
def test_grouped_and_concatenated_blocks_slice_per_block_and_per_segment(blocks):
    torch.manual_seed(0)
    model = RandomCNN(blocks, [4] * len(blocks), ["sigmoid"] * len(blocks), "flatten")
    x = torch.randn(4, 1, 8, 8)
    graph = analyze_model(model, x)
    assert not graph.not_widened, graph.not_widened  # every block widens: nothing skipped
    check_slicing_equals_masking(model, x, seed=0)


def test_masks_zero_the_columns_that_a_slice_drops():
    # sigmoid(0) = 0.5: without the consumer's columns masked, channels past the width
    # would still feed the next layer.
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sigmoid(), nn.Conv2d(4, 5, 3), nn.Flatten(),
                          nn.Linear(5 * 16, 3))  # fmt: skip
    x = torch.randn(2, 1, 8, 8)
    graph = analyze_model(model, x)
    wide_graph = scaled_graph(graph, [2.0, 2.0])
    wide = widen_model(model, graph, [2.0, 2.0])
    masks = channel_masks(wide, wide_graph, [4, 5])
    assert masks["0.weight"].flatten().tolist() == [1.0] * 4 + [0.0] * 4
    assert masks["2.weight"].shape == (10, 8, 1, 1)
    assert masks["2.weight"][:5, :4].eq(1).all() and masks["2.weight"][5:].eq(0).all()
    assert masks["2.weight"][:, 4:].eq(0).all()
    columns = masks["4.weight"].flatten()  # flattened channels: 4x4 positions each
    assert columns.shape == (10 * 16,) and columns[: 5 * 16].eq(1).all()
    assert columns[5 * 16 :].eq(0).all()


def test_a_width_that_splits_a_block_counts_whole_blocks_as_widened_width_rounds():
    # The supernet trainer's width choices are widened_width(w, r) without blocks; sliced,
    # each is the genome's width widened_width(w, r, blocks).
    model = RandomCNN(["resnext"], [6], ["relu"], "gap")
    x = torch.randn(2, 1, 8, 8)
    graph = analyze_model(model, x)
    i = [g.name for g in graph.groups].index("features.1.body.0")
    assert graph.groups[i].blocks == 2
    wide_graph = scaled_graph(graph, [2.0] * len(graph.groups))
    wide = widen_model(model, graph, [2.0] * len(graph.groups))
    for r in (1.0, 1.25, 1.5, 1.75, 2.0):
        ratios = [r] * len(graph.groups)
        sliced = slice_model(wide, wide_graph, [widened_width(g.width, r) for g in graph.groups])
        assert (
            sliced.get_submodule(graph.groups[i].name).out_channels
            == group_widths(graph, ratios)[i]
        )
    assert widened_width(12, 1.25) == 15 and group_widths(graph, [1.25] * 3)[i] == 16
    with pytest.raises(ModelError, match="has 24 channels; cannot keep 26"):
        slice_model(wide, wide_graph, [8, 26, 24])


def test_described_widths_are_the_widths_widening_builds():
    model = RandomCNN(["resnext"], [6], ["relu"], "gap")
    x = torch.randn(2, 1, 8, 8)
    graph = analyze_model(model, x)
    space = SearchSpace(
        layers=(), groups=tuple(g.name for g in graph.groups),
        group_widths=tuple(g.width for g in graph.groups), weight_bit_choices=(8,),
        act_bit_choices=(8,), ratio_choices=(1.25,),
        group_blocks=tuple(g.blocks for g in graph.groups),
    )  # fmt: skip
    genome = space.uniform(8, 8, 1.25)
    wide = widen_model(model, graph, genome.ratios)
    described = {g["group"]: g["new_width"] for g in space.describe(genome)["groups"]}
    built = {g.name: wide.get_submodule(g.name).weight.shape[0] for g in graph.groups}
    assert described == built
    # 12 * 1.25 = 15 channels would not split into the grouped conv's 2 blocks
    assert described["features.1.body.0"] == 16 and widened_width(12, 1.25) == 15
