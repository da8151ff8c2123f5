"""The Ray backend with a real local Ray: the same trajectories as local processes, model-policy
turns over actors, a killed actor replaced without loss, time limits inside actors."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from turnwise.agents.policy import Generation, GenerationRequest
from turnwise.rollout import CollectConfig, collect, iter_trajectories
from turnwise.trajectory import Trajectory

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HARD = '{"difficulty": "hard"}'


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray for the module (starting it takes seconds); `collect` leaves it running."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def content(trajs: list[Trajectory]) -> dict[str, tuple[Any, ...]]:
    return {
        t.id: (t.group_id, t.actions(), [x.reward for x in t.turns], t.success, t.error)
        for t in trajs
    }


def run(out: Path, **kwargs: Any) -> Any:
    defaults: dict[str, Any] = {"env_kwargs": HARD, "workers": 2, "progress": False}
    return collect(CollectConfig(out=out, **{**defaults, **kwargs}))


def test_ray_actors_collect_the_same_trajectories_as_local_processes(tmp_path: Path) -> None:
    settings = {"policy": "random", "tasks": 4, "group_size": 2}
    on_ray = run(tmp_path / "ray", backend="ray", **settings)
    run(tmp_path / "local", **settings)
    assert on_ray.counts["trajectories"] == 8
    ray_trajs = list(iter_trajectories(tmp_path / "ray"))
    assert content(ray_trajs) == content(list(iter_trajectories(tmp_path / "local")))


class Look:
    """A model policy stand-in in the main process: always answers `look`."""

    name = "stub"
    tokenizer = None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return [Generation("<action>look</action>", [], None, "stop") for _ in requests]


def test_model_policy_turns_travel_to_actors_and_back(tmp_path: Path) -> None:
    cfg = CollectConfig(
        out=tmp_path, policy="openai:http://127.0.0.1:9/v1#stub", backend="ray", tasks=2,
        workers=2, max_turns=3, progress=False,
    )  # fmt: skip
    collect(cfg, policy=Look())
    trajs = list(iter_trajectories(tmp_path))
    assert len(trajs) == 2 and all(t.num_turns == 3 for t in trajs)
    assert all(
        turn.info["raw_action"] == "<action>look</action>" for t in trajs for turn in t.turns
    )
    assert all(t.truncation_reason == "agent_max_turns" for t in trajs)


def actor_pids() -> list[int]:
    """Processes of live env actors (Ray titles them `ray::_Actor...`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::_Actor"):
            pids.append(int(proc.name))
    return sorted(pids)


def test_a_killed_actor_is_replaced_and_its_episode_retried(tmp_path: Path) -> None:
    reference = run(tmp_path / "ref", backend="ray", policy="random", tasks=8)
    assert reference.restarts == 0
    pids: list[int] = []

    def kill_one_actor(traj: Trajectory) -> None:
        if not pids and (found := actor_pids()):
            pids.append(found[0])
            os.kill(found[0], signal.SIGKILL)

    result = collect(
        CollectConfig(
            out=tmp_path / "killed", env_kwargs=HARD, backend="ray", policy="random", tasks=8,
            workers=2, progress=False,
        ),
        on_trajectory=kill_one_actor,
    )  # fmt: skip
    assert pids and result.restarts == 1
    trajs = list(iter_trajectories(tmp_path / "killed"))
    assert len(trajs) == len({t.id for t in trajs}) == 8
    assert content(trajs) == content(list(iter_trajectories(tmp_path / "ref")))


def test_time_limits_hold_inside_actors(tmp_path: Path) -> None:
    run(tmp_path, backend="ray", policy="expert", tasks=2, episode_timeout=1e-6)
    trajs = list(iter_trajectories(tmp_path))
    assert len(trajs) == 2
    assert all(t.truncated and t.truncation_reason == "episode_time_limit" for t in trajs)


def test_without_ray_the_backend_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnwise.rollout.ray_backend import ray_session

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RuntimeError, match=r"pip install 'turnwise\[ray\]'"), ray_session(None, 2):
        pass


def test_ray_address_needs_the_ray_backend(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--backend ray"):
        CollectConfig(out=tmp_path, ray_address="auto")
