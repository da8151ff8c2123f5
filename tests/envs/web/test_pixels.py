"""Tests of `turnwise/MiniWoBPixel-v0`: MiniWoB++ driven by screenshots and coordinates.

The expert (the DOM experts translated into clicks and keys) solves every page that has one,
observations hold pixels and no page structure, bad actions are invalid steps that say why,
screenshots replay byte for byte, and the env passes `check_env`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import turnwise
from turnwise.envs.gui.actions import ActionError, GuiActionSet
from turnwise.envs.web.miniwob import EXPERTS
from turnwise.envs.web.pixels import MiniWoBPixelEnv, playwright_keys
from turnwise.testing import check_env

browser_test = pytest.mark.browser
EXPERT_PAGES = sorted(EXPERTS)
# Element boxes, read from the page by the tests only (the agent never sees the DOM).
_BOXES = """(selector) => [...document.querySelectorAll(selector)].map((e) => {
  const r = e.getBoundingClientRect();
  return {text: e.textContent.trim(), x: r.left + r.width / 2, y: r.top + r.height / 2};
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from turnwise.sandboxes.browser import Browser

    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def env(browser: object) -> Iterator[MiniWoBPixelEnv]:
    pages = [*EXPERT_PAGES, "scroll-text"]
    with MiniWoBPixelEnv(pages=pages, browser=browser, max_turns=12) as e:  # type: ignore[arg-type]
        yield e


def boxes(env: MiniWoBPixelEnv, selector: str) -> list[dict[str, Any]]:
    return list(env.page.evaluate(_BOXES, selector))


def quoted(instruction: str) -> str:
    return instruction.partition('"')[2].rpartition('"')[0]


# ---------------------------------------------------------------------- no browser
@pytest.mark.parametrize(
    ("combo", "expected"),
    [
        ("ctrl+s", "Control+s"),
        ("enter", "Enter"),
        ("pageup", "PageUp"),
        ("F4", "F4"),
        ("alt+f4", "Alt+F4"),
        ("shift+tab", "Shift+Tab"),
        ("backspace", "Backspace"),
        ("space", "Space"),
        ("cmd+a", "Meta+a"),
        ("é", "é"),
    ],
)
def test_key_names_map_to_playwright(combo: str, expected: str) -> None:
    assert playwright_keys(combo) == expected


@pytest.mark.parametrize(
    ("combo", "message"),
    [("F13", "no F13 key"), ("ctrl+é", "cannot be pressed"), ("hyper", "unknown key")],
)
def test_keys_the_browser_lacks_are_refused(combo: str, message: str) -> None:
    with pytest.raises(ActionError, match=message):
        playwright_keys(combo)


# ---------------------------------------------------------------------- in the browser
@browser_test
@pytest.mark.parametrize("page", EXPERT_PAGES)
def test_the_expert_solves_every_page_with_a_dom_expert(env: MiniWoBPixelEnv, page: str) -> None:
    parser = GuiActionSet(*env.viewport)
    for instance in ("train/0003", "test/0011"):
        env.reset(options={"task_id": f"{page}/{instance}"})
        for _ in range(env.max_turns):
            action = env.expert_action()
            assert action is not None
            parsed = parser.parse(action)  # a GUI action: no element ids
            obs, reward, terminated, truncated, info = env.step(action)
            assert info["valid_action"], (action, obs["error"])
            if parsed.point is not None:
                assert info["point"] == list(parsed.point)
            if terminated or truncated:
                break
        assert terminated and info["success"] and reward == 1.0, (page, instance)
        assert env.expert_action() is None


@browser_test
def test_observations_are_pixels_only(env: MiniWoBPixelEnv, browser: object) -> None:
    obs, info = env.reset(options={"task_id": "click-button/train/0003"})
    assert set(obs) == {"text", "instruction", "error", "image"}
    assert obs["image"].dtype == np.uint8 and obs["image"].shape == (320, 320, 3)
    assert obs["text"].splitlines() == [
        f"Instruction: {info['instruction']}",
        "Screen: 320x320 pixels",
    ]
    assert env.observation_space.contains(obs)
    assert "drag(x1, y1, x2, y2)" in info["action_syntax"] and "320x320" in info["action_syntax"]
    with MiniWoBPixelEnv(pages=["click-button"], viewport=(240, 280), browser=browser) as small:  # type: ignore[arg-type]
        obs, _ = small.reset(options={"task_id": "click-button/train/0003"})
        assert obs["image"].shape == (280, 240, 3) and small.observation_space.contains(obs)
        _, _, _, _, info = small.step("click(250, 10)")  # on the 320-wide screen, not this one
        assert not info["valid_action"]


@browser_test
@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("click(320, 10)", "off the screen"),
        ("double_click(-1, 5)", "off the screen"),
        ('key("hyper+q")', "unknown key"),
        ('key("F13")', "no F13 key"),
        ("garbage", "write one call"),
        ("click(10)", "missing y"),
        ("__import__('os').system('true')", "write one call"),
    ],
)
def test_bad_actions_are_invalid_and_say_why(
    env: MiniWoBPixelEnv, action: str, message: str
) -> None:
    env.reset(options={"task_id": "click-button/train/0003"})
    obs, reward, terminated, truncated, info = env.step(action)
    assert not info["valid_action"] and not terminated and not truncated
    assert message in obs["error"] and f"Error: {obs['error']}" in obs["text"]
    assert info["reward_terms"]["valid"] == -1.0 and reward < 0
    assert "point" not in info


