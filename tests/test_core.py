"""The behaviour `turnwise.Env` promises for every env, checked on a tiny subclass."""

from __future__ import annotations

import gymnasium
import pytest

from turnwise import UnknownTaskError
from turnwise.info import validate_reset_info, validate_step_info, weighted_reward


def test_reset_info_follows_contract(counter_env) -> None:
    obs, info = counter_env.reset(seed=0)
    assert set(obs) == {"text"}
    assert validate_reset_info(info) == []
    assert info["task_id"] in counter_env.tasks("train")
    assert info["split"] == "train"
    assert info["admissible_actions"] == ["inc", "dec"]
    assert info["max_turns"] == 10
    assert info["state_key"] == "count=0"


def test_seed_alone_picks_task_deterministically(counter_env) -> None:
    picks = [counter_env.reset(seed=s)[1]["task_id"] for s in range(8)]
    assert picks == [counter_env.reset(seed=s)[1]["task_id"] for s in range(8)]
    assert len(set(picks)) > 1


def test_same_task_and_seed_same_episode_whether_named_or_drawn(counter_env) -> None:
    obs_drawn, info = counter_env.reset(seed=11)
    obs_named, _ = counter_env.reset(seed=11, options={"task_id": info["task_id"]})
    assert obs_drawn == obs_named
    # The seed changes presentation only (here: the flavour word).
    texts = {
        counter_env.reset(seed=s, options={"task_id": "train-3"})[0]["text"] for s in range(10)
    }
    assert texts == {"[plain] count to 3", "[fancy] count to 3"}


def test_task_selection_by_id_and_split(counter_env) -> None:
    _, info = counter_env.reset(options={"task_id": "test-2"})
    assert info["task_id"] == "test-2" and info["split"] == "test"
    _, info = counter_env.reset(seed=1, options={"split": "test"})
    assert info["task_id"].startswith("test-")


def test_unknown_task_and_options_are_clear_errors(counter_env) -> None:
    with pytest.raises(UnknownTaskError, match="Did you mean"):
        counter_env.reset(options={"task_id": "train-9"})
    with pytest.raises(ValueError, match="unknown reset options"):
        counter_env.reset(options={"difficulty": "hard"})
    with pytest.raises(ValueError, match="unknown split"):
        counter_env.reset(options={"split": "nope"})


def test_step_info_reward_and_valid_term(counter_env) -> None:
    counter_env.reset(options={"task_id": "train-2"})
    _, reward, terminated, truncated, info = counter_env.step("inc")
    assert validate_step_info(info, float(reward), ended=False) == []
    assert info["reward_terms"] == {"outcome": 0.0, "progress": 0.5, "valid": 0.0}
    assert reward == pytest.approx(0.25)
    assert info["turn"] == 1 and not terminated and not truncated
    _, reward, terminated, _, info = counter_env.step("inc")
    assert terminated and info["success"] is True
    assert reward == pytest.approx(weighted_reward(info["reward_terms"], info["reward_weights"]))
    assert reward == pytest.approx(1.25)
    assert info["admissible_actions"] == []


def test_invalid_actions_never_raise(counter_env) -> None:
    counter_env.reset(options={"task_id": "train-5"})
    bad: list[object] = ["jump", "", "x" * 10_000, None, 42, b"inc", "\ud800inc", "\x00\x1b[2J"]
    for action in bad:
        obs, reward, _, truncated, info = counter_env.step(action)  # type: ignore[arg-type]
        assert info["valid_action"] is False, action
        assert info["reward_terms"]["valid"] == -1.0
        assert reward == pytest.approx(-0.1)
        assert obs["text"]
        if truncated:
            break


def test_overlong_and_non_string_messages(counter_env) -> None:
    counter_env.reset(options={"task_id": "train-5"})
    assert "limit is 4096" in counter_env.step("x" * 5000)[0]["text"]
    assert "got NoneType" in counter_env.step(None)[0]["text"]  # type: ignore[arg-type]


def test_lone_surrogates_never_reach_the_env(counter_env) -> None:
    counter_env.reset(options={"task_id": "train-5"})
    obs, *_ = counter_env.step("\udcff")
    obs["text"].encode("utf-8")  # would raise if a surrogate had been echoed back
    assert "\ufffd" in obs["text"]


def test_truncation_at_max_turns(counter_env) -> None:
    counter_env.reset(options={"task_id": "train-5"})
    for turn in range(1, 11):
        _, _, terminated, truncated, info = counter_env.step("dec")
        assert truncated == (turn == 10) and not terminated
    assert info["truncation_reason"] == "max_turns" and info["success"] is False


def test_steps_after_the_end_are_invalid_and_change_nothing(counter_env) -> None:
    counter_env.reset(options={"task_id": "train-1"})
    counter_env.step("inc")
    for _ in range(3):
        obs, reward, terminated, truncated, info = counter_env.step("inc")
        assert "episode is over" in obs["text"]
        assert (reward, terminated, truncated) == (0.0, True, False)
        assert info["valid_action"] is False and info["episode_over"] is True
        assert info["success"] is True and info["state_key"] == "count=1"


def test_step_before_reset_raises(counter_env) -> None:
    with pytest.raises(gymnasium.error.ResetNeeded):
        counter_env.step("inc")


def test_close_is_idempotent_and_context_manager(counter_env) -> None:
    with counter_env as env:
        env.reset(seed=0)
    counter_env.close()
    assert counter_env.closed_calls == 1


def test_constructor_validation(counter_env) -> None:
    with pytest.raises(ValueError, match="max_turns"):
        type(counter_env)(max_turns=0)
    with pytest.raises(ValueError, match="unknown split"):
        type(counter_env)(split="dev")


def test_reward_weights_override(counter_env) -> None:
    env = type(counter_env)(reward_weights={"valid": 0.0, "outcome": 10.0})
    env.reset(options={"task_id": "train-1"})
    _, reward, *_ = env.step("inc")
    assert reward == pytest.approx(10.0 + 0.5)


def test_render_modes(counter_env, capsys) -> None:
    obs, _ = counter_env.reset(seed=5, options={"task_id": "train-1"})
    assert counter_env.render() == obs["text"]
    env = type(counter_env)(render_mode="human")
    env.reset(options={"task_id": "train-1"})
    env.step("inc")
    assert "count is 1" in capsys.readouterr().out
    with pytest.raises(ValueError, match="render_mode"):
        type(counter_env)(render_mode="rgb_array")
