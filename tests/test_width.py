"""Width: the chosen architecture trained at its own width (final_init = "scratch"), and the
architectures that the fitness starts from (fresh, sliced from a supernet)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch
from torch import nn

import mogaqnn
from mogaqnn import recipe as recipe_module
from mogaqnn.expand import (
    analyze_model,
    channel_masks,
    fresh_at_width,
    group_widths,
    scaled_graph,
    slice_model,
    widen_model,
)
from mogaqnn.models import create_model
from mogaqnn.run import read_checkpoint
from tests._runs import (
    SMALL_SPACE,
    StopAfterSaves,
    Stopped,
    assert_same_weights,
    run_cli,
    start_cli,
    trainings,
)


def _graph(model: nn.Module):
    return analyze_model(model, torch.randn(2, 1, 28, 28))


def _out_widths(model: nn.Module, graph) -> list[int]:
    """The output width of each group's first producer."""
    widths = []
    for g in graph.groups:
        mod = model.get_submodule(g.producers[0])
        widths.append(mod.out_channels if isinstance(mod, nn.Conv2d) else mod.out_features)
    return widths


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_fresh_at_width_has_the_widths_and_new_weights(name):
    base = create_model(name)
    graph = _graph(base)
    ratios = [1.5] * len(graph.groups)
    fresh = fresh_at_width(base, graph, ratios, seed=1)
    assert _out_widths(fresh, graph) == group_widths(graph, ratios)
    assert _out_widths(fresh, graph) != [g.width for g in graph.groups]
    copied = widen_model(base, graph, ratios)
    first = graph.groups[0].producers[0]
    w_fresh, w_copy = fresh.get_submodule(first).weight, copied.get_submodule(first).weight
    # Copies repeat base channels; a fresh init does not.
    assert not torch.equal(w_fresh[: graph.groups[0].width], w_copy[: graph.groups[0].width])
    again = fresh_at_width(base, graph, ratios, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                 again.state_dict().values()))  # fmt: skip


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_a_supernet_slice_is_the_widest_net_restricted_to_its_first_channels(name):
    base = create_model(name)
    graph = _graph(base)
    widest = [2.0] * len(graph.groups)
    wide = fresh_at_width(base, graph, widest, seed=0)
    # Non-trivial BatchNorm statistics, so that slicing them is tested too.
    wide.train()
    with torch.no_grad():
        wide(torch.randn(16, 1, 28, 28))
    wide.eval()
    wide_graph = scaled_graph(graph, widest)
    ratios = [1.0 if i % 2 else 1.5 for i in range(len(graph.groups))]
    widths = group_widths(graph, ratios)
    sliced = slice_model(wide, wide_graph, widths)
    assert _out_widths(sliced, graph) == widths
    for g, k in zip(graph.groups, widths):  # BatchNorms carry the group's width
        for name_ in g.passthrough:
            assert sliced.get_submodule(name_).weight.shape[0] == k
    x = torch.randn(4, 1, 28, 28)
    masked = {n: p * m for n, p in wide.named_parameters()
              if (m := channel_masks(wide, wide_graph, widths).get(n)) is not None}  # fmt: skip
    with torch.no_grad():
        expected = torch.func.functional_call(wide, masked, (x,))
        torch.testing.assert_close(sliced(x), expected, rtol=1e-4, atol=1e-5)
        # ... and the slice does not compute what the whole wide net computes.
        assert not torch.allclose(sliced(x), wide(x), atol=1e-3)


def _record_trainings(monkeypatch) -> list[tuple[int, float]]:
    """(id of the model, epochs) of every train_model call."""
    calls: list[tuple[int, float]] = []
    original = recipe_module.train_model

    def recorder(model, data, settings, **kw):
        calls.append((id(model), settings.epochs))
        return original(model, data, settings, **kw)

    monkeypatch.setattr(recipe_module, "train_model", recorder)
    return calls


