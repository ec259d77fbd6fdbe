"""A swept point's config as a file `dlrun train` reproduces: best.yaml, and each Pareto front point's
pareto/ID.yaml. The config of the point's first seed, its thread count pinned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.config import dump_config
from dlrun.config.schema import ExperimentConfig
from dlrun.store import files
from dlrun.sweeps.leaderboard import shown_score
from dlrun.sweeps.plan import SweepPlan
from dlrun.sweeps.ranking import Entry, Point
from dlrun.sweeps.report import format_value


def write_point_config(path: Path, root: Path, plan: SweepPlan, entry: Entry, title: str,
                       scored: str | None = None) -> None:
    """Write `entry`'s config (of a point's first seed) to `path`, headed by `title` ("Best of sweep"), the
    point's values and `scored` (default: the ranked metric and its score) and how to reproduce it."""
    first = entry.members[0] if isinstance(entry, Point) else entry
    cfg = threads_pinned(first.trial.config.config, first.summary)
    what = (f"point {entry.id} (mean ± std of {entry.seeds} seeds; this is its first seed, trial {first.trial.id}, "
            f"seed {first.trial.seed})" if isinstance(entry, Point) else f"trial {entry.id}")
    pinned = (f"# train.threads {cfg.train.threads}: the CPU threads the trial ran with (its share of the cores "
              "under --jobs); the same count reproduces its numbers exactly.\n"
              if cfg is not first.trial.config.config else "")
    scored = scored or f"{plan.metric} {shown_score(entry, entry.score, entry.std)}"
    head = (f"# {title} {root}: {what} "
            f"({', '.join(f'{k}={format_value(v)}' for k, v in entry.trial.params.items())}), "
            f"{scored}.\n{pinned}"
            f"# Reproduce it with: dlrun train {path}\n")
    files.write_text(path, head + dump_config(cfg))


def threads_pinned(cfg: ExperimentConfig, summary: dict[str, Any]) -> ExperimentConfig:
    """`cfg` with train.threads set to the thread count the trial ran with (its summary's `threads`), so
    `dlrun train best.yaml` runs its arithmetic as the trial did whatever --jobs shared the cores."""
    threads = summary.get("threads")
    if cfg.train.threads is not None or not isinstance(threads, int) or threads < 1:
        return cfg
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"threads": threads})})
