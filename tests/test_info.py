from __future__ import annotations

import math

from turnwise.info import validate_reset_info, validate_step_info, weighted_reward


def test_weighted_reward_known_answers() -> None:
    assert weighted_reward({}) == 0.0
    assert weighted_reward({"a": 2.0, "b": -1.0}) == 1.0
    assert math.isclose(weighted_reward({"a": 2.0, "b": -1.0}, {"b": 0.25}), 1.75)


def test_reset_info_problems() -> None:
    good = {"task_id": "t", "instruction": "do", "max_turns": 3}
    assert validate_reset_info(good) == []
    problems = validate_reset_info({"task_id": 3, "max_turns": True, "admissible_actions": [1]})
    text = " ".join(problems)
    assert "task_id" in text and "instruction" in text and "max_turns" in text
    assert "only strings" in text


def test_step_info_problems() -> None:
    info = {"valid_action": True, "reward_terms": {"a": 1.0}, "state_key": "s", "turn": 1}
    assert validate_step_info(info, 1.0, ended=False) == []
    assert any("weighted sum" in p for p in validate_step_info(info, 2.0, ended=False))
    assert any("success" in p for p in validate_step_info(info, 1.0, ended=True))
    bad = {**info, "reward_terms": {"a": float("nan")}}
    assert any("finite" in p for p in validate_step_info(bad, 1.0, ended=False))
    weighted = {**info, "reward_weights": {"a": 0.5}}
    assert validate_step_info(weighted, 0.5, ended=False) == []
    assert any(
        "valid_action" in p for p in validate_step_info({**info, "valid_action": 1}, 1.0, False)
    )


def test_reward_sum_is_checked_even_when_other_keys_are_missing() -> None:
    problems = validate_step_info({"reward_terms": {"a": 1.0}}, 3.0, ended=False)
    assert any("weighted sum" in p for p in problems)
    assert any("valid_action" in p for p in problems)
