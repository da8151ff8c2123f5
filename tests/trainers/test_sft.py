"""`train_sft`: the loss it reports is the one defined in its docstring (known answers)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def setup() -> tuple[object, object, list[object]]:
    from turnwise.agents.hf import HFPolicy
    from turnwise.agents.tiny import default_checkpoint
    from turnwise.trainers.sft import demonstrations

    policy = HFPolicy(default_checkpoint("nano"), device="cpu")
    demos = demonstrations(
        "turnwise/KeyDoor-v0", policy.tokenizer, tasks=2, env_kwargs={"difficulty": "easy"}
    )
    return policy.model, policy.tokenizer, demos


@pytest.mark.parametrize("prompt_weight", [0.0, 0.5])
def test_first_loss_is_reply_nll_plus_weighted_prompt_nll(
    setup: tuple[object, object, list[object]], prompt_weight: float
) -> None:
    import torch

    from turnwise.trainers.sequences import collate, rows_of, token_logprobs
    from turnwise.trainers.sft import train_sft

    model, tokenizer, demos = setup
    rows = [r for r in rows_of(demos) if r.generated]
    batch = collate(rows, tokenizer.pad_token_id, "cpu")  # type: ignore[attr-defined]
    with torch.no_grad():
        logprobs = token_logprobs(model, batch["input_ids"], batch["attention_mask"])
    reply = batch["loss_mask"]
    prompt = batch["attention_mask"].bool() & ~reply
    prompt[:, 0] = False
    expected = -(logprobs[reply]).mean() - prompt_weight * logprobs[prompt].mean()
    # lr 0: the weights never move, so the one step's loss is the loss of the untouched model.
    stats = train_sft(
        model, tokenizer, demos, epochs=1, batch_size=len(rows), lr=0.0,
        prompt_weight=prompt_weight,
    )  # fmt: skip
    assert stats["perf/sft_steps"] == 1
    assert stats["loss/sft_first"] == pytest.approx(float(expected), rel=1e-5)


def test_negative_prompt_weight_is_refused(setup: tuple[object, object, list[object]]) -> None:
    from turnwise.trainers.sft import train_sft

    model, tokenizer, demos = setup
    with pytest.raises(ValueError, match="prompt_weight must be >= 0"):
        train_sft(model, tokenizer, demos, prompt_weight=-1.0)


def test_numbered_demonstrations_reply_with_the_experts_number(
    setup: tuple[object, object, list[object]],
) -> None:
    from turnwise.trainers.sft import demonstrations

    _, tokenizer, text = setup  # the same two tasks, demonstrated in words
    number = demonstrations(
        "turnwise/KeyDoor-v0", tokenizer, tasks=2, env_kwargs={"difficulty": "easy"},
        choices="number",
    )  # fmt: skip
    assert [t.success for t in number] == [True, True]
    for by_text, by_number in zip(text, number, strict=True):
        commands = [turn.info["env_action"] for turn in by_number.turns]
        assert commands == [turn.info["env_action"] for turn in by_text.turns]
        for turn, command in zip(by_number.turns, commands, strict=True):
            listed = turn.info["raw_action"].removeprefix("<action>").removesuffix("</action>")
            assert listed.isdigit() and command != listed
