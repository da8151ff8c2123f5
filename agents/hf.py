"""`HFPolicy`: the `hf` backend, a transformers causal LM answering batches of requests.

It loads any local checkpoint (`AutoModelForCausalLM`), on CPU (fp32) or CUDA (bf16 where
supported), optionally with LoRA adapters (peft), and implements `Policy.generate` with its own
sampling loop over the KV cache rather than `model.generate`, because `generate` cannot give us
all of the following at once:

* a seed per request: each row draws its uniforms from its own `torch.Generator`, so a request's
  sample does not depend on which other requests share its batch (`generate` uses one global RNG
  for the whole batch);
* stop strings and max tokens per row: rows finish independently and are dropped from the batch
  (and from the KV cache) as they finish, instead of padding on until the slowest row ends;
* raw log-probs: the log-probability of each sampled token is taken from `log_softmax` of the
  model's logits at temperature 1, before temperature and top-p reshape them. This is vLLM's
  default (`raw_logprobs`) and what importance ratios in the trainers are computed against;
  `generate`'s `output_scores` are post-processing scores instead.

Batches are left-padded, with an attention mask and explicit position ids counted from each
row's first real token, so a prompt generates the same tokens alone or beside longer and shorter
ones. Requests are sorted by prompt length before batching, to waste less compute on padding.

Example:
    >>> from turnwise.agents.tiny import default_checkpoint
    >>> from turnwise.agents.policy import GenerationRequest, Sampling
    >>> policy = HFPolicy.from_pretrained(default_checkpoint())
    >>> request = GenerationRequest(
    ...     messages=[{"role": "user", "content": "You are in the hall."}],
    ...     sampling=Sampling(temperature=0.7, max_tokens=5, seed=1),
    ... )
    >>> [g] = policy.generate([request])
    >>> len(g.token_ids) == len(g.logprobs) <= 5, g.finish_reason in ("stop", "length")
    (True, True)
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .policy import Generation, GenerationRequest, Sampling
from .tokens import render_chat

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["HFPolicy"]


@dataclass
class _Row:
    """One request in flight: its context, what it generated so far, and how to sample."""

    index: int
    prompt: list[int]
    sampling: Sampling
    generator: torch.Generator
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str | None = None
    finish_reason: str | None = None


class HFPolicy:
    """A transformers causal LM as a `Policy` (spec `hf:PATH`).

    Args:
        path_or_model: a local checkpoint folder, or a loaded `PreTrainedModel` (then `tokenizer`
            is required, unless the model's `name_or_path` folder has one).
        tokenizer: the tokenizer; loaded from the checkpoint when None.
        device: `auto` (CUDA when available, else CPU), or any torch device. For a model object,
            `auto` leaves it where it is.
        dtype: `auto` (bf16 on a GPU that supports it, else fp32), or a torch dtype or its name
            (`"float32"`, `"bfloat16"`, `"float16"`). For a model object, `auto` keeps its dtype.
        lora: a folder with a saved peft adapter to load (trainable), or a `peft.LoraConfig` to
            attach a fresh adapter (for training; it starts as a no-op).
        max_batch_size: at most this many rows are generated together.

    Attributes:
        model: the (possibly peft-wrapped) model. Trainers may update it in place.
        tokenizer: the tokenizer (`Policy.tokenizer`, used by token-exact agents).

    Example:
        >>> from turnwise.agents.tiny import default_checkpoint
        >>> policy = HFPolicy(default_checkpoint(), device="cpu")
        >>> policy.name.startswith("hf:"), policy.device.type, str(policy.model.dtype)
        (True, 'cpu', 'torch.float32')
    """

    def __init__(
        self,
        path_or_model: str | os.PathLike[str] | PreTrainedModel,
        *,
        tokenizer: PreTrainedTokenizerBase | None = None,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        lora: str | os.PathLike[str] | LoraConfig | None = None,
        max_batch_size: int = 16,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.max_batch_size = max_batch_size
        model: Any
        if not isinstance(path_or_model, (str, os.PathLike)):
            model = path_or_model  # a PreTrainedModel, or one already wrapped by peft
            source = str(getattr(model.config, "name_or_path", "") or "<in-memory>")
            if device != "auto":
                model = model.to(device)
            if dtype != "auto":
                model = model.to(_resolve_dtype(dtype, model.device))
        else:
            source = str(Path(path_or_model))
            target = _resolve_device(device)
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=_resolve_dtype(dtype, target)
            )
            model = model.to(target)
        if tokenizer is None:
            try:
                tokenizer = AutoTokenizer.from_pretrained(source)
            except (OSError, ValueError) as exc:
                raise ValueError(
                    f"no tokenizer given and none could be loaded from {source!r}"
                ) from exc
        if lora is not None:
            model = _attach_lora(model, lora)
        self.model: Any = model
        self.tokenizer: PreTrainedTokenizerBase = tokenizer
        self.name = f"hf:{source}"
        self.eos_token_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else min(self.eos_token_ids, default=0))
        self._seeds = random.Random()  # for requests without a seed: fresh draws each time
        self._torch = torch
        self._logits_to_keep = True
        if threading.current_thread() is threading.main_thread():
            # Measured on CPU: when torch's first kernel runs on a worker thread (serve's batcher,
            # a collector's executor), generation stays ~6x slower for the life of the process.
            # One tiny matmul here, on the main thread, avoids it.
            torch.ones(8, 8) @ torch.ones(8, 8)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **kwargs: Any) -> HFPolicy:
        """Load the checkpoint at `path`; `kwargs` as in `HFPolicy(...)`."""
        return cls(path, **kwargs)

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Copy new weights (the base model's parameter names) into this policy's model.

        For a generation copy kept apart from the model being trained (another device, say),
        as `VLLMPolicy.update_weights` is for vLLM; a policy that shares the trained model
        needs no update. Unknown names or wrong shapes raise `ValueError`, before anything
        is copied.
        """
        torch = self._torch
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        own = dict(model.named_parameters())
        own.update(dict(model.named_buffers()))
        pairs = [(name, tensor) for name, tensor in named_tensors]
        for name, tensor in pairs:
            if name not in own:
                raise ValueError(f"update_weights: {name!r} is not a weight of this model")
            if tuple(own[name].shape) != tuple(tensor.shape):
                raise ValueError(
                    f"update_weights: {name!r} has shape {tuple(tensor.shape)}, "
                    f"the model's is {tuple(own[name].shape)}"
                )
        with torch.no_grad():
            for name, tensor in pairs:
                own[name].copy_(tensor)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live (and so where generation runs)."""
        device: torch.device = next(self.model.parameters()).device
        return device

    def __repr__(self) -> str:
        return f"HFPolicy({self.name!r}, device={self.device}, dtype={self.model.dtype})"

    # ------------------------------------------------------------------ Policy
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Complete every request; one `Generation` per request, in order.

        `messages` go through the tokenizer's chat template with the generation prompt;
        `prompt_token_ids` are used exactly as given.
        """
        rows = [
            _Row(i, self._context(r), r.sampling, self._generator(r.sampling.seed))
            for i, r in enumerate(requests)
        ]
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(rows, key=lambda row: len(row.prompt), reverse=True)
        # A trainer may hand over its model in training mode; sample in eval mode (no dropout)
        # and give it back as it came.
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            with self._torch.inference_mode():
                for start in range(0, len(order), self.max_batch_size):
                    self._run_batch(order[start : start + self.max_batch_size])
        finally:
            if was_training:
                self.model.train()
        return [self._result(row) for row in rows]

    # ------------------------------------------------------------------ internals
    def _context(self, request: GenerationRequest) -> list[int]:
        if request.prompt_token_ids is not None:
            ids = list(request.prompt_token_ids)
        else:
            assert request.messages is not None  # GenerationRequest checks one of them is set
            text = render_chat(self.tokenizer, request.messages, True)
            # The template already wrote any BOS it wants; don't let the tokenizer add another.
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise ValueError("a request's context is empty: nothing to generate from")
        return ids

    def _generator(self, seed: int | None) -> torch.Generator:
        # CPU generators on every device: a seed gives the same uniforms on CPU and GPU.
        return self._torch.Generator().manual_seed(
            self._seeds.getrandbits(63) if seed is None else seed
        )

    def _run_batch(self, batch: list[_Row]) -> None:
        torch = self._torch
        device = self.device
        width = max(len(row.prompt) for row in batch)
        ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, row in enumerate(batch):
            ids[i, width - len(row.prompt) :] = torch.tensor(row.prompt)
            mask[i, width - len(row.prompt) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        # Left padding shifts tokens right; count positions from each row's first real token.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [B, width]
        live = list(batch)
        cache: Any = None
        while True:
            out = self._forward(ids, mask, positions, cache)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()  # [B, V]
            tokens, logprobs = self._sample(logits, live)
            for i, row in enumerate(live):
                if row.finish_reason is None:
                    self._append(row, int(tokens[i]), float(logprobs[i]))
            keep = [i for i, row in enumerate(live) if row.finish_reason is None]
            if not keep:
                return
            # Finished rows leave the batch and the KV cache. Caches that cannot drop rows keep
            # them, computing tokens nobody reads: slower, never wrong.
            if len(keep) < len(live) and hasattr(cache, "batch_select_indices"):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, positions, tokens = mask[index], positions[index], tokens[index]
                live = [live[i] for i in keep]
            ids = tokens[:, None]  # [B, 1]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            positions = positions[:, -1:] + 1  # [B, 1]

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> Any:
        inputs = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": positions,
            "past_key_values": cache,
            "use_cache": True,
        }
        if self._logits_to_keep:
            try:
                # Only the last position's logits: skips the LM head over the whole prompt.
                return self.model(**inputs, logits_to_keep=1)
            except TypeError as exc:  # an architecture whose forward lacks the argument
                if "logits_to_keep" not in str(exc):
                    raise
                self._logits_to_keep = False
        return self.model(**inputs)

    def _sample(self, logits: torch.Tensor, rows: list[_Row]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick each row's next token; return the tokens and their raw log-probs.

        Each sampling row draws one uniform from its own generator and inverts the CDF of its
        (temperature-scaled, top-p-truncated) distribution: one draw per row per step, whatever
        the batch, which is what makes seeds independent of batch composition.
        """
        torch = self._torch
        raw = torch.log_softmax(logits, dim=-1)  # [B, V], temperature 1: the reported log-probs
        tokens = logits.argmax(dim=-1)  # greedy rows keep this
        sampled = [i for i, row in enumerate(rows) if row.sampling.temperature > 0]
        if sampled:
            index = torch.tensor(sampled, device=logits.device)
            temps = torch.tensor([rows[i].sampling.temperature for i in sampled])
            top_p = torch.tensor([rows[i].sampling.top_p for i in sampled])
            uniforms = torch.stack(
                [torch.rand((), generator=rows[i].generator, dtype=torch.float64) for i in sampled]
            )
            scaled = logits[index] / temps.to(logits.device)[:, None]
            sorted_logits, order = scaled.sort(dim=-1, descending=True)
            probs = sorted_logits.softmax(dim=-1)  # [S, V], most likely first
            # Keep the smallest prefix reaching top_p: drop tokens whose predecessors already do.
            before = probs.cumsum(dim=-1) - probs
            top_p = top_p.to(logits.device)[:, None]
            # top_p == 1 keeps everything, even where rounding pushes the cumsum past 1.
            probs = probs.masked_fill((before >= top_p) & (top_p < 1), 0.0)
            cdf = probs.double().cumsum(dim=-1)  # [S, V]
            target = (uniforms.to(logits.device) * cdf[:, -1])[:, None]
            choice = torch.searchsorted(cdf, target).clamp(max=cdf.shape[-1] - 1)  # [S, 1]
            tokens[index] = order.gather(-1, choice)[:, 0]
        return tokens, raw.gather(-1, tokens[:, None])[:, 0]

    def _append(self, row: _Row, token: int, logprob: float) -> None:
        row.tokens.append(token)
        row.logprobs.append(logprob)
        if token in self.eos_token_ids:
            row.finish_reason = "stop"
            return
        if row.sampling.stop:
            # Decode the whole reply: a stop string may span tokens, and byte-level tokens may
            # split a character, so only the full decode is exact.
            text = self._decode(row.tokens)
            ends = [text.find(s) + len(s) for s in row.sampling.stop if s and s in text]
            if ends:
                row.text = text[: min(ends)]
                row.finish_reason = "stop"
                return
        if len(row.tokens) >= row.sampling.max_tokens:
            row.finish_reason = "length"

    def _decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def _result(self, row: _Row) -> Generation:
        return Generation(
            # Like vLLM: the text ends with the stop string even when the token that completed
            # it carried more characters; the token ids are kept exactly as sampled.
            text=row.text if row.text is not None else self._decode(row.tokens),
            token_ids=row.tokens,
            logprobs=row.logprobs,
            finish_reason=row.finish_reason or "length",
            prompt_token_ids=row.prompt,
        )


# ---------------------------------------------------------------------- loading helpers
def _resolve_device(device: str | torch.device) -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        on_gpu = device.type == "cuda"
        return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use 'auto', 'float32', 'bfloat16' or 'float16'")
    return resolved


def _attach_lora(model: PreTrainedModel, lora: str | os.PathLike[str] | LoraConfig) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(lora, LoraConfig):
        return get_peft_model(model, lora)
    path = Path(lora)
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"no peft adapter at {path} (adapter_config.json is missing)")
    return PeftModel.from_pretrained(model, str(path), is_trainable=True)


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """End-of-sequence ids from the tokenizer and the generation config (which may list several,
    e.g. `<|im_end|>` and `<|endoftext|>`)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, (list, tuple)):
        ids.update(int(i) for i in extra)
    return frozenset(ids)
