"""Training-step time of fake-quantized networks against the same FP32 networks.

Measured side by side in one run (FP32 and QAT steps interleaved, the median of many
repeats), since this machine is shared and noisy; printed as ratios. Goal: QAT/FP32 <= 1.35
with the QAT recipe of a search: its range mode (``--ranges``) and distillation from the
FP32 network (``--distill cached``: the teacher's logits looked up, as without augmentation;
``teacher``: a teacher forward pass per step, as with augmentation; ``none``).

    python benchmarks/qat_overhead.py [--repeats 30] [--threads 1] [--ranges ema]
        [--distill cached]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from mogaqnn.config import SearchConfig
from mogaqnn.data import Augmentation
from mogaqnn.expand import analyze_model
from mogaqnn.genome import SearchSpace, build_individual
from mogaqnn.models import create_model
from mogaqnn.quant import calibrate, quantizable_layers, set_range_mode
from mogaqnn.run import train_settings
from mogaqnn.train import Teacher, distillation_loss, make_optimizer

BATCH = 128


def step_timer(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
               opt: torch.optim.Optimizer | None = None, target=None):  # fmt: skip
    """A function that runs one training step of ``model`` on (x, y) and returns its time.
    ``target``: a function giving the distillation logits of the batch (timed with it)."""
    cfg = SearchConfig()
    # the search's QAT settings (its optimizer: Adam, each LSQ scale in a group of its own)
    settings = train_settings(cfg, 1, cfg.qat_lr, Augmentation())
    opt = opt or make_optimizer(model, settings)
    distil = dataclasses.replace(settings, distill_weight=cfg.distill_weight or 0.7)

    def step() -> float:
        model.train()
        t = time.perf_counter()
        if target is None:
            loss = F.cross_entropy(model(x), y)
        else:
            loss = distillation_loss(model(x), y, target(), distil)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    return step


def measure(name: str, in_channels: int, size: int, repeats: int, bits: int, ranges: str,
            distill: str) -> tuple[float, ...]:  # fmt: skip
    torch.manual_seed(0)
    fp32 = create_model(name, in_channels=in_channels, num_classes=10, image_size=size)
    x = torch.randn(BATCH, in_channels, size, size)
    y = torch.randint(0, 10, (BATCH,))
    graph = analyze_model(fp32.eval(), x[:2])
    layers = tuple(quantizable_layers(fp32))
    space = SearchSpace(layers, tuple(g.name for g in graph.groups),
                        tuple(g.width for g in graph.groups), (bits,), (bits,), (1.0,))  # fmt: skip
    qat = build_individual(fp32, graph, space, space.uniform(bits, bits))
    calibrate(qat, x)
    set_range_mode(qat, ranges)
    target = None
    if distill != "none":
        teacher = Teacher(create_model(name, in_channels=in_channels, num_classes=10,
                                       image_size=size).eval())  # fmt: skip
        index = torch.randperm(BATCH)
        cached = teacher(x)
        target = (lambda: cached[index]) if distill == "cached" else (lambda: teacher(x))
    steps = {"fp32": step_timer(fp32, x, y), "qat": step_timer(qat, x, y, target=target)}
    for s in steps.values():  # warm-up: allocator, oneDNN primitive caches
        for _ in range(3):
            s()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for k, s in steps.items():
            times[k].append(s())
    f, q = statistics.median(times["fp32"]), statistics.median(times["qat"])
    return f, q, q / f


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--ranges", default=SearchConfig().quant_ranges, help="fixed, ema or lsq")
    p.add_argument("--distill", default="cached", choices=("none", "cached", "teacher"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, batch {BATCH}, {args.bits}-bit weights and activations, "
          f"median of {args.repeats} interleaved steps, ranges {args.ranges}, distillation "
          f"{args.distill}")  # fmt: skip
    print(f"{'network':<22}{'FP32 ms/step':>14}{'QAT ms/step':>14}{'QAT/FP32':>10}")
    for label, name, ch, size in (("LeNet-5 (1x28x28)", "lenet5", 1, 28),
                                  ("ResNet-20 (3x32x32)", "resnet20", 3, 32)):  # fmt: skip
        f, q, r = measure(name, ch, size, args.repeats, args.bits, args.ranges, args.distill)
        goal = "ok" if r <= 1.35 else "above the 1.35 goal"
        print(f"{label:<22}{f * 1e3:>14.2f}{q * 1e3:>14.2f}{r:>10.2f}  {goal}")


if __name__ == "__main__":
    main()
