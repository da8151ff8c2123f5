"""Token-exact turns: the context grows by appending deltas, sampled ids are never re-tokenized.

The tokenizer is a real byte-level BPE with a ChatML template, trained here with `tokenizers`;
the policy is scripted, so each test knows exactly which ids were "sampled".
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import turnwise
from turnwise.agents.agent import LLMAgent
from turnwise.agents.policy import Generation, GenerationRequest, Sampling
from turnwise.agents.tokens import (
    CONTEXT_RESET,
    TokenContext,
    encode,
    render_chat,
    trajectory_segments,
    trajectory_tensors,
)
from turnwise.episode import run_episode
from turnwise.trajectory import Trajectory, Turn, read_jsonl, write_jsonl

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "You are in the kitchen. You see a red key and a lamp. Exits: north, east (locked).",
    "<think>the door is locked</think><action>take red key</action>",
    "take key go north go south unlock north door with red key inventory look",
    "system user assistant Your task: Find the gold coin and take it. Admissible actions:",
]


@pytest.fixture(scope="module")
def tok():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(CORPUS * 10, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML,
    )


def fragmented(tok, text: str) -> list[int]:
    """Ids of `text` one character at a time: valid, but not what the tokenizer would produce."""
    return [i for ch in text for i in encode(tok, ch)]


class ScriptedTokenPolicy:
    """Answers with scripted replies as (possibly fragmented) token ids, logging each request."""

    name = "scripted"

    def __init__(self, tok, replies: Sequence[str], *, fragment=True, end_turn=True):
        self.tokenizer = tok
        self.replies = list(replies)
        self.fragment = fragment
        self.end_turn = end_turn
        self.requests: list[GenerationRequest] = []
        self.im_end = tok.convert_tokens_to_ids("<|im_end|>")

    def generate(self, requests):
        out = []
        for req in requests:
            self.requests.append(req)
            text = self.replies.pop(0) if self.replies else "<action>look</action>"
            ids = (
                fragmented(self.tokenizer, text) if self.fragment else encode(self.tokenizer, text)
            )
            if self.end_turn:
                ids.append(self.im_end)
            logprobs = [-0.01 * (k + 1) for k in range(len(ids))]
            prompt = req.prompt_token_ids
            if prompt is None:  # a chat request: render it, as the hf backend does
                prompt = encode(self.tokenizer, render_chat(self.tokenizer, req.messages, True))
            out.append(Generation(text, ids, logprobs, "stop", list(prompt)))
        return out


# ---------------------------------------------------------------------- TokenContext
def conversation(n: int) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": "Play the game."}]
    for i in range(n):
        msgs.append({"role": "user", "content": f"You are in room {i}. Exits: north."})
        msgs.append({"role": "assistant", "content": f"<action>go north {i}</action>"})
    return msgs


@pytest.mark.parametrize("sampled_end_of_turn", [True, False])
def test_appending_deltas_equals_rendering_the_whole_conversation(tok, sampled_end_of_turn):
    """With canonical ids, the appended context is byte-for-byte the full render's tokens."""
    msgs = conversation(3)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    ctx = TokenContext(tok)
    ctx.start(msgs[:2])
    for i in range(1, len(msgs) - 1, 2):
        reply = msgs[i + 1]["content"]
        ids = encode(tok, reply) + ([im_end] if sampled_end_of_turn else [])
        ctx.add_generated(ids, reply)
        nxt = msgs[i + 2]["content"] if i + 2 < len(msgs) else "The end."
        delta = ctx.delta(nxt)
        # The closing token is added exactly when the generation did not sample it.
        assert (delta[0] == im_end) is (not sampled_end_of_turn)
        ctx.append(delta, nxt)
    full = [*msgs, {"role": "user", "content": "The end."}]
    assert ctx.ids == encode(tok, render_chat(tok, full, True))
    assert ctx.exchanges == 3


def test_sampled_ids_are_kept_even_when_retokenizing_would_change_them(tok):
    reply = "<think>the door is locked</think><action>take red key</action>"
    sampled = fragmented(tok, reply)
    # The premise: this tokenizer merges these characters, so decode → encode changes the ids.
    assert encode(tok, tok.decode(sampled)) != sampled
    ctx = TokenContext(tok)
    prompt = ctx.start([{"role": "user", "content": "You are in the kitchen."}])
    ctx.add_generated(sampled, reply)
    ctx.append(ctx.delta("You take the red key."), "You take the red key.")
    assert ctx.ids[len(prompt) : len(prompt) + len(sampled)] == sampled


def test_template_that_drops_content_is_refused(tok):
    from transformers import PreTrainedTokenizerFast

    lossy = PreTrainedTokenizerFast(
        tokenizer_object=tok.backend_tokenizer,
        eos_token="<|im_end|>",
        chat_template="{% for m in messages %}{{ m['role'] }}{% endfor %}",
    )
    ctx = TokenContext(lossy)
    ctx.start([{"role": "user", "content": "hi"}])
    ctx.add_generated([5, 6], "ok")
    with pytest.raises(ValueError, match="token_exact=False"):
        ctx.delta("next")


def test_a_tokenizer_without_chat_template_is_refused(tok):
    from transformers import PreTrainedTokenizerFast

    plain = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer)
    with pytest.raises(ValueError, match="chat template"):
        TokenContext(plain)


