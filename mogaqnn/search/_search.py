"""One search, end to end: data, FP32 base, NSGA-II, final choice, final training, results."""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from optuna.samplers import NSGAIISampler
from torch import nn

from .._version import __version__
from ..config import SearchConfig
from ..data import Augmentation, DatasetSplits
from ..errors import MogaqnnError, RunDirError
from ..expand import ModelGraph
from ..genome import Genome, SearchSpace
from ..models._factory import resolve_model
from ..run import (
    RunDir,
    TrainingProgress,
    atomic_torch_save,
    atomic_write_text,
    augmentation_for,
    expansion_graph,
    load_config_dataset,
    load_weights,
    read_checkpoint,
    resolve_device,
    search_space,
    subset,
    train_settings,
)
from ..size import KIB_BITS, bit_operations, fp32_size_bits, layer_macs, model_size
from ..train import Teacher, TrainingDiverged, evaluate_accuracy, train_model
from ._claims import open_claims
from ._evaluate import Evaluator
from ._fitness import bops_counter, make_evaluator
from ._loop import (
    clone_retries,
    evaluate_until_done,
    generation_summary,
    next_step,
    rerun_interrupted,
    wait_for_running,
)
from ._objective import Objective
from ._reference import fp32_reference_accuracy
from ._sampler import make_sampler, seed_first_generation
from ._select import choose
from ._store import bind_run, open_study
from ._threads import describe_threads, process_threads, torch_threads
from ._trials import FAIL_REASON, completed, pareto_front, trial_generation
from ._width import final_start
from ._workers import run_workers, sha256_file, worker_specs

__all__ = ["Search", "SearchResult"]

# Distillation weight of the distilled FP32 baseline when the run itself does not distil
# (distill_weight 0): the claim is judged against the stronger FP32 baseline either way.
BASELINE_DISTILL_WEIGHT = 0.5


@dataclass(frozen=True)
class _Setup:
    data: DatasetSplits
    base: nn.Module
    graph: ModelGraph
    space: SearchSpace
    augmentation: Augmentation
    evaluator: Evaluator
    device: torch.device
    pretrain_s: float


@dataclass(frozen=True)
class SearchResult:
    """What result.json holds, with the run directory it came from."""

    run_dir: Path
    data: dict[str, Any]

    @property
    def chosen(self) -> dict[str, Any]:
        return self.data["chosen"]

    @property
    def fp32(self) -> dict[str, Any]:
        return self.data["fp32"]

    def table(self) -> str:
        return format_result_table(self.data)


