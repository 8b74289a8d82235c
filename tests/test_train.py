"""The training loop: distillation from a teacher and BatchNorm re-estimation."""

import pytest
import torch
from torch import nn

from mogaqnn.data import Augmentation, LabelledImages
from mogaqnn.quant import calibrate, quantize_model, set_range_mode
from mogaqnn.train import (
    Teacher,
    TrainSettings,
    make_optimizer,
    reestimate_batchnorm,
    train_model,
)
from tests._runs import StopAfterSaves, Stopped, assert_same_weights


def _data(n=96):
    g = torch.Generator().manual_seed(0)
    return LabelledImages(
        torch.randn(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    )


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


class Counting(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.images = inner, 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.inner(x)


def test_teacher_logits_are_computed_once_without_augmentation():
    data, teacher_net = _data(), Counting(_net())
    teacher = Teacher(teacher_net)
    s = TrainSettings(epochs=2, lr=1e-2, batch_size=32, distill_weight=0.5)
    train_model(_net(), data, s, seed=0, teacher=teacher)
    train_model(_net(), data, s, seed=1, teacher=teacher)  # a second run reuses them
    assert teacher_net.images == len(data)


def test_teacher_runs_per_step_with_augmentation():
    data, teacher_net = _data(), Counting(_net())
    s = TrainSettings(epochs=2, lr=1e-2, batch_size=32, distill_weight=0.5,
                      augmentation=Augmentation(1, False))  # fmt: skip
    train_model(_net(), data, s, seed=0, teacher=Teacher(teacher_net))
    assert teacher_net.images == 2 * len(data)


def test_distillation_pulls_the_student_to_the_teacher_and_weight_0_is_plain_training():
    data, teacher_net = _data(), nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        teacher_net[1].weight.mul_(5)
    teacher = Teacher(teacher_net)
    plain, off, distilled = _net(), _net(), _net()
    base = TrainSettings(epochs=20, lr=2e-2, batch_size=32)
    train_model(plain, data, base, seed=0)
    train_model(off, data, base, seed=0, teacher=teacher)  # distill_weight 0: untouched
    for a, b in zip(plain.parameters(), off.parameters()):
        assert torch.equal(a, b)
    distil = TrainSettings(epochs=20, lr=2e-2, batch_size=32, distill_weight=1.0)
    train_model(distilled, data, distil, seed=0, teacher=teacher)
    with torch.no_grad():
        t = teacher_net(data.x).argmax(1)
        agree = [(m(data.x).argmax(1) == t).float().mean() for m in (plain, distilled)]
    assert agree[1] > agree[0] and agree[1] > 0.9


def test_batchnorm_statistics_are_re_estimated_from_training_batches():
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    data = LabelledImages(3.0 + 2.0 * torch.randn(256, 1, 4, 4), torch.zeros(256, dtype=torch.long))
    with torch.no_grad():
        net[0].weight.fill_(1.0), net[0].bias.zero_()
    net.eval()
    reestimate_batchnorm(net, data, batches=4, batch_size=64, seed=0)
    assert not net.training and net[1].momentum == 0.1
    assert net[1].running_mean == pytest.approx([3.0, 3.0], abs=0.1)
    assert net[1].running_var == pytest.approx([4.0, 4.0], rel=0.1)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_learned_scales_train_at_a_rate_relative_to_their_size(optimizer):
    # Under Adam a parameter moves by about its learning rate per step whatever its size:
    # an 8-bit scale (~1e-3) and a 2-bit one (~1e-1) must each get lr x scale_lr x their
    # own size, or one shared rate is too fast for the first and too slow for the second.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    quantize_model(model, {"1": (8, 8), "3": (2, 2)})
    calibrate(model, _data().x)
    set_range_mode(model, "lsq")
    settings = TrainSettings(epochs=1, lr=1e-2, batch_size=32, optimizer=optimizer, scale_lr=0.5)
    opt = make_optimizer(model, settings)
    params = dict(model.named_parameters())
    lrs = {n: g["lr"] for g in opt.param_groups for n, p in params.items()
           if any(p is q for q in g["params"])}  # fmt: skip
    scales = {n for n in lrs if n.endswith("_scale")}
    assert scales == {f"{i}.{n}" for i in (1, 3) for n in ("learned_weight_scale", "act_scale")}
    assert all(lrs[n] == 1e-2 for n in lrs if n not in scales)
    if optimizer == "sgd":  # LSQ's gradient scaling balances the scales under SGD
        assert all(lrs[n] == 1e-2 for n in scales)
        return
    for n in scales:
        assert lrs[n] == pytest.approx(1e-2 * 0.5 * params[n].abs().mean().item())
    size = {i: model[i].learned_weight_scale.abs().mean().item() for i in (1, 3)}
    assert size[3] > 10 * size[1]  # the 2-bit scale is much the larger
    before = {i: model[i].learned_weight_scale.detach().clone() for i in (1, 3)}
    train_model(model, _data(), settings, seed=0)
    for i in (1, 3):
        moved = (model[i].learned_weight_scale - before[i]).abs().max().item() / size[i]
        # three Adam steps on a cosine schedule: at most about 3 * lr * scale_lr of its size
        assert 0 < moved <= 3 * 1e-2 * 0.5 * 1.01


def _dropout_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.3), nn.Linear(8, 3))


def test_a_training_stopped_after_an_epoch_continues_as_if_it_had_never_stopped(tmp_path):
    from mogaqnn.run import TrainingProgress

    aug = Augmentation(crop_padding=1, horizontal_flip=True)  # draws from the batch generator
    settings = TrainSettings(epochs=3.4, lr=1e-2, batch_size=32, augmentation=aug)
    whole = _dropout_net()
    loss = train_model(whole, _data(), settings, seed=3)

    notes = []
    progress = TrainingProgress(tmp_path / "net.pt", "net", notes.append)
    stopped = _dropout_net()
    with pytest.raises(Stopped):
        train_model(stopped, _data(), settings, seed=3, progress=StopAfterSaves(progress, 2))
    assert progress.path.is_file() and not notes
    resumed = _dropout_net()  # a new process: fresh weights and random states
    torch.manual_seed(123)
    assert train_model(resumed, _data(), settings, seed=3, progress=progress) == loss
    assert notes == [f"continuing from {progress.path}: step 6 of 10"]  # 3 batches an epoch
    assert_same_weights(whole, resumed)

    # Another training in the same file (other steps, or another key) starts over.
    for other, how in ((progress, TrainSettings(epochs=2, lr=1e-2, batch_size=32)),
                       (TrainingProgress(tmp_path / "net.pt", "other"), settings)):  # fmt: skip
        fresh, again = _dropout_net(), _dropout_net()
        train_model(fresh, _data(), how, seed=3)
        train_model(again, _data(), how, seed=3, progress=other)
        assert_same_weights(fresh, again)
    assert len(notes) == 1  # no "continuing" for a training that started over
    progress.discard()
    assert not progress.path.exists()


def test_a_damaged_progress_file_is_started_over(tmp_path):
    from mogaqnn.run import TrainingProgress

    progress = TrainingProgress(tmp_path / "net.pt", "net")
    progress.path.write_bytes(b"not a checkpoint")
    assert progress.load(3) is None
    settings = TrainSettings(epochs=1, lr=1e-2, batch_size=32)
    fresh, again = _dropout_net(), _dropout_net()
    train_model(fresh, _data(), settings, seed=0)
    train_model(again, _data(), settings, seed=0, progress=progress)
    assert_same_weights(fresh, again)
    assert progress.load(3)["step"] == 3  # the damaged file was replaced by a good one
