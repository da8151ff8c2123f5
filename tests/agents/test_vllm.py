"""The vLLM backend on the tiny checkpoint: generation, raw log-probs vs hf, weight updates.

These need vLLM and a CUDA GPU; the conftest skips them elsewhere with the reason.
"""

from __future__ import annotations

import math

import pytest

from turnwise.agents.policy import GenerationRequest, Sampling

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MESSAGES = [{"role": "user", "content": "You are in the hall. Exits: north."}]


@pytest.fixture(scope="module")
def checkpoint():
    from turnwise.agents.tiny import default_checkpoint

    return default_checkpoint()


@pytest.fixture(scope="module")
def policy(checkpoint):
    from turnwise.agents.vllm_policy import VLLMPolicy

    # fp32 so that log-probs can be compared with the hf backend closely.
    return VLLMPolicy(checkpoint, dtype="float32", gpu_memory_utilization=0.2, enforce_eager=True)


def test_generates_a_batch_from_messages_and_token_ids(policy) -> None:
    sampling = Sampling(temperature=1.0, max_tokens=12, seed=3)
    prompt = policy.tokenizer.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True
    )
    ids = policy.tokenizer.encode(prompt, add_special_tokens=False)
    requests = [
        GenerationRequest(messages=MESSAGES, sampling=sampling),
        GenerationRequest(prompt_token_ids=ids, sampling=sampling),
        GenerationRequest(messages=MESSAGES, sampling=Sampling(temperature=0, max_tokens=5)),
    ]
    a, b, greedy = policy.generate(requests)
    # Same context and seed, given as messages or as ids: the same sample.
    assert a.prompt_token_ids == ids and a.token_ids == b.token_ids
    assert 0 < len(a.token_ids) == len(a.logprobs) <= 12
    assert all(lp <= 0 for lp in a.logprobs)
    assert len(greedy.token_ids) <= 5 and greedy.finish_reason in ("stop", "length")
    assert policy.generate([]) == []


def test_logprobs_match_the_hf_backend(policy, checkpoint) -> None:
    import torch

    from turnwise.agents.hf import HFPolicy

    hf = HFPolicy(checkpoint, device="cuda", dtype="float32")
    [gen] = policy.generate(
        [GenerationRequest(messages=MESSAGES, sampling=Sampling(max_tokens=16, seed=1))]
    )
    context = gen.prompt_token_ids + gen.token_ids
    with torch.inference_mode():
        logits = hf.model(torch.tensor([context], device=hf.device)).logits[0].float()
    scores = torch.log_softmax(logits, dim=-1)
    start = len(gen.prompt_token_ids)
    for k, (tok, lp) in enumerate(zip(gen.token_ids, gen.logprobs, strict=True)):
        assert math.isclose(float(scores[start + k - 1, tok]), lp, abs_tol=2e-2)


def test_update_weights_changes_outputs(policy, checkpoint) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    greedy = GenerationRequest(messages=MESSAGES, sampling=Sampling(temperature=0, max_tokens=8))
    [before] = policy.generate([greedy])
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    policy.update_weights(model.named_parameters())
    [after] = policy.generate([greedy])
    assert policy.weight_version == 1
    assert after.logprobs != before.logprobs
    # Loading the original weights back restores the original outputs.
    original = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    policy.update_weights(original.named_parameters())
    [restored] = policy.generate([greedy])
    assert restored.token_ids == before.token_ids


def test_an_agent_on_vllm_is_token_exact(policy) -> None:
    import turnwise
    from turnwise.agents import LLMAgent, trajectory_tensors
    from turnwise.episode import run_episode

    env = turnwise.make("turnwise/KeyDoor-v0")
    agent = LLMAgent(policy, sampling=Sampling(max_tokens=8, seed=0))
    traj = run_episode(env, agent, seed=0, max_turns=3)
    assert agent.token_exact and sum(trajectory_tensors(traj).loss_mask) > 0