# ---------------------------------------------------------------------- trajectories
def test_trajectory_tensors_align_and_refuse_missing_tokens():
    turns = [
        Turn(0, "o", "a", 0.0, prompt_token_ids=[1, 2, 3], token_ids=[4], logprobs=[-1.0]),
        Turn(1, "o", "b", 0.0, prompt_token_ids=[5], token_ids=[6, 7], logprobs=None),
    ]
    t = trajectory_tensors(Trajectory("e", "t", turns=turns))
    assert t.input_ids == [1, 2, 3, 4, 5, 6, 7]
    assert t.loss_mask == [0, 0, 0, 1, 0, 1, 1]
    assert t.turn_index == [0, 0, 0, 0, 1, 1, 1]
    assert t.logprobs == [0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0]
    assert not t.has_logprobs and t.turns == [0, 1] and len(t) == 7
    tensors = t.to_torch()
    assert tensors["input_ids"].dtype.is_floating_point is False
    assert int(tensors["loss_mask"].sum()) == 3
    with pytest.raises(ValueError, match="token-exact"):
        trajectory_tensors(Trajectory("e", "t", turns=[Turn(0, "o", "a", 0.0)]))


def test_segments_split_at_context_resets():
    turns = [
        Turn(0, "o", "a", 0.0, prompt_token_ids=[1], token_ids=[2], logprobs=[-1.0]),
        Turn(1, "o", "b", 0.0, prompt_token_ids=[1, 9], token_ids=[3], logprobs=[-2.0]),
    ]
    turns[1].info[CONTEXT_RESET] = True
    traj = Trajectory("e", "t", turns=turns)
    first, second = trajectory_segments(traj)
    assert (first.input_ids, first.turns) == ([1, 2], [0])
    assert (second.input_ids, second.turn_index, second.turns) == ([1, 9, 3], [1, 1, 1], [1])
    with pytest.raises(ValueError, match="trajectory_segments"):
        trajectory_tensors(traj)


# ---------------------------------------------------------------------- the agent, end to end
EXPERT_REPLIES = [
    "<think>the key first</think><action>take purple key</action>",
    "<action>unlock north door with purple key</action>",
    "<action>go north</action>",
    "<action>take gold coin</action>",
]


def play(tok, replies, *, fragment=True, **agent_kwargs):
    policy = ScriptedTokenPolicy(tok, replies, fragment=fragment)
    agent = LLMAgent(policy, sampling=Sampling(max_tokens=64, seed=1), **agent_kwargs)
    env = turnwise.make("turnwise/KeyDoor-v0", difficulty="easy")
    traj = run_episode(env, agent, seed=0, task_id="easy-train-00002")
    return traj, policy


def test_token_exact_episode_yields_exactly_what_was_sampled(tok, tmp_path):
    traj, policy = play(tok, EXPERT_REPLIES)
    assert traj.success and traj.num_turns == 4
    assert all(t.info["format_ok"] for t in traj.turns)
    # Each request's context is the previous one plus the sampled ids plus the turn's delta.
    for prev, req, turn in zip(policy.requests, policy.requests[1:], traj.turns[1:], strict=False):
        sampled = traj.turns[turn.index - 1].token_ids
        assert req.prompt_token_ids == prev.prompt_token_ids + sampled + turn.prompt_token_ids
    t = trajectory_tensors(read_jsonl(write_jsonl([traj], tmp_path / "t.jsonl"))[0])
    assert t.input_ids == policy.requests[-1].prompt_token_ids + traj.turns[-1].token_ids
    generated = [i for turn in traj.turns for i in turn.token_ids]
    assert [i for i, m in zip(t.input_ids, t.loss_mask, strict=True) if m] == generated
    assert [lp for lp, m in zip(t.logprobs, t.loss_mask, strict=True) if m] == [
        lp for turn in traj.turns for lp in turn.logprobs
    ]
    assert not any(CONTEXT_RESET in turn.info for turn in traj.turns)


def test_token_budget_starts_a_fresh_context_and_says_so(tok):
    # Canonical ids: a fresh render of the whole history is as long as the appended context
    # (fragmented ids would shrink when re-rendered as text, and might fit again).
    _, unlimited = play(tok, EXPERT_REPLIES, fragment=False)
    budget = len(unlimited.requests[2].prompt_token_ids) - 1  # turn 2 would not fit
    traj, policy = play(tok, EXPERT_REPLIES, fragment=False, token_budget=budget)
    assert traj.success
    resets = [t.index for t in traj.turns if t.info.get(CONTEXT_RESET)]
    assert 2 in resets
    assert traj.turns[2].info["omitted_turns"] >= 1
    for req in policy.requests:
        assert len(req.prompt_token_ids) <= budget
    assert "earlier turns are omitted" in tok.decode(policy.requests[2].prompt_token_ids)
    segments = trajectory_segments(traj)
    assert len(segments) == 1 + len(resets)
    # Each segment is exactly one request's context followed by what was sampled from it.
    last = segments[-1]
    assert last.input_ids == policy.requests[-1].prompt_token_ids + traj.turns[-1].token_ids


def test_history_k_in_token_mode_resets_after_k_turns(tok):
    traj, policy = play(tok, EXPERT_REPLIES, history=1)
    assert [bool(t.info.get(CONTEXT_RESET)) for t in traj.turns] == [False, False, True, True]
    assert [t.info.get("omitted_turns", 0) for t in traj.turns] == [0, 0, 1, 2]
    text = tok.decode(policy.requests[3].prompt_token_ids)
    assert "go north" in text and "purple key</action>" not in text


def test_message_mode_records_each_turn_as_its_own_context(tok):
    traj, policy = play(tok, EXPERT_REPLIES, token_exact=False)
    assert traj.success and all(r.messages is not None for r in policy.requests)
    assert [bool(t.info.get(CONTEXT_RESET)) for t in traj.turns] == [False, True, True, True]
    segments = trajectory_segments(traj)
    assert len(segments) == 4
    rendered = encode(tok, render_chat(tok, policy.requests[3].messages, True))
    assert segments[3].input_ids == rendered + traj.turns[3].token_ids
