"""Process-reward hooks: extra, named reward terms computed on every step.

A hook is any object with a `name` and either `__call__(ctx) -> float` (a `ProcessReward`) or an
async, batched `score(ctxs) -> list[float]` (a `BatchProcessReward`, for hooks that call a model:
an LLM judge, a learned progress estimator). `turnwise.wrappers.ProcessRewards` adds each hook's
value to `info["reward_terms"]` under the hook's name, with a weight, and `reward` stays their
weighted sum. Credit that needs a whole group of trajectories (leave-one-out, GiGPO groups,
implicit PRMs, gating) belongs to the trainers, not to hooks.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from turnwise.parsing import parse_tagged

__all__ = [
    "BatchProcessReward",
    "Format",
    "HistoryItem",
    "ProcessReward",
    "StepContext",
    "ValidAction",
    "score_batch",
]


@dataclass(frozen=True)
class HistoryItem:
    """One earlier turn of the episode, as hooks see it."""

    observation: str
    action: str
    reward_terms: Mapping[str, float]


@dataclass(frozen=True)
class StepContext:
    """Everything a hook may look at for one step."""

    env_id: str
    task_id: str
    instruction: str
    turn: int
    """1 for the first step of the episode."""
    observation: Mapping[str, Any]
    """The observation the action was taken in."""
    action: str
    """The action as sent to `step` (the raw model text, if a `ParseAction` wrapper is inside)."""
    next_observation: Mapping[str, Any]
    info: Mapping[str, Any]
    """The step's info, including the reward terms computed so far."""
    terminated: bool
    truncated: bool
    history: tuple[HistoryItem, ...] = ()
    """Earlier turns, oldest first."""
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def raw_action(self) -> str:
        """The model's text before parsing (`info["raw_action"]`), else the action itself."""
        return str(self.info.get("raw_action", self.action))


@runtime_checkable
class ProcessReward(Protocol):
    """A hook scoring one step at a time. Must not raise on any agent text."""

    name: str

    def __call__(self, ctx: StepContext) -> float: ...


@runtime_checkable
class BatchProcessReward(Protocol):
    """A hook scoring many steps per call, asynchronously (model-backed hooks).

    The rollout collector gathers steps from many envs into one `score` call; inside a single env
    the `ProcessRewards` wrapper calls it with one context.
    """

    name: str

    def score(self, ctxs: Sequence[StepContext]) -> Awaitable[list[float]]: ...


Hook = ProcessReward | BatchProcessReward


def score_batch(hook: Hook, ctxs: Sequence[StepContext]) -> list[float]:
    """Score `ctxs` with either kind of hook, from synchronous code."""
    score = getattr(hook, "score", None)
    if score is None:
        return [float(hook(ctx)) for ctx in ctxs]  # type: ignore[operator]
    values = _run_sync(score(list(ctxs)))
    if len(values) != len(ctxs):
        raise RuntimeError(
            f"hook {hook.name!r} returned {len(values)} scores for {len(ctxs)} steps"
        )
    return [float(v) for v in values]


def _run_sync(awaitable: Awaitable[Any]) -> Any:
    """Run a coroutine to completion, even when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(_await(awaitable))
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="turnwise-hook")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def is_hook(obj: object) -> bool:
    """Whether `obj` is usable as a process-reward hook."""
    has_name = isinstance(getattr(obj, "name", None), str)
    score = getattr(obj, "score", None)
    return has_name and (
        callable(obj) or (score is not None and inspect.iscoroutinefunction(score))
    )


# --------------------------------------------------------------------------- built-in hooks
class ValidAction:
    """Grounding: `invalid` when the env rejected the action, `valid` otherwise.

    turnwise envs already report a `valid` term; use this hook (with another `name`) to score
    validity differently, or with envs from elsewhere that set `info["valid_action"]`.

    Example:
        >>> hook = ValidAction(name="grounding", invalid=-0.5)
        >>> hook.name
        'grounding'
    """

    def __init__(self, name: str = "grounding", *, valid: float = 0.0, invalid: float = -1.0):
        self.name = name
        self.valid = float(valid)
        self.invalid = float(invalid)

    def __call__(self, ctx: StepContext) -> float:
        return self.valid if ctx.info.get("valid_action", True) else self.invalid


class Format:
    """Whether the model's raw reply followed the expected format.

    By default the format is ReAct tags: an optional `<think>…</think>` then exactly one
    `<action>…</action>` (see `turnwise.parsing.parse_tagged`). Give `pattern` (a regex the whole
    reply must match) for another format.

    Example:
        >>> Format().name
        'format'
    """

    def __init__(
        self,
        name: str = "format",
        *,
        pattern: str | None = None,
        ok: float = 0.0,
        bad: float = -1.0,
    ):
        self.name = name
        self.pattern = re.compile(pattern, re.DOTALL) if pattern is not None else None
        self.ok = float(ok)
        self.bad = float(bad)

    def __call__(self, ctx: StepContext) -> float:
        text = ctx.raw_action
        if self.pattern is not None:
            good = self.pattern.fullmatch(text) is not None
        else:
            good = parse_tagged(text).ok
        return self.ok if good else self.bad
