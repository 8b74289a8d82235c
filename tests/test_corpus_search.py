"""Every model of the corpus (mogaqnn/corpus.py) searches end to end by name with the
default fitness (the supernet), or stops before any training with one sentence saying
why; so does a user CNN with grouped convolutions whose branches are concatenated.

Tiny budgets on small stratified subsets of the datasets: this checks that the pipeline
runs on each architecture (slicing, checkpoints, the input check), not what it finds."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

import mogaqnn
from mogaqnn.corpus import CORPUS
from mogaqnn.data import DatasetSplits, LabelledImages, load_dataset, stratified_subset
from mogaqnn.models._factory import resolve_model
from mogaqnn.run import atomic_torch_save, checkpoint_state, load_weights, read_checkpoint

# No uniform QAT models: three more final trainings of the same QAT code, which
# tests/test_final.py checks.
TINY = dict(
    population=4, generations=1, pretrain_epochs=0.02, search_epochs=0.02, final_epochs=0.02,
    search_train_samples=64, search_val_samples=32, expansion_ratios=(1.0, 1.5),
    weight_bits=(4, 8), act_bits=(4, 8), batch_size=16, uniform_qat_bits=(), progress=False,
)  # fmt: skip
# 28x28 images are too small for DenseNet-121's last pooling: it stops before training.
TOO_SMALL = {"torchvision:densenet121"}
# Those that failed before slicing followed grouped convolutions and concatenations, and
# checkpoints kept their state dict's version; Fashion-MNIST runs them too.
ONCE_FAILED = ("torchvision:regnet_x_400mf", "torchvision:shufflenet_v2_x0_5",
               "torchvision:mnasnet0_5", "torchvision:densenet121")  # fmt: skip


def _small(images: LabelledImages, n: int) -> LabelledImages:
    return images.subset(stratified_subset(images.y.numpy(), n, seed=0))


@pytest.fixture(scope="module")
def datasets() -> dict[str, DatasetSplits]:
    """MNIST-5k and Fashion-MNIST, 128 training and 32 val and test images each: every
    training above is then one step of 16 images."""
    out = {}
    for name in ("mnist5k", "fashion-mnist"):
        data = load_dataset(name, seed=0)
        out[name] = dataclasses.replace(
            data, train=_small(data.train, 128), val=_small(data.val, 32),
            test=_small(data.test, 32),
        )  # fmt: skip
    return out


def _search(model: str | nn.Module, data: DatasetSplits, out) -> dict:
    result = mogaqnn.Search(model=model, data=data, out=str(out), **TINY).run()
    return result.data


def _check(spec: str, data: DatasetSplits, tmp_path) -> None:
    out = tmp_path / "run"
    if spec in TOO_SMALL:
        with pytest.raises(mogaqnn.ModelError) as caught:
            _search(spec, data, out)
        message = str(caught.value)
        assert "\n" not in message and "too small for" in message and "32x32" in message
        assert not (out / "base.pt").exists()  # stopped before any training
        return
    result = _search(spec, data, out)
    assert result["search"]["evaluations"] == 4
    assert result["model"]["expansion_groups"]
    # Checkpoints read back into the model (MNASNet checks its state dict's version).
    base = resolve_model(spec, in_channels=1, num_classes=10, image_size=28)
    load_weights(base, read_checkpoint(out / "base.pt", ""), out / "base.pt", spec)


@pytest.mark.parametrize("spec", [spec for spec, _ in CORPUS])
def test_every_corpus_model_searches_mnist5k_or_says_why_not(spec, datasets, tmp_path):
    _check(spec, datasets["mnist5k"], tmp_path)


@pytest.mark.parametrize("spec", ONCE_FAILED)
def test_models_that_once_failed_search_fashion_mnist(spec, datasets, tmp_path):
    _check(spec, datasets["fashion-mnist"], tmp_path)


class GroupedBranchesCNN(nn.Module):
    """Grouped convolutions whose branches are concatenated, then BatchNorm over the
    concatenation and a grouped conv reading one group (ResNeXt, RegNet, DenseNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.a = nn.Conv2d(16, 8, 3, padding=1, groups=4)
        self.b = nn.Conv2d(16, 8, 1, groups=2)
        self.bn = nn.BatchNorm2d(16)
        self.mix = nn.Conv2d(16, 16, 1)
        self.grouped = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.Sigmoid()
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(self.stem(x), 2)
        x = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], dim=1)))
        x = self.grouped(self.mix(x))
        return self.head(x.mean((2, 3)))


def test_a_grouped_cnn_with_concatenated_branches_searches(datasets, tmp_path):
    result = _search(GroupedBranchesCNN(), datasets["mnist5k"], tmp_path / "run")
    assert result["search"]["evaluations"] == 4
    groups = {g["group"] for g in result["model"]["expansion_groups"]}
    assert {"a", "b", "mix"} <= groups  # grouped and concatenated channels widen
    described = json.loads((tmp_path / "run" / "result.json").read_text())["chosen"]["groups"]
    blocks = {"a": 4, "b": 2, "mix": 4}  # widths grow in whole blocks of the grouped convs
    assert all(g["new_width"] % blocks.get(g["group"], 1) == 0 for g in described)


def test_checkpoints_keep_what_a_models_loader_checks(tmp_path):
    # torchvision's MNASNet refuses a state dict without its version (_metadata).
    make = lambda: resolve_model(  # noqa: E731
        "torchvision:mnasnet0_5", in_channels=1, num_classes=10, image_size=28
    )
    model, path = make(), tmp_path / "m.pt"
    atomic_torch_save({"state_dict": checkpoint_state(model)}, path)
    ckpt = read_checkpoint(path, "")
    assert ckpt["state_dict"]._metadata[""]["version"] == 2
    load_weights(make(), ckpt, path, "the model")
    plain = {k: v.cpu() for k, v in model.state_dict().items()}  # an older checkpoint
    with pytest.raises(ValueError, match="version"):
        make().load_state_dict(plain)
    load_weights(make(), {"state_dict": plain}, path, "the model")


def test_a_model_that_fails_on_the_input_shape_stops_with_one_sentence():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(mogaqnn.ModelError) as caught:
        resolve_model(model, in_channels=1, num_classes=10, image_size=28)
    assert str(caught.value).startswith("Sequential fails on an input of shape (1, 28, 28): ")
    assert "\n" not in str(caught.value)
