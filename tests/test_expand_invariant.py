"""The analysis invariant: every node that reads a channel layout maps it exactly or fixes
what it reads with a reason, so every widening it allows preserves the function."""

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mogaqnn.expand import analyze_model, widen_model
from mogaqnn.models import create_model


def _rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().clamp_min(1e-6).detach())


def _check_widenings(model: nn.Module, x: torch.Tensor, seed: int = 0) -> None:
    """Every widening the analysis allows runs and computes the same function."""
    model.eval().requires_grad_(False)
    graph = analyze_model(model, x)
    for f in graph.fixed:
        assert f.reason, f
    before = model(x)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(2):
        ratios = [float(r) for r in 1 + torch.rand(len(graph.groups), generator=gen)]
        wide = widen_model(model, graph, ratios, noise_std=0.0, seed=seed).eval()
        assert _rel_diff(wide(x), before) < 1e-4


class GLU(nn.Module):
    """The issue's first repro: a channel split of one conv's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.mid = nn.Conv2d(4, 6, 3, padding=1)
        self.head = nn.Linear(6 * 8 * 8, 5)

    def forward(self, x):
        a, b = torch.chunk(self.conv(x), 2, dim=1)
        return self.head(torch.flatten(self.mid(a * torch.sigmoid(b)), 1))


class SpatialAttention(nn.Module):
    """The issue's second repro: ``a * x`` with ``a`` of shape [N, 1, H, W] (CBAM)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.att = nn.Conv2d(8, 1, 3, padding=1)
        self.mid = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Linear(6 * 8 * 8, 5)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        a = torch.sigmoid(self.att(x))
        return self.head(torch.flatten(self.mid(a * x), 1))


def test_chunk_of_one_group_fixes_it_with_a_reason():
    model, x = GLU(), torch.randn(2, 1, 8, 8)
    graph = analyze_model(model, x)
    assert "conv" not in {g.name for g in graph.groups}
    (fixed,) = [f for f in graph.fixed if f.producers == ("conv",)]
    assert "chunk" in fixed.reason and "splits a group's channels" in fixed.reason
    assert fixed.reason in graph.not_widened
    assert "mid" in {g.name for g in graph.groups}  # after the split, widening goes on
    _check_widenings(model, x)


def test_broadcast_in_either_operand_order_keeps_the_layout():
    model, x = SpatialAttention(), torch.randn(2, 1, 8, 8)
    graph = analyze_model(model, x)
    names = {g.name for g in graph.groups}
    assert {"conv", "mid"} <= names  # x's channels still widen through a * x
    (att,) = [f for f in graph.fixed if f.producers == ("att",)]
    assert "broadcasts it over channels" in att.reason
    _check_widenings(model, x)


# -- random graphs ---------------------------------------------------------------------
OPS = [
    "conv", "dw", "bn", "relu", "glu", "chunk_cat", "cat_side", "spatial_att_left",
    "spatial_att_right", "se", "slice", "shuffle", "transpose_hw", "layernorm", "mean_c",
    "amax_c", "residual", "grouped", "roll", "interpolate", "pool", "softmax_c", "view_const",
    "cat_bn", "cat_dw",
]  # fmt: skip


