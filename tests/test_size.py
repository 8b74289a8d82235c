from torch import nn

from mogaqnn.expand import ModelGraph, analyze_model
from mogaqnn.genome import Genome, SearchSpace, build_individual
from mogaqnn.quant import quantizable_layers
from mogaqnn.size import fp32_size_bits, model_size


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, bias=False)  # 36 weights
        self.bn = nn.BatchNorm2d(4)  # folds into conv
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)  # 12 weights + 3 biases

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.bn(self.conv(x)))).flatten(1))


def test_size_of_a_known_model_and_genome_matches_hand_computation():
    import torch

    model = Small()
    graph = analyze_model(model, torch.randn(2, 1, 6, 6))
    space = SearchSpace(
        tuple(quantizable_layers(model)),
        tuple(g.name for g in graph.groups),
        tuple(g.width for g in graph.groups),
        (2, 4),
        (8,),
        (1.0, 1.5),
    )
    genome = Genome(weight_bits=(2, 4), act_bits=(8, 8), ratios=(1.5,))
    q = build_individual(model, graph, space, genome)
    # conv widened 4 -> 6 channels: 6*9 weights at 2 bits, 6 scales, 6 folded-BN biases;
    # fc reads 6 inputs: 3*6 weights at 4 bits, 3 scales, 3 biases; each layer's input
    # activation has one 32-bit scale and one signedness bit.
    expected = (54 * 2 + 6 * 32 + 6 * 32) + (18 * 4 + 3 * 32 + 3 * 32) + 2 * 33
    size = model_size(q, graph.bn_fold)
    assert size.total_bits == expected
    assert size.act_scale_bits == 2 * 33
    assert size.weight_bits == 54 * 2 + 18 * 4
    assert size.float_bits == 0


def test_unfolded_batchnorm_and_float_layers_count_32_bits_per_parameter():
    model = Small()
    # Only fc is quantized; the conv stays float, so its BatchNorm cannot fold either.
    no_groups = ModelGraph(groups=[], bn_fold={"bn": "conv"})
    q = build_individual(model, no_groups, SearchSpace(("fc",), (), (), (4,), (8,), (1.0,)),
                         Genome((4,), (8,), ()))  # fmt: skip
    size = model_size(q, no_groups.bn_fold)
    assert size.float_bits == 32 * (36 + 8)  # the float conv and the BatchNorm
    assert size.total_bits == 32 * (36 + 8) + 12 * 4 + 3 * 32 + 3 * 32 + 33


def test_fp32_reference_is_every_parameter_at_32_bits():
    model = Small()
    assert fp32_size_bits(model) == 32 * (36 + 8 + 12 + 3)
    assert model_size(model).total_bits == fp32_size_bits(model)


def test_fp32_reference_folds_batchnorm_as_a_deployed_float_model():
    import torch

    model = Small()
    graph = analyze_model(model, torch.randn(2, 1, 6, 6))
    assert graph.bn_fold == {"bn": "conv"}
    # the BatchNorm's 8 parameters become the bias-free conv's 4 biases
    assert fp32_size_bits(model, graph.bn_fold) == 32 * (36 + 4 + 12 + 3)