@browser_test
def test_a_click_in_the_wrong_place_does_not_succeed(env: MiniWoBPixelEnv) -> None:
    obs, info = env.reset(options={"task_id": "click-button/train/0003"})
    _, reward, terminated, _, info = env.step("click(300, 300)")  # blank screen
    assert info["valid_action"] and not terminated and reward == 0.0
    assert info["point"] == [300, 300]
    target = quoted(obs["instruction"])
    wrong = [b for b in boxes(env, "#area button") if b["text"] != target]
    assert wrong
    _, reward, terminated, _, info = env.step(f"click({int(wrong[0]['x'])}, {int(wrong[0]['y'])})")
    assert terminated and not info["success"] and reward == 0.0
    assert info["reward_terms"]["miniwob_reward"] == -1.0


@browser_test
def test_the_same_task_shows_the_same_pixels(env: MiniWoBPixelEnv) -> None:
    def play(task_id: str, seed: int) -> list[bytes]:
        obs, _ = env.reset(seed=seed, options={"task_id": task_id})
        shots = [obs["image"].tobytes()]
        for action in ("move(40, 80)", "click(12, 60)", 'type("ab")', "wait()"):
            obs, *_ = env.step(action)
            shots.append(obs["image"].tobytes())
        return shots

    first = play("click-checkboxes/train/0005", seed=1)
    assert play("click-checkboxes/train/0005", seed=2) == first
    assert play("click-checkboxes/test/0005", seed=1)[0] != first[0]
    assert first[1] != first[2]  # the click checked a box: the screen changed


@browser_test
def test_point_info_is_where_the_action_acts(env: MiniWoBPixelEnv) -> None:
    env.reset(options={"task_id": "click-checkboxes/train/0001"})
    expected: dict[str, list[int] | None] = {
        "click(5, 6)": [5, 6],
        "right_click(7, 8)": [7, 8],
        "double_click(9, 10)": [9, 10],
        "move(11, 12)": [11, 12],
        "drag(1, 2, 30, 40)": [30, 40],
        "scroll(0, 1, 10, 20)": [10, 20],
        "scroll(0, -1)": None,
        'type("x")': None,
        'key("shift")': None,
        "wait()": None,
        "done()": None,
    }
    for action, point in expected.items():
        _, _, terminated, _, info = env.step(action)
        assert info["valid_action"] and not terminated, action
        assert info.get("point") == point, action


@browser_test
def test_the_expert_selects_text_it_must_replace(env: MiniWoBPixelEnv) -> None:
    obs, info = env.reset(options={"task_id": "enter-text/test/0004"})
    field = boxes(env, "#tt")[0]
    env.step(f"click({int(field['x'])}, {int(field['y'])})")
    env.step('type("not the name")')
    actions = []
    for _ in range(5):
        action = env.expert_action()
        assert action is not None
        actions.append(action)
        _, reward, terminated, _, info = env.step(action)
        if terminated:
            break
    assert actions[:2] == ['key("ctrl+a")', f'type("{quoted(obs["instruction"])}")']
    assert terminated and info["success"] and reward == 1.0


@browser_test
def test_scrolling_moves_what_is_under_the_pointer(env: MiniWoBPixelEnv) -> None:
    env.reset(options={"task_id": "scroll-text/train/0001"})
    area = boxes(env, "#area textarea")[0]
    x, y = int(area["x"]), int(area["y"])
    before, *_ = env.step(f"move({x}, {y})")
    before = before["image"]
    obs, _, _, _, info = env.step(f"scroll(0, 2, {x}, {y})")
    assert info["valid_action"] and info["point"] == [x, y]
    assert env.page.evaluate("document.querySelector('#area textarea').scrollTop") > 0
    assert not np.array_equal(obs["image"], before)
    obs, _, _, _, info = env.step("scroll(0, -5)")  # at the pointer, which is still there
    assert env.page.evaluate("document.querySelector('#area textarea').scrollTop") == 0
    assert np.array_equal(obs["image"], before)


@browser_test
@pytest.mark.slow
def test_check_env(browser: object) -> None:
    env = turnwise.make(
        "turnwise/MiniWoBPixel-v0", pages=["click-button", "enter-text"], browser=browser
    )
    assert env.unwrapped.family == "gui"
    check_env(env, n_tasks=1)
