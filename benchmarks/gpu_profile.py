"""Where the time goes on a GPU: training steps and fitness evaluations, with host syncs.

For each model (LeNet-5 and ResNet-20 on MNIST-5k by default), with the images resident on
the device: milliseconds per training step of the FP32 base, of the float supernet (four
widths per step) and of the quant supernet (four widths and bit settings per step), timed
between ``torch.cuda.synchronize()`` calls after a warm-up; the host syncs per step that
torch reports (``torch.cuda.set_sync_debug_mode("warn")``, warnings counted over two runs of
different lengths: the difference per extra step, so setup syncs do not count); peak memory;
the one-off training and the evaluations per second of each fitness (``widen`` and
``supernet`` with their ``search_epochs`` of QAT, ``quant-supernet`` at 0); and the top
kernels of a few quant-supernet steps under ``torch.profiler``.

    python benchmarks/gpu_profile.py                        # CUDA, under ~5 minutes on an H100
    python benchmarks/gpu_profile.py --device cpu --smoke   # seconds: does everything run

The supernets here are trained for a fraction of an epoch: what is measured is time, not
accuracy. Prints its figures with the commit, the device and torch's version.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from _provenance import code_commit  # benchmarks/_provenance.py, beside this file
from fitness_fidelity import random_genomes  # beside this file

import mogaqnn
from mogaqnn.data import DatasetSplits, LabelledImages, load_dataset
from mogaqnn.expand import fresh_at_width, scaled_graph, widened_width
from mogaqnn.fitness import (
    calibrate_quant_supernet,
    make_evaluator,
    make_quant_supernet,
    train_quant_supernet,
    train_supernet,
)
from mogaqnn.models import create_model
from mogaqnn.run import expansion_graph, search_space
from mogaqnn.train import TrainSettings, train_model

FITNESSES = ("widen", "supernet", "quant-supernet")


def on_device(data: DatasetSplits, device: torch.device) -> DatasetSplits:
    """The splits with their images on ``device`` (labels stay on the host: subsets are
    drawn from them with numpy; the training loop moves them once)."""

    def move(part: LabelledImages) -> LabelledImages:
        return LabelledImages(part.x.to(device), part.y)

    return dataclasses.replace(data, train=move(data.train), val=move(data.val),
                               test=move(data.test))  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_syncs(device: torch.device, run: Callable[[], None]) -> int | None:
    """Host syncs torch warns about while ``run`` runs (None off CUDA)."""
    if device.type != "cuda":
        run()
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@dataclasses.dataclass
class Trainee:
    name: str
    make: Callable[[], torch.nn.Module]  # a fresh model, ready to train
    train: Callable[[torch.nn.Module, float], None]  # train it for some epochs


def profile_training(t: Trainee, data: LabelledImages, args, device: torch.device) -> str:
    steps_per_epoch = -(-len(data) // args.batch_size)

    def steps(epochs: float) -> int:
        return max(1, round(epochs * steps_per_epoch))

    t.train(t.make(), args.warmup_epochs)  # kernels chosen, caches filled
    short, long = args.epochs / 4, args.epochs / 2
    n_short = count_syncs(device, lambda: t.train(t.make(), short))
    n_long = count_syncs(device, lambda: t.train(t.make(), long))
    model = t.make()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    t.train(model, args.epochs)
    sync(device)
    ms = (time.perf_counter() - t0) * 1000 / steps(args.epochs)
    if n_short is None or n_long is None:
        syncs = "n/a"
    else:
        syncs = f"{(n_long - n_short) / max(steps(long) - steps(short), 1):.2f}"
    memory = (f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
              if device.type == "cuda" else "n/a")  # fmt: skip
    return (f"| {t.name} | {steps(args.epochs)} | {ms:.2f} | {syncs} | {memory} | "
            f"{n_long if n_long is not None else 'n/a'} |")  # fmt: skip


def trainees(model_name: str, data: DatasetSplits, args, device: torch.device) -> list[Trainee]:
    cfg = mogaqnn.SearchConfig(model=model_name, batch_size=args.batch_size)
    base = create_model(model_name, in_channels=data.in_channels, num_classes=data.num_classes,
                        image_size=data.image_size)  # fmt: skip
    graph = expansion_graph(base, data.train.x[:2].cpu(), "auto")
    space = search_space(cfg, base, graph)
    widest = [max(cfg.expansion_ratios)] * len(graph.groups)
    wide_graph = scaled_graph(graph, widest)
    choices = [sorted({widened_width(g.width, r) for r in cfg.expansion_ratios})
               for g in graph.groups]  # fmt: skip
    calibration = data.train.x[:128]

    def settings(epochs: float) -> TrainSettings:
        return TrainSettings(epochs=epochs, lr=cfg.lr, batch_size=args.batch_size)

    def fp32(model, epochs):
        train_model(model, data.train, settings(epochs), seed=0, device=device)

    def float_supernet(model, epochs):
        train_supernet(model, wide_graph, choices, data.train, settings(epochs), seed=0,
                       device=device)  # fmt: skip

    def quant(model, epochs):
        train_quant_supernet(model, wide_graph, choices, space, data.train, settings(epochs),
                             seed=0, device=device)  # fmt: skip

    def make_quant():
        model = make_quant_supernet(fresh_at_width(base, graph, widest, seed=0), space)
        calibrate_quant_supernet(model.to(device), calibration, space)
        return model

    return [
        Trainee(f"{model_name} FP32 base", lambda: copy.deepcopy(base).to(device), fp32),
        Trainee(f"{model_name} float supernet",
                lambda: fresh_at_width(base, graph, widest, seed=0).to(device), float_supernet),
        Trainee(f"{model_name} quant supernet", make_quant, quant),
    ]  # fmt: skip


def profile_fitnesses(
    model_name: str, data: DatasetSplits, args, device: torch.device
) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as root:
        cfg = mogaqnn.SearchConfig(model=model_name, out=root, pretrain_epochs=args.epochs,
                                   batch_size=args.batch_size, progress=False)  # fmt: skip
        base = create_model(model_name, in_channels=data.in_channels,
                            num_classes=data.num_classes, image_size=data.image_size)  # fmt: skip
        base.to(device)
        graph = expansion_graph(base, data.train.x[:2], "auto")
        space = search_space(cfg, base, graph)
        genomes = random_genomes(space, args.evaluations + 1, seed=0)
        for fitness in FITNESSES:
            epochs = 0 if fitness == "quant-supernet" else cfg.search_epochs
            fcfg = cfg.replace(fitness=fitness, search_epochs=epochs)
            sync(device)
            t0 = time.perf_counter()
            ev = make_evaluator(fcfg, base, graph, space, data, device, None, root=Path(root),
                                pretrain=True)  # fmt: skip
            sync(device)
            one_off = time.perf_counter() - t0
            ev(genomes[-1])  # warm-up: the teacher's logits, kernels
            sync(device)
            t0 = time.perf_counter()
            parts = [ev(g) for g in genomes[: args.evaluations]]
            sync(device)
            seconds = (time.perf_counter() - t0) / len(parts)
            build = sum(p.build_seconds for p in parts) / len(parts)
            train = sum(p.train_seconds for p in parts) / len(parts)
            val = sum(p.val_seconds for p in parts) / len(parts)
            rows.append(f"| {model_name} {fitness} (search_epochs {fcfg.search_epochs:g}) | "
                        f"{one_off:.1f} | {seconds:.3f} | {1 / seconds:.1f} | {build:.3f} | "
                        f"{train:.3f} | {val:.3f} |")  # fmt: skip
    return rows


def kernel_table(model_name: str, data: DatasetSplits, args, device: torch.device) -> str:
    """The top operators of a few quant-supernet steps (self device time, else CPU)."""
    from torch.profiler import ProfilerActivity, profile

    t = trainees(model_name, data, args, device)[2]
    model = t.make()
    t.train(model, args.warmup_epochs)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        t.train(model, args.warmup_epochs)
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=args.kernels)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--models", default="lenet5,resnet20")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--epochs", type=float, default=1.0, help="of each timed training")
    p.add_argument("--warmup-epochs", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=mogaqnn.SearchConfig.batch_size)
    p.add_argument("--evaluations", type=int, default=8, help="timed per fitness")
    p.add_argument("--kernels", type=int, default=15, help="rows of the profiler table")
    p.add_argument("--smoke", action="store_true",
                   help="a few steps of LeNet-5: does everything run (CPU: seconds)")  # fmt: skip
    args = p.parse_args(argv)
    if args.smoke:
        args.models, args.epochs, args.warmup_epochs = "lenet5", 0.04, 0.02
        args.evaluations, args.kernels = 1, 5
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("CUDA is not available here; give --device cpu (with --smoke for a quick check)")
    if device.type == "cpu":
        torch.set_num_threads(1)
    commit = code_commit()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"commit {commit}, device {device} ({name or platform.machine()}), torch "
          f"{torch.__version__}, dataset {args.dataset} on the device, batch {args.batch_size}, "
          f"{args.epochs:g} epoch(s) timed per training", flush=True)  # fmt: skip
    start = time.perf_counter()
    data = on_device(load_dataset(args.dataset), device)
    if args.smoke:  # a few batches are enough to run every path
        train = LabelledImages(data.train.x[:512], data.train.y[:512])
        val = LabelledImages(data.val.x[:128], data.val.y[:128])
        data = dataclasses.replace(data, train=train, val=val)
    models = [m for m in args.models.split(",") if m]
    print("\n| training | steps | ms / step | host syncs / step | peak memory | syncs (run) |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    for m in models:
        for t in trainees(m, data, args, device):
            print(profile_training(t, data.train, args, device), flush=True)
    print("\n| fitness | one-off s | s / evaluation | evaluations / s | build s | train s "
          "| val s |\n| --- | --- | --- | --- | --- | --- | --- |", flush=True)  # fmt: skip
    for m in models:
        for row in profile_fitnesses(m, data, args, device):
            print(row, flush=True)
    for m in models:
        print(f"\ntop operators of {m}'s quant-supernet steps ({args.warmup_epochs:g} epoch):")
        print(kernel_table(m, data, args, device), flush=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
