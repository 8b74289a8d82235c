"""Training-step time of fake-quantized networks against the same FP32 networks.

Measured side by side in one run (FP32 and QAT steps interleaved, the median of many
repeats), since this machine is shared and noisy; printed as ratios. Goal: QAT/FP32 <= 1.3.

    python benchmarks/qat_overhead.py [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from mogaqnn.expand import analyze_model
from mogaqnn.genome import SearchSpace, build_individual
from mogaqnn.models import create_model
from mogaqnn.quant import calibrate, quantizable_layers

BATCH = 128


def step_timer(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
               opt: torch.optim.Optimizer | None = None):  # fmt: skip
    """A function that runs one training step of ``model`` on (x, y) and returns its time."""
    opt = opt or torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> float:
        model.train()
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    return step


def measure(name: str, in_channels: int, size: int, repeats: int, bits: int) -> tuple[float, ...]:
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
    steps = {"fp32": step_timer(fp32, x, y), "qat": step_timer(qat, x, y)}
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
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, batch {BATCH}, {args.bits}-bit weights and activations, "
          f"median of {args.repeats} interleaved steps")  # fmt: skip
    print(f"{'network':<22}{'FP32 ms/step':>14}{'QAT ms/step':>14}{'QAT/FP32':>10}")
    for label, name, ch, size in (("LeNet-5 (1x28x28)", "lenet5", 1, 28),
                                  ("ResNet-20 (3x32x32)", "resnet20", 3, 32)):  # fmt: skip
        f, q, r = measure(name, ch, size, args.repeats, args.bits)
        goal = "ok" if r <= 1.3 else "above the 1.3 goal"
        print(f"{label:<22}{f * 1e3:>14.2f}{q * 1e3:>14.2f}{r:>10.2f}  {goal}")


if __name__ == "__main__":
    main()
