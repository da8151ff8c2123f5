"""Tests of `turnwise/Desktop-v0`: real apps in Xvfb, state-based checkers, the expert, and
what happens when the agent or the machine misbehaves."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import turnwise
from turnwise.envs.gui.desktop import DesktopEnv
from turnwise.envs.gui.tasks import KINDS, make_task
from turnwise.sandboxes.browser import process_alive
from turnwise.testing import check_env

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def env() -> Iterator[DesktopEnv]:
    with DesktopEnv(split="test", render_mode="rgb_array") as e:
        yield e


def play_expert(env: DesktopEnv, task_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    obs, _ = env.reset(options={"task_id": task_id})
    infos = []
    while True:
        action = env.expert_action()
        assert action is not None
        obs, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            return obs, infos


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_expert_solves_every_kind(env: DesktopEnv, kind: str) -> None:
    obs, infos = play_expert(env, f"{kind}/test/0003")
    assert infos[-1]["success"] is True
    assert infos[-1]["reward_terms"]["outcome"] == 1.0
    # The progress terms add up to the whole way from the start to the goal.
    assert sum(i["reward_terms"]["progress"] for i in infos) == pytest.approx(1.0)
    assert all(i["valid_action"] for i in infos)
    assert obs["image"].shape == (600, 800, 3)


def test_observation_shows_the_app_and_describes_the_screen(env: DesktopEnv) -> None:
    obs, info = env.reset(options={"task_id": "write-line/test/0000"})
    assert (
        obs["instruction"] == info["instruction"] == make_task("write-line/test/0000").instruction
    )
    assert '"notes.txt - Mousepad" (focused) at x=0..799, y=0..599' in obs["text"]
    assert "Screen: 800x600 pixels" in obs["text"]
    assert "click(x, y)" in info["action_syntax"]
    image = env.render()
    assert isinstance(image, np.ndarray) and np.array_equal(image, obs["image"])
    assert image.std() > 10  # an app is drawn, not a blank screen


def test_partial_work_earns_partial_progress_and_done_ends_it(env: DesktopEnv) -> None:
    env.reset(options={"task_id": "write-line/test/0001"})
    goal = make_task("write-line/test/0001").plan()[1]  # type("...the goal...")
    half = goal[: len(goal) // 2] + '")'
    env.step("click(400, 300)")
    env.step(half)
    _, _, terminated, _, info = env.step('key("ctrl+s")')
    assert not terminated
    assert 0.2 < info["progress"] < 1.0
    assert info["reward_terms"]["progress"] == pytest.approx(info["progress"])
    _, _, terminated, _, info = env.step("done()")
    assert terminated and info["success"] is False
    assert info["reward_terms"]["outcome"] == 0.0


def test_unsaved_work_does_not_count(env: DesktopEnv) -> None:
    env.reset(options={"task_id": "write-line/test/0002"})
    task = make_task("write-line/test/0002")
    env.step("click(400, 300)")
    obs, _, terminated, _, info = env.step(task.plan()[1])
    assert not terminated and info["progress"] == 0.0
    assert '"*notes.txt - Mousepad"' in obs["text"]  # the title marks unsaved changes


def test_bad_actions_are_invalid_steps_with_a_message(env: DesktopEnv) -> None:
    env.reset(options={"task_id": "sheet-total/test/0000"})
    for action, message in [
        ("click(800, 10)", "off the screen"),
        ('key("hyper+x")', "unknown key"),
        ("rm -rf /", "cannot read"),
        ("", "empty action"),
    ]:
        obs, reward, terminated, _, info = env.step(action)
        assert info["valid_action"] is False and not terminated
        assert message in obs["error"] and message in obs["text"]
        assert float(reward) < 0


def test_closing_the_app_is_seen_and_the_episode_goes_on(env: DesktopEnv) -> None:
    env.reset(options={"task_id": "append-line/test/0000"})
    obs, _, terminated, _, info = env.step('key("ctrl+q")')
    assert not terminated and info["valid_action"]
    for _ in range(10):  # the editor may take a few turns to quit
        if "Windows: none" in obs["text"]:
            break
        obs, _, terminated, _, info = env.step("wait()")
        assert not terminated and info["valid_action"]
    assert "Windows: none" in obs["text"]
    env.reset(options={"task_id": "append-line/test/0000"})  # the next episode opens it again
    assert "todo.txt - Mousepad" in env.unwrapped._windows_text()


def test_a_killed_display_is_restarted_and_the_task_set_up_again(env: DesktopEnv) -> None:
    env.reset(options={"task_id": "write-line/test/0004"})
    server = env.display.server_pid
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process_alive(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env.expert_action() is not None  # the expert does not trip over the dead display
    obs, _, _, _, info = env.step("click(400, 300)")
    assert info["display_restarted"] is True and info["valid_action"]
    assert "restarted" in obs["text"] and "notes.txt - Mousepad" in obs["text"]
    _, infos = play_expert(env, "write-line/test/0004")
    assert infos[-1]["success"] is True


def test_tasks_are_fixed_by_their_id_and_splits_are_disjoint(tmp_path: Path) -> None:
    env = DesktopEnv(kinds=["sheet-fill", "replace-word"])
    train, test = set(env.tasks("train")), set(env.tasks("test"))
    assert train and test and not train & test
    a, b = make_task("sheet-fill/train/0007"), make_task("sheet-fill/train/0007")
    assert (a.instruction, a.targets) == (b.instruction, b.targets)
    assert make_task("sheet-fill/train/0008").instruction != a.instruction
    # The checker reads the saved file: right after setup nothing is done.
    a.setup(tmp_path)
    assert a.check(tmp_path).progress == 0.0 and not a.check(tmp_path).success
    with pytest.raises(ValueError, match="unknown desktop task"):
        make_task("sheet-fill/valid/0001")
    with pytest.raises(ValueError, match="unknown desktop task kinds"):
        DesktopEnv(kinds=["paint"])
    env.close()


def test_check_env() -> None:
    env = turnwise.make("turnwise/Desktop-v0", kinds=["replace-word", "sheet-fill"])
    check_env(env, n_tasks=1)


def test_play_a_desktop_task_and_watch_its_screenshots(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import io
    import sys

    from PIL import Image

    from turnwise.cli import main

    task = "append-line/test/0005"
    script = "\n".join([":expert", "click(900, 10)", *make_task(task).plan()]) + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    shots = tmp_path / "shots"
    code = main(["play", "turnwise/Desktop-v0", "--task-id", task, "--screenshots", str(shots)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert 'The expert would do: key("ctrl+a")' in out
    assert "off the screen" in out and "SUCCESS" in out
    pngs = sorted(shots.glob("*.png"))
    assert len(pngs) == 5  # the opening screen and one per action
    assert Image.open(pngs[-1]).size == (800, 600)
    assert f"(screenshot: {pngs[-1]})" in out.replace("\n", "")
