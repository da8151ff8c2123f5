"""`SingleAgent`: one seat of a multi-agent env as a `turnwise.Env`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import turnwise
from turnwise.envs.dilemma import DilemmaEnv
from turnwise.envs.dilemma.strategies import AlwaysCooperate, AlwaysDefect, RandomMoves, TitForTat
from turnwise.testing import check_env
from turnwise.wrappers import SingleAgent

P0, P1 = "player_0", "player_1"


def rollout(env: SingleAgent, actions: list[Any], **reset: Any) -> list[Any]:
    steps: list[Any] = [env.reset(**reset)]
    for action in actions:
        steps.append(env.step(action))
        if steps[-1][2] or steps[-1][3]:
            break
    return steps


def test_plays_the_learner_seat_against_fixed_partners() -> None:
    env = SingleAgent(DilemmaEnv(), P0, {P1: AlwaysDefect()})
    obs, info = env.reset(seed=1, options={"task_id": "classic-3"})
    assert "You are player_0" in obs["text"] and info["task_id"] == "classic-3"
    assert info["admissible_actions"] == ["cooperate", "defect"]
    assert info["instruction"].startswith("Play 3 rounds")
    obs, reward, terminated, truncated, info = env.step("cooperate")
    assert reward == 0.0 and info["reward_terms"] == {"payoff": 0.0, "valid": 0.0}
    assert info["opponent_move"] == "defect" and info["turn"] == 1
    assert "your opponent defected" in obs["text"]
    env.step("defect")
    *_, terminated, truncated, info = env.step("defect")
    assert terminated and not truncated
    assert info["success"] is True and info["scores"] == {P0: 2.0, P1: 7.0}


def test_learner_reward_equals_the_inner_envs_reward() -> None:
    moves = ["defect", "cooperate", "banana", "cooperate", "defect"]
    env = SingleAgent(DilemmaEnv(), P1, {P0: TitForTat()})
    outer = rollout(env, moves, seed=4, options={"task_id": "donation-5"})
    inner, partner = DilemmaEnv(), TitForTat()
    obs, infos = inner.reset(options={"task_id": "donation-5"})
    for (_, reward, *_, info), move in zip(outer[1:], moves, strict=False):
        obs, rewards, _, _, infos = inner.step({P0: partner.act(obs[P0], infos[P0]), P1: move})
        assert reward == rewards[P1] and info["reward_terms"] == infos[P1]["reward_terms"]
        assert info["reward_weights"] == infos[P1]["reward_weights"]
        assert info["state_key"] == infos[P1]["state_key"]


def test_self_play_shares_one_policy_between_seats() -> None:
    policy = TitForTat()
    env = SingleAgent.self_play(DilemmaEnv(), P0, policy)
    assert env.partners == {P1: policy}
    env.reset(options={"task_id": "classic-5"})
    total = 0.0
    while True:
        _obs, reward, terminated, truncated, info = env.step(env.expert_action())
        total += float(reward)
        if terminated or truncated:
            break
    assert info["success"] and total == 15.0  # two tit-for-tats cooperate throughout


@pytest.mark.parametrize(
    ("learner", "partner"),
    [(P0, TitForTat()), (P1, AlwaysDefect()), (P0, AlwaysCooperate()), (P1, RandomMoves())],
)
def test_passes_check_env(learner: str, partner: Any) -> None:
    other = P1 if learner == P0 else P0
    env = SingleAgent(turnwise.make("turnwise/Dilemma-v0"), learner, {other: partner})
    report = check_env(env, n_tasks=2)
    assert report.ok and report.env_id == f"SingleAgent(turnwise/Dilemma-v0, {learner})"


def test_seeded_partners_make_episodes_replayable() -> None:
    env = SingleAgent(DilemmaEnv(), P0, {P1: RandomMoves(seed=None)})
    moves = ["cooperate"] * 8
    first = rollout(env, moves, seed=7, options={"task_id": "classic-8"})
    again = rollout(env, moves, seed=7, options={"task_id": "classic-8"})
    assert [s[0] for s in first] == [s[0] for s in again]

    def partner_moves(seed: int) -> list[str]:
        steps = rollout(env, moves, seed=seed, options={"task_id": "classic-8"})
        return [step[4]["opponent_move"] for step in steps[1:]]

    # The seed reaches the partner: other seeds, other partner moves.
    assert any(partner_moves(s) != partner_moves(7) for s in range(8, 12))


def test_rejected_actions_consume_a_turn_without_stepping_the_inner_env() -> None:
    inner = DilemmaEnv()
    env = SingleAgent(inner, P0, {P1: AlwaysDefect()})
    env.reset(options={"task_id": "classic-3"})
    obs, reward, *_, info = env.step(None)  # type: ignore[arg-type]
    assert not info["valid_action"] and info["turn"] == 1 and inner.turn == 0
    assert reward == pytest.approx(-0.1) and obs["text"].startswith("Invalid action")
    *_, info = env.step("maybe")
    assert not info["valid_action"] and inner.turn == 1  # the game's own invalid move: a forfeit
    assert info["reward_terms"] == {"payoff": 0.0, "valid": -1.0}


def test_truncation_follows_the_inner_turn_limit() -> None:
    env = SingleAgent(DilemmaEnv(max_turns=2), P0, {P1: AlwaysDefect()})
    assert env.max_turns == 2
    steps = rollout(env, ["defect"] * 5, options={"task_id": "classic-8"})
    *_, terminated, truncated, info = steps[-1]
    assert truncated and not terminated and info["turn"] == 2 and info["success"] is False


def test_expert_and_tasks_come_from_the_inner_env() -> None:
    env = SingleAgent(DilemmaEnv(split="test"), P1, {P0: AlwaysDefect()})
    assert env.split == "test" and env.splits == ("train", "test")
    assert list(env.tasks()) == list(DilemmaEnv().tasks("test"))
    env.reset(options={"task_id": "lopsided-4"})
    assert env.expert_action() == "cooperate"
    env.step("cooperate")
    assert env.expert_action() == "defect"


def test_close_closes_the_inner_env_once() -> None:
    calls: list[str] = []

    class Counted(DilemmaEnv):
        def _close(self) -> None:
            calls.append("closed")

    env = SingleAgent(Counted(), P0, {P1: AlwaysDefect()})
    env.close()
    env.close()
    assert calls == ["closed"]


def test_bad_seats_and_partners_are_rejected() -> None:
    with pytest.raises(ValueError, match="not a seat"):
        SingleAgent(DilemmaEnv(), "player_7", {P1: AlwaysDefect()})
    with pytest.raises(ValueError, match="exactly the other seats"):
        SingleAgent(DilemmaEnv(), P0, {})
    with pytest.raises(TypeError, match="not an Agent"):
        SingleAgent(DilemmaEnv(), P0, {P1: "defect"})  # type: ignore[dict-item]


class Stateful:
    """Counts its resets, to show partners are reset before every episode."""

    def __init__(self) -> None:
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        return "cooperate"


def test_partners_are_reset_before_each_episode() -> None:
    partner = Stateful()
    env = SingleAgent(DilemmaEnv(), P0, {P1: partner})
    env.reset()
    env.reset(seed=3)
    assert partner.resets == 2


def test_turn_based_partners_move_first_and_may_end_the_game_before_the_learner() -> None:
    from turnwise.envs.social.env import SocialEnv

    class Says:
        def __init__(self, *lines: str) -> None:
            self.lines = list(lines)

        def act(self, observation: Any, info: Any) -> str:
            return "" if info.get("admissible_actions") == [] else self.lines.pop(0)

    env = SingleAgent(SocialEnv(max_turns=4), P1, {P0: Says("Hello.", "How are you?")})
    obs, _ = env.reset(options={"task_id": "reference-check"})
    assert 'said: "Hello."' in obs["text"] and obs["text"].endswith("Your turn.")
    obs, _, terminated, _, info = env.step("Fine, thanks.")
    # One learner step covers its own line and the partner's answer.
    assert 'said: "Fine, thanks."' in obs["text"] and 'said: "How are you?"' in obs["text"]
    assert not terminated and info["turn"] == 1 and env.parallel_env.turn == 3

    env = SingleAgent(SocialEnv(), P1, {P0: Says("leave")})
    obs, _ = env.reset(options={"task_id": "reference-check"})
    assert "left the conversation" in obs["text"] and "over" in obs["text"]
    _, reward, terminated, truncated, info = env.step("Wait!")
    assert terminated and not truncated and info["success"] is False
    assert not info["valid_action"] and reward == pytest.approx(-0.1)  # never reached the game
