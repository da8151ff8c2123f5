"""Supervised fine-tuning on demonstrations, token-exact with what the agent sees at play time.

Demonstrations are episodes of an env's expert replayed through the same `LLMAgent` the
collector uses, with a policy that "generates" the expert's action in the agent's reply format
(`<action>go west</action>` for ReAct templates) followed by the end-of-turn token. Each turn so
records the prompt delta and the reply ids exactly as a sampled turn would, and training on
them teaches the model the prompts, the format and when to stop, in the token layout it will
meet when it plays. The loss is the mean negative log-likelihood of the reply tokens.

Example:
    >>> from turnwise.agents.hf import HFPolicy
    >>> from turnwise.agents.tiny import default_checkpoint
    >>> policy = HFPolicy(default_checkpoint("nano"), device="cpu")
    >>> demos = demonstrations("turnwise/KeyDoor-v0", policy.tokenizer, tasks=2,
    ...                        env_kwargs={"difficulty": "easy"})
    >>> all(t.success and t.turns[0].token_ids for t in demos)
    True
    >>> stats = train_sft(policy.model, policy.tokenizer, demos, epochs=1, batch_size=2)
    >>> stats["loss/sft_first"] > 0 and stats["perf/sft_steps"] == 1
    True
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from turnwise.agents.policy import Generation, GenerationRequest
from turnwise.trajectory import Trajectory

from .sequences import Row, collate, rows_of, token_logprobs

__all__ = ["ScriptedReplies", "demonstrations", "reply_for", "sft_checkpoint", "train_sft"]


def reply_for(action: str, reply_format: str = "react") -> str:
    """The reply an agent with this template's format gives to take `action`.

    Example:
        >>> reply_for("go west")
        '<action>go west</action>'
    """
    return f"<action>{action}</action>" if reply_format == "react" else action


class ScriptedReplies:
    """A policy whose reply is scripted: `reply()` gives the text of each turn, which comes back
    as token ids ending with the tokenizer's end-of-turn (eos) token, so a demonstration teaches
    the model to stop there.
    """

    name = "scripted"

    def __init__(self, tokenizer: Any, reply: Callable[[], str]) -> None:
        from turnwise.agents.tokens import encode

        self.tokenizer = tokenizer
        self.reply = reply
        self._encode = encode
        eos = tokenizer.eos_token_id
        self._end = [] if eos is None else [int(eos)]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        if len(requests) != 1:
            raise ValueError("ScriptedReplies answers one request at a time")
        text = self.reply()
        return [Generation(text, self._encode(self.tokenizer, text) + self._end, None, "stop")]


def demonstrations(
    env_id: str,
    tokenizer: Any,
    *,
    tasks: int | Sequence[str],
    env_kwargs: Mapping[str, Any] | None = None,
    split: str = "train",
    seed: int = 0,
    only_successes: bool = True,
    choices: str = "text",
) -> list[Trajectory]:
    """Expert episodes on the first `tasks` tasks of `split` (or these task ids), token-exact.

    The env must implement `expert_action()`. Seeds are derived as the collector derives them,
    so a demonstration of a task is the episode a collected group of that task starts from.
    With `choices="number"` the prompts number the admissible actions and each reply is the
    number of the expert's action (its text when the env does not list it).
    """
    import turnwise
    from turnwise.agents.agent import LLMAgent
    from turnwise.agents.prompting import template_for
    from turnwise.episode import run_episode
    from turnwise.rollout.collector import derive_seed

    env = turnwise.make(env_id, **{**dict(env_kwargs or {}), "split": split})
    try:
        base = env.unwrapped
        template = template_for(env_id, choices=choices)

        def reply() -> str:
            action = base.expert_action()
            if choices == "number":
                listed = list(base.admissible_actions() or ())
                action = str(listed.index(action) + 1) if action in listed else action
            return reply_for(action, template.reply_format)

        agent = LLMAgent(ScriptedReplies(tokenizer, reply), template=template)
        task_ids = list(env.unwrapped.tasks(split))[:tasks] if isinstance(tasks, int) else tasks
        out = []
        for task_id in task_ids:
            seed_of_task = derive_seed("env", seed, task_id)
            traj = run_episode(env, agent, seed=seed_of_task, task_id=task_id, policy="expert")
            if traj.success or not only_successes:
                out.append(traj)
        return out
    finally:
        env.close()


def train_sft(
    model: Any,
    tokenizer: Any,
    trajectories: Sequence[Trajectory],
    *,
    epochs: int = 1,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    max_length: int | None = None,
    prompt_weight: float = 0.0,
    seed: int = 0,
) -> dict[str, float]:
    """Fine-tune `model` in place on the reply tokens of `trajectories`; returns metrics.

    Minibatches of `batch_size` rows (one row per trajectory context) are drawn in a shuffled
    order per epoch (seeded); the loss is the token-mean negative log-likelihood of the trained
    tokens of the minibatch; AdamW with gradient-norm clipping.

    `prompt_weight` > 0 adds the mean negative log-likelihood of the prompt tokens (system prompt,
    observations, admissible actions), times that weight, to the loss: a model trained from
    scratch then learns the env's language along with the replies, at no extra compute (the
    forward pass scores every token anyway).
    """
    import torch

    rows = rows_of(trajectories, max_length=max_length)
    rows = [r for r in rows if r.generated]
    if not rows:
        raise ValueError("no trainable tokens: the trajectories have no recorded replies")
    if prompt_weight < 0:
        raise ValueError(f"prompt_weight must be >= 0, got {prompt_weight}")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    order = random.Random(seed)
    losses: list[float] = []
    tokens = 0
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        shuffled: list[Row] = list(rows)
        order.shuffle(shuffled)
        for start in range(0, len(shuffled), batch_size):
            batch = collate(shuffled[start : start + batch_size], pad, device)
            logprobs = token_logprobs(model, batch["input_ids"], batch["attention_mask"])
            mask = batch["loss_mask"]
            loss = -(logprobs * mask).sum() / mask.sum().clamp(min=1)
            if prompt_weight > 0:
                context = batch["attention_mask"].bool() & ~mask
                context[:, 0] = False  # the first token has nothing to be predicted from
                prompt_nll = -(logprobs * context).sum() / context.sum().clamp(min=1)
                loss = loss + prompt_weight * prompt_nll
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
            tokens += int(mask.sum())
    model.eval()
    seconds = time.perf_counter() - started
    if not all(math.isfinite(x) for x in losses):
        raise FloatingPointError(f"SFT loss became non-finite: {losses[-5:]}")
    return {
        "loss/sft_first": losses[0],
        "loss/sft_last": losses[-1],
        "perf/sft_steps": float(len(losses)),
        "perf/sft_tokens_per_second": tokens / max(seconds, 1e-9),
    }


def sft_checkpoint(
    env_id: str,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    model: str = "tiny",
    tasks: int = 800,
    epochs: int = 2,
    lr: float = 3e-3,
    batch_size: int = 16,
    seed: int = 0,
) -> Path:
    """A tiny model fine-tuned on expert demonstrations of `env_id`, cached like the tiny model.

    Built on first use (tens of seconds on a CPU) under `cache_dir("sft", ...)` in a folder
    named by a hash of every setting, written to a temporary sibling and renamed into place. Few
    epochs give a partly competent policy: the usual starting point of RL.

    Example (slow; not run as a doctest):
        path = sft_checkpoint("turnwise/KeyDoor-v0", env_kwargs={"difficulty": "easy"})
    """
    import hashlib
    import json

    from turnwise.agents.hf import HFPolicy
    from turnwise.agents.tiny import default_checkpoint
    from turnwise.files import build_folder_once
    from turnwise.paths import cache_dir

    base = default_checkpoint(model, seed=seed)
    key = json.dumps(
        [env_id, dict(env_kwargs or {}), str(base.name), tasks, epochs, lr, batch_size, seed],
        sort_keys=True,
    )
    final = cache_dir("sft") / f"{model}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def fine_tune(folder: Path) -> None:
        policy = HFPolicy(base, device="cpu")
        demos = demonstrations(
            env_id, policy.tokenizer, tasks=tasks, env_kwargs=env_kwargs, seed=seed
        )
        train_sft(
            policy.model, policy.tokenizer, demos, epochs=epochs, batch_size=batch_size, lr=lr,
            seed=seed,
        )  # fmt: skip
        policy.model.save_pretrained(folder)
        policy.tokenizer.save_pretrained(folder)
        (folder / "sft.json").write_text(key + "\n", encoding="utf-8")

    return build_folder_once(final, fine_tune, done="sft.json")
