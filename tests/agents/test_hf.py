"""The `hf` backend: batching, sampling, stops, exact log-probs, token-exact prompts and LoRA.

Every test runs a real (tiny, random) Llama from `turnwise.agents.tiny`; expected values come
from an independent full forward pass over prompt + generated tokens, never from the backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install 'turnwise[agents]')")
pytest.importorskip("transformers", reason="needs transformers")

from turnwise.agents.hf import HFPolicy  # noqa: E402
from turnwise.agents.policy import Generation, GenerationRequest, Policy, Sampling  # noqa: E402
from turnwise.agents.tiny import default_checkpoint  # noqa: E402

PROMPTS = (
    "You are in the hall.",
    "You are in the study. You see a red key and a lamp. Exits: east, north (locked, red door).\n"
    "Admissible actions: go east, take red key, look, inventory",
    "go",
)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    # Two torch threads on a shared two-core machine spin against each other and everyone else.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return default_checkpoint()


@pytest.fixture(scope="module")
def policy(checkpoint: Path) -> HFPolicy:
    return HFPolicy(checkpoint, device="cpu")


def request(prompt: str, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": prompt}], sampling=Sampling(**sampling)
    )


def full_forward(policy: HFPolicy, generation: Generation) -> Any:
    """Raw log-probs [T, V] at each generated position, from one pass over the whole sequence."""
    assert generation.prompt_token_ids is not None
    ids = torch.tensor([generation.prompt_token_ids + generation.token_ids])
    with torch.no_grad():
        logits = policy.model(ids).logits[0].float()
    n = len(generation.prompt_token_ids)
    return torch.log_softmax(logits[n - 1 : -1], dim=-1)


def test_is_a_policy_named_by_its_spec(policy: HFPolicy, checkpoint: Path) -> None:
    assert isinstance(policy, Policy)
    assert policy.name == f"hf:{checkpoint}"
    assert policy.model.dtype == torch.float32 and policy.device.type == "cpu"
    assert policy.generate([]) == []


def test_left_padding_gives_the_same_greedy_output_alone_and_batched(policy: HFPolicy) -> None:
    requests = [request(p, temperature=0, max_tokens=12) for p in PROMPTS]
    alone = [policy.generate([r])[0] for r in requests]
    together = policy.generate(requests)
    for a, b in zip(alone, together, strict=True):
        assert a.token_ids == b.token_ids and a.text == b.text
        assert a.prompt_token_ids == b.prompt_token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    # Several batches (max_batch_size 2), mixed lengths and budgets: order and results kept.
    small = HFPolicy(policy.model, tokenizer=policy.tokenizer, max_batch_size=2)
    mixed = [request(PROMPTS[i % 3], temperature=0, max_tokens=4 + i) for i in range(5)]
    for r, g in zip(mixed, small.generate(mixed), strict=True):
        assert g.token_ids == policy.generate([r])[0].token_ids


def test_rows_that_finish_early_leave_the_batch_or_are_carried(
    policy: HFPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import cache_utils

    mixed = [
        request(p, temperature=1.0, max_tokens=2 + 5 * i, seed=i) for i, p in enumerate(PROMPTS)
    ]
    shrunk = policy.generate(mixed)
    assert [len(g.token_ids) for g in shrunk] == [2, 7, 12]
    # A cache that cannot drop rows: finished rows ride along, and nothing changes.
    monkeypatch.delattr(cache_utils.Cache, "batch_select_indices")
    carried = policy.generate(mixed)
    for a, b in zip(shrunk, carried, strict=True):
        assert (a.token_ids, a.finish_reason) == (b.token_ids, b.finish_reason)
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_greedy_is_the_argmax_and_log_probs_match_a_full_forward(policy: HFPolicy) -> None:
    requests = [
        request(PROMPTS[0], temperature=0, max_tokens=10),
        request(PROMPTS[1], temperature=0.7, top_p=0.9, max_tokens=10, seed=1),
        request(PROMPTS[2], temperature=1.5, max_tokens=10, seed=2),
    ]
    greedy, *sampled = policy.generate(requests)
    logprobs = full_forward(policy, greedy)
    assert greedy.token_ids == logprobs.argmax(-1).tolist()
    for g in (greedy, *sampled):
        assert g.logprobs is not None and len(g.logprobs) == len(g.token_ids)
        # Raw convention: the model's distribution at temperature 1, before top-p.
        expected = full_forward(policy, g).gather(-1, torch.tensor(g.token_ids)[:, None])[:, 0]
        assert g.logprobs == pytest.approx(expected.tolist(), abs=1e-4)


def test_a_seed_reproduces_a_sample_whatever_else_is_in_the_batch(policy: HFPolicy) -> None:
    target = request(PROMPTS[0], temperature=1.0, max_tokens=16, seed=7)
    alone = policy.generate([target])[0]
    others = [request(p, temperature=1.0, max_tokens=20, seed=s) for s, p in enumerate(PROMPTS)]
    greedy = request(PROMPTS[1], temperature=0, max_tokens=3)
    for batch in ([*others, target], [target, greedy], [greedy, others[2], target, others[0]]):
        got = policy.generate(batch)[batch.index(target)]
        assert got.token_ids == alone.token_ids
    reseeded = [request(PROMPTS[0], temperature=1.0, max_tokens=16, seed=s) for s in range(4)]
    assert len({tuple(g.token_ids) for g in policy.generate(reseeded)}) > 1


def test_a_tiny_top_p_keeps_only_the_most_likely_token(policy: HFPolicy) -> None:
    greedy = policy.generate([request(PROMPTS[1], temperature=0, max_tokens=8)])[0]
    nucleus = policy.generate([request(PROMPTS[1], temperature=2.0, top_p=1e-6, max_tokens=8)])
    assert nucleus[0].token_ids == greedy.token_ids


def test_max_tokens_ends_with_length(policy: HFPolicy) -> None:
    [g] = policy.generate([request(PROMPTS[0], temperature=0, max_tokens=5)])
    assert g.finish_reason == "length" and len(g.token_ids) == 5
    assert policy.tokenizer.eos_token_id not in g.token_ids


def test_stop_strings_cut_at_the_token_that_completes_them(policy: HFPolicy) -> None:
    free = policy.generate([request(PROMPTS[1], temperature=0, max_tokens=24)])[0]
    # A stop string that starts mid-reply and may straddle tokens.
    stop = free.text[9:12]
    assert len(stop) == 3
    [g] = policy.generate([request(PROMPTS[1], temperature=0, max_tokens=24, stop=("@@", stop))])
    assert g.finish_reason == "stop"
    end = free.text.index(stop) + len(stop)
    assert g.text == free.text[:end]  # the stop string is kept, nothing after it
    assert g.token_ids == free.token_ids[: len(g.token_ids)]
    decode = policy.tokenizer.decode
    assert stop in decode(g.token_ids) and stop not in decode(g.token_ids[:-1])
    assert g.logprobs == free.logprobs[: len(g.token_ids)]


def test_end_of_sequence_ends_with_stop(policy: HFPolicy) -> None:
    first = policy.generate([request(PROMPTS[0], temperature=0, max_tokens=3)])[0].token_ids[0]
    eos = HFPolicy(policy.model, tokenizer=policy.tokenizer)
    eos.eos_token_ids = frozenset({first})  # the model's first greedy token now ends a reply
    [g] = eos.generate([request(PROMPTS[0], temperature=0, max_tokens=3)])
    assert (g.token_ids, g.finish_reason) == ([first], "stop")


def test_prompt_token_ids_are_used_exactly_never_retokenized(
    policy: HFPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = policy.tokenizer
    # The prompt spelled byte by byte: ids that tokenizing its text would never produce.
    text = tok.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]}], tokenize=False, add_generation_prompt=True
    )
    canonical = tok(text, add_special_tokens=False)["input_ids"]
    letters = [i for c in "user\n" for i in tok(c, add_special_tokens=False)["input_ids"]]
    rest = tok(text[len("<|im_start|>user\n") :], add_special_tokens=False)["input_ids"]
    spelled = [1, *letters, *rest]
    assert tok.decode(spelled) == text and spelled != canonical

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the hf backend tokenized a prompt given as token ids")

    for method in ("__call__", "encode", "apply_chat_template"):
        monkeypatch.setattr(type(tok), method, boom)
    contexts: Sequence[list[int]] = (spelled, canonical)
    requests = [
        GenerationRequest(prompt_token_ids=ids, sampling=Sampling(temperature=0, max_tokens=6))
        for ids in contexts
    ]
    generations = policy.generate(requests)
    monkeypatch.undo()
    for ids, g in zip(contexts, generations, strict=True):
        assert g.prompt_token_ids == ids
        assert g.token_ids == full_forward(policy, g).argmax(-1).tolist()
    with pytest.raises(ValueError, match="empty"):
        policy.generate([GenerationRequest(prompt_token_ids=[])])


def test_lora_adapters_attach_change_outputs_and_reload(checkpoint: Path, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft", reason="needs peft")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    base = HFPolicy(checkpoint, device="cpu")
    tuned = HFPolicy(checkpoint, device="cpu", lora=config)
    probe = [request(PROMPTS[1], temperature=0, max_tokens=8)]
    before = base.generate(probe)[0]
    fresh = tuned.generate(probe)[0]  # a fresh adapter's B is zero: a no-op
    assert fresh.token_ids == before.token_ids
    assert fresh.logprobs == pytest.approx(before.logprobs, abs=1e-6)

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in tuned.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    changed = tuned.generate(probe)[0]
    assert changed.logprobs != pytest.approx(before.logprobs, abs=1e-3)

    tuned.model.save_pretrained(tmp_path / "adapter")
    reloaded = HFPolicy(checkpoint, device="cpu", lora=tmp_path / "adapter")
    again = reloaded.generate(probe)[0]
    assert again.token_ids == changed.token_ids
    assert again.logprobs == pytest.approx(changed.logprobs, abs=1e-5)
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        HFPolicy(checkpoint, device="cpu", lora=tmp_path)


def test_generation_leaves_the_model_in_its_training_mode(policy: HFPolicy) -> None:
    policy.model.train()
    try:
        policy.generate([request(PROMPTS[2], temperature=0, max_tokens=2)])
        assert policy.model.training
    finally:
        policy.model.eval()


def test_bad_arguments_are_refused(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        HFPolicy(checkpoint, max_batch_size=0)
    with pytest.raises(ValueError, match="unknown dtype"):
        HFPolicy(checkpoint, device="cpu", dtype="float7")


@pytest.mark.gpu
def test_cuda_defaults_to_bf16_and_matches_a_full_forward(checkpoint: Path) -> None:
    gpu = HFPolicy(checkpoint)  # device and dtype "auto"
    assert gpu.device.type == "cuda"
    if torch.cuda.is_bf16_supported():
        assert gpu.model.dtype == torch.bfloat16
    requests = [request(p, temperature=1.0, max_tokens=16, seed=i) for i, p in enumerate(PROMPTS)]
    together = gpu.generate(requests)
    for g in together:
        assert g.prompt_token_ids is not None and len(g.token_ids) == len(g.logprobs or [])
        expected = full_forward(gpu, g).gather(-1, torch.tensor(g.token_ids).cuda()[:, None])[:, 0]
        assert g.logprobs == pytest.approx(expected.tolist(), abs=0.1)  # bf16 kernels differ
    greedy = [request(p, temperature=0, max_tokens=8) for p in PROMPTS]
    cpu = HFPolicy(checkpoint, device="cpu")
    agree = sum(
        a.token_ids == b.token_ids
        for a, b in zip(gpu.generate(greedy), cpu.generate(greedy), strict=True)
    )
    assert agree >= 1  # bf16 may flip a near-tie, not every prompt
