"""The trainer on a GPU: bf16 training with the `hf` backend, and the vLLM backend with weight
sync. Skipped with the reason where there is no CUDA GPU (or no vLLM); the same paths run on
CPU in test_loop.py (a second `hf` copy stands in for the vLLM engine there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turnwise.trainers.config import TrainConfig

pytestmark = pytest.mark.slow

TWO_ROOMS = {"difficulty": "easy", "n_rooms": 2, "n_locked": 0, "n_distractors": [0, 1]}


def config(out: Path, model: Path, **overrides: object) -> TrainConfig:
    options: dict[str, object] = {
        "algo": "loop", "model": str(model), "env_kwargs": json.dumps({**TWO_ROOMS, "max_turns": 2}),
        "out": out, "iterations": 2, "tasks_per_iteration": 4, "group_size": 4, "workers": 8,
        "max_tokens": 12, "eval_every": 0, "lr": 1e-3, "device": "cuda",
    }  # fmt: skip
    options.update(overrides)
    return TrainConfig(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def start() -> Path:
    from turnwise.trainers.sft import sft_checkpoint

    return sft_checkpoint("turnwise/KeyDoor-v0", env_kwargs={**TWO_ROOMS, "max_turns": 2})


@pytest.mark.gpu
def test_bf16_training_on_cuda(start: Path, tmp_path: Path) -> None:
    import torch

    from turnwise.trainers.loop import Trainer

    trainer = Trainer(config(tmp_path / "run", start, algo="ppo"), console=False)
    assert trainer.device.type == "cuda"
    if torch.cuda.is_bf16_supported():
        assert next(trainer.model.parameters()).dtype == torch.bfloat16
    result = trainer.run()
    for record in result.history:
        assert record["perf/peak_memory_mb"] > 0
        assert record["perf/logprob_gap"] < 0.5  # one bf16 model samples and scores
        assert all(v == v for k, v in record.items() if k.startswith("loss/"))  # no NaN


@pytest.mark.vllm
def test_the_vllm_backend_samples_the_weights_just_trained(start: Path, tmp_path: Path) -> None:
    from turnwise.trainers.loop import Trainer

    trainer = Trainer(
        config(tmp_path / "run", start, backend="vllm", dtype="float32", lr=1e-2), console=False
    )
    engine = trainer.generation
    assert engine is not None and trainer.policy is engine
    result = trainer.run()
    assert engine.weight_version == 2  # one push per update
    for record in result.history:
        # fp32 on both sides: the engine runs the very weights the trainer scores with.
        assert record["perf/logprob_gap"] < 1e-2, record