class Search:
    """A MOGAQNN search. ``model`` and ``data`` override the config's names for API users."""

    def __init__(
        self,
        config: SearchConfig | None = None,
        *,
        model: nn.Module | str | None = None,
        data: DatasetSplits | None = None,
        **overrides: Any,
    ) -> None:
        config = config or SearchConfig()
        if isinstance(model, str):  # a zoo name or 'module:factory', like the CLI's --model
            overrides["model"], model = model, None
        if overrides:
            config = SearchConfig.from_mapping({**config.to_dict(), **overrides}, "search()")
        if model is not None:
            config = config.replace(model=f"python:{type(model).__qualname__}")
        if data is not None:
            config = config.replace(dataset=f"python:{data.name}")
        self.config = config
        self._user_model = model
        self._user_data = data
        self.run_dir = RunDir(config.out)
        self.log = _Printer(config.progress)
        self.finished_setup: _Setup | None = None  # set by a run that searched

    @property
    def user_model(self) -> nn.Module | None:
        """The module given as ``model=`` (None when the config names the model)."""
        return self._user_model

    # -- the pipeline --------------------------------------------------------------
    def run(self) -> SearchResult:
        """Run the search, or continue the one its run directory holds."""
        resumed = self.run_dir.prepare(self.config)
        with self.run_dir.exclusive(), torch_threads(process_threads(self.config, worker=False)):
            return self._run(resumed)

    def _run(self, resumed: bool) -> SearchResult:
        cfg = self.config
        start = time.perf_counter()
        if resumed and self.run_dir.result.exists():
            self.log(f"{self.run_dir.root} already holds a finished run; its result:")
            return self._load_result()
        if resumed:
            stored = self.run_dir.load()
            if (stored.storage, stored.study) != (cfg.storage, cfg.study):
                raise RunDirError(
                    f"{self.run_dir.root} keeps its study in storage {stored.storage or 'journal'}"
                    f" as {stored.study!r}; resume it with 'mogaqnn resume {self.run_dir.root}'"
                )
            self.log(f"resuming the run in {self.run_dir.root}")
        setup = self.setup(pretrain=True)
        data, base, graph, space = setup.data, setup.base, setup.graph, setup.space
        evaluator, augmentation, device = setup.evaluator, setup.augmentation, setup.device
        pretrain_s = setup.pretrain_s
        t0 = time.perf_counter()
        study, sampler = self._evolve(setup)
        search_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        if isinstance(sampler, NSGAIISampler):
            last_population = sampler.get_parent_population(study, cfg.generations)
        else:  # random sampling does not evolve: every evaluation is its population
            last_population = completed(study)
        fp32_reference = None
        if cfg.select == "match-fp32":
            fp32_reference = fp32_reference_accuracy(study, evaluator)
        choice = choose(
            last_population, completed(study), cfg.select, cfg.max_size_kib, fp32_reference
        )
        chosen, front = choice.trial, choice.front
        self.log(
            f"chosen: trial {chosen.number}, val accuracy "
            f"{chosen.user_attrs['val_accuracy']:.2%}, {chosen.user_attrs['size_kib']:.2f} KiB "
            f"({cfg.select} rule: {choice.reason}); "
            f"final training of {cfg.final_epochs:g} epochs and the FP32 baseline"
        )
        final = self._final_models(evaluator, chosen, front, fp32_reference, base, data,
                                   augmentation, device)  # fmt: skip
        chosen = final["chosen"]["trial"]  # the next of the front when the first diverged
        genome = space.decode(chosen.params)
        final_s = time.perf_counter() - t0

        result = self._result_dict(
            data, base, graph, space, genome, chosen, study, last_population, front, final,
            {"pretrain_s": pretrain_s, "search_s": search_s, "final_s": final_s,
             "total_s": time.perf_counter() - start, "resumed": resumed},
        )  # fmt: skip
        result["chosen"]["bops"] = chosen.user_attrs.get("bops")
        result["fp32"]["bops"] = bit_operations(base, layer_macs(base, data.val.x[:1].to(
            next(base.parameters()).device)))  # fmt: skip
        result["selection"] = {"rule": cfg.select, "applied": choice.rule,
                               "reason": choice.reason,
                               "fp32_search_val_accuracy": fp32_reference}  # fmt: skip
        self._write_pareto_csv(study, space, last_population, front, chosen)
        atomic_write_text(self.run_dir.result, json.dumps(result, indent=2) + "\n")
        for partial in self.run_dir.root.glob("*.partial"):  # the final trainings' progress
            partial.unlink()
        self.finished_setup = setup  # what the report reuses (mogaqnn.search composes them)
        return SearchResult(self.run_dir.root, result)

    def pretrain(self) -> nn.Module:
        """Only the FP32 base, trained as a search trains it (same seed, data and recipe)
        and kept in the run directory, where a later search of this config reads it instead
        of training it again; read back when it is there. What a baseline that needs no
        search (uniform QAT) starts from, without the search's supernet or study."""
        self.run_dir.prepare(self.config)
        with self.run_dir.exclusive(), torch_threads(process_threads(self.config, worker=False)):
            return self._data_and_base(resolve_device(self.config.device), pretrain=True)[1]

    def _data_and_base(
        self, device: torch.device, *, pretrain: bool
    ) -> tuple[DatasetSplits, nn.Module, float]:
        """The data and the FP32 base (seeded first, as every search is), and its seconds."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        data = self._user_data or load_config_dataset(cfg)
        t0 = time.perf_counter()
        base = self._base_model(data, device, pretrain=pretrain)
        return data, base, time.perf_counter() - t0

    def setup(self, *, pretrain: bool) -> _Setup:
        """Data, FP32 base, expansion graph, search space and evaluator. Workers call it
        with ``pretrain=False``: they read the base that the coordinator trained."""
        cfg = self.config
        device = resolve_device(cfg.device)
        eval_device = resolve_device(cfg.devices[0]) if cfg.devices else device
        data, base, pretrain_s = self._data_and_base(device, pretrain=pretrain)
        example = data.train.x[:2].to(next(base.parameters()).device)
        graph = expansion_graph(base, example, cfg.expansion, note=self.log)
        space = search_space(cfg, base, graph)
        augmentation = augmentation_for(cfg, data)
        evaluator = make_evaluator(
            cfg, base, graph, space, data, eval_device, self.run_dir.evaluations_log,
            root=self.run_dir.root, pretrain=pretrain, note=self.log,
        )  # fmt: skip
        return _Setup(data, base, graph, space, augmentation, evaluator, device, pretrain_s)

    # -- steps -----------------------------------------------------------------------
    def _build_fp32(self, data: DatasetSplits) -> nn.Module:
        if self._user_model is not None:
            return copy.deepcopy(self._user_model)
        return resolve_model(
            self.config.model, in_channels=data.in_channels, num_classes=data.num_classes,
            image_size=data.image_size, note=self.log,
        )  # fmt: skip

    def _base_model(
        self, data: DatasetSplits, device: torch.device, *, pretrain: bool
    ) -> nn.Module:
        """The pretrained FP32 base, from the run directory when it was trained before."""
        cfg = self.config
        model = self._build_fp32(data)
        self.log(describe_threads(cfg))  # first, once model and data are found to exist
        path = self.run_dir.base_checkpoint
        if path.exists():
            ckpt = read_checkpoint(path, "")
            load_weights(model, ckpt, path, "the model; delete it to pretrain again")
            self.log(f"FP32 base read from {path} (val accuracy {ckpt['val_accuracy']:.2%})")
            return model.to(device).eval()
        if not pretrain:
            raise RunDirError(
                f"{path} is missing: workers evaluate from the coordinator's FP32 base; copy "
                "base.pt from the coordinator's run directory"
            )
        self.log(f"pretraining the FP32 {cfg.model} for {cfg.pretrain_epochs:g} epochs")
        progress = TrainingProgress(path, "base", self.log)
        if cfg.pretrain_epochs > 0:
            settings = train_settings(cfg, cfg.pretrain_epochs, cfg.lr, augmentation_for(cfg, data))
            train_model(model, data.train, settings, seed=cfg.seed, device=device,
                        progress=progress)  # fmt: skip
        val = evaluate_accuracy(model, data.val, device=device)
        self.log(f"FP32 base: val accuracy {val:.2%}")
        atomic_torch_save(
            {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
             "model": cfg.model, "in_channels": data.in_channels,
             "num_classes": data.num_classes, "image_size": data.image_size,
             "val_accuracy": val, "epochs": cfg.pretrain_epochs},
            path,
        )  # fmt: skip
        progress.discard()
        return model.eval()

    def _evolve(self, setup: _Setup):
        cfg = self.config
        url = self.run_dir.storage_url(cfg)
        sampler = make_sampler(cfg)
        study = open_study(cfg, url, sampler)
        bind_run(study, cfg, sha256_file(self.run_dir.base_checkpoint))
        if cfg.seed_population and (n := seed_first_generation(study, setup.space, cfg.population)):
            self.log(f"first generation: {n} uniform individuals at ratio 1.0, the rest random")
        # With the journal, every worker is a child of this process: what is RUNNING now was
        # interrupted. A database may have live remote workers: heartbeats find their dead.
        rerun = rerun_interrupted(study, every_running=url.startswith("journal:"))
        if rerun:
            self.log(f"{rerun} interrupted evaluation(s) will run again")
        progress = _Progress(self.log, study, cfg)
        if not progress.finished():
            self.log(
                f"{'NSGA-II' if cfg.sampler == 'nsga2' else 'random sampling'}: "
                f"population {cfg.population}, {cfg.generations} generations, "
                f"{len(setup.space.parameters())} genes ({len(setup.space.layers)} layers, "
                f"{len(setup.space.groups)} expansion groups), {cfg.workers} worker(s)"
            )
        try:
            if cfg.workers == 1:
                claims = open_claims(url, cfg.study, self.run_dir.claims)
                objective = Objective(
                    setup.space, setup.evaluator, claims, cfg.max_size_kib,
                    bops=bops_counter(setup.evaluator), objectives=cfg.objectives,
                )  # fmt: skip
                evaluate_until_done(
                    study, objective, cfg, callbacks=[lambda study, trial: progress.update()]
                )
            else:
                specs = worker_specs(
                    cfg, url, seeds=[cfg.seed + i for i in range(cfg.workers)],
                    model=self._user_model, data=self._user_data,
                )  # fmt: skip
                run_workers(
                    specs, on_tick=progress.update,
                    resume_hint=f"run 'mogaqnn resume {self.run_dir.root}' to continue",
                )  # fmt: skip
            wait_for_running(study)
            progress.update()
        finally:
            progress.close()
        return study, sampler

    def _final_models(
        self, evaluator, chosen, front, fp32_reference, base, data, aug, device
    ) -> dict[str, Any]:
        """Train the chosen individual and the FP32 baseline the same way, test each once.

        A final training that diverges is recorded and the next individual of the front,
        in the selection rule's order, is trained instead (a resume would only repeat it).
        """
        cfg = self.config
        settings = train_settings(cfg, cfg.final_epochs, cfg.qat_lr, aug)
        # One teacher, the FP32 base: its logits on the training set are computed once and
        # serve the distilled FP32 baseline and, when the run distils, the chosen individual.
        # The distilled baseline is trained even when the run does not distil, so that the
        # claim is always judged against the stronger of the two (DESIGN.md).
        teacher = Teacher(copy.deepcopy(base).to(device))
        distilled = dataclasses.replace(
            settings, distill_weight=cfg.distill_weight or BASELINE_DISTILL_WEIGHT
        )
        baselines = {
            "fp32": (dataclasses.replace(settings, distill_weight=0.0), None),
            "fp32_distilled": (distilled, teacher),
        }
        out: dict[str, Any] = {"diverged": []}
        for name, (how, by) in baselines.items():
            progress = TrainingProgress(self.run_dir.root / f"{name}.pt", name, self.log)
            try:
                out[name] = self._train_and_test(copy.deepcopy(base), how, data, device, by,
                                                 progress)  # fmt: skip
            except TrainingDiverged as exc:
                raise MogaqnnError(
                    f"the final training of the {name} baseline diverged ({exc}); lower qat_lr"
                ) from exc
        remaining = list(front)
        while True:
            genome = evaluator.space.decode(chosen.params)
            quantized = final_start(cfg, self.run_dir.root, evaluator, genome, data, aug,
                                    device, self.log)  # fmt: skip
            progress = TrainingProgress(self.run_dir.final_checkpoint, genome.key(), self.log)
            try:
                out["chosen"] = self._train_and_test(quantized, settings, data, device, teacher,
                                                     progress)  # fmt: skip
                break
            except TrainingDiverged as exc:
                out["diverged"].append(
                    {"trial": chosen.number, "genome_key": genome.key(), "reason": str(exc)}
                )
                remaining = [t for t in remaining if t.number != chosen.number]
                if not remaining:
                    raise MogaqnnError(
                        f"the final training diverged for every individual of the front "
                        f"({len(out['diverged'])}, last: {exc}); lower qat_lr"
                    ) from exc
                diverged = chosen.number
                chosen = choose(remaining, remaining, cfg.select, cfg.max_size_kib,
                                fp32_reference).trial  # fmt: skip
                self.log(
                    f"final training of trial {diverged} diverged ({exc}); training trial "
                    f"{chosen.number}, the next individual of the front, instead"
                )
        out["chosen"]["trial"] = chosen
        out["chosen"]["size"] = model_size(quantized, evaluator.graph.bn_fold)
        out["chosen"]["parameters"] = sum(
            p.numel() for n, p in quantized.named_parameters() if not n.endswith("_scale")
        )
        atomic_torch_save(
            {"state_dict": {k: v.cpu() for k, v in quantized.state_dict().items()},
             "genome": _genome_dict(genome), "model": cfg.model},
            self.run_dir.final_checkpoint,
        )  # fmt: skip
        return out

    def _train_and_test(
        self, model, settings, data, device, teacher, progress: TrainingProgress
    ) -> dict[str, Any]:
        """The final training of one model, then its val and test accuracy (test read once).
        Its ``progress`` stays until result.json exists, so that a resume after it finished
        reads its weights instead of training it again."""
        if self.config.final_epochs > 0:
            train_model(model, data.train, settings, seed=self.config.seed, device=device,
                        teacher=teacher, progress=progress)  # fmt: skip
        return {
            "val_accuracy": evaluate_accuracy(model, data.val, device=device),
            "test_accuracy": evaluate_accuracy(model, data.test, device=device),
        }

    # -- outputs -----------------------------------------------------------------------
    def _result_dict(
        self, data, base, graph, space, genome: Genome, chosen, study, last_population,
        front, final, timing,
    ) -> dict[str, Any]:  # fmt: skip
        cfg = self.config
        fp32_bits = fp32_size_bits(base, graph.bn_fold)
        size = final["chosen"]["size"]
        base_params = sum(p.numel() for p in base.parameters())
        trials = completed(study)
        from optuna.trial import TrialState

        return {
            "mogaqnn_version": __version__,
            "seed": cfg.seed,
            "config": cfg.to_dict(),
            "dataset": {
                "name": data.name,
                "train": len(data.train),
                "val": len(data.val),
                "test": len(data.test),
                "classes": data.num_classes,
                "search_train": len(subset(data.train, cfg.search_train_samples, cfg.seed)),
                "search_val": len(subset(data.val, cfg.search_val_samples, cfg.seed)),
            },
            "model": {
                "name": cfg.model,
                "parameters": base_params,
                "quantized_layers": list(space.layers),
                "expansion_groups": [
                    {"group": g.name, "width": g.width, "layers": g.producers + g.passthrough}
                    for g in graph.groups
                ],
                "not_widened": graph.not_widened,
            },
            "fp32": {
                "epochs": cfg.pretrain_epochs + cfg.final_epochs,
                "val_accuracy": final["fp32"]["val_accuracy"],
                "test_accuracy": final["fp32"]["test_accuracy"],
                "size_bits": fp32_bits,
                "size_kib": fp32_bits / KIB_BITS,
            },
            "fp32_distilled": {
                "epochs": cfg.pretrain_epochs + cfg.final_epochs,
                "distill_weight": cfg.distill_weight or BASELINE_DISTILL_WEIGHT,
                "val_accuracy": final["fp32_distilled"]["val_accuracy"],
                "test_accuracy": final["fp32_distilled"]["test_accuracy"],
                "size_bits": fp32_bits,
                "size_kib": fp32_bits / KIB_BITS,
            },
            "claim": claim(final, fp32_bits, size.total_bits),
            "chosen": {
                "trial": chosen.number,
                "generation": trial_generation(chosen),
                "genome_key": genome.key(),
                "epochs": cfg.pretrain_epochs + cfg.final_epochs,
                "search_val_accuracy": chosen.user_attrs["val_accuracy"],
                "val_accuracy": final["chosen"]["val_accuracy"],
                "test_accuracy": final["chosen"]["test_accuracy"],
                "size_bits": size.total_bits,
                "size_kib": size.kib,
                "size_breakdown_bits": {
                    "weights": size.weight_bits,
                    "scales": size.scale_bits,
                    "biases": size.bias_bits,
                    "float": size.float_bits,
                    "activation_scales": size.act_scale_bits,
                },
                "compression_ratio": fp32_bits / size.total_bits,
                "mean_weight_bits": genome.mean_weight_bits(),
                "parameter_ratio": final["chosen"]["parameters"] / base_params,
                **space.describe(genome),
            },
            "search": {
                "population": cfg.population,
                "generations": cfg.generations,
                "evaluations": len(trials),
                "trained": sum(not t.user_attrs.get("cache_hit") for t in trials),
                "cache_hits": sum(bool(t.user_attrs.get("cache_hit")) for t in trials),
                "clone_retries": clone_retries(study),
                "failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
                "last_population": sorted(t.number for t in last_population),
                "front": sorted(t.number for t in front),
            },
            "final_diverged": final["diverged"],
            # search_s counts this process only; a resumed search's evaluations ran
            # across processes, and their summed duration is in the study
            "timing": {
                **timing,
                "evaluations_s": sum(
                    t.duration.total_seconds() for t in trials if t.duration is not None
                ),
            },
        }

    def _write_pareto_csv(self, study, space, last_population, front, chosen) -> None:
        last = {t.number for t in last_population}
        on_front = {t.number for t in pareto_front(completed(study))}
        params = list(space.parameters())
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["trial", "generation", "state", "val_accuracy", "size_kib", "size_bits",
                    "cache_hit", "in_last_population", "on_front", "chosen", "fail_reason", "bops",
                    *params])  # fmt: skip
        for t in study.get_trials(deepcopy=False):
            ua = t.user_attrs
            w.writerow([
                t.number, trial_generation(t), t.state.name, ua.get("val_accuracy", ""),
                ua.get("size_kib", ""), ua.get("size_bits", ""), int(bool(ua.get("cache_hit"))),
                int(t.number in last), int(t.number in on_front), int(t.number == chosen.number),
                _fail_reason(t), ua.get("bops", ""), *(t.params.get(p, "") for p in params),
            ])  # fmt: skip
        atomic_write_text(self.run_dir.pareto_csv, buf.getvalue())

    def _load_result(self) -> SearchResult:
        try:
            data = json.loads(self.run_dir.result.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunDirError(f"{self.run_dir.result} is unreadable ({exc})") from exc
        return SearchResult(self.run_dir.root, data)


# -- helpers ---------------------------------------------------------------------------
def _fail_reason(t) -> str:
    if FAIL_REASON in t.user_attrs:
        return t.user_attrs[FAIL_REASON]
    return "interrupted (its genome was queued again)" if t.state.name == "FAIL" else ""


def _genome_dict(genome: Genome) -> dict[str, Any]:
    return {"weight_bits": list(genome.weight_bits), "act_bits": list(genome.act_bits),
            "ratios": list(genome.ratios)}  # fmt: skip


class _Progress:
    """The bar and one line per completed generation, read from the study, so it counts
    the trials of every worker."""

    def __init__(self, log: _Printer, study, cfg: SearchConfig) -> None:
        self.log, self.study, self.cfg = log, study, cfg
        counts = self._counts()
        self.reported = {g for g, n in counts.items() if n >= cfg.population}
        target = cfg.population * cfg.generations
        self.bar = log.bar(total=target, initial=sum(counts.values()), desc="search")

    def _counts(self) -> Counter:
        gens = (trial_generation(t) for t in completed(self.study))
        return Counter(g for g in gens if g is not None)

    def finished(self) -> bool:
        return next_step(self.study, self.cfg.population, self.cfg.generations) == "done"

    def update(self) -> None:
        cfg, counts = self.cfg, self._counts()
        self.bar.n = sum(counts.values())
        gen = max(counts, default=0)
        done = min(counts.get(gen, 0), cfg.population)
        if done == cfg.population and gen + 1 < cfg.generations:
            gen, done = gen + 1, 0  # the next generation is filling up
        self.bar.set_postfix_str(f"gen {gen + 1}/{cfg.generations}, eval {done}/{cfg.population}")
        self.bar.refresh()
        for g in sorted(counts):
            if g in self.reported or counts[g] < cfg.population:
                continue
            self.reported.add(g)
            s = generation_summary(self.study, g, self.bar.total)
            self.log.line(
                f"gen {g + 1}/{cfg.generations}: best val acc {s['best_val_accuracy']:.2%}, "
                f"smallest on front {s['smallest_front_kib']:.2f} KiB, evaluations "
                f"{s['evaluations']}/{s['target']}, cache hits {s['cache_hits']}, "
                f"failed {s['failed']}, clone retries {s['clone_retries']}"
            )

    def close(self) -> None:
        self.bar.close()


class _Printer:
    """Messages to stderr, and a tqdm bar when progress is on."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, msg: str) -> None:
        if self.enabled:
            from tqdm import tqdm

            tqdm.write(msg, file=sys.stderr)

    def line(self, msg: str) -> None:
        self(msg)

    def bar(self, total: int, initial: int, desc: str):
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, disable=not self.enabled,
                    file=sys.stderr, dynamic_ncols=True, leave=True)  # fmt: skip


