from __future__ import annotations

import pytest

from turnwise.episode import run_episode
from turnwise.trajectory import read_jsonl, read_parquet, write_jsonl, write_parquet
from turnwise.wrappers import ParseAction, RecordTrajectory


class Scripted:
    def __init__(self, actions):
        self.actions = list(actions)
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def act(self, observation, info):
        return self.actions.pop(0)


def test_records_a_full_episode(counter_env) -> None:
    done = []
    env = RecordTrajectory(counter_env, policy="scripted", on_episode_end=done.append)
    env.reset(seed=4, options={"task_id": "train-2"})
    for action in ["inc", "bogus", "dec", "inc", "inc"]:
        env.step(action)
    (traj,) = env.trajectories
    assert done == [traj] and env.current is None
    assert traj.task_id == "train-2" and traj.seed == 4 and traj.policy == "scripted"
    assert traj.instruction == "reach 2" and traj.metadata == {"split": "train"}
    assert traj.actions() == ["inc", "bogus", "dec", "inc", "inc"]
    assert [t.valid for t in traj.turns] == [True, False, True, True, True]
    assert [t.state_key for t in traj.turns] == [
        "count=1",
        "count=1",
        "count=0",
        "count=1",
        "count=2",
    ]
    assert traj.turns[1].observation == "count is 1"  # what the agent saw before acting
    assert traj.final_observation == "count is 2"
    assert traj.success and traj.terminated and not traj.truncated
    assert traj.total_reward == pytest.approx(sum(t.reward for t in traj.turns))
    assert traj.turns[-1].reward_terms["outcome"] == 1.0
    assert traj.turns[0].info["admissible_actions"] == ["inc", "dec"]
    assert all(t.env_seconds is not None and t.env_seconds >= 0 for t in traj.turns)


def test_truncated_episode_and_abandoned_episode(counter_env) -> None:
    env = RecordTrajectory(counter_env)
    env.reset(options={"task_id": "train-5"})
    env.step("inc")
    env.reset(options={"task_id": "train-5"})  # abandons the first: not a trajectory
    for _ in range(10):
        env.step("dec")
    (traj,) = env.trajectories
    assert traj.truncated and traj.truncation_reason == "max_turns" and not traj.success
    assert traj.num_turns == 10


def test_annotate_last_turn_and_round_trip(counter_env, tmp_path) -> None:
    env = RecordTrajectory(ParseAction(counter_env))
    env.reset(seed=0, options={"task_id": "train-1"})
    env.step("<action>inc</action>")
    env.annotate_last_turn(token_ids=[5, 6, 7], logprobs=[-0.5, -0.25, -1.0], policy_seconds=0.1)
    traj = env.trajectories[-1]
    assert traj.turns[0].info["raw_action"] == "<action>inc</action>"
    with pytest.raises(ValueError, match="3 token ids but 1 log-probs"):
        env.annotate_last_turn(logprobs=[0.0])
    with pytest.raises(AttributeError, match="no field"):
        env.annotate_last_turn(tokens=[1])
    traj.turns[0].logprobs = [-0.5, -0.25, -1.0]
    assert read_parquet(write_parquet([traj], tmp_path / "t.parquet")) == [traj]
    assert read_jsonl(write_jsonl([traj], tmp_path / "t.jsonl")) == [traj]


def test_run_episode(counter_env) -> None:
    agent = Scripted(["inc", "inc", "inc"])
    traj = run_episode(counter_env, agent, task_id="train-3", seed=1, policy="scripted")
    assert traj.success and traj.num_turns == 3 and agent.resets == 1
    agent = Scripted(["dec"] * 4)
    traj = run_episode(counter_env, agent, task_id="train-3", max_turns=4)
    assert traj.truncated and traj.truncation_reason == "agent_max_turns"
    assert traj.num_turns == 4 and traj.turns[-1].truncated and not traj.success


def test_run_episode_passes_the_seed_to_agents_that_take_it(counter_env) -> None:
    class Seeded(Scripted):
        def reset(self, seed=None):  # type: ignore[override]
            self.seed = seed

    agent = Seeded(["inc"])
    run_episode(counter_env, agent, task_id="train-1", seed=42)
    assert agent.seed == 42


def test_run_episode_parses_replies_and_attaches_turn_records(counter_env) -> None:
    from turnwise.parsing import parse_tagged

    class Talker:
        parser = staticmethod(parse_tagged)

        def __init__(self) -> None:
            self.replies = ["<action>inc</action>", "I will inc", "<action>inc</action>"]

        def act(self, observation, info):
            self.reply = self.replies.pop(0)
            return self.reply

        def turn_record(self):
            return {"token_ids": [len(self.reply)], "logprobs": [-1.0], "info": {"note": "x"}}

    traj = run_episode(counter_env, Talker(), task_id="train-2")
    assert traj.success and traj.num_turns == 3
    assert traj.actions()[1] == "I will inc"  # the reply is what the trajectory keeps
    assert [t.valid for t in traj.turns] == [True, False, True]  # the env saw parsed actions
    assert traj.turns[1].info["format_ok"] is False and traj.turns[1].info["note"] == "x"
    assert traj.turns[2].token_ids == [len("<action>inc</action>")]
