from __future__ import annotations

import asyncio

import pytest

from turnwise.info import weighted_reward
from turnwise.rewards import Format, ValidAction
from turnwise.wrappers import ParseAction, ProcessRewards


class TurnCounter:
    """Scores the turn number and records what it was shown."""

    name = "turn"

    def __init__(self) -> None:
        self.seen = []

    def __call__(self, ctx):
        self.seen.append(ctx)
        return float(ctx.turn)


class AsyncJudge:
    name = "judge"

    async def score(self, ctxs):
        await asyncio.sleep(0)
        return [1.0 if c.info["valid_action"] else -1.0 for c in ctxs]


def test_hooks_add_named_weighted_terms(counter_env) -> None:
    hook = TurnCounter()
    env = ProcessRewards(counter_env, [hook, AsyncJudge()], weights={"turn": 0.5})
    env.reset(options={"task_id": "train-3"})
    _, reward, _, _, info = env.step("inc")
    assert info["reward_terms"]["turn"] == 1.0 and info["reward_terms"]["judge"] == 1.0
    assert info["reward_weights"]["turn"] == 0.5 and info["reward_weights"]["judge"] == 1.0
    # env's own: outcome 0, progress 1/3 * 0.5, valid 0
    assert reward == pytest.approx(1 / 6 + 0.5 + 1.0)
    assert reward == pytest.approx(weighted_reward(info["reward_terms"], info["reward_weights"]))
    _, reward, _, _, info = env.step("fly")
    assert info["reward_terms"]["judge"] == -1.0 and info["reward_terms"]["turn"] == 2.0


def test_context_carries_history_and_observations(counter_env) -> None:
    hook = TurnCounter()
    env = ProcessRewards(counter_env, [hook])
    env.reset(seed=0, options={"task_id": "train-3"})
    env.step("inc")
    env.step("dec")
    first, second = hook.seen
    assert first.task_id == "train-3" and first.instruction == "reach 3"
    assert second.observation == first.next_observation == {"text": "count is 1"}
    assert [h.action for h in second.history] == ["inc"]
    assert second.history[0].reward_terms["turn"] == 1.0
    assert "turn" not in first.info["reward_terms"]  # hooks see the env's terms only
    env.reset(options={"task_id": "train-3"})
    env.step("inc")
    assert hook.seen[-1].history == () and hook.seen[-1].turn == 1


def test_name_collisions_and_bad_hooks_are_errors(counter_env) -> None:
    env = ProcessRewards(counter_env, [ValidAction(name="valid")])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="already reports"):
        env.step("inc")
    with pytest.raises(ValueError, match="share the name"):
        ProcessRewards(counter_env, [Format(), Format()])
    with pytest.raises(TypeError, match="not a process-reward hook"):
        ProcessRewards(counter_env, [lambda ctx: 1.0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown hooks"):
        ProcessRewards(counter_env, [Format()], weights={"nope": 1.0})


def test_format_hook_with_parse_action(counter_env) -> None:
    env = ProcessRewards(ParseAction(counter_env), [Format()], weights={"format": 0.2})
    env.reset(options={"task_id": "train-3"})
    _, _, _, _, info = env.step("<think>up</think><action>inc</action>")
    assert info["valid_action"] and info["format_ok"] and info["reward_terms"]["format"] == 0.0
    _, reward, _, _, info = env.step("inc please")
    assert not info["format_ok"] and info["reward_terms"]["format"] == -1.0
    assert not info["valid_action"]  # the parser found no action, so the env saw ''
    assert reward == pytest.approx(-0.1 - 0.2)
    assert "no <action>" in info["format_error"]


def test_parse_action_survives_non_strings(counter_env) -> None:
    env = ParseAction(counter_env)
    env.reset(seed=0)
    *_, info = env.step(None)  # type: ignore[arg-type]
    assert info["format_ok"] is False and info["valid_action"] is False
