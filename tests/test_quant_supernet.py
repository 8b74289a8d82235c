"""The quantization-aware supernet (fitness ``quant-supernet``): multi-bit layers, slices at
(widths, bits), its training, its start and its evaluation without training; and the
quantizers' state read from Python attributes, not from the device, in the forward."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

import mogaqnn
from mogaqnn import SearchConfig
from mogaqnn.data import LabelledImages, load_dataset
from mogaqnn.expand import fresh_at_width, group_widths, scaled_graph, widened_width
from mogaqnn.fitness import (
    QUANT_SUPERNET,
    calibrate_quant_supernet,
    make_evaluator,
    make_quant_supernet,
    slice_quant_supernet,
    train_quant_supernet,
)
from mogaqnn.fitness import _evaluate as evaluate_module
from mogaqnn.fitness._quant_supernet import Subnet, subnet_forward
from mogaqnn.genome import Genome, build_individual
from mogaqnn.models import create_model
from mogaqnn.quant import QuantLayer, calibrate, quantize_model
from mogaqnn.run import TrainingProgress, expansion_graph, search_space, subset
from mogaqnn.size import model_size
from mogaqnn.train import TrainSettings, evaluate_accuracy
from tests._runs import StopAfterSaves, Stopped, assert_same_weights


def _setup(name: str, **config):
    cfg = SearchConfig(model=name, **config)
    base = create_model(name)
    graph = expansion_graph(base, torch.zeros(2, 1, 28, 28), "auto")
    space = search_space(cfg, base, graph)
    widest = [max(cfg.expansion_ratios)] * len(graph.groups)
    choices = [sorted({widened_width(g.width, r) for r in cfg.expansion_ratios})
               for g in graph.groups]  # fmt: skip
    return base, graph, space, widest, scaled_graph(graph, widest), choices


def _random_genome(space, rng: random.Random) -> Genome:
    return Genome(
        tuple(rng.choice(space.weight_bit_choices) for _ in space.layers),
        tuple(rng.choice(space.act_bit_choices) for _ in space.layers),
        tuple(rng.choice(space.ratio_choices) for _ in space.groups),
    )


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_a_slice_computes_what_the_masked_supernet_computes_at_its_widths_and_bits(name):
    # 12-bit activations: steps past LSQ_MAX_BITS are sliced too. (12-bit weights keep the
    # range of their weights: a consumer's row in the supernet spans its masked channels'
    # columns too, until channel_masks masks those columns.)
    base, graph, space, widest, wide_graph, _ = _setup(
        name, weight_bits=(1, 2, 4, 8), act_bits=(2, 3, 8, 12)
    )
    supernet = make_quant_supernet(fresh_at_width(base, graph, widest, seed=0), space)
    calibrate_quant_supernet(supernet, torch.randn(32, 1, 28, 28), space)
    supernet.train()
    with torch.no_grad():  # BatchNorm statistics that are not the initial ones
        supernet(torch.randn(16, 1, 28, 28))
    supernet.eval()
    rng = random.Random(0)
    x = torch.randn(8, 1, 28, 28)
    for _ in range(3):
        genome = _random_genome(space, rng)
        widths = group_widths(graph, genome.ratios)
        sliced = slice_quant_supernet(supernet, wide_graph, widths, space, genome).eval()
        layers = {n: m for n, m in sliced.named_modules() if isinstance(m, QuantLayer)}
        assert list(layers) == list(space.layers)  # every layer a plain quantized one
        assert [(m.weight_bits, m.act_bits) for m in layers.values()] == list(
            zip(genome.weight_bits, genome.act_bits)
        )
        with torch.no_grad():
            got = sliced(x)
            expected = subnet_forward(supernet, wide_graph,
                                      Subnet(widths, space.layer_bits(genome)), x)  # fmt: skip
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        # the size of the genome as every fitness builds it
        built = build_individual(base, graph, space, genome)
        assert model_size(sliced, graph.bn_fold) == model_size(built, graph.bn_fold)


def test_bits_outside_the_choices_start_calibrated_and_32_bits_stay_float():
    base, graph, space, widest, wide_graph, _ = _setup("lenet5", weight_bits=(2, 8),
                                                       act_bits=(8,))  # fmt: skip
    supernet = make_quant_supernet(fresh_at_width(base, graph, widest, seed=0), space)
    calibrate_quant_supernet(supernet, torch.randn(32, 1, 28, 28), space)
    widths = group_widths(graph, [1.0] * len(graph.groups))
    four = slice_quant_supernet(supernet, wide_graph, widths, space, space.uniform(4, 4))
    x = torch.randn(4, 1, 28, 28)
    assert torch.isfinite(four(x)).all()  # the search's uniform 4-bit reference point
    fp32 = slice_quant_supernet(supernet, wide_graph, widths, space, space.uniform(32, 32))
    assert not any(isinstance(m, QuantLayer) for m in fp32.modules())
    assert {type(fp32.get_submodule(n)) for n in space.layers} <= {nn.Conv2d, nn.Linear}


def test_quant_supernet_training_teaches_its_widest_8_bit_and_narrowest_2_bit_slices():
    data = load_dataset("mnist5k")
    train = subset(data.train, 1200, 0)  # stratified: the split is sorted by class
    base, graph, space, widest, wide_graph, choices = _setup(
        "lenet5", weight_bits=(2, 4, 8), act_bits=(2, 4, 8), expansion_ratios=(1.0, 2.0)
    )
    supernet = make_quant_supernet(fresh_at_width(base, graph, widest, seed=0), space)
    calibrate_quant_supernet(supernet, train.x[:128], space)
    before = {n: p.detach().clone() for n, p in supernet.named_parameters()}
    train_quant_supernet(supernet, wide_graph, choices, space, train,
                         TrainSettings(epochs=3, lr=2e-3), seed=0)  # fmt: skip
    first = space.layers[0]
    for bits in (2, 4, 8):  # every bit width's steps learned (the input layer's: calibrated)
        step = supernet.get_submodule(first).get_parameter(f"w{bits}_scale")
        assert not torch.equal(step, before[f"{first}.w{bits}_scale"])
    # ten classes: chance is 0.1. Three epochs on 1,200 images from scratch give the widest
    # at 8 bits 86 %, the narrowest at 2 bits (the input at three levels) 40 %.
    for ratio, bits, least in ((2.0, 8, 0.7), (1.0, 2, 0.25)):
        genome = space.uniform(bits, bits, ratio)
        widths = group_widths(graph, genome.ratios)
        sliced = slice_quant_supernet(supernet, wide_graph, widths, space, genome)
        assert evaluate_accuracy(sliced, data.val) > least


def test_a_quant_supernet_training_stopped_after_an_epoch_continues_as_if_never_stopped(
    tmp_path,
):
    g = torch.Generator().manual_seed(0)
    data = LabelledImages(torch.randn(96, 1, 28, 28, generator=g),
                          torch.randint(0, 10, (96,), generator=g))  # fmt: skip
    base, graph, space, widest, wide_graph, choices = _setup(
        "lenet5", weight_bits=(2, 4, 8), act_bits=(4, 8), expansion_ratios=(1.0, 1.5, 2.0)
    )
    settings = TrainSettings(epochs=3, lr=2e-3, batch_size=32)

    def trained(progress=None):
        supernet = make_quant_supernet(fresh_at_width(base, graph, widest, seed=0), space)
        calibrate_quant_supernet(supernet, data.x[:32], space)
        torch.manual_seed(99)  # whatever the process drew before
        train_quant_supernet(supernet, wide_graph, choices, space, data, settings, seed=0,
                             progress=progress)  # fmt: skip
        return supernet

    whole = trained()
    progress = TrainingProgress(tmp_path / QUANT_SUPERNET, "quant supernet")
    with pytest.raises(Stopped):
        trained(StopAfterSaves(progress, 1))
    assert progress.load(9)["step"] == 3
    assert_same_weights(whole, trained(progress))  # the random subnets drawn as before too


def _evaluator(tmp_path, pretrain: bool, note=lambda message: None, **config):
    cfg = SearchConfig(
        out=str(tmp_path), fitness="quant-supernet", search_epochs=0, pretrain_epochs=0.2,
        search_train_samples=200, search_val_samples=100, weight_bits=(2, 8), act_bits=(4, 8),
        expansion_ratios=(1.0, 2.0), **config,
    )  # fmt: skip
    data = load_dataset("mnist5k")
    base = create_model("lenet5")
    graph = expansion_graph(base, data.train.x[:2], "auto")
    space = search_space(cfg, base, graph)
    return make_evaluator(cfg, base, graph, space, data, torch.device("cpu"), None,
                          root=tmp_path, pretrain=pretrain, note=note)  # fmt: skip


def test_the_quant_supernet_fitness_evaluates_without_training_and_workers_read_it_back(
    tmp_path, monkeypatch
):
    evaluator = _evaluator(tmp_path, pretrain=True)
    assert (tmp_path / QUANT_SUPERNET).is_file()
    assert not (tmp_path / "quant_supernet.float.pt").exists()  # the float phase's, once done

    def no_training(*args, **kwargs):
        raise AssertionError("an individual of the quant-supernet fitness was trained")

    monkeypatch.setattr(evaluate_module, "train_model", no_training)
    genome = Genome((2, 8, 8, 2, 8), (8, 4, 8, 8, 4), (2.0, 1.0, 1.0, 2.0))
    first = evaluator(genome)
    assert first.train_seconds < 0.01 and 0.0 <= first.val_accuracy <= 1.0
    built = build_individual(evaluator.base, evaluator.graph, evaluator.space, genome)
    assert first.size_bits == model_size(built, evaluator.graph.bn_fold).total_bits
    worker = _evaluator(tmp_path, pretrain=False)  # reads quant_supernet.pt back
    assert worker(genome).val_accuracy == first.val_accuracy


def test_a_worker_without_the_quant_supernet_is_told_where_it_is(tmp_path):
    with pytest.raises(mogaqnn.errors.RunDirError, match="quant_supernet.pt"):
        _evaluator(tmp_path, pretrain=False)


def test_a_search_with_the_quant_supernet_fitness_and_no_search_epochs_finishes(tmp_path):
    cfg = SearchConfig(
        out=str(tmp_path / "run"), population=4, generations=2, pretrain_epochs=0.3,
        search_epochs=0, final_epochs=0.2, search_train_samples=300, search_val_samples=200,
        weight_bits=(2, 8), act_bits=(8,), expansion_ratios=(1.0, 2.0),
        fitness="quant-supernet", progress=False,
    )  # fmt: skip
    result = mogaqnn.search(cfg)
    assert (tmp_path / "run" / QUANT_SUPERNET).is_file()
    assert 0.0 <= result.chosen["val_accuracy"] <= 1.0


def test_the_forward_reads_the_calibration_state_from_attributes_not_the_device():
    model = quantize_model(nn.Sequential(nn.Linear(4, 3)), {"0": (4, 4)})
    calibrate(model, torch.randn(8, 4) - 1)
    layer = model[0]
    scale = layer.act_scale.clone()
    layer.act_calibrated.fill_(False)  # the buffer alone: the forward does not read it
    model(torch.randn(8, 4) * 100)
    assert torch.equal(layer.act_scale, scale)
    clone = quantize_model(nn.Sequential(nn.Linear(4, 3)), {"0": (4, 4)})
    clone.load_state_dict(model.state_dict())  # the mirrors follow a loaded state
    assert clone[0].act_signed and not clone[0].is_calibrated


def test_a_run_stopped_in_the_quantization_aware_phase_keeps_its_float_phase(tmp_path, monkeypatch):
    from mogaqnn.fitness import _starts

    def stopped(*args, **kwargs):
        raise Stopped

    monkeypatch.setattr(_starts, "train_quant_supernet", stopped)
    with pytest.raises(Stopped):
        _evaluator(tmp_path, pretrain=True)
    assert (tmp_path / "quant_supernet.float.pt").is_file()
    monkeypatch.undo()
    monkeypatch.setattr(_starts, "train_supernet", stopped)  # the float phase is not run again
    notes: list[str] = []
    _evaluator(tmp_path, pretrain=True, note=notes.append)
    assert any("float phase read from" in n for n in notes)
    assert (tmp_path / QUANT_SUPERNET).is_file()
    assert not (tmp_path / "quant_supernet.float.pt").exists()


def test_calibrating_on_batch_statistics_leaves_the_running_ones_as_they_were():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3))
    model[1].running_mean.fill_(5.0)  # statistics that describe nothing: every input < 0
    quantize_model(model, {"0": (8, 8), "3": (8, 8)}).eval()
    before = {k: v.clone() for k, v in model[1].state_dict().items()}
    x = torch.randn(16, 1, 8, 8)
    calibrate(model, x)
    on_running = model[3].act_scale.clone()
    calibrate(model, x, batch_statistics=True)
    assert all(torch.equal(before[k], v) for k, v in model[1].state_dict().items())
    assert model[3].act_scale > on_running  # half of the normalised batch is positive
    assert not model.training and not model[1].training  # the modes as they were
