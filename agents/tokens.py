"""Token-exact turns: a context that grows by appending, and the training tensors it yields.

A multi-turn agent that re-renders its whole conversation every turn re-tokenizes what the model
generated, and the ids can change (BPE merges across the boundary of two sampled tokens, a
different split of the same text): the trainer would then score tokens the policy never
sampled. `TokenContext` never does that. The first turn renders system + user through the chat
template with the generation prompt; every later turn appends only a *delta*:

1. the tokens that close the assistant turn, unless the sampled ids already end with them (a
   generation cut by `max_tokens` or a stop string does not end with the end-of-turn token);
2. the new user message, rendered through the chat template;
3. the generation prompt.

The delta is found by rendering the conversation with a sentinel as the last assistant message
plus the new user message, and keeping the text after the sentinel; so any chat template works
(ChatML, Llama 3, ...) as long as it reproduces an assistant message's content verbatim. The
delta is tokenized on its own: for templates whose closing text starts with a special token (all
common ones) that is exactly the ids a full render would give there.

A trajectory recorded this way (`Turn.prompt_token_ids` = the delta, `Turn.token_ids` = the
sampled ids) yields its training tensors by concatenation, without re-tokenizing:
`trajectory_tensors(traj)`. A turn whose `info["context_reset"]` is true started a fresh
context (history truncation, or an agent that re-renders every turn), so its `prompt_token_ids`
is that whole context: `trajectory_segments(traj)` splits such a trajectory into one sequence
per context.

Example:
    >>> from turnwise.trajectory import Trajectory, Turn
    >>> traj = Trajectory("env", "t", turns=[
    ...     Turn(0, "obs", "a", 0.0, prompt_token_ids=[1, 2], token_ids=[3, 4], logprobs=[-.5, -.1]),
    ...     Turn(1, "obs", "b", 1.0, prompt_token_ids=[5], token_ids=[6], logprobs=[-.2]),
    ... ])
    >>> t = trajectory_tensors(traj)
    >>> t.input_ids, t.loss_mask, t.turn_index
    ([1, 2, 3, 4, 5, 6], [0, 0, 1, 1, 0, 1], [0, 0, 0, 0, 1, 1])
    >>> t.logprobs
    [0.0, 0.0, -0.5, -0.1, 0.0, -0.2]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from turnwise.trajectory import Trajectory

from .policy import Message

__all__ = [
    "CONTEXT_RESET",
    "TokenContext",
    "TokenizedTrajectory",
    "encode",
    "has_chat_template",
    "render_chat",
    "trajectory_segments",
    "trajectory_tensors",
]

#: `Turn.info` key: true on a turn whose `prompt_token_ids` start a fresh context.
CONTEXT_RESET = "context_reset"

# Stands in for the last assistant reply when rendering a delta; it has no whitespace, so
# templates that trim content leave it whole.
_SENTINEL = "\u2063TURNWISE_SENTINEL_4d1f\u2063"


def has_chat_template(tokenizer: Any) -> bool:
    """Whether `tokenizer` is a transformers tokenizer with a chat template."""
    return callable(getattr(tokenizer, "apply_chat_template", None)) and bool(
        getattr(tokenizer, "chat_template", None)
    )


def render_chat(tokenizer: Any, messages: Sequence[Message], add_generation_prompt: bool) -> str:
    """The chat template's text for `messages` (not tokenized; text messages only)."""
    from .policy import require_text_only

    require_text_only(messages, "chat-template")
    text = tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}")
    return text


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text`, adding no special tokens (a rendered template already holds them)."""
    return list(tokenizer.encode(text, add_special_tokens=False))


class TokenContext:
    """The token ids of one growing conversation, appended to and never re-tokenized.

    Args:
        tokenizer: a transformers tokenizer with a chat template.

    Example (with `tok` a ChatML tokenizer):
        ctx = TokenContext(tok)
        prompt = ctx.start([{"role": "user", "content": "hi"}])   # ids to generate from
        ctx.add_generated(sampled_ids, reply_text)
        delta = ctx.delta("next observation")  # closing tokens + user turn + generation prompt
        ctx.append(delta, "next observation")
    """

    def __init__(self, tokenizer: Any) -> None:
        if not has_chat_template(tokenizer):
            raise ValueError(
                "token-exact turns need a tokenizer with a chat template; "
                "pass token_exact=False to render messages each turn instead"
            )
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.messages: list[Message] = []
        self.exchanges = 0
        """Completed (user, assistant) exchanges in this context."""
        self._last_generated: list[int] = []
        self._special = _special_ids(tokenizer)

    def __len__(self) -> int:
        return len(self.ids)

    def start(self, messages: Sequence[Message]) -> list[int]:
        """Begin a fresh context from `messages` (ending with a user turn); returns its ids."""
        if not messages or messages[-1]["role"] != "user":
            raise ValueError("a context starts from messages that end with a user message")
        self.messages = [dict(m) for m in messages]
        self.ids = encode(self.tokenizer, render_chat(self.tokenizer, self.messages, True))
        self.exchanges = sum(m["role"] == "assistant" for m in self.messages)
        self._last_generated = []
        return list(self.ids)

    def add_generated(self, token_ids: Sequence[int], text: str) -> None:
        """Append the sampled ids, exactly as sampled (`text` is kept for later renders)."""
        if not self.messages or self.messages[-1]["role"] != "user":
            raise RuntimeError("add_generated() follows start() or append()")
        self.ids.extend(int(i) for i in token_ids)
        self.messages.append({"role": "assistant", "content": text})
        self.exchanges += 1
        self._last_generated = list(token_ids)

    def delta(self, user: str) -> list[int]:
        """The ids that would follow the last generation for a new user message (no change)."""
        if not self.messages or self.messages[-1]["role"] != "assistant":
            raise RuntimeError("delta() follows add_generated()")
        probe = [*self.messages[:-1], {"role": "assistant", "content": _SENTINEL}]
        text = render_chat(self.tokenizer, [*probe, {"role": "user", "content": user}], True)
        at = text.rfind(_SENTINEL)
        if at < 0:
            raise ValueError(
                "the chat template does not reproduce assistant messages verbatim, so turns "
                "cannot be appended token-exactly; pass token_exact=False"
            )
        ids = encode(self.tokenizer, text[at + len(_SENTINEL) :])
        # The closing token (e.g. <|im_end|>) is already there when the model sampled it.
        if ids and ids[0] in self._special and self._last_generated[-1:] == ids[:1]:
            ids = ids[1:]
        return ids

    def append(self, delta: Sequence[int], user: str) -> None:
        """Append a `delta` computed for `user` (the context is now ready to generate)."""
        self.ids.extend(delta)
        self.messages.append({"role": "user", "content": user})


def _special_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of special tokens: the named ones and every added token marked special."""
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(int(i) for i, token in added.items() if getattr(token, "special", False))
    return frozenset(ids)


# ---------------------------------------------------------------------- trajectories
@dataclass
class TokenizedTrajectory:
    """One context of a trajectory as training sequences (plain lists, all the same length).

    Attributes:
        input_ids: the context: each turn's prompt delta, then its generated tokens.
        loss_mask: 1 on generated tokens, 0 on prompt tokens.
        turn_index: the `Turn.index` each token belongs to (prompt delta and generation alike).
        logprobs: each generated token's log-prob under the sampling policy; 0.0 where masked.
        has_logprobs: False when some turn recorded no log-probs (its entries are 0.0).
        turns: the turn indices this sequence covers, in order.
    """

    input_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    turn_index: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    has_logprobs: bool = True
    turns: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    def to_torch(self) -> dict[str, Any]:
        """The sequences as 1-D tensors: ids and turn index int64, mask bool, log-probs float32.

        Example:
            >>> TokenizedTrajectory([1, 2], [0, 1], [0, 0], [0.0, -1.0]).to_torch()["loss_mask"]
            tensor([False,  True])
        """
        import torch

        return {
            "input_ids": torch.tensor(self.input_ids, dtype=torch.long),
            "loss_mask": torch.tensor(self.loss_mask, dtype=torch.bool),
            "turn_index": torch.tensor(self.turn_index, dtype=torch.long),
            "logprobs": torch.tensor(self.logprobs, dtype=torch.float32),
        }


def trajectory_segments(traj: Trajectory) -> list[TokenizedTrajectory]:
    """One `TokenizedTrajectory` per context of `traj` (a new one at each context reset).

    Raises `ValueError` when a turn has no `prompt_token_ids` or `token_ids` (the trajectory was
    collected by an agent that does not record tokens, e.g. an `openai` policy).
    """
    segments: list[TokenizedTrajectory] = []
    for turn in traj.turns:
        if turn.prompt_token_ids is None or turn.token_ids is None:
            raise ValueError(
                f"turn {turn.index} of trajectory {traj.id} has no prompt_token_ids/token_ids: "
                "collect it with a token-exact agent (a policy with a tokenizer: hf or vllm)"
            )
        if not segments or turn.info.get(CONTEXT_RESET):
            segments.append(TokenizedTrajectory())
        seg = segments[-1]
        prompt, generated = turn.prompt_token_ids, turn.token_ids
        seg.turns.append(turn.index)
        seg.input_ids += prompt
        seg.input_ids += generated
        seg.loss_mask += [0] * len(prompt) + [1] * len(generated)
        seg.turn_index += [turn.index] * (len(prompt) + len(generated))
        seg.logprobs += [0.0] * len(prompt)
        if turn.logprobs is None:
            seg.has_logprobs = False
            seg.logprobs += [0.0] * len(generated)
        else:
            seg.logprobs += [float(x) for x in turn.logprobs]
    return segments


def trajectory_tensors(traj: Trajectory) -> TokenizedTrajectory:
    """The training sequence of a single-context trajectory (see the module docstring).

    A trajectory with context resets is several sequences: use `trajectory_segments`.
    """
    segments = trajectory_segments(traj)
    if len(segments) > 1:
        raise ValueError(
            f"trajectory {traj.id} has {len(segments)} contexts (history was truncated or each "
            "turn re-rendered): use trajectory_segments(traj), one sequence per context"
        )
    return segments[0] if segments else TokenizedTrajectory()
