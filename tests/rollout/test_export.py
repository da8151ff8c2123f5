"""Stats and exports of a rollout folder, the `turnwise rollouts` and `collect` commands, and
batched collection with the tiny hf model (token ids through to the trainer's batch format)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from turnwise.agents.policy import Generation, GenerationRequest
from turnwise.cli import main
from turnwise.rollout import (
    CollectConfig,
    collect,
    export_batches,
    export_sft,
    iter_trajectories,
    stats,
)

EASY = '{"difficulty": "easy"}'


def test_stats_sft_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    code = main(["collect", "--policy", "random", "--tasks", "3", "--group-size", "2",
                 "--workers", "2", "--env-kwargs", EASY, "--out", str(out), "--max-turns", "4"])  # fmt: skip
    assert code == 0
    assert "6 episodes collected" in capsys.readouterr().out
    trajs = list(iter_trajectories(out))
    rows = stats(out)
    assert rows[0].task_id == "*" and rows[0].episodes == 6 and len(rows) == 4
    assert rows[0].success_rate == sum(t.success for t in trajs) / 6
    assert rows[0].mean_turns == sum(t.num_turns for t in trajs) / 6

    n = export_sft(out, tmp_path / "sft.jsonl", only_success=False)
    lines = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert n == len(lines) == 6
    first = next(t for t in trajs if t.id == lines[0]["id"])
    assert [m["role"] for m in lines[0]["messages"]][:3] == ["system", "user", "assistant"]
    assert lines[0]["messages"][2]["content"] == first.turns[0].action

    assert (
        main(["rollouts", "stats", str(out), "--by-task", "--out", str(tmp_path / "s.json")]) == 0
    )
    assert "easy-train-00002" in capsys.readouterr().out
    assert json.loads((tmp_path / "s.json").read_text())[0]["episodes"] == 6
    assert main(["rollouts", "sft", str(out), "--out", str(tmp_path / "ok.jsonl")]) == 0
    assert main(["rollouts", "sft", str(tmp_path / "nothing")]) == 2
    assert main(["collect", "--out", str(out), "--env-kwargs", EASY, "--tasks", "3"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["collect", "--split", "nope", "--out", str(tmp_path / "x")]) == 2


class CountingPolicy:
    """Wraps a policy and records the size of every batch it is asked for."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.tokenizer = inner.tokenizer  # type: ignore[attr-defined]
        self.batches: list[int] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.batches.append(len(requests))
        return self.inner.generate(requests)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_tiny_hf_policy_is_batched_and_exports_trainer_batches(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from turnwise.agents.specs import load_policy
    from turnwise.agents.tiny import default_checkpoint

    spec = f"hf:{default_checkpoint()}"
    policy = CountingPolicy(load_policy(spec))
    cfg = CollectConfig(
        env_kwargs=EASY, policy=spec, tasks=2, group_size=2, workers=4, max_turns=2,
        max_tokens=8, out=tmp_path / "hf", progress=False,
        batch_wait=30.0,  # a loaded machine must not split the batch: waiting costs nothing here
    )  # fmt: skip
    result = collect(cfg, policy=policy)
    assert result.collected == 4 and result.tokens > 0
    # Four workers, four episodes, two turns each: every turn of all four in one call.
    assert policy.batches == [4, 4]
    trajs = list(iter_trajectories(tmp_path / "hf"))
    assert all(turn.token_ids and turn.logprobs for t in trajs for turn in t.turns)
    counts = export_batches(tmp_path / "hf", tmp_path / "batch.parquet")
    assert counts["trajectories"] == 4 and counts["sequences"] >= 4

    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "batch.parquet").to_pylist()
    row = rows[0]
    traj = next(t for t in trajs if t.id == row["trajectory_id"])
    assert len(row["input_ids"]) == len(row["loss_mask"]) == len(row["turn_index"])
    assert sum(row["loss_mask"]) == sum(len(traj.turns[i].token_ids or ()) for i in row["turns"])
    assert row["turn_rewards"] == [traj.turns[i].reward for i in row["turns"]]
