"""Coupled channel expansion on every zoo model (parametrized over the registry, so a new
model is tested here without new code)."""

import pytest
import torch
from torch import nn

from mogaqnn.expand import analyze_model, widen_model, widened_width
from mogaqnn.genome import Genome, SearchSpace, build_individual
from mogaqnn.models import create_model, list_models
from mogaqnn.quant import calibrate, quantizable_layers

SHAPES = [(1, 28), (3, 32)]


def _randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial BatchNorm statistics, so that widening them wrongly would show."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) * 0.2)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize(("channels", "size"), SHAPES)
def test_widening_every_zoo_model_preserves_its_function(name, channels, size):
    gen = torch.Generator().manual_seed(0)
    model = create_model(name, in_channels=channels, num_classes=10, image_size=size).eval()
    _randomise_bn(model, gen)
    x = torch.randn(2, channels, size, size, generator=gen)
    graph = analyze_model(model, x)
    assert graph.groups, f"{name} has no expansion group"
    with torch.no_grad():
        before = model(x)
        for _ in range(2):
            ratios = [1.0 + float(torch.rand(1, generator=gen)) for _ in graph.groups]
            wide = widen_model(model, graph, ratios, noise_std=0.0, seed=1).eval()
            torch.testing.assert_close(wide(x), before, atol=1e-4, rtol=1e-4)
            for grp, ratio in zip(graph.groups, ratios):
                want = widened_width(grp.width, ratio)
                for layer in grp.producers + grp.passthrough:
                    assert wide.get_submodule(layer).weight.shape[0] == want, (name, layer)


@pytest.mark.parametrize("name", list_models())
def test_widened_quantized_zoo_model_runs_forward_and_backward(name):
    model = create_model(name, in_channels=1, num_classes=10, image_size=28)
    x = torch.randn(4, 1, 28, 28)
    graph = analyze_model(model.eval(), x[:2])
    layers = tuple(quantizable_layers(model))
    space = SearchSpace(layers, tuple(g.name for g in graph.groups),
                        tuple(g.width for g in graph.groups), (2, 4), (4,), (1.5,))  # fmt: skip
    genome = Genome(tuple(2 + 2 * (i % 2) for i in range(len(layers))), (4,) * len(layers),
                    (1.5,) * len(graph.groups))  # fmt: skip
    q = build_individual(model, graph, space, genome, noise_std=0.01, seed=0)
    calibrate(q, x)
    q.train()
    out = q(x)
    assert out.shape == (4, 10)
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in q.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