def test_scratch_trains_at_the_chosen_width_with_the_fp32_epochs(tmp_path, monkeypatch):
    calls = _record_trainings(monkeypatch)
    cfg = mogaqnn.SearchConfig(
        out=str(tmp_path / "run"), population=4, generations=1, pretrain_epochs=0.5,
        search_epochs=0.2, final_epochs=0.3, search_train_samples=300, search_val_samples=200,
        weight_bits=(4,), act_bits=(8,), expansion_ratios=(2.0,), final_init="scratch",
        min_compression=None, final_candidates=1,
        progress=False,
    )  # fmt: skip
    result = mogaqnn.search(cfg)
    run = tmp_path / "run"
    final = read_checkpoint(run / "final.pt", "")
    groups = result.chosen["groups"]
    assert groups and all(g["new_width"] == 2 * g["width"] for g in groups)
    for g in groups:  # the trained model has the genome's widths
        w = final["state_dict"][f"{g['group']}.weight"]
        assert w.shape[0] == g["new_width"]
    genome = mogaqnn.Genome((4,) * 5, (8,) * 5, (2.0,) * len(groups))
    assert genome.key() == result.chosen["genome_key"]
    chosen_float = read_checkpoint(run / "final" / f"{genome.width_key()}.float.pt", "")
    assert chosen_float["width_key"] == genome.width_key()
    # Trained from a fresh initialisation: not the base's channels copied.
    base = read_checkpoint(run / "base.pt", "")["state_dict"]["features.0.weight"]
    assert not torch.equal(chosen_float["state_dict"]["features.0.weight"][:6], base)
    # Epochs: the base's pretraining and the chosen architecture's, then final epochs each.
    epochs_by_model: dict[int, float] = {}
    for model_id, epochs in calls:
        epochs_by_model[model_id] = epochs_by_model.get(model_id, 0.0) + epochs
    totals = sorted(epochs_by_model.values())
    assert totals.count(0.5 + 0.3) == 1  # the chosen one: pretraining at its width + final
    assert [e for _, e in calls].count(0.5) == 2  # pretraining of the base and of the chosen
    assert result.chosen["epochs"] == result.fp32["epochs"] == 0.5 + 0.3


def test_kill_during_the_float_pretraining_at_the_chosen_width_then_resume(tmp_path):
    out = tmp_path / "run"
    flags = [
        *SMALL_SPACE, "--population", "4", "--generations", "1", "--expansion-ratios", "2.0",
        "--pretrain-epochs", "2", "--final-init", "scratch", "--fitness", "widen",
        "--min-compression", "none",  # 4 bits at ratio 2 is 2x smaller: below the default target
    ]  # fmt: skip
    flags.remove("--no-progress")  # the messages say when the chosen width's pretraining starts
    log = tmp_path / "first.log"
    proc = start_cli("search", "--out", str(out), *flags, log=log)
    try:
        deadline = time.monotonic() + 300
        # the chosen architecture's float training at its width: its first epoch, of two
        while not (partials := list((out / "final").glob("*.float.pt.partial"))):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "final.pt").exists() and not list((out / "final").glob("*.float.pt"))
    assert not (out / "base.pt.partial").exists()  # the base's progress goes once it is saved
    (partial,) = partials
    searched = trainings(out)

    proc = run_cli("resume", str(out))
    assert proc.returncode == 0, proc.stderr
    assert trainings(out) == searched  # no evaluation repeated
    assert "FP32 base read from" in proc.stderr
    assert "pretraining the FP32" not in proc.stderr
    assert "training the float model at widths" in proc.stderr  # it had not finished
    assert f"continuing from {partial}: step" in proc.stderr  # from its last finished epoch
    assert not partial.exists()

    # Killed after it finished (here: the final result is gone): it is read, not retrained.
    chosen = json.loads((out / "result.json").read_text())["chosen"]["genome_key"]
    (out / "result.json").unlink()
    again = run_cli("resume", str(out))
    assert again.returncode == 0, again.stderr
    assert f"final model of genome {chosen} read from" in again.stderr
    assert "training the float model at widths" not in again.stderr
    final_epochs = float(flags[flags.index("--final-epochs") + 1])
    assert json.loads((out / "result.json").read_text())["chosen"]["epochs"] == 2 + final_epochs