class RandomNet(nn.Module):
    def __init__(self, ops: list[str], widths: list[int]) -> None:
        super().__init__()
        self.ops = ops
        self.layers = nn.ModuleList()
        c = 8
        self.layers.append(nn.Conv2d(1, c, 3, padding=1))
        for op, w in zip(ops, widths):
            layer, c = self._make(op, c, w)
            self.layers.append(layer)
        self.head = nn.Linear(c * 4 * 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(4)

    @staticmethod
    def _make(op: str, c: int, w: int) -> tuple[nn.Module, int]:
        if op == "conv":
            return nn.Conv2d(c, w, 3, padding=1), w
        if op in ("dw",):
            return nn.Conv2d(c, c, 3, padding=1, groups=c), c
        if op == "bn":
            bn = nn.BatchNorm2d(c, affine=w % 4 == 0)
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            return bn, c
        if op == "glu":
            return nn.Conv2d(c, 2 * w, 1), w
        if op == "chunk_cat":
            return nn.ModuleList([nn.Conv2d(c, w, 1), nn.Conv2d(c, w, 1)]), 2 * w
        if op == "cat_side":
            return nn.Conv2d(c, w, 3, padding=1), c + w
        if op == "cat_bn":
            bn = nn.BatchNorm2d(c + w)
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            return nn.ModuleList([nn.Conv2d(c, w, 1), bn]), c + w
        if op == "cat_dw":
            return nn.ModuleList(
                [nn.Conv2d(c, w, 1), nn.Conv2d(c + w, c + w, 3, 1, 1, groups=c + w)]
            ), c + w
        if op.startswith("spatial_att"):
            return nn.Conv2d(c, 1, 3, padding=1), c
        if op == "se":
            return nn.Sequential(nn.Conv2d(c, 2, 1), nn.ReLU(), nn.Conv2d(2, c, 1)), c
        if op == "slice":
            return nn.Identity(), c - c // 2
        if op == "shuffle":
            return nn.Conv2d(c, 2 * w, 1), 2 * w
        if op == "layernorm":
            return nn.LayerNorm(c), c
        if op == "residual":
            return nn.Conv2d(c, c, 3, padding=1), c
        if op == "grouped":
            return nn.Conv2d(c, 2 * w, 3, padding=1, groups=2) if c % 2 == 0 else nn.Conv2d(
                c, 2 * w, 1
            ), 2 * w
        return nn.Identity(), c

    def forward(self, x):
        x = self.layers[0](x)
        for op, layer in zip(self.ops, self.layers[1:]):
            if op in ("conv", "dw", "bn", "grouped"):
                x = layer(x)
            elif op == "relu":
                x = torch.relu(x)
            elif op == "glu":
                a, b = layer(x).chunk(2, dim=1)
                x = a * torch.sigmoid(b)
            elif op == "chunk_cat":
                y = torch.cat([layer[0](x), layer[1](x)], dim=1)
                a, b = torch.chunk(y, 2, dim=1)
                x = torch.cat([b, a], 1) + torch.cat([a, b], 1)
            elif op == "cat_side":
                x = torch.cat([x, layer(x)], dim=1)
            elif op in ("cat_bn", "cat_dw"):
                x = layer[1](torch.cat([x, layer[0](x)], dim=1))
            elif op == "spatial_att_left":
                x = torch.sigmoid(layer(x)) * x
            elif op == "spatial_att_right":
                x = x * torch.sigmoid(layer(x))
            elif op == "se":
                x = x * torch.sigmoid(layer(x.mean((2, 3), keepdim=True)))
            elif op == "slice":
                x = x[:, x.shape[1] // 2 :]
            elif op == "shuffle":
                x = layer(x)
                n, c, h, w = x.size()
                x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
            elif op == "transpose_hw":
                x = x.transpose(2, 3)
            elif op == "layernorm":
                x = layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            elif op == "mean_c":
                x = x - x.mean(1, keepdim=True)
            elif op == "amax_c":
                x = x / (1 + x.amax(1, keepdim=True).abs())
            elif op == "residual":
                x = x + layer(x)
            elif op == "roll":
                x = torch.roll(x, 1, dims=1)
            elif op == "interpolate":
                x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")[:, :, ::2, ::2]
            elif op == "pool":
                x = nn.functional.adaptive_max_pool2d(x, 8)
            elif op == "softmax_c":
                x = torch.softmax(x, dim=1)
            elif op == "view_const":
                x = x.reshape(x.size(0), x.shape[1], 64).view(x.size(0), -1, 8, 8)
        return self.head(torch.flatten(self.pool(x), 1))


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=6),
    widths=st.lists(st.sampled_from([2, 3, 4, 6]), min_size=6, max_size=6),
    seed=st.integers(0, 3),
)
def test_every_allowed_widening_preserves_the_function(ops, widths, seed):
    torch.manual_seed(seed)
    _check_widenings(RandomNet(ops, widths), torch.randn(2, 1, 8, 8), seed)


