"""What a search prints: messages on stderr, a progress bar and one line per generation."""

from __future__ import annotations

import sys
from collections import Counter

from ..config import SearchConfig
from ._loop import generation_summary, next_step
from ._trials import completed, trial_generation

__all__ = ["Printer", "SearchProgress"]


class Printer:
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


class SearchProgress:
    """The bar and one line per completed generation, read from the study, so it counts
    the trials of every worker."""

    def __init__(self, log: Printer, study, cfg: SearchConfig) -> None:
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
