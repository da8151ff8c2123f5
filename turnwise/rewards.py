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
import math
import re
import threading
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from turnwise.parsing import parse_tagged

__all__ = [
    "BatchProcessReward",
    "Format",
    "GaussianClick",
    "HistoryItem",
    "JudgeReward",
    "ProcessReward",
    "StepContext",
    "TestDelta",
    "ValidAction",
    "gaussian_coverage",
    "gaussian_point",
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


def score_batch(hook: Hook, ctxs: Sequence[StepContext]) -> list[float | None]:
    """Score `ctxs` with either kind of hook, from synchronous code.

    A hook may return None for a step it could not score (a model-backed hook whose model gave
    no usable answer): that is a missing value, never a zero.
    """
    score = getattr(hook, "score", None)
    sync = score is None
    values = [hook(ctx) for ctx in ctxs] if sync else _run_sync(score(list(ctxs)))  # type: ignore[operator,misc]
    if len(values) != len(ctxs):
        raise RuntimeError(
            f"hook {hook.name!r} returned {len(values)} scores for {len(ctxs)} steps"
        )
    return [None if v is None else float(v) for v in values]


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


class TestDelta:
    """SWE partial credit: the change in the share of target tests passing, on turns that ran them.

    Reads `info["tests"]` (`share` and `previous_share`, as `turnwise/SWE-v0` reports them on
    `run_tests` and `submit` turns); 0 on other turns. Potential-based: over an episode the values
    sum to the last share minus the first, so running the tests again earns nothing. SWE-v0
    already reports this as its `tests` term; the hook scores it under another name or scale,
    or `gains_only` (regressions cost nothing).

    Example:
        >>> hook = TestDelta()
        >>> ctx = StepContext("e", "t", "", 1, {}, "run_tests", {}, {"tests": {"share": 0.75,
        ...     "previous_share": 0.5}}, False, False)
        >>> hook(ctx)
        0.25
    """

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "test_delta", *, scale: float = 1.0, gains_only: bool = False):
        self.name = name
        self.scale = float(scale)
        self.gains_only = bool(gains_only)

    def __call__(self, ctx: StepContext) -> float:
        tests = ctx.info.get("tests")
        if not isinstance(tests, Mapping):
            return 0.0
        try:
            delta = float(tests["share"]) - float(tests["previous_share"])
        except (KeyError, TypeError, ValueError):
            return 0.0
        if self.gains_only:
            delta = max(delta, 0.0)
        return self.scale * delta


# --------------------------------------------------------------------------- GUI grounding
Box = tuple[float, float, float, float]
"""An element's box on the screen: (left, top, width, height) in pixels."""


def _sigmas(box: Box, alpha: float) -> tuple[float, float]:
    # Adaptive variance: the spread grows with the element, so a big button tolerates a click
    # further from its centre than a small icon does. At least one pixel, for empty boxes.
    return max(alpha * box[2], 1.0), max(alpha * box[3], 1.0)


def gaussian_point(point: tuple[float, float], box: Box, *, alpha: float = 0.5) -> float:
    """GUI-G²'s Gaussian point reward: the target element's Gaussian density at `point`, scaled
    to 1 at the element's centre.

    The element is modelled as a 2-D Gaussian centred on its box with standard deviations
    `alpha` × width and `alpha` × height: `exp(-((x - cx)² / 2σx² + (y - cy)² / 2σy²))`.

    Example:
        >>> gaussian_point((50, 20), (0, 0, 100, 40))
        1.0
        >>> round(gaussian_point((100, 20), (0, 0, 100, 40)), 4)  # on the right edge: exp(-1/2)
        0.6065
    """
    sx, sy = _sigmas(box, alpha)
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return math.exp(-(((point[0] - cx) / sx) ** 2 + ((point[1] - cy) / sy) ** 2) / 2)


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def gaussian_coverage(
    point: tuple[float, float],
    box: Box,
    *,
    alpha: float = 0.5,
    predicted_size: tuple[float, float] | None = None,
) -> float:
    """GUI-G²'s Gaussian coverage reward: the share of the predicted Gaussian's mass that falls
    inside the target box.

    The prediction is a Gaussian centred on `point`; its standard deviations are `alpha` × the
    predicted element's size when the action gives one (`predicted_size`, e.g. from a predicted
    box), else `alpha` × the target's size. With a diagonal covariance the mass inside an
    axis-aligned box factorises into two differences of normal CDFs.

    Example:
        >>> round(gaussian_coverage((50, 20), (0, 0, 100, 40)), 4)  # (Φ(1) - Φ(-1))²
        0.4661
        >>> gaussian_coverage((500, 20), (0, 0, 100, 40)) < 1e-12
        True
    """
    sx, sy = _sigmas(box if predicted_size is None else (0, 0, *predicted_size), alpha)
    left, top, width, height = box
    mass_x = _normal_cdf((left + width - point[0]) / sx) - _normal_cdf((left - point[0]) / sx)
    mass_y = _normal_cdf((top + height - point[1]) / sy) - _normal_cdf((top - point[1]) / sy)
    return max(mass_x, 0.0) * max(mass_y, 0.0)


