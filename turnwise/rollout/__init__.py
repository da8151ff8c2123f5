"""Rollout collection: envs in worker processes, batched policy calls, resumable Parquet output.

* `collect(CollectConfig(...))` (and `turnwise collect`) plays the episodes and writes
  `DIR/manifest.json` and `DIR/shards/part-*.parquet`;
* `stats`, `export_sft` and `export_batches` (and `turnwise rollouts ...`) read such a folder.

See docs/rollouts.md. Importing this package is light: workers, pyarrow and the policies load
when a run starts.
"""

from __future__ import annotations

from turnwise.rollout.collector import (
    BASELINES,
    CollectConfig,
    CollectResult,
    WorkerPool,
    collect,
    plan_jobs,
)
from turnwise.rollout.export import StatsRow, export_batches, export_sft, sft_messages, stats
from turnwise.rollout.store import (
    MANIFEST,
    RolloutStore,
    StoreMismatchError,
    episode_key,
    iter_trajectories,
    shard_files,
)

__all__ = [
    "BASELINES",
    "MANIFEST",
    "CollectConfig",
    "CollectResult",
    "RolloutStore",
    "StatsRow",
    "StoreMismatchError",
    "WorkerPool",
    "collect",
    "episode_key",
    "export_batches",
    "export_sft",
    "iter_trajectories",
    "plan_jobs",
    "sft_messages",
    "shard_files",
    "stats",
]
