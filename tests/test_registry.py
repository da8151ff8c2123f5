from __future__ import annotations

import sys
import textwrap

import gymnasium
import pytest

import turnwise
from turnwise.registry import UnknownEnvError, entry, list_envs, register


@pytest.fixture(autouse=True)
def _restore_registries():
    """Forget the ids a test registers, so other tests see the real registry."""
    from turnwise import registry

    before_tw, before_gym = set(registry._ENTRIES), set(gymnasium.registry)
    yield
    for key in set(registry._ENTRIES) - before_tw:
        del registry._ENTRIES[key]
    for key in set(gymnasium.registry) - before_gym:
        del gymnasium.registry[key]


@pytest.fixture
def counter_module(tmp_path, monkeypatch):
    """An importable module holding a tiny env, so it can be registered by string."""
    (tmp_path / "tw_counter_mod.py").write_text(
        textwrap.dedent(
            """
            from turnwise import Env, StepResult

            class Echo(Env):
                def tasks(self, split=None):
                    return ["a", "b"] if (split or self.split) == "train" else ["c"]

                def _reset_task(self, task_id):
                    self.word = task_id
                    return f"say {task_id}", {"instruction": f"say {task_id}"}

                def _step(self, action):
                    ok = action == self.word
                    return StepResult("yes" if ok else "no", {"outcome": float(ok)},
                                      valid=ok, terminated=ok, success=ok)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "tw_counter_mod:Echo"
    sys.modules.pop("tw_counter_mod", None)


def test_builtin_env_is_registered_with_gymnasium() -> None:
    assert "turnwise/KeyDoor-v0" in gymnasium.registry
    record = entry("turnwise/KeyDoor-v0")
    assert record.family == "text" and record.available
    assert record in list_envs("text") and record not in list_envs("web")


def test_register_and_make_by_both_routes(counter_module) -> None:
    register("turnwise/Echo-v0", counter_module, family="other", kwargs={"max_turns": 4})
    for env in (turnwise.make("turnwise/Echo-v0"), gymnasium.make("turnwise/Echo-v0")):
        _, info = env.reset(options={"task_id": "b"})
        assert info["max_turns"] == 4
        _, reward, terminated, _, info = env.step("b")
        assert reward == 1.0 and terminated and info["success"]
        assert env.unwrapped.env_id == "turnwise/Echo-v0"
        env.close()
    env = turnwise.make("turnwise/Echo-v0", max_turns=2)
    assert env.reset()[1]["max_turns"] == 2


def test_unknown_id_lists_close_matches() -> None:
    with pytest.raises(UnknownEnvError) as err:
        turnwise.make("turnwise/KeyDor-v0")
    assert "turnwise/KeyDoor-v0" in str(err.value)
    with pytest.raises(UnknownEnvError, match="KeyDoor"):
        turnwise.make("keydoor")
    with pytest.raises(UnknownEnvError, match="turnwise envs"):
        turnwise.make("turnwise/Nothing-v0")


def test_registration_is_validated() -> None:
    with pytest.raises(ValueError, match="turnwise/Name-v0"):
        register("KeyDoor", "x:y", family="text")
    with pytest.raises(ValueError, match="family"):
        register("turnwise/X-v0", "x:y", family="games")
    with pytest.raises(ValueError, match="module:attribute"):
        register("turnwise/X-v0", "not_a_string_entry_point", family="text")


def test_missing_requirement_names_the_extra() -> None:
    register(
        "turnwise/NeedsMissing-v0",
        "nowhere:Env",
        family="web",
        extra="web",
        requires=("a_module_that_is_not_installed_xyz",),
    )
    assert not entry("turnwise/NeedsMissing-v0").available
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'turnwise\[web\]'"):
        turnwise.make("turnwise/NeedsMissing-v0")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gymnasium_vector_envs_work(counter_module, mode: str) -> None:
    register("turnwise/Echo-v0", counter_module, family="other")
    kwargs = {"vector_kwargs": {"shared_memory": False}} if mode == "async" else {}
    envs = gymnasium.make_vec("turnwise/Echo-v0", num_envs=2, vectorization_mode=mode, **kwargs)
    try:
        obs, info = envs.reset(options={"task_id": "a"})
        assert obs["text"] == ("say a", "say a")
        obs, reward, terminated, _, info = envs.step(("a", "wrong"))
        assert list(reward) == [1.0, -0.1] and list(terminated) == [True, False]
        assert list(info["valid_action"]) == [True, False]
    finally:
        envs.close()


def test_close_matches_compare_names_not_the_shared_prefix() -> None:
    with pytest.raises(UnknownEnvError) as err:
        turnwise.make("turnwise/KeyDor-v0")
    message = str(err.value)
    assert "turnwise/KeyDoor-v0" in message and "Dilemma" not in message
    with pytest.raises(UnknownEnvError) as err:
        turnwise.make("turnwise/KeyDoor-v7")  # a version that does not exist
    assert "turnwise/KeyDoor-v0" in str(err.value)
    with pytest.raises(UnknownEnvError) as err:
        turnwise.make("turnwise/Zzzzzz-v0")
    assert "Did you mean" not in str(err.value)
