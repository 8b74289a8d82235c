"""Zoo tests, parametrized over the registry so that a new model is tested by registering it."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import fx, nn

from mogaqnn.errors import ModelError
from mogaqnn.models import create_model, list_models, make_divisible, model_entrypoint

MODELS = list_models()
# (in_channels, image_size, num_classes): MNIST-like and CIFAR-100-like inputs.
SHAPES = [(1, 28, 10), (3, 32, 100)]
_ADDS = {operator.add, operator.iadd, torch.add}


def _build(name: str, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    torch.manual_seed(0)
    return create_model(
        name, in_channels=in_channels, num_classes=num_classes, image_size=image_size
    )


def test_zoo_holds_the_paper_families() -> None:
    expected = {"lenet5", "alexnet", "vgg11", "resnet20", "resnet56", "mobilenetv2"}
    assert expected <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_has_a_description(name: str) -> None:
    assert model_entrypoint(name).description


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}-{s[2]}cls")
@pytest.mark.parametrize("name", MODELS)
def test_output_shape(name: str, shape: tuple[int, int, int]) -> None:
    c, size, k = shape
    model = _build(name, c, size, k).eval()
    with torch.no_grad():
        out = model(torch.randn(2, c, size, size))
    assert out.shape == (2, k)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}-{s[2]}cls")
@pytest.mark.parametrize("name", MODELS)
def test_fx_trace_matches_module(name: str, shape: tuple[int, int, int]) -> None:
    c, size, k = shape
    model = _build(name, c, size, k).eval()
    traced = fx.symbolic_trace(model)
    x = torch.randn(2, c, size, size)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


@pytest.mark.parametrize("name", MODELS)
def test_backward_gives_finite_gradients_to_every_parameter(name: str) -> None:
    model = _build(name, 3, 32, 10).train()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    nn.functional.cross_entropy(model(x), y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"


# The widening step reads channel couplings off the fx graph; these pin the conventions it
# relies on (see the brief of issue #3).


def _graph(name: str) -> tuple[fx.GraphModule, dict[str, nn.Module]]:
    gm = fx.symbolic_trace(_build(name, 1, 28, 10))
    return gm, dict(gm.named_modules())


def _is_module(node: object, modules: dict[str, nn.Module], kind: type) -> bool:
    return (
        isinstance(node, fx.Node)
        and node.op == "call_module"
        and isinstance(modules[str(node.target)], kind)
    )


@pytest.mark.parametrize("name", MODELS)
def test_batchnorm_directly_follows_a_bias_free_conv(name: str) -> None:
    gm, modules = _graph(name)
    for node in gm.graph.nodes:
        if _is_module(node, modules, nn.BatchNorm2d):
            src = node.args[0]
            assert _is_module(src, modules, nn.Conv2d), f"{node.target} does not follow a conv"
            assert modules[str(src.target)].bias is None, f"{src.target} feeds BN but has a bias"
            assert list(src.users) == [node], f"{src.target} output is used besides its BN"


@pytest.mark.parametrize("name", MODELS)
def test_output_is_a_linear_layer(name: str) -> None:
    gm, modules = _graph(name)
    (out,) = [n for n in gm.graph.nodes if n.op == "output"]
    assert _is_module(out.args[0], modules, nn.Linear)


@pytest.mark.parametrize("name", MODELS)
def test_no_inplace_activation_after_a_residual_add(name: str) -> None:
    gm, modules = _graph(name)
    for node in gm.graph.nodes:
        is_add = (node.op == "call_function" and node.target in _ADDS) or (
            node.op == "call_method" and node.target in {"add", "add_"}
        )
        assert not (node.op == "call_method" and node.target == "add_"), "in-place add"
        if not is_add:
            continue
        for user in node.users:
            if user.op == "call_module":
                assert not getattr(modules[str(user.target)], "inplace", False), (
                    f"{user.target} modifies the output of a residual add in place"
                )


@pytest.mark.parametrize("name", MODELS)
def test_activations_are_modules(name: str) -> None:
    gm, _ = _graph(name)
    functional = {torch.relu, nn.functional.relu, nn.functional.relu6, torch.nn.functional.hardtanh}
    bad = [n.name for n in gm.graph.nodes if n.op == "call_function" and n.target in functional]
    assert not bad, f"functional activations {bad}; use nn.ReLU / nn.ReLU6 modules"


def test_unknown_model_raises_model_error() -> None:
    with pytest.raises(ModelError, match="unknown model 'resnet9000'"):
        create_model("resnet9000")


@pytest.mark.parametrize(
    ("value", "expected"), [(12.0, 16), (16.0, 16), (32 * 0.5, 16), (4.0, 8), (36.0, 40)]
)
def test_make_divisible(value: float, expected: int) -> None:
    assert make_divisible(value) == expected