# -- the one-forward check before a search ----------------------------------------------
def test_a_widening_that_cannot_run_is_named_an_analysis_bug(monkeypatch):
    setup = importlib.import_module("mogaqnn.run._setup")
    from mogaqnn.errors import ExpansionBugError

    model, x = SpatialAttention(), torch.randn(2, 1, 8, 8)
    real = setup.analyze_model

    def forgetful(m, example):  # an analysis that forgets the consumers of one group
        graph = real(m, example)
        graph.group("mid").consumers.clear()
        return graph

    monkeypatch.setattr(setup, "analyze_model", forgetful)
    with pytest.raises(ExpansionBugError, match=r"analysis bug: .*groups mid fails"):
        setup.expansion_graph(model, x, "auto")


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:  # fx cannot trace a branch on data
            x = -x
        return self.head(x.mean((2, 3)))


def test_an_untraceable_model_gets_bits_only_and_one_line_saying_why():
    from mogaqnn.run import expansion_graph

    notes: list[str] = []
    graph = expansion_graph(DataDependent(), torch.randn(2, 1, 8, 8), "auto", note=notes.append)
    assert graph.groups == []
    (line,) = notes
    assert "\n" not in line and "cannot be traced" in line and "bit widths only" in line


def test_the_note_names_layers_that_keep_their_width():
    from mogaqnn.run import expansion_graph

    notes: list[str] = []
    graph = expansion_graph(GLU(), torch.randn(2, 1, 8, 8), "auto", note=notes.append)
    assert [g.name for g in graph.groups] == ["mid"]
    (line,) = notes
    assert line.startswith("note: 1 layer group(s) keep their width: conv (")


class Grouped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.g4 = nn.Conv2d(8, 12, 3, padding=1, groups=4, bias=False)
        self.bn = nn.BatchNorm2d(12, affine=False)  # bias-free BatchNorm
        self.g2 = nn.Conv2d(12, 6, 1, groups=2)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.g4(torch.relu(self.stem(x)))))
        return self.head(nn.functional.adaptive_avg_pool2d(self.g2(x), 1).flatten(1))


def test_grouped_convolutions_widen_each_block_by_the_same_ratio():
    model, x = Grouped().eval(), torch.randn(2, 1, 8, 8)
    model.bn.running_mean.uniform_(-0.5, 0.5)
    graph = analyze_model(model, x)
    blocks = {g.name: g.blocks for g in graph.groups}
    assert blocks == {"stem": 4, "g4": 4, "g2": 2}  # lcm of the grouped convs each feeds
    wide = widen_model(model, graph, [1.5, 1.7, 2.0]).eval()
    assert (wide.stem.out_channels, wide.g4.out_channels, wide.g2.out_channels) == (12, 20, 12)
    assert wide.g4.groups == 4 and wide.g2.groups == 2
    assert _rel_diff(wide(x), model(x)) < 1e-4
    _check_widenings(model, x)


@pytest.mark.parametrize("make", [lambda: create_model("resnet20", in_channels=1,
                                                        num_classes=10, image_size=8),
                                  Grouped])  # fmt: skip
def test_widening_keeps_the_model_on_its_device(make):
    # The channel maps live on the CPU; a model elsewhere (CUDA for users; the meta device
    # stands in here) must be widened there, noise included, without a device mismatch.
    model, x = make(), torch.randn(2, 1, 8, 8)
    graph = analyze_model(model, x)
    wide = widen_model(model.to("meta"), graph, [1.5] * len(graph.groups), noise_std=0.01)
    tensors = [*wide.parameters(), *wide.buffers()]
    assert tensors and all(t.device.type == "meta" for t in tensors)
    assert wide(x.to("meta")).shape == (2, 10 if hasattr(model, "layer1") else 3)
