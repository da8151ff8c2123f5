"""Data-parallel training: two real processes (gloo on CPU) against one.

`torchrun --nproc-per-node 2` starts two ranks. Each collects one of the iteration's two task
groups, computes its rows' loss over the global token count, and the gradients are summed
before each step. The sampling seeds depend only on (seed, task, member), so the two ranks
play exactly the episodes one process plays, and the weights after an iteration must be the
ones a single process reaches on the whole batch (up to float summation order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install 'turnwise[train]')")
pytest.importorskip("transformers", reason="needs transformers (pip install 'turnwise[train]')")

from turnwise.rollout import iter_trajectories  # noqa: E402
from turnwise.trainers.config import TrainConfig  # noqa: E402
from turnwise.trainers.distributed import Distributed  # noqa: E402
from turnwise.trainers.loop import train  # noqa: E402

pytestmark = pytest.mark.slow

ENV_KWARGS = (
    '{"difficulty": "easy", "n_rooms": 2, "n_locked": 0, "n_distractors": [0, 1], "max_turns": 2}'
)

SCRIPT = """
import json, sys
from turnwise.trainers.config import TrainConfig
from turnwise.trainers.loop import train

if __name__ == "__main__":
    result = train(TrainConfig(**json.loads(sys.argv[1])), console=False)
    print("RESULT", json.dumps(result.history[-1]))
"""


def run_ranks(
    tmp_path: Path, options: dict[str, Any], processes: int = 2
) -> subprocess.CompletedProcess[str]:
    """`train(TrainConfig(**options))` on `processes` ranks under torchrun."""
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={processes}", str(script), json.dumps(options),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def launch(tmp_path: Path, options: dict[str, Any], processes: int = 2) -> str:
    """As `run_ranks`, which must succeed; returns its stdout."""
    done = run_ranks(tmp_path, options, processes)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def weights(folder: Path) -> dict[str, np.ndarray]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("algo", ["loop", "ppo"])
def test_two_ranks_make_the_update_one_process_makes(
    algo: str, warm_model: Path, tmp_path: Path
) -> None:
    options = {
        "algo": algo, "env_kwargs": ENV_KWARGS, "model": str(warm_model), "iterations": 1,
        "tasks_per_iteration": 2, "group_size": 4, "workers": 2, "max_tokens": 12,
        "eval_every": 0, "lr": 1e-2, "seed": 0,
    }  # fmt: skip
    two = tmp_path / "two"
    stdout = launch(tmp_path, {**options, "out": str(two)})
    one = tmp_path / "one"
    single = train(TrainConfig(**{**options, "out": one}), console=False)

    # The same episodes, split by group between the ranks.
    def episodes(folder: Path) -> dict[str, list[int]]:
        return {
            f"{t.task_id}/{t.metadata['member']}": [x for turn in t.turns for x in turn.token_ids]
            for t in iter_trajectories(folder)
        }

    ranks = [episodes(two / "rollouts" / "iter-00000" / f"rank-{r}") for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 4
    assert {**ranks[0], **ranks[1]} == episodes(one / "rollouts" / "iter-00000")

    # Rank 0 logged the metrics of all groups, and saved the checkpoint alone.
    logged = json.loads(stdout.split("RESULT ", 1)[1].splitlines()[0])
    expected = single.history[-1]
    assert logged["rollout/success_rate"] == expected["rollout/success_rate"]
    assert logged["loss/optimizer_steps"] == expected["loss/optimizer_steps"]
    a, b = weights(two / "checkpoints" / "latest"), weights(one / "checkpoints" / "latest")
    start = weights(warm_model)
    moved = max(float(np.abs(b[k] - start[k]).max()) for k in b)
    gap = max(float(np.abs(a[k] - b[k]).max()) for k in b)
    assert moved > 1e-3 and gap < 2e-3 * moved, (moved, gap)


def test_one_process_is_a_single_rank() -> None:
    single = Distributed.from_env() if "WORLD_SIZE" not in os.environ else Distributed.single()
    assert (single.rank, single.world, single.enabled, single.main) == (0, 1, False, True)
    assert single.share([1, 2, 3]) == [1, 2, 3]
    assert single.all_sum([1, 2.5]) == [1.0, 2.5]
    assert single.gather("x") == ["x"] and single.broadcast(7) == 7
    assert Distributed(rank=1, world=2).share(["a", "b", "c", "d", "e"]) == ["b", "d"]


def test_fewer_groups_than_ranks_is_refused(tmp_path: Path, warm_model: Path) -> None:
    options = {
        "env_kwargs": ENV_KWARGS, "model": str(warm_model), "iterations": 1, "out": str(tmp_path / "r"),
        "tasks_per_iteration": 1, "group_size": 2, "workers": 1, "eval_every": 0,
    }  # fmt: skip
    done = run_ranks(tmp_path, options)
    assert done.returncode != 0
    assert "each rank needs a group" in done.stderr


def test_sharded_ranks_update_and_resume_as_one_process(warm_model: Path, tmp_path: Path) -> None:
    """`--fsdp`: each rank holds half of every weight (FSDP2), generation runs on a full copy
    per rank; the update, the gathered checkpoint and a resumed iteration (Adam's moments
    reloaded into the shards) match one process's."""
    options = {
        "algo": "loop", "env_kwargs": ENV_KWARGS, "model": str(warm_model), "iterations": 1,
        "tasks_per_iteration": 2, "group_size": 4, "workers": 2, "max_tokens": 12,
        "eval_every": 0, "lr": 1e-2, "seed": 0, "minibatches": 2,
    }  # fmt: skip
    two, one = tmp_path / "two", tmp_path / "one"
    launch(tmp_path, {**options, "out": str(two), "fsdp": True})
    train(TrainConfig(**{**options, "out": one}), console=False)
    start = weights(warm_model)
    for it in (1, 2):
        a = weights(two / "checkpoints" / f"iter-{it:05d}")
        b = weights(one / "checkpoints" / f"iter-{it:05d}")
        moved = max(float(np.abs(b[k] - start[k]).max()) for k in b)
        gap = max(float(np.abs(a[k] - b[k]).max()) for k in b)
        assert moved > 1e-3 and gap < 2e-3 * moved, (it, moved, gap)
        if it == 1:  # one more iteration, resumed from the checkpoints just compared
            more = {**options, "iterations": 2, "resume": True}
            stdout = launch(tmp_path, {**more, "out": str(two), "fsdp": True})
            resumed = train(TrainConfig(**{**more, "out": one}), console=False)
            logged = json.loads(stdout.split("RESULT ", 1)[1].splitlines()[0])
            assert logged["step"] == 2
            assert logged["perf/weights_held"] == pytest.approx(0.5, abs=0.01)  # halves
            assert resumed.history[-1]["perf/weights_held"] == 1.0
            # The weights the second iteration sampled with were the gathered ones.
            assert logged["perf/logprob_gap"] < 1e-4
            assert logged["rollout/success_rate"] == resumed.history[-1]["rollout/success_rate"]
            start = a


def test_sharding_needs_ranks_and_a_full_model(warm_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--fsdp with --lora-rank"):
        TrainConfig(model=str(warm_model), out=tmp_path / "x", fsdp=True, lora_rank=4)
    with pytest.raises(ValueError, match="torchrun"):
        train(TrainConfig(model=str(warm_model), out=tmp_path / "y", fsdp=True), console=False)
