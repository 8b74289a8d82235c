"""One search, end to end: validate, FP32 base, fitness, NSGA-II, final stage, results.

Each step has its own module: the fitness (``mogaqnn.fitness``), the recipes
(``mogaqnn.recipe``), the evolution loop (``_loop``, ``_objective``, ``_workers``), the final
choice (``_select``) and training (``_final``), and what is written and printed
(``_results``, ``_console``). This module only orders them.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from typing import Any

import torch
from optuna.samplers import NSGAIISampler
from torch import nn

from ..config import SearchConfig
from ..data import DatasetSplits
from ..errors import RunDirError
from ..expand import ModelGraph
from ..fitness import QUANT_SUPERNET, SUPERNET, Evaluator, bops_counter, make_evaluator
from ..genome import Genome, SearchSpace, build_individual
from ..models import check_input, resolve_model
from ..recipe import Recipe, pretrain_float
from ..run import (
    RunDir,
    TrainingProgress,
    atomic_torch_save,
    atomic_write_text,
    environment,
    expansion_graph,
    load_config_dataset,
    load_weights,
    read_checkpoint,
    resolve_device,
    search_space,
)
from ..size import KIB_BITS, bit_operations, fp32_size_bits, layer_macs, model_size
from ..train import checkpoint_state, evaluate_accuracy
from ._claims import open_claims
from ._console import Printer, SearchProgress
from ._final import train_final_models
from ._loop import evaluate_until_done, rerun_interrupted, wait_for_running
from ._objective import Objective
from ._reference import fp32_reference_accuracy, uniform_reference_points
from ._results import SearchResult, result_document, write_pareto_csv
from ._sampler import WIDTH_SEED, make_sampler, seed_first_generation
from ._select import choose, final_candidates, size_limit_kib
from ._store import bind_run, open_storage, open_study
from ._threads import describe_threads, process_threads, torch_threads
from ._trials import completed
from ._workers import checkpoint_hashes, run_workers, worker_specs

__all__ = ["Search", "SearchResult"]


@dataclass(frozen=True)
class _Setup:
    data: DatasetSplits
    base: nn.Module
    graph: ModelGraph
    space: SearchSpace
    evaluator: Evaluator
    recipe: Recipe
    device: torch.device
    pretrain_s: float
    supernet_s: float
    fp32_bits: int  # the FP32 model's size, what compressions are measured against
    size_limit_kib: float | None  # the size target: max_size_kib and min_compression

    def genome_size_bits(self, genome: Genome) -> int:
        """The size of ``genome``'s network (built, not trained)."""
        model = build_individual(self.base, self.graph, self.space, genome)
        return model_size(model, self.graph.bn_fold).total_bits


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
        self.log = Printer(config.progress)
        self.finished_setup: _Setup | None = None  # set by a run that searched

    @property
    def user_model(self) -> nn.Module | None:
        """The module given as ``model=`` (None when the config names the model)."""
        return self._user_model

    # -- the pipeline --------------------------------------------------------------
    def run(self) -> SearchResult:
        """Run the search, or continue the one its run directory holds."""
        cfg = self.config
        if self.run_dir.holds(cfg) and self.run_dir.result.exists():
            self.log(f"{self.run_dir.root} already holds a finished run; its result:")
            return self._load_result()
        with torch_threads(process_threads(cfg, worker=False)):
            start = time.perf_counter()
            # model, dataset and storage are checked before anything is written to --out
            data, model = self._data_and_model()
            if cfg.storage is not None:
                open_storage(cfg.storage)
            resumed = self.run_dir.prepare(cfg)
            with self.run_dir.exclusive():
                return self._run(resumed, data, model, start)

    def _run(
        self, resumed: bool, data: DatasetSplits, model: nn.Module, start: float
    ) -> SearchResult:
        cfg = self.config
        if resumed:
            stored = self.run_dir.load()
            if (stored.storage, stored.study) != (cfg.storage, cfg.study):
                raise RunDirError(
                    f"{self.run_dir.root} keeps its study in storage {stored.storage or 'journal'}"
                    f" as {stored.study!r}; resume it with 'mogaqnn resume {self.run_dir.root}'"
                )
            self.log(f"resuming the run in {self.run_dir.root}")
        setup = self._setup(data, model, pretrain=True)
        t0 = time.perf_counter()
        study, sampler = self._evolve(setup)
        uniform_reference_points(self.run_dir.root, setup.evaluator)
        search_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        if isinstance(sampler, NSGAIISampler):
            last_population = sampler.get_parent_population(study, cfg.generations)
        else:  # random sampling does not evolve: every evaluation is its population
            last_population = completed(study)
        fp32_reference = None
        if cfg.select == "match-fp32":
            fp32_reference = fp32_reference_accuracy(study, setup.evaluator)
        limit = setup.size_limit_kib
        choice = choose(last_population, completed(study), cfg.select, limit, fp32_reference)
        width_seeds = [t for t in completed(study) if t.user_attrs.get(WIDTH_SEED)
                       and (limit is None or t.user_attrs["size_kib"] <= limit)]  # fmt: skip
        candidates = final_candidates(choice, cfg.final_candidates, setup.fp32_bits,
                                      cfg.claim_compressions, width_seeds)  # fmt: skip

        def next_of_front(tried: list) -> Any:
            rest = [t for t in choice.front if t not in tried]
            return choose(rest, rest, cfg.select, limit, fp32_reference).trial if rest else None

        self.log(
            f"final training of {len(candidates)} candidate(s) of the front (trials "
            f"{', '.join(str(t.number) for t in candidates)}; the search's choice: trial "
            f"{choice.trial.number}, {cfg.select} rule: {choice.reason}), the FP32 baselines "
            f"and {len(cfg.uniform_qat_bits)} uniform QAT model(s)"
        )
        final = train_final_models(setup.recipe, candidates, next_of_front, cfg.select,
                                   self.run_dir.root, self.run_dir.final_checkpoint,
                                   self.log)  # fmt: skip
        chosen = final["chosen"]["trial"]
        genome = setup.space.decode(chosen.params)
        final_s = time.perf_counter() - t0
        self.log(f"final stage: {final_s:.0f} s; chosen: trial {chosen.number} "
                 f"({final['final_reason']})")  # fmt: skip

        timing = {"pretrain_s": setup.pretrain_s, "supernet_s": setup.supernet_s,
                  "search_s": search_s, "final_s": final_s,
                  "total_s": time.perf_counter() - start, "resumed": resumed}  # fmt: skip
        result = result_document(
            cfg, setup.data, setup.base, setup.graph, setup.space, genome, chosen, study,
            last_population, choice.front, final, timing, environment(setup.device),
        )  # fmt: skip
        base = setup.base
        result["chosen"]["bops"] = chosen.user_attrs.get("bops")
        result["fp32"]["bops"] = bit_operations(base, layer_macs(base, setup.data.val.x[:1].to(
            next(base.parameters()).device)))  # fmt: skip
        result["selection"] = {"rule": cfg.select, "reason": final["final_reason"],
                               "search_rule": choice.rule, "search_reason": choice.reason,
                               "size_limit_kib": limit,
                               "fp32_search_val_accuracy": fp32_reference}  # fmt: skip
        write_pareto_csv(self.run_dir.pareto_csv, study, setup.space, last_population,
                         choice.front, chosen)  # fmt: skip
        atomic_write_text(self.run_dir.result, json.dumps(result, indent=2) + "\n")
        self.finished_setup = setup  # what the report reuses (mogaqnn.search composes them)
        return SearchResult(self.run_dir.root, result)

    def pretrain(self) -> nn.Module:
        """Only the FP32 base, trained as a search trains it (same seed, data and recipe)
        and kept in the run directory, where a later search of this config reads it instead
        of training it again; read back when it is there. What a baseline that needs no
        search (uniform QAT) starts from, without the search's supernet or study."""
        with torch_threads(process_threads(self.config, worker=False)):
            data, model = self._data_and_model()
            self.run_dir.prepare(self.config)
            with self.run_dir.exclusive():
                device = resolve_device(self.config.device)
                return self._base_model(model, data, device, pretrain=True)[0]

    def setup(self, *, pretrain: bool) -> _Setup:
        """Data, FP32 base, expansion graph, search space, fitness and recipes. Workers and
        benchmarks call it with ``pretrain=False``: they read the base (and the supernet)
        that the coordinator trained."""
        data, model = self._data_and_model()
        return self._setup(data, model, pretrain=pretrain)

    # -- steps -----------------------------------------------------------------------
    def _data_and_model(self) -> tuple[DatasetSplits, nn.Module]:
        """The data and the untrained FP32 model, seeded first as every search is (its
        initial weights are the seed's)."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        data = self._user_data or load_config_dataset(cfg)
        if self._user_model is not None:
            model = copy.deepcopy(self._user_model)
            check_input(model, cfg.model, in_channels=data.in_channels,
                        image_size=data.image_size)  # fmt: skip
            return data, model
        model = resolve_model(cfg.model, in_channels=data.in_channels,
                              num_classes=data.num_classes, image_size=data.image_size,
                              note=self.log)  # fmt: skip
        return data, model

    def _setup(self, data: DatasetSplits, model: nn.Module, *, pretrain: bool) -> _Setup:
        cfg = self.config
        device = resolve_device(cfg.device)
        eval_device = resolve_device(cfg.devices[0]) if cfg.devices else device
        base, pretrain_s = self._base_model(model, data, device, pretrain=pretrain)
        example = data.train.x[:2].to(next(base.parameters()).device)
        graph = expansion_graph(base, example, cfg.expansion, note=self.log)
        space = search_space(cfg, base, graph)
        t0 = time.perf_counter()
        evaluator = make_evaluator(
            cfg, base, graph, space, data, eval_device, self.run_dir.evaluations_log,
            root=self.run_dir.root, pretrain=pretrain, note=self.log,
        )  # fmt: skip
        supernet_s = time.perf_counter() - t0
        recipe = Recipe(cfg, base, graph, space, data, device, root=self.run_dir.root,
                        evaluator=evaluator, note=self.log)  # fmt: skip
        fp32_bits = fp32_size_bits(base, graph.bn_fold)
        limit = size_limit_kib(cfg.max_size_kib, cfg.min_compression, fp32_bits)
        return _Setup(data, base, graph, space, evaluator, recipe, device, pretrain_s, supernet_s,
                      fp32_bits, limit)  # fmt: skip

    def _base_model(
        self, model: nn.Module, data: DatasetSplits, device: torch.device, *, pretrain: bool
    ) -> tuple[nn.Module, float]:
        """The pretrained FP32 base, from the run directory when it was trained before, and
        the seconds its training took here."""
        cfg = self.config
        self.log(describe_threads(cfg))  # first, once model and data are found to exist
        path = self.run_dir.base_checkpoint
        if path.exists():
            ckpt = read_checkpoint(path, "")
            load_weights(model, ckpt, path, "the model; delete it to pretrain again")
            self.log(f"FP32 base read from {path} (val accuracy {ckpt['val_accuracy']:.2%})")
            return model.to(device).eval(), 0.0
        if not pretrain:
            raise RunDirError(
                f"{path} is missing: workers evaluate from the coordinator's FP32 base; copy "
                "base.pt from the coordinator's run directory"
            )
        t0 = time.perf_counter()
        self.log(f"pretraining the FP32 {cfg.model} for {cfg.pretrain_epochs:g} epochs")
        progress = TrainingProgress(path, "base", self.log)
        pretrain_float(cfg, model, data, device, progress)
        val = evaluate_accuracy(model, data.val, device=device)
        self.log(f"FP32 base: val accuracy {val:.2%}")
        atomic_torch_save(
            {"state_dict": checkpoint_state(model),
             "model": cfg.model, "in_channels": data.in_channels,
             "num_classes": data.num_classes, "image_size": data.image_size,
             "val_accuracy": val, "epochs": cfg.pretrain_epochs},
            path,
        )  # fmt: skip
        progress.discard()
        return model.eval(), time.perf_counter() - t0

    def _evolve(self, setup: _Setup):
        cfg = self.config
        url = self.run_dir.storage_url(cfg)
        sampler = make_sampler(cfg)
        study = open_study(cfg, url, sampler)
        bind_run(
            study,
            cfg,
            checkpoint_hashes(
                self.run_dir.root, (self.run_dir.base_checkpoint.name, SUPERNET, QUANT_SUPERNET)
            ),
        )
        if cfg.seed_population:
            limit = setup.size_limit_kib
            seeds = seed_first_generation(
                study, setup.space, cfg.population, setup.genome_size_bits,
                None if limit is None else limit * KIB_BITS,
            )  # fmt: skip
            if seeds:
                self.log(f"first generation: {'; '.join(seeds)}; the rest random")
        # With the journal, every worker is a child of this process: what is RUNNING now was
        # interrupted. A database may have live remote workers: heartbeats find their dead.
        rerun = rerun_interrupted(study, every_running=url.startswith("journal:"))
        if rerun:
            self.log(f"{rerun} interrupted evaluation(s) will run again")
        progress = SearchProgress(self.log, study, cfg)
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
                    setup.space, setup.evaluator, claims, setup.size_limit_kib,
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

    def _load_result(self) -> SearchResult:
        try:
            data = json.loads(self.run_dir.result.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunDirError(f"{self.run_dir.result} is unreadable ({exc})") from exc
        return SearchResult(self.run_dir.root, data)
