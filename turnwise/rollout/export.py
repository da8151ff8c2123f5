"""Reading a rollout folder: summary statistics, an SFT chat dataset, and trainer batches.

* `stats(dir)`: success, reward, turns and tokens per env and task (and per env overall);
* `export_sft(dir, path)`: JSON Lines of chat conversations, the observations as user turns and
  the replies as assistant turns (by default only successful, error-free episodes);
* `export_batches(dir, path)`: Parquet, one row per training sequence (a trajectory's context,
  see `turnwise.agents.tokens.trajectory_segments`): token ids, loss mask, per-token turn index,
  the sampling log-probs, and the rewards of the turns it covers.

Example:
    >>> import tempfile
    >>> from turnwise.rollout import CollectConfig, collect
    >>> out = tempfile.mkdtemp()
    >>> _ = collect(CollectConfig(tasks=2, workers=1, out=out, progress=False))
    >>> [(row.task_id, row.episodes, row.success_rate) for row in stats(out)][:1]
    [('*', 2, 1.0)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from turnwise.files import atomic_write, atomic_write_text
from turnwise.rollout.store import iter_trajectories
from turnwise.trajectory import Trajectory

__all__ = ["StatsRow", "export_batches", "export_sft", "sft_messages", "stats"]


@dataclass
class StatsRow:
    """Aggregates over the episodes of one env and task (`task_id == "*"`: all its tasks)."""

    env_id: str
    task_id: str
    episodes: int
    success_rate: float
    mean_reward: float
    mean_turns: float
    mean_tokens: float
    """Generated tokens per episode (0 for baselines)."""
    truncated: int
    failed: int


def _row(env_id: str, task_id: str, trajs: list[Trajectory]) -> StatsRow:
    n = len(trajs)
    return StatsRow(
        env_id=env_id,
        task_id=task_id,
        episodes=n,
        success_rate=sum(t.success for t in trajs) / n,
        mean_reward=sum(t.total_reward for t in trajs) / n,
        mean_turns=sum(t.num_turns for t in trajs) / n,
        mean_tokens=sum(len(turn.token_ids or ()) for t in trajs for turn in t.turns) / n,
        truncated=sum(t.truncated for t in trajs),
        failed=sum(t.error is not None for t in trajs),
    )


def stats(source: str | os.PathLike[str] | Iterable[Trajectory]) -> list[StatsRow]:
    """Per env: one `"*"` row over all its tasks, then one row per task (sorted)."""
    trajs = iter_trajectories(source) if isinstance(source, (str, os.PathLike)) else iter(source)
    by_task: dict[tuple[str, str], list[Trajectory]] = {}
    for traj in trajs:
        by_task.setdefault((traj.env_id, traj.task_id), []).append(traj)
    rows = []
    for env_id in sorted({env for env, _ in by_task}):
        keys = sorted(k for k in by_task if k[0] == env_id)
        rows.append(_row(env_id, "*", [t for k in keys for t in by_task[k]]))
        rows += [_row(env_id, task, by_task[(env_id, task)]) for _, task in keys]
    return rows


def sft_messages(traj: Trajectory) -> list[dict[str, str]]:
    """The episode as chat messages: the instruction as the system message (when there is one),
    then each observation as a user turn and each reply as an assistant turn.

    Example:
        >>> from turnwise.trajectory import Turn
        >>> traj = Trajectory("turnwise/X-v0", "t", turns=[Turn(0, "You see a key.", "take key", 1.0)])
        >>> [m["role"] for m in sft_messages(traj)]
        ['user', 'assistant']
    """
    messages = [{"role": "system", "content": traj.instruction}] if traj.instruction else []
    for turn in traj.turns:
        messages.append({"role": "user", "content": turn.observation})
        messages.append({"role": "assistant", "content": turn.action})
    return messages


def export_sft(
    source: str | os.PathLike[str], path: str | os.PathLike[str], *, only_success: bool = True
) -> int:
    """Write `{"messages": [...], "id", "env_id", "task_id", "reward", "success"}` per line
    (atomically); returns the number of conversations written."""
    lines = []
    for traj in iter_trajectories(source):
        if traj.error is not None or not traj.turns or (only_success and not traj.success):
            continue
        record = {
            "messages": sft_messages(traj),
            "id": traj.id,
            "env_id": traj.env_id,
            "task_id": traj.task_id,
            "group_id": traj.group_id,
            "reward": traj.total_reward,
            "success": traj.success,
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    atomic_write_text(path, "".join(lines))
    return len(lines)


def _batch_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("trajectory_id", pa.string()),
            ("group_id", pa.string()),
            ("env_id", pa.string()),
            ("task_id", pa.string()),
            ("segment", pa.int64()),
            ("input_ids", pa.list_(pa.int64())),
            ("loss_mask", pa.list_(pa.int8())),
            ("turn_index", pa.list_(pa.int64())),
            ("logprobs", pa.list_(pa.float64())),
            ("has_logprobs", pa.bool_()),
            ("turns", pa.list_(pa.int64())),
            ("turn_rewards", pa.list_(pa.float64())),
            ("reward", pa.float64()),
            ("success", pa.bool_()),
        ]
    )


def export_batches(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> dict[str, int]:
    """Write the trainer's batch format as one Parquet file (atomically).

    `turn_rewards[i]` is the reward of turn `turns[i]`; `reward` is the trajectory's total.
    Trajectories without token ids (baselines, errors) are skipped. Returns
    `{"sequences": n, "trajectories": m, "skipped": k}`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from turnwise.agents.tokens import trajectory_segments

    rows: list[dict[str, Any]] = []
    counts = {"sequences": 0, "trajectories": 0, "skipped": 0}
    for traj in iter_trajectories(source):
        if traj.error is not None or not traj.turns:
            counts["skipped"] += 1
            continue
        try:
            segments = trajectory_segments(traj)
        except ValueError:  # collected without tokens
            counts["skipped"] += 1
            continue
        rewards = {turn.index: turn.reward for turn in traj.turns}
        for number, seg in enumerate(segments):
            rows.append(
                {
                    "trajectory_id": traj.id,
                    "group_id": traj.group_id,
                    "env_id": traj.env_id,
                    "task_id": traj.task_id,
                    "segment": number,
                    "input_ids": seg.input_ids,
                    "loss_mask": seg.loss_mask,
                    "turn_index": seg.turn_index,
                    "logprobs": seg.logprobs,
                    "has_logprobs": seg.has_logprobs,
                    "turns": seg.turns,
                    "turn_rewards": [rewards[i] for i in seg.turns],
                    "reward": traj.total_reward,
                    "success": traj.success,
                }
            )
        counts["trajectories"] += 1
    counts["sequences"] = len(rows)
    table = pa.Table.from_pylist(rows, schema=_batch_schema())
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    return counts
