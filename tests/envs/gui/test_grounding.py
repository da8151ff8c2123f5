"""Tests of `turnwise/Grounding-v0`: "click the …" on page screenshots, judged by element boxes.

Known answers pin the reward terms (a click on the box edge is a hit worth exp(-1/2) of Gaussian
point reward at alpha 0.5); the expert hits every page's targets; instructions are unambiguous;
splits are disjoint and deterministic; the env passes `check_env`; and a tiny model trains on it
with the Gaussian rewards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

import turnwise
from turnwise.core import UnknownTaskError
from turnwise.envs.gui.grounding import (
    GROUNDING_PAGES,
    REWARD_PRESETS,
    Element,
    GroundingEnv,
    click_terms,
    targets,
)
from turnwise.rewards import GaussianClick, StepContext
from turnwise.testing import check_env

browser_test = pytest.mark.browser
EDGE = math.exp(-0.5)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from turnwise.sandboxes.browser import Browser

    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def env(browser: object) -> Iterator[GroundingEnv]:
    with GroundingEnv(browser=browser, elements_in_text=True) as e:  # type: ignore[arg-type]
        yield e


# ---------------------------------------------------------------------- no browser
def test_click_terms_known_answers() -> None:
    box = (10, 20, 40, 30)  # x in 10..50, y in 20..50
    centre = click_terms((30, 35), box)
    assert centre["outcome"] == 1.0 and centre["gaussian_point"] == 1.0
    assert centre["gaussian_coverage"] == pytest.approx((math.erf(1 / math.sqrt(2))) ** 2)
    for edge in [(50, 35), (10, 35), (30, 20), (30, 50)]:
        terms = click_terms(edge, box)
        assert terms["outcome"] == 1.0 and terms["gaussian_point"] == pytest.approx(EDGE)
    outside = click_terms((51, 35), box)
    assert outside["outcome"] == 0.0 and outside["gaussian_point"] < EDGE
    assert outside["gaussian_coverage"] < terms["gaussian_coverage"] < centre["gaussian_coverage"]
    # The adaptive variance: a wider alpha forgives more.
    assert click_terms((51, 35), box, alpha=1.0)["gaussian_point"] > outside["gaussian_point"]


def test_targets_are_named_unambiguously() -> None:
    def element(role: str, name: str, y: int) -> Element:
        return Element(role, name, (0, y, 20, 10))

    page = [
        element("button", "Save", 0),
        element("button", "save", 10),  # the same name, in another case: neither is a target
        element("checkbox", "Red", 20),
        element("StaticText", "Red", 30),  # the checkbox's label: left to the checkbox
        element("StaticText", "Hello", 40),
        element("link", "Hello", 50),  # a text and a link alike: the link keeps it
        element("textbox", "", 60),
        element("textbox", "", 70),  # two unnamed text fields: neither
        element("radio", "", 80),  # the one radio button: "Click the radio button."
        element("tab", "Tab #1", 90),
    ]
    assert [e.describe() for e in targets(page)] == [
        'checkbox "Red"',
        'link "Hello"',
        "radio button",
        'tab "Tab #1"',
    ]


def test_reward_presets_and_options() -> None:
    binary = GroundingEnv()
    assert binary.reward_weights == {"valid": 0.1, **REWARD_PRESETS["binary"]}
    gaussian = GroundingEnv(reward="gaussian", reward_weights={"valid": 0.0})
    assert gaussian.reward_weights == {
        "valid": 0.0,
        "outcome": 0.0,
        "gaussian_point": 1.0,
        "gaussian_coverage": 1.0,
    }
    assert binary.max_turns == 3 and binary.family == "gui"
    for env in (binary, gaussian):
        env.close()
    with pytest.raises(ValueError, match="reward must be one of"):
        GroundingEnv(reward="dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha must be positive"):
        GroundingEnv(alpha=0.0)
    with pytest.raises(ValueError, match="unknown MiniWoB pages"):
        GroundingEnv(pages=["click-nothing"])


def test_splits_are_disjoint_and_deterministic() -> None:
    env = GroundingEnv()
    train, test = env.tasks("train"), env.tasks("test")
    assert len(train) == 1000 * len(GROUNDING_PAGES) * 4
    assert len(test) == 100 * len(GROUNDING_PAGES) * 4
    assert set(train).isdisjoint(test)
    instances = {split: {t.partition("#")[0] for t in env.tasks(split)} for split in env.splits}
    assert instances["train"].isdisjoint(instances["test"])
    assert GroundingEnv().tasks("test") == test  # a fixed order
    # Any prefix mixes the pages, so that a short run sees all of them.
    assert {t.split("/")[0] for t in train[: 4 * len(GROUNDING_PAGES)]} == set(GROUNDING_PAGES)
    env.close()
    with GroundingEnv(pages=["click-button"], targets_per_instance=2) as small:
        assert small.tasks("test")[:3] == [
            "click-button/test/0000#0",
            "click-button/test/0000#1",
            "click-button/test/0001#0",
        ]
        for bad in ("click-button/train/0003#2", "click-button/valid/0003#0", "click-link/0003"):
            with pytest.raises(UnknownTaskError):
                small.reset(options={"task_id": bad})


# ---------------------------------------------------------------------- in the browser
# A task whose target has room on its right.
EDGE_TASK = "click-dialog-2/test/0000#0"


@browser_test
@pytest.mark.slow
def test_the_expert_hits_the_targets_of_every_page(env: GroundingEnv) -> None:
    for n, page in enumerate(GROUNDING_PAGES):
        for task_id in (f"{page}/test/{n:04d}#{n % 4}", f"{page}/train/{n + 7:04d}#0"):
            obs, info = env.reset(options={"task_id": task_id})
            assert (
                obs["instruction"] == info["instruction"] == f"Click the {env.target.describe()}."
            )
            action = env.expert_action()
            assert action is not None
            _, reward, terminated, _, info = env.step(action)
            assert terminated and info["success"] and reward == 1.0, task_id
            assert info["reward_terms"]["outcome"] == 1.0
            assert info["reward_terms"]["gaussian_point"] > 0.95


@browser_test
def test_observation_image_text_and_target(env: GroundingEnv, browser: object) -> None:
    obs, info = env.reset(options={"task_id": "click-option/test/0003#1"})
    assert obs["image"].shape == (320, 320, 3) and env.observation_space.contains(obs)
    lines = obs["text"].splitlines()
    assert lines[:3] == [
        f"Instruction: {info['instruction']}",
        "Screen: 320x320 pixels",
        "Elements:",
    ]
    assert f"  {env.target.listing()}" in lines[3:]
    assert info["target_box"] == list(env.target.box) and "point" not in info
    assert info["state_key"] == "click-option/test/0003#1|open"
    assert "click(x, y)" in info["action_syntax"] and "type" not in info["action_syntax"]
    with GroundingEnv(browser=browser) as plain:  # type: ignore[arg-type]
        obs, _ = plain.reset(options={"task_id": "click-option/test/0003#1"})
        assert "Elements:" not in obs["text"] and len(obs["text"].splitlines()) == 2


@browser_test
@pytest.mark.slow
def test_instructions_name_one_element(env: GroundingEnv) -> None:
    content = {"StaticText", "image"}
    for task_id in env.tasks("test")[1 : len(GROUNDING_PAGES) * 4 : 4]:  # one of each page
        env.reset(options={"task_id": task_id})
        target = env.target
        assert target in env.elements
        same = [e for e in env.elements if e.name.casefold() == target.name.casefold()]
        assert [e.describe() for e in same].count(target.describe()) == 1, task_id
        if target.name:
            assert [e for e in same if e.role not in content] in ([], [target]), task_id
        else:
            assert [e.role for e in env.elements].count(target.role) == 1, task_id


@browser_test
@pytest.mark.slow
def test_the_same_task_is_the_same_screen_and_target(env: GroundingEnv) -> None:
    first, info = env.reset(seed=1, options={"task_id": "click-checkboxes/train/0005#0"})
    again, info_again = env.reset(seed=2, options={"task_id": "click-checkboxes/train/0005#0"})
    assert first["image"].tobytes() == again["image"].tobytes()
    assert (info["instruction"], info["target_box"]) == (
        info_again["instruction"],
        info_again["target_box"],
    )
    other, info_other = env.reset(options={"task_id": "click-checkboxes/train/0005#1"})
    assert other["image"].tobytes() == first["image"].tobytes()  # same page instance
    assert info_other["target_box"] != info["target_box"]  # another of its elements
    test, _ = env.reset(options={"task_id": "click-checkboxes/test/0005#0"})
    assert test["image"].tobytes() != first["image"].tobytes()


@browser_test
def test_a_click_on_the_edge_hits_with_a_known_gaussian_reward(env: GroundingEnv) -> None:
    _, info = env.reset(options={"task_id": EDGE_TASK})
    left, top, width, height = info["target_box"]
    assert left + width < 320
    x, y = left + width, top + height // 2
    _, reward, terminated, _, info = env.step(f"click({x}, {y})")
    assert terminated and info["success"] and reward == 1.0
    assert info["point"] == [x, y] and info["state_key"].endswith("|decided")
    assert info["reward_terms"]["outcome"] == 1.0
    # On the right edge, x is one σ (α·width, α = 0.5 → half the width) from the centre:
    # exp(-1/2). An odd height puts y half a pixel above the middle, which multiplies that by
    # exp(-(0.5 / (0.5·height))² / 2) (how the target renders decides which case this is).
    dy = 0.5 if height % 2 else 0.0
    expected = EDGE * math.exp(-0.5 * (dy / (0.5 * height)) ** 2)
    assert info["reward_terms"]["gaussian_point"] == pytest.approx(expected)


@browser_test
def test_a_click_outside_misses_with_a_smaller_gaussian_reward(env: GroundingEnv) -> None:
    _, info = env.reset(options={"task_id": EDGE_TASK})
    left, top, width, height = info["target_box"]
    _, reward, terminated, _, info = env.step(f"click({left + width + 6}, {top + height // 2})")
    assert terminated and not info["success"] and reward == 0.0
    assert info["reward_terms"]["outcome"] == 0.0
    assert 0.0 < info["reward_terms"]["gaussian_point"] < EDGE


@browser_test
def test_invalid_actions_do_not_decide(env: GroundingEnv) -> None:
    _, info = env.reset(options={"task_id": "click-button/test/0001#0"})
    box = info["target_box"]
    for action, message in [
        ('type("ok")', "unknown action"),
        ("click(320, 5)", "off the screen"),
        ("the button is at 3, 4", "cannot read"),
    ]:
        obs, reward, terminated, truncated, info = env.step(action)
        assert not info["valid_action"] and not terminated, action
        assert message in obs["text"] and info["target_box"] == box and "point" not in info
        assert set(info["reward_terms"]) == {
            "outcome",
            "gaussian_point",
            "gaussian_coverage",
            "valid",
        }
        assert reward == pytest.approx(-0.1)
        if truncated:
            break
    assert truncated and info["success"] is False  # 3 turns, no click


@browser_test
def test_gaussian_rewards_are_point_plus_coverage(browser: object) -> None:
    with GroundingEnv(browser=browser, reward="gaussian") as env:  # type: ignore[arg-type]
        _, info = env.reset(options={"task_id": "click-widget/test/0002#1"})
        left, top, _, height = info["target_box"]
        action = f"click({left + 1}, {top + height - 1})"  # inside, near a corner
        _, reward, _, _, info = env.step(action)
        terms = info["reward_terms"]
        assert reward == pytest.approx(terms["gaussian_point"] + terms["gaussian_coverage"])
        assert 0 < terms["gaussian_point"] < 1 and 0 < terms["gaussian_coverage"] < 0.5
        # The GaussianClick hook reads the same info and scores the same.
        ctx = StepContext(
            env_id=env.env_id,
            task_id=str(env.task_id),
            instruction=env.task.instruction,
            turn=1,
            observation={},
            action=action,
            next_observation={},
            info=info,
            terminated=True,
            truncated=False,
        )
        assert GaussianClick()(ctx) == pytest.approx(reward)


@browser_test
@pytest.mark.slow
def test_check_env(browser: object) -> None:
    env = turnwise.make(
        "turnwise/Grounding-v0", pages=["click-button", "click-option"], browser=browser
    )
    assert env.unwrapped.family == "gui"
    check_env(env, n_tasks=2)


@browser_test
@pytest.mark.slow
def test_a_tiny_model_trains_on_it_with_gaussian_rewards(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="needs torch (pip install 'turnwise[train]')")
    pytest.importorskip("transformers", reason="needs transformers (pip install 'turnwise[train]')")
    from turnwise.rollout import iter_trajectories
    from turnwise.trainers.config import TrainConfig
    from turnwise.trainers.loop import train
    from turnwise.trainers.metrics import read_metrics

    config = TrainConfig(
        algo="grpo",
        env="turnwise/Grounding-v0",
        env_kwargs='{"elements_in_text": true, "reward": "gaussian", "pages": ["click-button"]}',
        model="nano",
        out=tmp_path / "run",
        iterations=1,
        tasks_per_iteration=1,
        group_size=2,
        workers=1,
        max_tokens=12,
        eval_every=0,
    )
    result = train(config, console=False)
    assert result.iterations == 1
    terms = {"reward/gaussian_point", "reward/gaussian_coverage", "reward/outcome"}
    (logged,) = read_metrics(config.out)
    assert terms <= set(result.history[-1]) and terms <= set(logged)
    assert logged["rollout/failed"] == 0 and math.isfinite(logged["loss/policy"])
    trajs = list(iter_trajectories(config.out / "rollouts" / "iter-00000"))
    assert len(trajs) == 2 and all(t.task_id.startswith("click-button/") for t in trajs)
    for turn in (turn for t in trajs for turn in t.turns):
        parts = turn.reward_terms
        expected = parts["gaussian_point"] + parts["gaussian_coverage"] + 0.1 * parts["valid"]
        assert turn.reward == pytest.approx(expected)
