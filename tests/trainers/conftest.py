"""Fixtures shared by the trainer tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

KEYDOOR = "turnwise/KeyDoor-v0"
ENV_KWARGS = (
    '{"difficulty": "easy", "n_rooms": 2, "n_locked": 0, "n_distractors": [0, 1], "max_turns": 2}'
)


@pytest.fixture(scope="session")
def warm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The nano model after a little SFT on expert KeyDoor episodes, saved as a checkpoint.

    3 epochs at batch size 2 and lr 1e-2 (48 steps): enough that it writes
    `<action>...</action>` replies, so sampled rollouts of a task differ in reward.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turnwise.agents.tiny import default_checkpoint
    from turnwise.trainers.sft import demonstrations, train_sft

    base = default_checkpoint("nano")
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    demos = demonstrations(KEYDOOR, tokenizer, tasks=32, env_kwargs=json.loads(ENV_KWARGS))
    assert len(demos) == 32
    stats = train_sft(model, tokenizer, demos, epochs=3, batch_size=2, lr=1e-2)
    assert stats["loss/sft_last"] < stats["loss/sft_first"]
    out = tmp_path_factory.mktemp("warm-nano")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
