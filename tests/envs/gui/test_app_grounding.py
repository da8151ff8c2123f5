"""Tests of `turnwise/AppGrounding-v0`: grounding on real desktop apps with boxes from AT-SPI.

Every view of every app gives targets that the expert hits; a scene is the same screen and
target each time; the reward terms are GUI-G²'s; bad actions and ids are handled; and the env
passes `check_env`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import turnwise
from turnwise.core import UnknownTaskError
from turnwise.envs.gui.app_grounding import APPS, INSTANCES, VIEWS, AppGroundingEnv, scene_plan
from turnwise.rewards import gaussian_coverage
from turnwise.testing import check_env

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def env() -> Iterator[AppGroundingEnv]:
    with AppGroundingEnv(split="test", elements_in_text=True) as e:
        yield e


def first_scene_with(app: str, view: str) -> str:
    for index in range(INSTANCES["test"]):
        scene = f"{app}/test/{index:04d}"
        if scene_plan(scene)[1] == view:
            return scene
    raise AssertionError(f"no test scene of {app} shows the {view} view")


def test_task_ids_and_scene_plans() -> None:
    env = AppGroundingEnv(targets_per_instance=2)
    ids = env.tasks("train")
    assert len(ids) == 2 * len(APPS) * INSTANCES["train"] == len(set(ids))
    assert ids[:4] == [
        "mousepad/train/0000#0", "mousepad/train/0000#1",
        "gnumeric/train/0000#0", "gnumeric/train/0000#1",
    ]  # fmt: skip
    assert not set(ids) & set(env.tasks("test"))
    # Plans are seeded by the scene: the same every time, and every view comes up.
    assert scene_plan("gnumeric/test/0003")[:2] == scene_plan("gnumeric/test/0003")[:2]
    for app, views in VIEWS.items():
        seen = {scene_plan(f"{app}/train/{i:04d}")[1] for i in range(INSTANCES["train"])}
        assert seen == set(views)
    for bad in ("paint/test/0000#0", "mousepad/test/0050#0", "mousepad/test/0000#4", "x"):
        with pytest.raises(UnknownTaskError):
            env.reset(options={"task_id": bad})
    env.close()


@pytest.mark.parametrize(
    ("app", "view"), [(app, view) for app, views in VIEWS.items() for view in views]
)
def test_the_expert_hits_a_target_of_every_view(env: AppGroundingEnv, app: str, view: str) -> None:
    scene = first_scene_with(app, view)
    obs, info = env.reset(options={"task_id": f"{scene}#1"})
    assert info["view"] == env.view == view
    target = env.target
    assert info["instruction"] == obs["instruction"] and target.describe() in obs["instruction"]
    assert info["target_box"] == list(target.box) and target in env.elements
    assert f"  {target.listing()}" in obs["text"].splitlines()
    assert obs["image"].shape == (600, 800, 3)
    action = env.expert_action()
    _, reward, terminated, _, info = env.step(action)
    assert terminated and info["success"] is True and reward == 1.0
    assert info["reward_terms"]["outcome"] == 1.0
    assert info["reward_terms"]["gaussian_point"] == pytest.approx(1.0, abs=0.01)
    assert info["point"] == list(target.centre)
    assert env.expert_action() is None


def test_views_show_what_they_name(env: AppGroundingEnv) -> None:
    env.reset(options={"task_id": f"{first_scene_with('mousepad', 'find-and-replace')}#0"})
    names = {e.describe() for e in env.elements}
    assert {'button "Replace"', 'checkbox "Match case"'} <= names
    env.reset(options={"task_id": f"{first_scene_with('gnumeric', 'format-cells')}#0"})
    names = {e.describe() for e in env.elements}
    assert {'tab "Number"', 'button "OK"'} <= names
    env.reset(options={"task_id": f"{first_scene_with('mousepad', 'menu')}#0"})
    assert any(e.role == "menuitem" for e in env.elements)
    env.reset(options={"task_id": f"{first_scene_with('mousepad', 'window')}#0"})
    assert not any(e.role == "menuitem" for e in env.elements)


def test_the_same_task_is_the_same_screen_and_target(env: AppGroundingEnv) -> None:
    task_id = f"{first_scene_with('gnumeric', 'menu')}#2"
    first, info1 = env.reset(options={"task_id": task_id})
    env.reset(options={"task_id": "mousepad/test/0001#0"})
    second, info2 = env.reset(options={"task_id": task_id})
    assert info1["instruction"] == info2["instruction"]
    assert info1["target_box"] == info2["target_box"]
    assert first["text"] == second["text"]
    assert np.array_equal(first["image"], second["image"])


def test_misses_and_invalid_actions(env: AppGroundingEnv) -> None:
    _, info = env.reset(options={"task_id": "mousepad/test/0000#0"})
    obs, _, terminated, _, info = env.step('type("hello")')  # not a click: invalid
    assert not terminated and info["valid_action"] is False
    assert "Error:" in obs["text"]
    _, _, terminated, _, info = env.step("click(900, 10)")  # off screen: invalid
    assert not terminated and info["valid_action"] is False
    left, top, width, height = info["target_box"]
    _, _, terminated, _, info = env.step(f"click({left + width + 40}, {top + height + 40})")
    assert terminated and info["success"] is False
    terms = info["reward_terms"]
    assert terms["outcome"] == 0.0 and 0.0 < terms["gaussian_coverage"] < 1.0
    assert terms["gaussian_point"] < 0.01


def test_gaussian_reward_preset() -> None:
    with AppGroundingEnv(apps=["mousepad"], reward="gaussian", split="test") as env:
        env.reset(options={"task_id": "mousepad/test/0000#0"})
        _, reward, *_ = env.step(env.expert_action())
        # R = R_point + R_coverage; a valid step adds no penalty.
        coverage = gaussian_coverage(env.target.centre, env.target.box, alpha=0.5)
        assert 0.0 < coverage < 1.0
        assert reward == pytest.approx(1.0 + coverage, abs=0.01)


@pytest.mark.slow
def test_check_env() -> None:
    env = turnwise.make("turnwise/AppGrounding-v0", apps=["mousepad"])
    assert env.unwrapped.family == "gui"
    check_env(env, n_tasks=2)
