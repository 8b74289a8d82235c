import pytest
import torch
from torch import nn

from mogaqnn.errors import ModelError
from mogaqnn.expand import analyze_model, widen_model, widened_width
from mogaqnn.genome import Genome, SearchSpace, build_individual
from mogaqnn.models import create_model
from mogaqnn.quant import calibrate, quantizable_layers


class ResDepthCat(nn.Module):
    """A user CNN with a residual add, a depthwise conv and a concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 6, 1)
        self.side = nn.Conv2d(8, 4, 1)
        self.head = nn.Linear(10 * 4 * 4, 10)
        self.pool = nn.AdaptiveAvgPool2d(4)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = x + self.body(x)
        y = torch.cat([self.pw(self.dw(x)), self.side(x)], dim=1)
        return self.head(torch.flatten(self.pool(y), 1))


def _randomise_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


@pytest.mark.parametrize("factory", [lambda: create_model("lenet5"), ResDepthCat])
def test_widening_preserves_the_function(factory):
    model = factory().eval()
    _randomise_bn(model)
    x = torch.randn(4, 1, 28, 28)
    before = model(x)
    graph = analyze_model(model, x[:2])
    assert graph.groups
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        ratios = [float(r) for r in 1 + torch.rand(len(graph.groups), generator=gen)]
        wide = widen_model(model, graph, ratios, noise_std=0.0, seed=3).eval()
        torch.testing.assert_close(wide(x), model(x), atol=1e-4, rtol=1e-4)
        for grp, r in zip(graph.groups, ratios):
            want = widened_width(grp.width, r)
            for name in grp.producers:
                assert wide.get_submodule(name).weight.shape[0] == want
            for name in grp.passthrough:
                assert wide.get_submodule(name).weight.shape[0] == want
    assert torch.equal(model(x), before)  # widening works on a copy


def test_groups_follow_residual_depthwise_and_concat():
    model = ResDepthCat().eval()
    graph = analyze_model(model, torch.randn(2, 1, 28, 28))
    by_name = {g.name: g for g in graph.groups}
    # stem and body.0 write into the same add, and the depthwise conv rides along.
    stream = by_name["stem"]
    assert set(stream.producers) == {"stem", "body.0"}
    assert {"bn", "body.1", "dw"} <= set(stream.passthrough)
    # The concatenation feeds the head; its two producers are separate groups.
    assert "pw" in by_name and "side" in by_name
    head = [c for c in by_name["pw"].consumers if c.module == "head"][0]
    assert [s.channels for s in head.segments] == [6, 4]
    assert graph.bn_fold == {"bn": "stem", "body.1": "body.0"}
    # The classifier's output never widens.
    assert all("head" not in g.producers for g in graph.groups)


def test_noise_changes_only_the_copies():
    model = create_model("lenet5").eval()
    graph = analyze_model(model, torch.randn(2, 1, 28, 28))
    wide = widen_model(model, graph, [2.0, 1.0, 1.0, 1.0], noise_std=0.05, seed=0)
    w0, w = model.features[0].weight, wide.features[0].weight
    assert torch.equal(w[:6], w0)
    assert not torch.equal(w[6:], w0[(w[6:] - w0[:, None]).flatten(2).abs().sum(-1).argmin(0)])


def test_widened_quantized_network_runs_forward_and_backward():
    model = ResDepthCat()
    graph = analyze_model(model, torch.randn(2, 1, 28, 28))
    layers = tuple(quantizable_layers(model))
    space = SearchSpace(
        layers,
        tuple(g.name for g in graph.groups),
        tuple(g.width for g in graph.groups),
        (2, 4),
        (4, 8),
        (1.0, 1.5),
    )
    genome = Genome((2,) * len(layers), (4,) * len(layers), (1.5,) * len(graph.groups))
    q = build_individual(model, graph, space, genome, noise_std=0.01, seed=0)
    x = torch.randn(8, 1, 28, 28)
    calibrate(q, x)
    q.train()
    q(x).sum().backward()
    assert all(p.grad is not None for p in q.parameters() if p.requires_grad)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow defeats symbolic tracing
            x = -x
        return self.fc(self.conv(x).mean((2, 3)))


def test_untraceable_model_gives_a_clear_message():
    with pytest.raises(ModelError, match="Untraceable cannot be traced by torch.fx"):
        analyze_model(Untraceable(), torch.randn(2, 1, 8, 8))
