"""Tests of `turnwise/MiniWoB-v0`: scripted solvers read the observation and earn the page's
reward, wrong answers fail, instances are deterministic, and the env passes `check_env`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import turnwise
from turnwise.envs.web.miniwob import INSTANCES, MiniWoBEnv, miniwob_pages
from turnwise.testing import check_env

pytestmark = pytest.mark.browser
PAGES = ["click-button", "enter-text", "click-checkboxes", "click-link", "focus-text"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from turnwise.sandboxes.browser import Browser

    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def env(browser: object) -> Iterator[MiniWoBEnv]:
    with MiniWoBEnv(pages=PAGES, browser=browser, max_turns=15) as e:  # type: ignore[arg-type]
        yield e


def ids(text: str, role: str, name: str | None = None) -> list[int]:
    """Ids of the observation's elements with `role` (and `name`, when given)."""
    pattern = rf'^\s*\[(\d+)\] {role} "{re.escape(name) if name is not None else ".*?"}"'
    return [int(m) for m in re.findall(pattern, text, re.MULTILINE)]


def quoted(instruction: str) -> str:
    return instruction.partition('"')[2].rpartition('"')[0]


def solve_click_button(text: str, instruction: str) -> list[str]:
    return [f"click({ids(text, 'button', quoted(instruction))[0]})"]


def solve_enter_text(text: str, instruction: str) -> list[str]:
    return [
        f'fill({ids(text, "textbox")[0]}, "{quoted(instruction)}")',
        f"click({ids(text, 'button', 'Submit')[0]})",
    ]


def solve_click_checkboxes(text: str, instruction: str) -> list[str]:
    wanted = instruction.removeprefix("Select ").removesuffix(" and click Submit.")
    names = set() if wanted == "nothing" else set(wanted.split(", "))
    return [f"click({i})" for name in sorted(names) for i in ids(text, "checkbox", name)] + [
        f"click({ids(text, 'button', 'Submit')[0]})"
    ]


SOLVERS = {
    "click-button": solve_click_button,
    "enter-text": solve_enter_text,
    "click-checkboxes": solve_click_checkboxes,
}


def test_the_package_pages_are_all_tasks() -> None:
    pages = miniwob_pages()
    assert len(pages) >= 125 and "click-button" in pages and "book-flight" in pages
    env = MiniWoBEnv()
    assert len(env.tasks("test")) == len(pages) * INSTANCES["test"]
    assert env.tasks("train")[7] == f"{pages[0]}/train/0007"
    env.close()
    with pytest.raises(ValueError, match="unknown MiniWoB pages"):
        MiniWoBEnv(pages=["click-nothing"])


@pytest.mark.parametrize("page", sorted(SOLVERS))
@pytest.mark.parametrize("instance", ["train/0003", "test/0011"])
def test_scripted_solvers_earn_the_page_reward(env: MiniWoBEnv, page: str, instance: str) -> None:
    obs, info = env.reset(options={"task_id": f"{page}/{instance}"})
    assert info["instruction"] == obs["instruction"] != ""
    for action in SOLVERS[page](obs["text"], info["instruction"]):
        obs, reward, terminated, _, info = env.step(action)
        assert info["valid_action"], obs["error"]
    assert terminated and info["success"] and reward == 1.0
    assert info["reward_terms"]["outcome"] == 1.0 and info["reward_terms"]["miniwob_reward"] > 0


def test_wrong_answers_fail(env: MiniWoBEnv) -> None:
    obs, info = env.reset(options={"task_id": "click-button/train/0003"})
    target = quoted(info["instruction"])
    wrong = [i for i in ids(obs["text"], "button") if i not in ids(obs["text"], "button", target)]
    if wrong:
        _, reward, terminated, _, info = env.step(f"click({wrong[0]})")
        assert terminated and not info["success"] and reward == 0.0
        assert info["reward_terms"]["miniwob_reward"] == -1.0
    obs, info = env.reset(options={"task_id": "enter-text/train/0001"})
    env.step(f'fill({ids(obs["text"], "textbox")[0]}, "not the name")')
    _, reward, terminated, _, info = env.step(f"click({ids(obs['text'], 'button', 'Submit')[0]})")
    assert terminated and not info["success"] and info["reward_terms"]["miniwob_reward"] == -1.0


def test_instances_are_deterministic_and_distinct(env: MiniWoBEnv) -> None:
    first, _ = env.reset(seed=1, options={"task_id": "click-checkboxes/train/0005"})
    again, _ = env.reset(seed=2, options={"task_id": "click-checkboxes/train/0005"})
    other, _ = env.reset(seed=1, options={"task_id": "click-checkboxes/test/0005"})
    assert first["text"] == again["text"] and first["text"] != other["text"]
    assert first["url"] == "/miniwob/click-checkboxes.html"


def test_the_page_timer_is_off_and_the_turn_limit_ends_episodes(env: MiniWoBEnv) -> None:
    # click-button's own timer would end the episode after 10 s; each step is 1 s of page time.
    env.reset(options={"task_id": "click-button/train/0000"})
    for _ in range(14):
        _, _, terminated, truncated, info = env.step("noop()")
        assert not (terminated or truncated) and info["valid_action"]
    _, _, terminated, truncated, info = env.step("noop()")
    assert truncated and not terminated and info["success"] is False


def test_experts_solve_their_pages(env: MiniWoBEnv) -> None:
    for page in PAGES:
        env.reset(options={"task_id": f"{page}/test/0002"})
        for _ in range(10):
            action = env.expert_action()
            assert action is not None
            _, _, terminated, _, info = env.step(action)
            if terminated:
                break
        assert info["success"], page


def test_check_env(browser: object) -> None:
    env = turnwise.make(
        "turnwise/MiniWoB-v0", pages=["click-button", "enter-text"], browser=browser
    )
    check_env(env, n_tasks=1)
