"""The search configuration: one frozen dataclass, filled from defaults, a TOML file and flags.

Every field is a CLI flag (``--population 16``) and a TOML key (``population = 16``); the
resolved config is written to the run directory, and a run is identified by it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SearchConfig", "load_toml", "FIELD_HELP", "RUN_IDENTITY_EXCLUDED"]

SELECTION_RULES = ("match-fp32", "accuracy", "smallest")
EXPANSION_MODES = ("auto", "off", "strict")
OPTIMIZERS = ("adam", "sgd")
SAMPLERS = ("nsga2", "random")
OBJECTIVE_SETS = (("error", "size"), ("error", "size", "bops"))
FINAL_INITS = ("scratch", "widen")
FITNESSES = ("widen", "scratch", "supernet", "quant-supernet")
RANGE_MODES = ("ema", "lsq", "fixed")  # mogaqnn.quant.RANGE_MODES; config imports no torch
MIN_BITS, MAX_BITS = 1, 16
MIN_ACT_BITS = 2  # activations: 1 bit has no signed code but zero (int_range(1, True))

# Keys that may change between two invocations of the same run (they say how to run it,
# not what it computes): resuming with another device or worker count is the same run.
RUN_IDENTITY_EXCLUDED = frozenset(
    {"out", "device", "devices", "workers", "storage", "study", "progress", "threads"}
)


@dataclass(frozen=True)
class SearchConfig:
    # what to search
    model: str = "lenet5"
    dataset: str = "mnist5k"
    data_dir: str | None = None
    image_size: int | None = None
    channels: int | None = None
    out: str = "runs/mogaqnn"
    seed: int = 0
    # search space
    weight_bits: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
    act_bits: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
    expansion_ratios: tuple[float, ...] = (1.0, 1.25, 1.5, 1.75, 2.0)
    expansion: str = "auto"
    # NSGA-II
    population: int = 16
    generations: int = 8
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    mutation_prob: float | None = None
    sampler: str = "nsga2"
    # data
    val_fraction: float = 0.1
    search_train_samples: int | None = 2000
    search_val_samples: int | None = None
    augment_crop: int = 0
    # training budgets (epochs) and optimisation
    pretrain_epochs: float = 8.0
    search_epochs: float = 1.0
    final_epochs: float = 4.0
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 2e-3
    qat_lr: float = 5e-4
    weight_decay: float = 0.0
    widen_noise: float = 0.01
    # width: how the final model and the fitness reach an individual's width
    final_init: str = "scratch"
    fitness: str = "supernet"  # the best rank fidelity per second: fitness/_starts.py
    supernet_qat_fraction: float = 0.25  # quant-supernet, by rank fidelity: fitness/_starts.py
    bn_recalibration_batches: int = 4  # quant-supernet: fitness/_starts.py
    # quantized training recipe
    quant_ranges: str = "lsq"
    lsq_scale_lr: float = 10.0  # by val at both budgets: benchmarks/results/lsq_scale_lr.txt
    distill_weight: float = 0.0
    distill_temperature: float = 4.0
    bn_reestimate_batches: int = 0
    early_stop_sigmas: float = 0.0
    # final choice
    # The most accurate of 3 final-trained candidates at >= 4x: by val on LeNet-5 MNIST-5k,
    # six seeds (benchmarks/results/size_target.md), +0.46 pp over the stronger FP32 where
    # match-fp32 with one candidate was -0.29; 2 / 4 candidates +0.29 / +0.50.
    select: str = "accuracy"
    min_compression: float | None = 4.0
    max_size_kib: float | None = None
    final_candidates: int = 3
    claim_compressions: tuple[float, ...] = (4.0, 8.0)
    uniform_qat_bits: tuple[int, ...] = (8, 4, 2)
    # first generation and objectives (issue 12)
    seed_population: bool = True
    objectives: tuple[str, ...] = ("error", "size")
    # how to run
    device: str = "auto"
    progress: bool = True
    storage: str | None = None
    study: str = "mogaqnn"
    workers: int = 1
    devices: tuple[str, ...] = ()
    threads: int | None = None

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def identity(self) -> dict[str, Any]:
        """The part of the config that defines what a run computes."""
        return {k: v for k, v in self.to_dict().items() if k not in RUN_IDENTITY_EXCLUDED}

    def replace(self, **changes: Any) -> SearchConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "the config") -> SearchConfig:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(
                    f"{source} has an unknown key {key!r}; known keys: {', '.join(known)}"
                )
            kwargs[name] = _coerce(name, value, source)
        return cls(**kwargs)


FIELD_HELP: dict[str, str] = {
    "model": "zoo model name (see 'mogaqnn models'), 'timm:NAME' (needs mogaqnn[timm]), "
    "'torchvision:NAME' (needs mogaqnn[torchvision]; the first conv is rebuilt for the "
    "dataset's channels) or 'package.module:factory'",
    "dataset": "dataset name (see 'mogaqnn datasets')",
    "data_dir": "folder searched first for dataset files",
    "image_size": "side of the square images of an imagefolder: dataset (default: as found)",
    "channels": "1 or 3 channels for an imagefolder: dataset (default: as found)",
    "out": "run directory (created; an existing one of the same run is resumed)",
    "seed": "seed of the splits, the pretraining, NSGA-II and every evaluation",
    "weight_bits": "weight bit widths to choose from, per layer (1..16)",
    "act_bits": "input activation bit widths to choose from, per layer (2..16)",
    "expansion_ratios": "width ratios to choose from, per expansion group",
    "expansion": "auto: widen what can be widened; off: bits only; strict: fail if a layer "
    "cannot be widened",
    "population": "NSGA-II population size (at least 4)",
    "generations": "number of generations, the first one random (at least 1)",
    "crossover_prob": "probability that a child is made by crossover",
    "swapping_prob": "probability that uniform crossover takes a gene from the other parent",
    "mutation_prob": "per-gene mutation probability (default 1/number of genes)",
    "sampler": "nsga2 (MOGAQNN) or random (Optuna's RandomSampler over the same space and "
    "number of evaluations, the baseline of benchmarks/paper_table.py). A random search is "
    "counted in generations of the population, but nothing evolves, so its final choice is "
    "made from the feasible front of every evaluation",
    "val_fraction": "fraction of the training data held out as the validation split",
    "search_train_samples": "stratified training subset for each evaluation (0: all)",
    "search_val_samples": "stratified validation subset for each evaluation (0 or none: all)",
    "augment_crop": "random-crop padding in pixels during training (0: off); colour datasets "
    "are also flipped when it is on",
    "pretrain_epochs": "epochs of FP32 pretraining of the base model",
    "search_epochs": "QAT epochs per evaluated individual (fractions allowed; 0: none, the "
    "individual's accuracy as its start quantized and calibrated: meant for the quant-supernet "
    "fitness, whose slices were trained quantized)",
    "final_epochs": "QAT epochs of the chosen individual (the FP32 baseline gets as many more)",
    "batch_size": "training batch size",
    "optimizer": "adam or sgd (momentum 0.9, Nesterov)",
    "lr": "learning rate of the FP32 pretraining",
    "qat_lr": "learning rate of every QAT run and of the final training of both the chosen "
    "individual and the FP32 baseline (same recipe for both)",
    "weight_decay": "weight decay of conv and linear weights",
    "widen_noise": "relative noise on copied channels, to break their symmetry",
    "quant_ranges": "how quantization ranges follow training: ema (moving-average activation "
    "ranges, weight clipping re-chosen every step), lsq (learned step sizes, for quantizers "
    "of at most 8 bits; wider ones keep the calibrated range) or fixed (set once by "
    "calibration)",
    "lsq_scale_lr": "learning rate of each of LSQ's learned scales, as a multiple of the "
    "training's times the scale's own size, so that under Adam every scale moves by about this "
    "times the learning rate of itself per step, whatever its bit width. Under SGD it scales "
    "the training's rate, which LSQ's gradient scaling balances",
    "distill_weight": "weight of distillation from the FP32 base (KL at distill_temperature, "
    "times T squared, mixed with cross-entropy) in every QAT run and in the final training "
    "(0: off). The final training trains the FP32 baseline twice either way, plain and "
    "distilled (at this weight, or 0.5 when it is 0), and judges the claim against the stronger",
    "distill_temperature": "softmax temperature of the distillation targets",
    "bn_reestimate_batches": "training batches that re-estimate BatchNorm statistics after "
    "widening and quantizing, before QAT (0: off)",
    "early_stop_sigmas": "an individual's val pass stops once its accuracy so far is this many "
    "standard errors (Wilson) below an individual at most its size already evaluated: it is "
    "clearly dominated, and its accuracy on the images seen is recorded (0: every pass whole; "
    "with several workers a stop depends on what the others have finished)",
    "final_init": "scratch: each final candidate is trained from a fresh initialisation "
    "at its width (pretraining as the base, kept under final/, then the final QAT); "
    "widen: the base widened by copying channels, then the final QAT",
    "fitness": "how an individual reaches its width before its QAT fine-tune: widen (copies "
    "of the base's channels), scratch (float training from scratch on the search subset), "
    "supernet (a slice of one weight-sharing network trained once per run, supernet.pt) or "
    "quant-supernet (a slice at its widths and bits of one network trained once per run "
    "quantization-aware over widths and bits, quant_supernet.pt, with learned steps per layer "
    "and bit width: quantized and calibrated already, so search_epochs may be 0)",
    "supernet_qat_fraction": "quant-supernet fitness: the fraction of its pretrain_epochs of "
    "training that is quantization-aware (widths and bits sampled per step), after the float "
    "sandwich over widths of the rest (1: quantization-aware from the start, the steps "
    "calibrated on the initial weights)",
    "bn_recalibration_batches": "quant-supernet fitness: training batches (seeded, from the "
    "search's training subset) that recalibrate a slice's BatchNorm statistics at its widths "
    "and bits before its val pass (0: the whole subset)",
    "select": "rule choosing the final individual from the last front: match-fp32 (the "
    "smallest whose val accuracy reaches the FP32 reference, else the most accurate), "
    "accuracy (highest val accuracy, ties to the smaller) or smallest. The FP32 reference is "
    "the FP32 architecture started as every individual starts and fine-tuned by the same "
    "recipe, measured once per run; result.json's selection says which rule chose and why",
    "min_compression": "size target as a compression against the FP32 model (e.g. 4: at least "
    "4x smaller); the chosen model meets it, and NSGA-II prefers individuals that do (a "
    "constraint, like max_size_kib; both may be given)",
    "max_size_kib": "size limit on the chosen individual, in KiB (also an NSGA-II constraint)",
    "final_candidates": "individuals trained by the final recipe (k): the rule's choice, the "
    "best at each of claim_compressions, the best bits-for-width seed under the size target, "
    "then spread over the last front; the rule chooses among them by their final val "
    "accuracy, and every one is tested once",
    "uniform_qat_bits": "uniform b-bit models (weights and activations, every ratio 1.0) "
    "trained from the FP32 base by the final QAT and tested beside the candidates, the "
    "baseline a mixed policy must beat (empty: none)",
    "claim_compressions": "compressions at which result.json and the table report the claim: "
    "the final-trained candidate with the highest final val accuracy at least that much smaller "
    "than FP32, against the stronger FP32 baseline on test",
    "seed_population": "put uniform individuals (8, 4, 3, 2 weight bits as allowed and the "
    "smallest allowed, 8-bit activations, ratio 1.0) into the first generation beside the "
    "random ones",
    "objectives": "what NSGA-II minimises: error,size (the paper's) or error,size,bops "
    "(bit operations: MACs x weight bits x activation bits, reported for every individual "
    "either way)",
    "device": "auto, cpu, cuda or cuda:N",
    "progress": "show the progress bar and the progress lines on stderr",
    "storage": "Optuna storage URL (default: study.journal in the run directory)",
    "study": "study name in the storage (several runs can share one database)",
    "workers": "worker processes evaluating individuals in parallel",
    "devices": "devices of the workers, e.g. cuda:0,cuda:1 (worker i runs on device i mod n; "
    "default: --device for all)",
    "threads": "torch threads of each process, printed at start (0 or none: the cores given "
    "to the process, or OMP_NUM_THREADS when set; 1 per worker when workers > 1)",
}


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {p} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    # A [search] table is accepted as well as top-level keys.
    return dict(data.get("search", data)) if isinstance(data.get("search"), dict) else data


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a TOML/CLI value into the field's type, with a clear message when it cannot."""
    default = next(f for f in fields(SearchConfig) if f.name == name)
    kind = default.type if isinstance(default.type, str) else str(default.type)
    try:
        if kind.startswith("tuple[int"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(int(v) for v in items if str(v).strip() != "")
        if kind.startswith("tuple[str"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip() for v in items if str(v).strip() != "")
        if kind.startswith("tuple[float"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(float(v) for v in items if str(v).strip() != "")
        if value is None or (isinstance(value, str) and value.lower() in ("none", "")):
            if "None" in kind:
                return None
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            v = int(value)
            return None if ("None" in kind and v == 0) else v
        if kind.startswith("float"):
            return float(value)
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if kind.startswith("str"):
            if not isinstance(value, (str, Path)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{source} gives {name} = {value!r}, which is not a valid {kind}"
        ) from exc
    return value


def _validate(c: SearchConfig) -> None:
    for name, low in (("weight_bits", MIN_BITS), ("act_bits", MIN_ACT_BITS)):
        choices = getattr(c, name)
        if not choices:
            raise ConfigError(f"{name} is an empty set; give at least one bit width, e.g. 4,8")
        bad = [b for b in choices if not low <= b <= MAX_BITS]
        if bad:
            why = " (a signed 1-bit activation code has no level but zero)" if low > 1 else ""
            raise ConfigError(
                f"{name} holds {bad[0]}, outside {low}..{MAX_BITS}; bit widths must lie "
                f"in {low}..{MAX_BITS}{why}"
            )
    if not c.expansion_ratios:
        raise ConfigError("expansion_ratios is an empty set; give at least one ratio, e.g. 1.0")
    if any(r < 1.0 for r in c.expansion_ratios):
        raise ConfigError(
            f"expansion_ratios holds {min(c.expansion_ratios)}; ratios must be at least 1.0"
        )
    if c.population < 4:
        raise ConfigError(f"population is {c.population}; it must be at least 4")
    if c.generations < 1:
        raise ConfigError(f"generations is {c.generations}; it must be at least 1")
    for name in ("crossover_prob", "swapping_prob"):
        if not 0.0 <= getattr(c, name) <= 1.0:
            raise ConfigError(f"{name} is {getattr(c, name)}; it must lie in [0, 1]")
    if c.mutation_prob is not None and not 0.0 <= c.mutation_prob <= 1.0:
        raise ConfigError(f"mutation_prob is {c.mutation_prob}; it must lie in [0, 1]")
    if not 0.0 < c.val_fraction < 1.0:
        raise ConfigError(f"val_fraction is {c.val_fraction}; it must lie in (0, 1)")
    for name in ("pretrain_epochs", "search_epochs", "final_epochs"):
        if getattr(c, name) < 0:
            raise ConfigError(f"{name} is {getattr(c, name)}; it must not be negative")
    if not 0.0 < c.supernet_qat_fraction <= 1.0:
        raise ConfigError(
            f"supernet_qat_fraction is {c.supernet_qat_fraction}; it must lie in (0, 1]"
        )
    if c.bn_recalibration_batches < 0:
        raise ConfigError(
            f"bn_recalibration_batches is {c.bn_recalibration_batches}; it must not be negative"
        )
    for name in ("search_train_samples", "search_val_samples"):
        v = getattr(c, name)
        if v is not None and v < 1:
            raise ConfigError(f"{name} is {v}; give a positive number of samples or 0 for all")
    if c.batch_size < 1:
        raise ConfigError(f"batch_size is {c.batch_size}; it must be at least 1")
    if c.lr <= 0 or c.qat_lr <= 0:
        raise ConfigError("lr and qat_lr must be positive")
    if c.select not in SELECTION_RULES:
        raise ConfigError(f"select is {c.select!r}; choose one of {', '.join(SELECTION_RULES)}")
    if c.expansion not in EXPANSION_MODES:
        raise ConfigError(
            f"expansion is {c.expansion!r}; choose one of {', '.join(EXPANSION_MODES)}"
        )
    if c.sampler not in SAMPLERS:
        raise ConfigError(f"sampler is {c.sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if c.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer is {c.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if c.final_init not in FINAL_INITS:
        raise ConfigError(f"final_init is {c.final_init!r}; choose one of {', '.join(FINAL_INITS)}")
    if c.fitness not in FITNESSES:
        raise ConfigError(f"fitness is {c.fitness!r}; choose one of {', '.join(FITNESSES)}")
    if c.max_size_kib is not None and c.max_size_kib <= 0:
        raise ConfigError(f"max_size_kib is {c.max_size_kib}; it must be positive")
    if c.min_compression is not None and not c.min_compression >= 1.0:
        raise ConfigError(
            f"min_compression is {c.min_compression}; give a compression of at least 1 "
            "(e.g. 4 for a model at least 4x smaller than FP32)"
        )
    bad_uniform = [b for b in c.uniform_qat_bits if not MIN_ACT_BITS <= b <= MAX_BITS]
    if bad_uniform:
        raise ConfigError(
            f"uniform_qat_bits holds {bad_uniform[0]}; uniform baselines quantize weights and "
            f"activations alike, at {MIN_ACT_BITS}..{MAX_BITS} bits"
        )
    if c.final_candidates < 1:
        raise ConfigError(f"final_candidates is {c.final_candidates}; it must be at least 1")
    if any(not t >= 1.0 for t in c.claim_compressions):
        raise ConfigError(
            f"claim_compressions holds {min(c.claim_compressions)}; compressions must be at least 1"
        )
    if c.workers < 1:
        raise ConfigError(f"workers is {c.workers}; it must be at least 1")
    if len(c.devices) > c.workers:
        raise ConfigError(
            f"devices lists {len(c.devices)} devices but workers is {c.workers}; give "
            f"--workers {len(c.devices)} to run one worker per device"
        )
    if c.threads is not None and c.threads < 1:
        raise ConfigError(f"threads is {c.threads}; give at least 1, or 0 for the default")
    if not c.study.strip():
        raise ConfigError("study is empty; give a study name, e.g. mogaqnn")
    if c.quant_ranges not in RANGE_MODES:
        raise ConfigError(
            f"quant_ranges is {c.quant_ranges!r}; choose one of {', '.join(RANGE_MODES)}"
        )
    if not (c.lsq_scale_lr > 0 and math.isfinite(c.lsq_scale_lr)):
        raise ConfigError(f"lsq_scale_lr is {c.lsq_scale_lr}; it must be a positive number")
    if not 0.0 <= c.distill_weight <= 1.0:
        raise ConfigError(f"distill_weight is {c.distill_weight}; it must lie in [0, 1]")
    if c.distill_temperature <= 0:
        raise ConfigError(f"distill_temperature is {c.distill_temperature}; it must be positive")
    if c.bn_reestimate_batches < 0:
        raise ConfigError(
            f"bn_reestimate_batches is {c.bn_reestimate_batches}; it must not be negative"
        )
    if not (c.early_stop_sigmas >= 0 and math.isfinite(c.early_stop_sigmas)):
        raise ConfigError(
            f"early_stop_sigmas is {c.early_stop_sigmas}; give a number of standard errors "
            "(e.g. 3) or 0 for whole val passes"
        )
    if c.augment_crop < 0:
        raise ConfigError(f"augment_crop is {c.augment_crop}; it must not be negative")
    if c.objectives not in OBJECTIVE_SETS:
        raise ConfigError(
            f"objectives is {','.join(c.objectives)!r}; choose "
            + " or ".join(repr(",".join(o)) for o in OBJECTIVE_SETS)
        )


def _shown_default(value: Any) -> str:
    """A default as the reference shows it: tuples comma-joined, None as none, bools lower."""
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def reference_markdown() -> str:
    """The configuration reference (docs/configuration.md), rendered from SearchConfig's
    fields, their defaults and FIELD_HELP: ``python -m mogaqnn.config > docs/configuration.md``."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from mogaqnn/config.py by `make docs` "
        "(python -m mogaqnn.config > docs/configuration.md); do not edit by hand. -->",
        "",
        "Every key is a flag of `mogaqnn search` and a key of the TOML file given with "
        "`--config`, at the top level or under `[search]`; flags given on the command line "
        "override the file. A list is written comma-separated as a flag "
        "(`--weight-bits 2,4,8`) and as a TOML array or string in the file. The same keys are "
        "the keyword arguments of `mogaqnn.search(...)` and the fields of "
        "`mogaqnn.SearchConfig`.",
        "",
        "```toml",
        "[search]",
        'model = "resnet20"',
        'dataset = "fashion-mnist"',
        "weight_bits = [2, 4, 8]",
        "population = 32",
        "```",
        "",
        "| key | flag | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    defaults = SearchConfig()
    for f in fields(SearchConfig):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        flags = f"`{flag}` / `--no-{flag[2:]}`" if isinstance(value, bool) else f"`{flag}`"
        meaning = FIELD_HELP[f.name].replace("|", "\\|")
        lines.append(f"| `{f.name}` | {flags} | `{_shown_default(value)}` | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
