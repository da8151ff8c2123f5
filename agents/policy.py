"""The `Policy` protocol: a batch of generation requests in, texts with token ids and log-probs out.

Every model backend (`hf`, `vllm`, `openai`) implements it, so agents, the rollout collector and
the trainers never care which one is behind a spec string. A request carries either chat
`messages` (the backend applies the chat template) or the exact `prompt_token_ids` of the context
(for token-exact multi-turn agents, which grow their context by appending and never re-tokenize);
a `Generation` carries the text and the generated token ids exactly as sampled, with the
log-probability of each under the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Generation",
    "GenerationRequest",
    "Message",
    "Policy",
    "Sampling",
    "image_data_url",
    "require_text_only",
    "with_image",
]

Message = dict[str, Any]
"""A chat message: `{"role": "system" | "user" | "assistant", "content": str}`. For vision
models behind an OpenAI-compatible server, a user message's content may instead be a list of
content parts, text and an image (`with_image`)."""


def image_data_url(image: Any) -> str:
    """A uint8 H×W×3 image as a `data:image/png;base64,...` URL (needs pillow).

    Example:
        >>> import numpy as np
        >>> image_data_url(np.zeros((2, 3, 3), dtype=np.uint8))[:22]
        'data:image/png;base64,'
    """
    import base64
    import io

    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("sending images needs pillow: pip install pillow") from exc
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def with_image(message: Message, image: Any) -> Message:
    """`message` with `image` attached: OpenAI-style content parts, the text first.

    Example:
        >>> import numpy as np
        >>> m = with_image({"role": "user", "content": "Screen:"}, np.zeros((2, 2, 3), "uint8"))
        >>> [part["type"] for part in m["content"]]
        ['text', 'image_url']
    """
    return {
        **message,
        "content": [
            {"type": "text", "text": str(message["content"])},
            {"type": "image_url", "image_url": {"url": image_data_url(image)}},
        ],
    }


def require_text_only(messages: Sequence[Message], backend: str) -> None:
    """Raise a clear error when a message carries content parts (images) a text-only backend
    cannot read."""
    if any(not isinstance(m.get("content"), str) for m in messages):
        raise ValueError(
            f"the {backend} backend takes text messages only, and this request carries an image; "
            "send screenshots to a vision model behind an OpenAI-compatible server "
            "(openai:URL#MODEL), or turn images off"
        )


@dataclass(frozen=True)
class Sampling:
    """How to sample one completion."""

    temperature: float = 1.0
    """0 means greedy."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p`."""
    max_tokens: int = 256
    """Generate at most this many tokens."""
    stop: tuple[str, ...] = ()
    """Stop as soon as the text contains one of these (it is kept in the text and the tokens)."""
    seed: int | None = None
    """Seeds this request's sampling, independently of the other requests in the batch."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))


@dataclass
class GenerationRequest:
    """One completion to generate: from chat messages, or from an exact token context."""

    messages: list[Message] | None = None
    prompt_token_ids: list[int] | None = None
    sampling: Sampling = field(default_factory=Sampling)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt_token_ids is None):
            raise ValueError("a request needs exactly one of messages and prompt_token_ids")


@dataclass
class Generation:
    """What the policy generated for one request."""

    text: str
    token_ids: list[int]
    """The generated tokens, exactly as sampled (empty when a server does not report them)."""
    logprobs: list[float] | None
    """Log-probability of each generated token under the policy (None when not available)."""
    finish_reason: str
    """`stop` (a stop string or the end-of-sequence token) or `length` (`max_tokens` reached)."""
    prompt_token_ids: list[int] | None = None
    """The context the tokens were generated from, when the backend tokenized it."""
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Policy(Protocol):
    """A model that completes batches of requests.

    `generate` is called with every request that is waiting (from many envs), so backends should
    batch them; it must return one `Generation` per request, in order. Backends that know their
    tokenizer expose it as `tokenizer` (required for token-exact agents), else None.
    """

    name: str
    """The spec string it was loaded from (`hf:PATH`, ...)."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]: ...
