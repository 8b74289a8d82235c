"""The first generation holds uniform individuals at ratio 1.0 beside the random ones."""

from mogaqnn import Search, SearchConfig
from mogaqnn.genome import SearchSpace
from mogaqnn.search._sampler import uniform_seeds
from tests._runs import read_trials


def _space(weight_bits, act_bits=(4, 8), ratios=(1.0, 1.5)) -> SearchSpace:
    return SearchSpace(("a", "b"), ("g",), (8,), weight_bits, act_bits, ratios)


def test_uniform_seeds_span_the_allowed_bits_and_keep_the_smallest():
    seeds = uniform_seeds(_space((2, 3, 4, 5, 6, 7, 8)), population=16)
    assert [label for label, _ in seeds] == [f"uniform {b}-bit" for b in (8, 4, 3, 2)]
    assert all(g.act_bits == (8, 8) and g.ratios == (1.0,) for _, g in seeds)
    # a small population keeps the largest and the smallest; 1 bit is the smallest allowed
    assert [g.weight_bits[0] for _, g in uniform_seeds(_space((1, 4, 8)), 4)] == [8, 1]
    # no 8-bit activations allowed: the largest allowed; no ratio 1.0: the smallest
    (_, g), *_ = uniform_seeds(_space((4,), act_bits=(2, 6), ratios=(1.5, 2.0)), 16)
    assert g.act_bits == (6, 6) and g.ratios == (1.5,)


def test_the_first_generation_holds_the_uniform_individuals(tmp_path):
    config = SearchConfig(
        population=8, generations=1, seed=0, pretrain_epochs=0.2, search_epochs=0.2,
        final_epochs=0.1, search_train_samples=100, search_val_samples=100,
        weight_bits=(2, 3, 4, 8), act_bits=(4, 8), expansion_ratios=(1.0, 1.5),
        progress=False, out=str(tmp_path / "run"),
    )  # fmt: skip
    Search(config).run()
    trials = read_trials(f"journal:{tmp_path / 'run' / 'study.journal'}")
    first = [t for t in trials if t.user_attrs.get("generation") == 0]
    assert len(first) == 8
    uniform = {
        b: t for t in first for b in (8, 4, 3, 2)
        if all(t.params[p] == b for p in t.params if p.startswith("w:"))
        and all(t.params[p] == 8 for p in t.params if p.startswith("a:"))
        and all(t.params[p] == 1.0 for p in t.params if p.startswith("x:"))
    }  # fmt: skip
    assert sorted(uniform) == [2, 3, 4, 8]
    assert {t.user_attrs["seeded"] for t in uniform.values()} == {
        "uniform 8-bit", "uniform 4-bit", "uniform 3-bit", "uniform 2-bit"
    }  # fmt: skip
    assert sum("seeded" in t.user_attrs for t in first) == 4  # the other half is random


def test_the_paper_tables_mobilenetv2_cells_have_a_feasible_first_generation():
    """benchmarks/paper_table.py limits MobileNetV2 (28x28 greyscale, 10 classes: both of
    its datasets) to FP32 size / 8; the seeded uniform 2-bit individual meets it."""
    import torch

    from mogaqnn.genome import build_individual
    from mogaqnn.models import create_model
    from mogaqnn.run import expansion_graph, search_space
    from mogaqnn.size import fp32_size_bits, model_size

    base = create_model("mobilenetv2", in_channels=1, num_classes=10, image_size=28).eval()
    config = SearchConfig(population=4, weight_bits=(2, 3, 4), expansion_ratios=(1.0, 1.25, 1.5))
    graph = expansion_graph(base, torch.zeros(2, 1, 28, 28), config.expansion)
    space = search_space(config, base, graph)
    seeds = dict(uniform_seeds(space, config.population))
    assert "uniform 2-bit" in seeds
    size = model_size(build_individual(base, graph, space, seeds["uniform 2-bit"]), graph.bn_fold)
    limit_bits = fp32_size_bits(base) / 8
    assert size.total_bits <= limit_bits


def test_bits_for_width_seeds_take_the_widest_ratio_under_the_size_target():
    from mogaqnn.search._sampler import target_seeds

    space = _space((2, 3, 4, 8), ratios=(1.0, 1.25, 1.5, 2.0))

    def size_bits(genome):  # weights grow with the square of the width
        return round(1000 * genome.weight_bits[0] * genome.ratios[0] ** 2)

    seeds = target_seeds(space, size_bits, limit_bits=8000, room=4)
    assert [(g.weight_bits[0], g.ratios[0]) for _, g in seeds] == [(4, 1.25), (3, 1.5), (2, 2.0)]
    assert all(g.act_bits == (8, 8) for _, g in seeds)
    assert seeds[0][0] == "uniform 4-bit at ratio 1.25 (size target)"
    assert len(target_seeds(space, size_bits, limit_bits=8000, room=1)) == 1
    assert target_seeds(space, size_bits, limit_bits=1000, room=4) == []  # nothing fits