class GaussianClick:
    """The GUI-G² grounding reward for clicks: `point_weight` × `gaussian_point` +
    `coverage_weight` × `gaussian_coverage` of the step's point against the target box.

    Reads `info["point"]` (x, y: where the action acted) and `info["target_box"]` (left, top,
    width, height), which GUI envs report when the task knows its target element (the grounding
    env does on every step). Steps without either score 0.

    Example:
        >>> hook = GaussianClick()
        >>> hook.name
        'gaussian_click'
    """

    def __init__(
        self,
        name: str = "gaussian_click",
        *,
        alpha: float = 0.5,
        point_weight: float = 1.0,
        coverage_weight: float = 1.0,
    ) -> None:
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.name = name
        self.alpha = float(alpha)
        self.point_weight = float(point_weight)
        self.coverage_weight = float(coverage_weight)

    def __call__(self, ctx: StepContext) -> float:
        point, box = ctx.info.get("point"), ctx.info.get("target_box")
        if point is None or box is None:
            return 0.0
        xy = (float(point[0]), float(point[1]))
        target = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        return self.point_weight * gaussian_point(
            xy, target, alpha=self.alpha
        ) + self.coverage_weight * gaussian_coverage(xy, target, alpha=self.alpha)


# --------------------------------------------------------------------------- LLM judge
def _parse_step_score(text: str) -> float:
    from turnwise.judging import extract_json

    data = extract_json(text)
    value = data.get("score") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10:
        raise ValueError('reply with {"reasoning": "...", "score": N}, N a number from 0 to 10')
    return float(value)


def _step_rubric() -> Any:
    from turnwise.judging import JudgePrompt

    return JudgePrompt(
        "step-progress",
        1,
        "You judge the steps of an agent working on a task. Be strict and consistent, and answer "
        "with one JSON object and nothing else.",
        "Task: {instruction}\n\nEarlier steps:\n{history}\n\nThe agent saw:\n{observation}\n\n"
        "It did:\n{action}\n\nThen it saw:\n{next_observation}\n\nHow much did this step "
        "advance the task, from 0 (not at all, or it went backwards) to 10 (it completed the "
        'task)? Reply exactly as {{"reasoning": "...", "score": N}}.',
        _parse_step_score,
    )


class JudgeReward:
    """An LLM judge with a rubric, as a process-reward hook (`BatchProcessReward`).

    Each step is put to `turnwise.judging.LLMJudge` (any policy spec or `Policy`, or a judge
    built with options: cache file, retries, prices) through `rubric`, a `JudgePrompt` whose
    templates may use `instruction`, `history`, `observation`, `action`, `next_observation`,
    `task_id` and `turn`, and whose parser returns a number. The value is that number divided by
    `scale`. The default rubric (`step-progress@v1`) asks how much the step advanced the task, 0
    to 10. A verdict that stays malformed after the judge's retries is **missing**: the hook
    returns None, `ProcessRewards` leaves the term out and lists it in `info["missing_terms"]`.
    The judge's calls, tokens and cost are on `hook.judge.stats`.

    Example:
        >>> from turnwise.agents.policy import Generation
        >>> class Fixed:
        ...     name, tokenizer = "fixed", None
        ...     def generate(self, requests):
        ...         return [Generation('{"reasoning": "ok", "score": 4}', [], None, "stop")
        ...                 for _ in requests]
        >>> hook = JudgeReward(Fixed())
        >>> ctx = StepContext("env", "t", "Open the door.", 1, {"text": "A door."}, "open door",
        ...                   {"text": "It opens."}, {}, False, False)
        >>> score_batch(hook, [ctx]), hook.judge.stats.calls
        ([0.4], 1)
    """

    def __init__(
        self,
        judge: Any,
        rubric: Any = None,
        *,
        name: str = "judge",
        scale: float = 10.0,
        history_turns: int = 5,
    ) -> None:
        from turnwise.judging import LLMJudge

        self.name = name
        self.judge = judge if isinstance(judge, LLMJudge) else LLMJudge(judge)
        self.rubric = rubric if rubric is not None else _step_rubric()
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = float(scale)
        self.history_turns = int(history_turns)

    def _fields(self, ctx: StepContext) -> dict[str, Any]:
        earlier = ctx.history[-self.history_turns :] if self.history_turns > 0 else ()
        history = "\n".join(
            f"- saw: {_clip(item.observation)} / did: {_clip(item.action)}" for item in earlier
        )
        return {
            "instruction": ctx.instruction,
            "history": history or "(none)",
            "observation": str(ctx.observation.get("text", "")),
            "action": ctx.raw_action,
            "next_observation": str(ctx.next_observation.get("text", "")),
            "task_id": ctx.task_id,
            "turn": ctx.turn,
        }

    async def score(self, ctxs: Sequence[StepContext]) -> list[float | None]:
        verdicts = await asyncio.to_thread(
            self.judge.ask_many, self.rubric, [self._fields(c) for c in ctxs]
        )
        return [None if v.missing else float(v.value) / self.scale for v in verdicts]


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