def claim(final: dict[str, Any], fp32_bits: int, size_bits: int) -> dict[str, Any]:
    """The paper's claim, smaller AND at least as accurate on test, judged against the
    stronger (higher test accuracy) of the plain and the distilled FP32 baseline."""
    baselines = [n for n in ("fp32", "fp32_distilled") if final.get(n) is not None]
    reference = max(baselines, key=lambda n: final[n]["test_accuracy"])
    gap = final["chosen"]["test_accuracy"] - final[reference]["test_accuracy"]
    return {
        "reference": reference,
        "reference_test_accuracy": final[reference]["test_accuracy"],
        "test_accuracy_difference": gap,
        "compression_ratio": fp32_bits / size_bits,
        "met": size_bits < fp32_bits and gap >= 0,
    }


def claim_line(r: dict[str, Any]) -> str:
    c = r.get("claim")
    if c is None:
        return ""
    name = {"fp32": "FP32 baseline", "fp32_distilled": "distilled FP32 baseline"}[c["reference"]]
    diff, ratio = c["test_accuracy_difference"], c["compression_ratio"]
    if c["met"]:
        return (f"claim met: {ratio:.1f}x smaller and {diff * 100:+.2f} pp test accuracy "
                f"against the stronger {name}")  # fmt: skip
    misses = []
    if diff < 0:
        misses.append(f"{-diff * 100:.2f} pp less test accuracy than the stronger {name}")
    if ratio <= 1:
        misses.append(f"not smaller ({ratio:.2f}x)")
    return f"claim missed: {' and '.join(misses)} (at {ratio:.1f}x compression)"


