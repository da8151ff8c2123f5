"""Proof that training learns: a real tiny model, real rollouts on the built-in env, real updates.

The policy starts from a tiny model fine-tuned for two epochs on KeyDoor expert demonstrations
(`sft_checkpoint`): it has the reply format but often walks the wrong way. On a small pool of
two-room tasks, LOOP must then lift the success rate of its own rollouts well above where it
started. CPU training is deterministic here (seeded sampling, a fixed task order), so the curve
is the same run after run on the same software.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TWO_ROOMS = {"difficulty": "easy", "n_rooms": 2, "n_locked": 0, "n_distractors": [0, 1]}


def test_loop_lifts_success_well_above_its_start(tmp_path: Path) -> None:
    from turnwise.trainers.config import TrainConfig
    from turnwise.trainers.loop import train
    from turnwise.trainers.sft import sft_checkpoint

    start = sft_checkpoint("turnwise/KeyDoor-v0", env_kwargs={**TWO_ROOMS, "max_turns": 2})
    config = TrainConfig(
        algo="loop", model=str(start), env_kwargs=json.dumps({**TWO_ROOMS, "max_turns": 4}),
        out=tmp_path, iterations=9, train_tasks=4, tasks_per_iteration=4, group_size=8,
        workers=16, eval_every=0, max_tokens=12, lr=1e-3,
    )  # fmt: skip
    result = train(config, console=False)
    success = [h["rollout/success_rate"] for h in result.history]
    assert len(success) == 9
    before = sum(success[:2]) / 2
    best_window = max(sum(success[i : i + 3]) / 3 for i in range(len(success) - 2))
    # Measured: 0.12, 0.19 at the start; 0.56, 0.66, 0.59, 0.62 from iteration 6 on.
    assert before < 0.3, success
    assert best_window >= before + 0.25, success
