"""The collector end to end with real worker processes: plan, groups, output, resume, limits."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from turnwise.agents.policy import Generation, GenerationRequest
from turnwise.rollout import (
    CollectConfig,
    RolloutStore,
    StoreMismatchError,
    WorkerPool,
    collect,
    iter_trajectories,
    shard_files,
)
from turnwise.trajectory import Trajectory

EASY = '{"difficulty": "easy"}'


def config(out: Path, **kwargs: Any) -> CollectConfig:
    # A long batch wait: a busy machine must not split a batch (a full one leaves at once).
    defaults: dict[str, Any] = {
        "env_kwargs": EASY, "workers": 2, "progress": False, "batch_wait": 30.0,
    }  # fmt: skip
    return CollectConfig(out=out, **{**defaults, **kwargs})


def content(trajs: list[Trajectory]) -> dict[str, tuple[Any, ...]]:
    """What must match between two runs (timings differ, everything else must not)."""
    return {
        t.id: (t.group_id, t.seed, t.task_id, t.actions(), [x.reward for x in t.turns], t.success)
        for t in trajs
    }


def test_expert_groups_manifest_and_datasets(tmp_path: Path) -> None:
    result = collect(config(tmp_path, tasks=3, group_size=2))
    trajs = list(iter_trajectories(tmp_path))
    assert result.counts["written"] == len(trajs) == 6 and result.collected == 6
    assert all(t.success and t.policy == "expert" and t.error is None for t in trajs)
    groups: dict[str | None, list[Trajectory]] = {}
    for t in trajs:
        groups.setdefault(t.group_id, []).append(t)
    assert len(groups) == 3
    for members in groups.values():
        assert sorted(t.metadata["member"] for t in members) == [0, 1]
        assert len({t.seed for t in members}) == 1 and len({t.task_id for t in members}) == 1
        assert len({t.metadata["sampling_seed"] for t in members}) == 2
    assert sorted({t.task_id for t in trajs}) == [
        "easy-train-00000",
        "easy-train-00001",
        "easy-train-00002",
    ]

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["planned"] == 6
    assert manifest["run"]["policy"] == "expert" and manifest["run"]["group_size"] == 2
    assert manifest["envs"]["turnwise/KeyDoor-v0"]["version"].startswith("turnwise==")
    assert "turnwise" in manifest["versions"] and manifest["counts"]["written"] == 6
    assert [s["file"] for s in manifest["shards"]] == [
        str(p.relative_to(tmp_path)) for p in shard_files(tmp_path)
    ]

    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / manifest["data_files"]), split="train"
    )
    assert len(ds) == 6 and set(ds["id"]) == {t.id for t in trajs}


def test_random_groups_sample_apart_and_runs_repeat(tmp_path: Path) -> None:
    kwargs = {"policy": "random", "tasks": 4, "group_size": 3, "shard_size": 5}
    collect(config(tmp_path / "a", **kwargs))
    collect(config(tmp_path / "b", workers=1, **kwargs))
    a, b = list(iter_trajectories(tmp_path / "a")), list(iter_trajectories(tmp_path / "b"))
    assert len(a) == 12 and len(shard_files(tmp_path / "a")) == 3  # 5 + 5 + 2
    assert content(a) == content(b)  # same plan, seeds and actions whatever the worker count
    by_group: dict[str | None, set[tuple[str, ...]]] = {}
    for t in a:
        by_group.setdefault(t.group_id, set()).add(tuple(t.actions()))
    assert any(len(plays) > 1 for plays in by_group.values())  # members do not sample alike


def test_resume_skips_done_and_refuses_other_runs(tmp_path: Path) -> None:
    collect(config(tmp_path, policy="random", tasks=2, group_size=2))
    with pytest.raises(StoreMismatchError, match="--resume"):
        collect(config(tmp_path, policy="random", tasks=2, group_size=2))
    with pytest.raises(StoreMismatchError, match="group_size"):
        collect(config(tmp_path, policy="random", tasks=2, group_size=3, resume=True))
    again = collect(config(tmp_path, policy="random", tasks=2, group_size=2, resume=True))
    assert again.collected == 0 and again.skipped == 4 and again.counts["written"] == 4


def test_named_task_ids_are_played_in_order(tmp_path: Path) -> None:
    ids = ("easy-train-00007", "easy-train-00003")
    result = collect(config(tmp_path, policy="random", task_ids=ids, group_size=2))
    assert result.counts["trajectories"] == 4
    trajs = list(iter_trajectories(tmp_path))
    assert {t.task_id: t.metadata["task_index"] for t in trajs} == {ids[0]: 0, ids[1]: 1}
    again = collect(config(tmp_path, policy="random", task_ids=ids, group_size=2, resume=True))
    assert again.skipped == 4
    with pytest.raises(ValueError, match="no task 'easy-train-99999'"):
        collect(config(tmp_path / "bad", policy="random", task_ids=("easy-train-99999",)))


def test_resume_with_more_tasks_extends_the_run(tmp_path: Path) -> None:
    collect(config(tmp_path / "grown", policy="random", tasks=2, group_size=2))
    with pytest.raises(StoreMismatchError, match="tasks: 2 -> 1"):
        collect(config(tmp_path / "grown", policy="random", tasks=1, group_size=2, resume=True))
    grown = collect(config(tmp_path / "grown", policy="random", tasks=4, group_size=2, resume=True))
    assert grown.skipped == 4 and grown.collected == 4 and grown.counts["written"] == 8
    manifest = json.loads((tmp_path / "grown" / "manifest.json").read_text())
    assert manifest["run"]["tasks"] == 4 and manifest["planned"] == 8
    collect(config(tmp_path / "whole", policy="random", tasks=4, group_size=2))
    whole = content(list(iter_trajectories(tmp_path / "whole")))
    assert content(list(iter_trajectories(tmp_path / "grown"))) == whole


def test_resume_completes_a_partial_run_exactly(tmp_path: Path) -> None:
    full = config(tmp_path / "full", policy="random", tasks=6, group_size=2)
    collect(full)
    # A partial run: the first half of the episodes, written the way the collector writes them.
    part = config(tmp_path / "part", policy="random", tasks=6, group_size=2)
    reference = list(iter_trajectories(tmp_path / "full"))
    store = RolloutStore(part.out, part.identity(), shard_size=2)
    for traj in sorted(reference, key=lambda t: t.id)[:5]:
        store.add(traj)
    store.flush()
    (part.out / "shards" / ".part-00009.parquet.abc.tmp").write_bytes(b"half a file")
    part.resume = True
    result = collect(part)
    assert result.skipped == 5 and result.collected == 7
    assert not list((part.out / "shards").glob(".*.tmp"))
    assert content(list(iter_trajectories(part.out))) == content(reference)


def test_max_turns_and_episode_time_limit_truncate(tmp_path: Path) -> None:
    collect(config(tmp_path / "turns", policy="random", tasks=2, max_turns=2))
    for t in iter_trajectories(tmp_path / "turns"):
        assert t.num_turns <= 2
        if t.num_turns == 2 and not t.terminated:
            assert t.truncated and t.truncation_reason == "agent_max_turns"
    collect(config(tmp_path / "time", tasks=2, episode_timeout=1e-6))
    trajs = list(iter_trajectories(tmp_path / "time"))
    assert [t.truncation_reason for t in trajs] == ["episode_time_limit"] * 2
    assert all(t.truncated and not t.success and t.error is None for t in trajs)


class SlowPolicy:
    """Answers `look` after `delay` seconds, counting the batch sizes it is called with."""

    name = "stub"
    tokenizer = None

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.batches: list[int] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.batches.append(len(requests))
        time.sleep(self.delay)
        return [Generation("<action>look</action>", [], None, "stop") for _ in requests]


def test_a_slow_policy_hits_the_turn_time_limit(tmp_path: Path) -> None:
    policy = SlowPolicy(delay=0.3)
    spec = "openai:http://127.0.0.1:9/v1#stub"  # recorded only: the policy object is passed
    collect(config(tmp_path, policy=spec, tasks=2, turn_timeout=0.2), policy=policy)
    trajs = list(iter_trajectories(tmp_path))
    assert len(trajs) == 2
    for t in trajs:
        assert t.truncated and t.truncation_reason == "turn_time_limit" and t.num_turns == 0
    assert max(policy.batches) == 2  # both episodes answered in one call


def test_model_policy_turns_go_through_the_env_parser(tmp_path: Path) -> None:
    policy = SlowPolicy(delay=0.0)
    spec = "openai:http://127.0.0.1:9/v1#stub"
    collect(config(tmp_path, policy=spec, tasks=2, group_size=2, max_turns=3), policy=policy)
    trajs = list(iter_trajectories(tmp_path))
    assert len(trajs) == 4 and all(t.num_turns == 3 for t in trajs)
    assert all(
        turn.info["raw_action"] == "<action>look</action>" for t in trajs for turn in t.turns
    )
    assert max(policy.batches) == 2  # two workers: two episodes per batch


class FirstChoice:
    """Answers with the number 1: the first admissible action listed."""

    name, tokenizer = "first", None

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.prompts += [str(r.messages[-1]["content"]) for r in requests]
        return [Generation("<action>1</action>", [], None, "stop") for _ in requests]


def test_numbered_choices_reach_the_env_as_commands(tmp_path: Path) -> None:
    policy, spec = FirstChoice(), "openai:http://127.0.0.1:9/v1#stub"
    run = config(tmp_path / "number", policy=spec, tasks=2, max_turns=2, choices="number")
    collect(run, policy=policy)
    turns = [turn for t in iter_trajectories(run.out) for turn in t.turns]
    assert len(turns) == 4 and all(turn.valid for turn in turns)
    assert all(turn.info["raw_action"] == "<action>1</action>" for turn in turns)
    assert all(turn.info["env_action"] and not turn.info["env_action"].isdigit() for turn in turns)
    assert all("\n1: " in prompt for prompt in policy.prompts)
    assert run.identity()["choices"] == "number"
    assert "choices" not in config(tmp_path / "text").identity()  # as runs read before it
    assert "images" not in config(tmp_path / "text").identity()
    assert config(tmp_path / "seen", images=True).identity()["images"] is True
    with pytest.raises(ValueError, match="--choices"):
        config(tmp_path / "bad", choices="letter")


def test_a_worker_pool_keeps_workers_between_collections(tmp_path: Path) -> None:
    import os

    plain = collect(config(tmp_path / "plain", tasks=3, group_size=2))
    with WorkerPool() as pool:
        collect(config(tmp_path / "first", tasks=3, group_size=2), pool=pool)
        pids = sorted(pool.pids())
        assert len(pids) == 2  # both workers finished cleanly and were kept
        again = collect(config(tmp_path / "again", tasks=3, group_size=2), pool=pool)
        assert sorted(pool.pids()) == pids  # the same processes played the second run
        other = '{"difficulty": "medium"}'
        collect(config(tmp_path / "other", tasks=2, env_kwargs=other), pool=pool)
        assert len(pool) == 4 and set(pids) < set(pool.pids())  # other settings: new workers
        everyone = pool.pids()
    for run in (plain, again):
        assert run.counts["written"] == 6
    assert content(list(iter_trajectories(tmp_path / "again"))) == content(
        list(iter_trajectories(tmp_path / "plain"))
    )
    assert len(pool) == 0
    for pid in everyone:  # stopped and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_main_module_without_a_file_gets_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setattr(sys.modules["__main__"], "__file__", "<stdin>", raising=False)
    with pytest.raises(RuntimeError, match="run the script from a file"):
        collect(config(tmp_path, policy="random", tasks=1))