def format_result_table(r: dict[str, Any]) -> str:
    fp, ch = r["fp32"], r["chosen"]
    lines = [
        f"{'model':<22}{'test acc':>10}{'size KiB':>12}{'compression':>13}{'epochs':>8}",
        f"{'FP32 baseline':<22}{fp['test_accuracy']:>10.2%}{fp['size_kib']:>12.2f}"
        f"{1.0:>12.1f}x{fp['epochs']:>8g}",
    ]
    fd = r.get("fp32_distilled")
    if fd is not None:
        lines.append(f"{'FP32 distilled':<22}{fd['test_accuracy']:>10.2%}{fd['size_kib']:>12.2f}"
                     f"{1.0:>12.1f}x{fd['epochs']:>8g}")  # fmt: skip
    lines += [
        f"{'MOGAQNN (chosen)':<22}{ch['test_accuracy']:>10.2%}{ch['size_kib']:>12.2f}"
        f"{ch['compression_ratio']:>12.1f}x{ch['epochs']:>8g}",
        claim_line(r),
        "",
        f"{'layer':<22}{'w bits':>8}{'a bits':>8}",
    ]
    for layer in ch["layers"]:
        lines.append(f"{layer['layer']:<22}{layer['weight_bits']:>8}{layer['act_bits']:>8}")
    if ch["groups"]:
        lines += ["", f"{'expansion group':<22}{'ratio':>8}{'width':>12}"]
        for g in ch["groups"]:
            lines.append(
                f"{g['group']:<22}{g['ratio']:>8.2f}{g['width']:>6} -> {g['new_width']:<4}"
            )
    s = r["search"]
    for d in r.get("final_diverged", []):
        lines += ["", f"final training of trial {d['trial']} diverged ({d['reason']}); "
                  f"trial {ch['trial']}, the next of the front, was trained instead"]  # fmt: skip
    lines += [
        "",
        f"search: {s['evaluations']} evaluations ({s['trained']} trained, "
        f"{s['cache_hits']} cache hits, {s['failed']} failed), seed {r['seed']}, "
        f"{r['timing']['total_s']:.0f} s",
    ]
    if ch.get("bops") is not None and fp.get("bops"):
        lines.append(f"bit operations per sample: chosen {ch['bops']:.4g}, FP32 {fp['bops']:.4g} "
                     f"({fp['bops'] / ch['bops']:.1f}x fewer)")  # fmt: skip
    if "selection" in r:
        lines.append(f"chosen by the {r['selection']['rule']} rule: {r['selection']['reason']}")
    return "\n".join(lines)
