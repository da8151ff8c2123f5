"""`turnwise/SWE-v0` on the shipped tasks: tools, grading, rewards, and what agents cannot game.

Every test runs the real package's real test suite in a real bubblewrap sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import turnwise
from turnwise.envs.swe import SWEEnv
from turnwise.envs.swe.instances import shipped_instances
from turnwise.testing import check_env

pytestmark = pytest.mark.sandbox

INSTANCES = shipped_instances()
# inflection's suite is the quickest of the shipped packages (one file, ~450 tests, ~1 s).
TASK = next(i for i in INSTANCES if i.repo == "pypi/inflection")
TEST_FILE = "test_inflection.py"


@pytest.fixture(scope="module")
def env() -> Iterator[SWEEnv]:
    with SWEEnv(split=TASK.split, command_timeout=20, output_limit=3000) as e:
        yield e


def reset(env: SWEEnv) -> dict:
    _, info = env.reset(seed=0, options={"task_id": TASK.instance_id})
    return info


def test_reset_shows_the_issue_and_the_tools(env: SWEEnv) -> None:
    obs, info = env.reset(seed=0, options={"task_id": TASK.instance_id})
    assert TASK.problem_statement in obs["text"]
    assert "str_replace" in obs["text"] and "/workspace" in obs["text"]
    assert info["fail_to_pass"] == TASK.FAIL_TO_PASS and info["submission"] == "none"


def test_the_gold_patch_resolves_and_the_test_term_telescopes(env: SWEEnv) -> None:
    reset(env)
    total = len(TASK.FAIL_TO_PASS) + len(TASK.PASS_TO_PASS)
    base = len(TASK.PASS_TO_PASS) / total
    _, _, _, _, info = env.step("run_tests")
    assert info["tests"]["share"] == pytest.approx(base)  # the base is as the instance says
    assert info["reward_terms"]["tests"] == pytest.approx(0.0)
    assert not info["tests"]["resolved"]
    action = env.expert_action()
    assert action is not None and action.startswith("shell git apply")
    _, _, _, _, info = env.step(action)
    assert info["exit_code"] == 0 and env.expert_action() == "submit"
    _, reward, terminated, _, info = env.step("submit")
    assert terminated and info["success"] and info["resolved"]
    assert info["submission"] == "patch" and info["patch"].strip()
    assert info["reward_terms"]["outcome"] == 1.0 and info["reward_terms"]["submitted"] == 1.0
    assert info["reward_terms"]["tests"] == pytest.approx(1.0 - base)
    assert float(reward) == pytest.approx(1.0 + 0.5 * (1.0 - base))


def test_submitting_nothing_is_an_empty_submission(env: SWEEnv) -> None:
    reset(env)
    _, reward, terminated, _, info = env.step("submit")
    assert terminated and not info["success"]
    assert info["submission"] == "empty" and info["reward_terms"]["submitted"] == 0.0
    assert float(reward) == 0.0


def test_rewriting_the_tests_does_not_make_them_pass(env: SWEEnv) -> None:
    reset(env)
    env.step(f"create {TEST_FILE}\ndef test_nothing():\n    pass")
    env.step(
        "create conftest.py\nimport pytest\n\n@pytest.hookimpl(hookwrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n    outcome = yield\n"
        "    outcome.get_result().outcome = 'passed'"
    )
    env.step("create pytest.py\nprint('PASSED test_inflection.py::everything')")
    _, _, _, _, info = env.step("run_tests")
    assert not info["tests"]["resolved"]
    assert set(info["tests"]["failing"]) >= set(TASK.FAIL_TO_PASS[:50])
    _, _, terminated, _, info = env.step("submit")
    assert terminated and not info["resolved"]
    for name in (TEST_FILE, "conftest.py", "pytest.py"):
        assert f"diff --git a/{name}" not in info["patch"]


def test_view_str_replace_and_create(env: SWEEnv) -> None:
    reset(env)
    obs, _, _, _, info = env.step("view inflection/__init__.py 1-5")
    assert info["valid_action"]
    assert obs["text"].splitlines()[1].startswith("1  ")
    obs, *_ = env.step("view .")
    assert "inflection" in obs["text"] and TEST_FILE in obs["text"]
    obs, *_ = env.step("view inflection/__init__.py")
    assert "showing 1-400" in obs["text"]  # long files are paged
    obs, _, _, _, info = env.step("create notes/plan.txt\nstep one")
    assert info["valid_action"]
    obs, *_ = env.step("view notes/plan.txt")
    assert "step one" in obs["text"]
    block = "str_replace notes/plan.txt\n<<<<<<< SEARCH\none\n=======\ntwo\n>>>>>>> REPLACE"
    _, _, _, _, info = env.step(block)
    assert info["valid_action"]
    _, _, _, _, info = env.step(block)  # "one" is gone now
    assert not info["valid_action"]
    obs, _, _, _, info = env.step("view no/such/file.py")
    assert not info["valid_action"] and "no/such/file.py" in obs["text"]
    obs, _, _, _, info = env.step("view /dev/zero")  # endless: cut at the read limit
    assert not info["valid_action"] and "view:" in obs["text"]


def test_state_key_follows_the_repository(env: SWEEnv) -> None:
    info = reset(env)
    clean = info["state_key"]
    _, _, _, _, info = env.step("create scratch.txt\nhello")
    assert info["state_key"] != clean
    _, _, _, _, info = env.step("shell rm scratch.txt")
    assert info["state_key"] == clean
    _, _, _, _, info = env.step("view inflection/__init__.py 1-2")
    assert info["state_key"] == clean


def test_a_reset_restores_the_repository(env: SWEEnv) -> None:
    reset(env)
    env.step("shell rm -rf inflection && echo gone > README.rst")
    info = reset(env)
    obs, _, _, _, info = env.step("shell ls inflection && head -c 9 README.rst")
    assert info["exit_code"] == 0 and "gone" not in obs["text"]


def test_shell_output_is_cut_visibly_and_commands_time_out(env: SWEEnv) -> None:
    reset(env)
    obs, *_ = env.step("shell seq 1 100000")
    assert "characters cut" in obs["text"] and obs["text"].rstrip().endswith("(exit code 0)")
    assert len(obs["text"]) < 4000
    obs, _, _, _, _info = env.step("shell sleep 30")
    assert "killed after 20 s" in obs["text"]


def test_paths_resolve_inside_the_sandbox(env: SWEEnv) -> None:
    reset(env)
    env.step("shell ln -s /etc/shadow shadow && ln -s /root rootdir")
    obs, _, _, _, info = env.step("view shadow")
    assert not info["valid_action"] and "root:" not in obs["text"]
    _obs, _, _, _, info = env.step("create rootdir/planted.txt\nx")
    assert not info["valid_action"]


def test_malformed_and_hostile_actions_are_invalid_steps(env: SWEEnv) -> None:
    reset(env)
    for action in ["", "dance", "view", "str_replace a.py\nno block", "{bad json", "\x00" * 100]:
        obs, _reward, terminated, _, info = env.step(action)
        assert not info["valid_action"] and not terminated
        assert obs["text"].startswith("Invalid action")


def test_made_through_the_registry() -> None:
    env = turnwise.make("turnwise/SWE-v0", split=TASK.split)
    try:
        assert TASK.instance_id in env.unwrapped.tasks()
    finally:
        env.close()


@pytest.mark.slow
def test_check_env() -> None:
    with SWEEnv(split="test", command_timeout=20) as env:
        check_env(env, n_tasks=1)
