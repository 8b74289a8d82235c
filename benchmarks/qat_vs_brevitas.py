"""mogaqnn's quantizer against Brevitas: uniform 4-bit QAT of LeNet-5 and ResNet-20, side by side.

Both start from the same pretrained FP32 weights (one pretraining per network, on the
MNIST-5k train split) and train with the same data order, epochs, optimizer (Adam at the
search's qat_lr), batch size and seed; each is tested once. Brevitas' network is the FP32
network with every Conv2d/Linear replaced by QuantConv2d/QuantLinear (4-bit weights,
per-channel float scales: Int8WeightPerChannelFloat at weight_bit_width=4), every ReLU by
QuantReLU(bit_width=4), and a QuantIdentity(bit_width=4) on the input; mogaqnn's is
``build_individual`` at ``SearchSpace.uniform(4, 4)`` plus ``calibrate``. The one structural
difference: mogaqnn quantizes the input of every Conv/Linear (so also the pooled features
of the classifier), Brevitas here quantizes the outputs of the ReLUs and the image.

Step time: the median of interleaved training steps on one fixed batch (mogaqnn, Brevitas,
mogaqnn, ...), since this machine is shared. Goal: equal or better test accuracy at less
than half Brevitas' step time.

    python benchmarks/qat_vs_brevitas.py [--pretrain-epochs 2 --epochs 2 --repeats 20]

Needs ``pip install 'mogaqnn[brevitas]'``.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import brevitas
import brevitas.nn as qnn
import torch
from brevitas.quant import Int8WeightPerChannelFloat
from qat_overhead import step_timer  # benchmarks/ is on sys.path when run as a script
from torch import nn

from mogaqnn.data import load_dataset
from mogaqnn.expand import analyze_model
from mogaqnn.genome import SearchSpace, build_individual
from mogaqnn.models import create_model
from mogaqnn.quant import calibrate, quantizable_layers
from mogaqnn.train import TrainSettings, evaluate_accuracy, train_model

BITS = 4
BATCH = 64  # the search's default batch size
QAT_LR = 5e-4  # the search's default qat_lr
PRETRAIN_LR = 2e-3


def brevitas_copy(fp32: nn.Module, bits: int) -> nn.Module:
    """The FP32 network with Brevitas layers in place of Conv2d/Linear/ReLU, same weights."""
    model = copy.deepcopy(fp32)

    def swap(parent: nn.Module) -> None:
        for name, m in parent.named_children():
            if isinstance(m, nn.Conv2d):
                q = qnn.QuantConv2d(
                    m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                    padding=m.padding, dilation=m.dilation, groups=m.groups,
                    bias=m.bias is not None, weight_bit_width=bits,
                    weight_quant=Int8WeightPerChannelFloat,
                )  # fmt: skip
            elif isinstance(m, nn.Linear):
                q = qnn.QuantLinear(m.in_features, m.out_features, bias=m.bias is not None,
                                    weight_bit_width=bits,
                                    weight_quant=Int8WeightPerChannelFloat)  # fmt: skip
            elif isinstance(m, nn.ReLU):
                setattr(parent, name, qnn.QuantReLU(bit_width=bits))
                continue
            else:
                swap(m)
                continue
            q.load_state_dict(m.state_dict(), strict=False)  # weight and bias
            setattr(parent, name, q)

    swap(model)
    return nn.Sequential(qnn.QuantIdentity(bit_width=bits), model)


def mogaqnn_copy(fp32: nn.Module, example: torch.Tensor, calib: torch.Tensor) -> nn.Module:
    graph = analyze_model(fp32.eval(), example)
    layers = tuple(quantizable_layers(fp32))
    space = SearchSpace(layers, tuple(g.name for g in graph.groups),
                        tuple(g.width for g in graph.groups), (BITS,), (BITS,), (1.0,))  # fmt: skip
    model = build_individual(fp32, graph, space, space.uniform(BITS, BITS))
    calibrate(model, calib)
    return model


def step_times(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
               repeats: int) -> dict[str, float]:  # fmt: skip
    """Median step time of each, steps interleaved (on copies: the trained models stay)."""
    copies = {k: copy.deepcopy(m) for k, m in models.items()}
    steps = {k: step_timer(m, x, y, torch.optim.Adam(m.parameters(), lr=QAT_LR))
             for k, m in copies.items()}  # fmt: skip
    for s in steps.values():  # warm-up: allocator, primitive caches, Brevitas' stats
        for _ in range(3):
            s()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for k, s in steps.items():
            times[k].append(s())
    return {k: statistics.median(v) for k, v in times.items()}


def run(name: str, data, args) -> dict[str, float]:
    torch.manual_seed(args.seed)
    fp32 = create_model(name, in_channels=data.in_channels, num_classes=data.num_classes,
                        image_size=data.image_size)  # fmt: skip
    pre = TrainSettings(epochs=args.pretrain_epochs, lr=PRETRAIN_LR, batch_size=BATCH)
    train_model(fp32, data.train, pre, seed=args.seed)
    fp32.eval()
    fp32_test = evaluate_accuracy(fp32, data.test)
    models = {
        "mogaqnn": mogaqnn_copy(fp32, data.train.x[:2], data.train.x[:256]),
        "brevitas": brevitas_copy(fp32, BITS),
    }
    out: dict[str, float] = {"fp32_test": fp32_test}
    x, y = data.train.x[:BATCH], data.train.y[:BATCH]
    t = step_times(models, x, y, args.repeats)
    qat = TrainSettings(epochs=args.epochs, lr=QAT_LR, batch_size=BATCH)
    for k, m in models.items():
        t0 = time.perf_counter()
        train_model(m, data.train, qat, seed=args.seed)  # same seed: same batches
        out[f"{k}_train_s"] = time.perf_counter() - t0
        out[f"{k}_val"] = evaluate_accuracy(m, data.val)
        out[f"{k}_test"] = evaluate_accuracy(m, data.test)
        out[f"{k}_step_ms"] = t[k] * 1e3
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet5,resnet20")
    p.add_argument("--pretrain-epochs", type=float, default=2.0)
    p.add_argument("--epochs", type=float, default=2.0, help="QAT epochs of both")
    p.add_argument("--repeats", type=int, default=20, help="interleaved timed steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k", val_fraction=0.1, seed=args.seed)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch "
          f"{torch.__version__}, brevitas {brevitas.__version__}; mnist5k ({len(data.train)} "
          f"train, {len(data.test)} test), seed {args.seed}; FP32 pretraining "
          f"{args.pretrain_epochs:g} epochs (Adam {PRETRAIN_LR}), then {args.epochs:g} epochs "
          f"of {BITS}-bit QAT (Adam {QAT_LR}, batch {BATCH}) for each; step time: median of "
          f"{args.repeats} interleaved steps")  # fmt: skip
    print(f"{'network':<12}{'FP32 test':>10}{'mogaqnn test':>14}{'brevitas test':>15}"
          f"{'mogaqnn ms':>12}{'brevitas ms':>13}{'step ratio':>12}  goal")  # fmt: skip
    for name in args.models.split(","):
        r = run(name, data, args)
        ratio = r["mogaqnn_step_ms"] / r["brevitas_step_ms"]
        acc_ok = r["mogaqnn_test"] >= r["brevitas_test"]
        goal = ("met" if acc_ok and ratio < 0.5 else
                "missed: " + ", ".join(s for s, bad in (("accuracy below Brevitas", not acc_ok),
                                                        ("step time >= half", ratio >= 0.5))
                                       if bad))  # fmt: skip
        print(f"{name:<12}{r['fp32_test']:>10.2%}{r['mogaqnn_test']:>14.2%}"
              f"{r['brevitas_test']:>15.2%}{r['mogaqnn_step_ms']:>12.1f}"
              f"{r['brevitas_step_ms']:>13.1f}{ratio:>12.2f}  {goal}", flush=True)  # fmt: skip
        print(f"{'':<12}val: mogaqnn {r['mogaqnn_val']:.2%}, brevitas {r['brevitas_val']:.2%}; "
              f"QAT wall time: mogaqnn {r['mogaqnn_train_s']:.0f} s, brevitas "
              f"{r['brevitas_train_s']:.0f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