@pytest.mark.parametrize(("fitness", "final_init"), [("supernet", "scratch"), ("scratch", "widen")])
def test_the_size_limit_holds_whatever_the_fitness_and_final_init(tmp_path, fitness, final_init):
    limit = 40.0  # LeNet-5 is 241 KiB in float; uniform 2-bit at ratio 1.0 fits
    cfg = mogaqnn.SearchConfig(
        out=str(tmp_path / "run"), population=4, generations=2, pretrain_epochs=0.3,
        search_epochs=0.2, final_epochs=0.2, search_train_samples=300, search_val_samples=200,
        weight_bits=(2, 8), act_bits=(8,), expansion_ratios=(1.0, 2.0), max_size_kib=limit,
        fitness=fitness, final_init=final_init, progress=False,
    )  # fmt: skip
    result = mogaqnn.search(cfg)
    assert result.chosen["size_kib"] <= limit
    assert (tmp_path / "run" / "policy.png").is_file()  # bits and width, per layer and run
    if fitness == "supernet":
        assert (tmp_path / "run" / "supernet.pt").is_file()


def test_supernet_training_teaches_its_narrowest_and_its_widest_slices():
    from mogaqnn.data import load_dataset
    from mogaqnn.fitness import train_supernet
    from mogaqnn.run import subset
    from mogaqnn.train import TrainSettings, evaluate_accuracy

    data = load_dataset("mnist5k")
    train = subset(data.train, 1200, 0)  # stratified: the split is sorted by class
    base = create_model("lenet5")
    graph = _graph(base)
    widest = [2.0] * len(graph.groups)
    supernet = fresh_at_width(base, graph, widest, seed=0)
    before = {n: p.detach().clone() for n, p in supernet.named_parameters()}
    wide_graph = scaled_graph(graph, widest)
    narrow, wide = group_widths(graph, [1.0] * len(graph.groups)), group_widths(graph, widest)
    choices = [[n, w] for n, w in zip(narrow, wide)]
    train_supernet(supernet, wide_graph, choices, train, TrainSettings(epochs=3, lr=2e-3),
                   seed=0)  # fmt: skip
    first = graph.groups[0].producers[0]
    grown = supernet.get_submodule(first).weight
    # Channels past the narrowest width were trained too (by the widest and random widths).
    assert not torch.equal(grown[narrow[0] :], before[f"{first}.weight"][narrow[0] :])
    for widths in (narrow, wide):
        sliced = slice_model(supernet, wide_graph, widths)
        assert evaluate_accuracy(sliced, data.val) > 0.5  # ten classes: chance is 0.1


def test_a_supernet_training_stopped_after_an_epoch_continues_as_if_it_had_never_stopped(
    tmp_path,
):
    from mogaqnn.data import LabelledImages
    from mogaqnn.fitness import train_supernet
    from mogaqnn.run import TrainingProgress
    from mogaqnn.train import TrainSettings

    g = torch.Generator().manual_seed(0)
    data = LabelledImages(torch.randn(96, 1, 28, 28, generator=g),
                          torch.randint(0, 10, (96,), generator=g))  # fmt: skip
    base = create_model("lenet5")
    graph = _graph(base)
    widest = [2.0] * len(graph.groups)
    wide_graph = scaled_graph(graph, widest)
    choices = [[n, (n + w) // 2, w] for n, w in zip(group_widths(graph, [1.0] * len(widest)),
                                                   group_widths(graph, widest))]  # fmt: skip
    settings = TrainSettings(epochs=3, lr=2e-3, batch_size=32)

    def trained(progress=None):
        supernet = fresh_at_width(base, graph, widest, seed=0)
        torch.manual_seed(99)  # whatever the process drew before
        train_supernet(supernet, wide_graph, choices, data, settings, seed=0, progress=progress)
        return supernet

    whole = trained()
    progress = TrainingProgress(tmp_path / "supernet.pt", "supernet")
    with pytest.raises(Stopped):
        trained(StopAfterSaves(progress, 1))
    assert progress.load(9)["step"] == 3
    assert_same_weights(whole, trained(progress))  # the random widths drawn as before too
