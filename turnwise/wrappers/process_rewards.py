"""`ProcessRewards`: add process-reward hooks to any turnwise env as named reward terms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium

from turnwise.info import weighted_reward
from turnwise.rewards import HistoryItem, Hook, StepContext, is_hook, score_batch

__all__ = ["ProcessRewards"]


class ProcessRewards(gymnasium.Wrapper[dict[str, Any], str, dict[str, Any], str]):
    """Score every step with each hook and add the value as `info["reward_terms"][hook.name]`.

    The reward returned is recomputed as the weighted sum of all terms, the env's own and the
    hooks', so `reward == weighted_reward(info["reward_terms"], info["reward_weights"])` still
    holds. A hook whose name collides with a term the env already reports is an error.

    Args:
        env: a turnwise env (or any env whose info follows `turnwise.info`).
        hooks: `ProcessReward`s (`__call__(ctx)`) and/or `BatchProcessReward`s (`async score`).
        weights: weight per hook name (default 1.0).

    Example:
        >>> import turnwise
        >>> from turnwise.rewards import Format
        >>> from turnwise.wrappers import ProcessRewards
        >>> env = ProcessRewards(turnwise.make("turnwise/KeyDoor-v0"), [Format()], {"format": 0.5})
        >>> _ = env.reset(seed=0)
        >>> _, reward, *_, info = env.step("look")
        >>> info["reward_terms"]["format"], info["reward_weights"]["format"]
        (-1.0, 0.5)
    """

    def __init__(
        self,
        env: gymnasium.Env[dict[str, Any], str],
        hooks: Sequence[Hook],
        weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(env)
        for hook in hooks:
            if not is_hook(hook):
                raise TypeError(
                    f"{hook!r} is not a process-reward hook: it needs a str `name` and "
                    "`__call__(ctx)` or `async score(ctxs)`"
                )
        names: list[str] = [h.name for h in hooks]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"two hooks share the name(s) {sorted(duplicates)}")
        unknown = set(weights or {}) - set(names)
        if unknown:
            raise ValueError(f"weights given for unknown hooks {sorted(unknown)}")
        self.hooks = list(hooks)
        self.weights = {n: float((weights or {}).get(n, 1.0)) for n in names}
        self._history: list[HistoryItem] = []
        self._obs: dict[str, Any] = {}
        self._reset_info: dict[str, Any] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._history = []
        self._obs = obs
        self._reset_info = info
        return obs, info

    def step(self, action: str) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        obs, _, terminated, truncated, info = self.env.step(action)
        terms = dict(info.get("reward_terms", {}))
        weights = dict(info.get("reward_weights", {}))
        clash = sorted(set(self.weights) & set(terms))
        if clash:
            raise ValueError(
                f"the env already reports reward term(s) {clash}; give the hook another name"
            )
        ctx = StepContext(
            env_id=self.env.spec.id if self.env.spec is not None else type(self.env).__name__,
            task_id=str(self._reset_info.get("task_id", "")),
            instruction=str(self._reset_info.get("instruction", "")),
            turn=len(self._history) + 1,
            observation=self._obs,
            action=action if isinstance(action, str) else repr(action),
            next_observation=obs,
            info={**info, "reward_terms": dict(terms)},
            terminated=terminated,
            truncated=truncated,
            history=tuple(self._history),
        )
        missing: list[str] = []
        for hook in self.hooks:
            (value,) = score_batch(hook, [ctx])
            if value is None:  # the hook could not score this step: absent, never zero
                missing.append(hook.name)
                continue
            terms[hook.name] = value
            weights[hook.name] = self.weights[hook.name]
        self._history.append(HistoryItem(str(self._obs.get("text", "")), ctx.action, terms))
        self._obs = obs
        info = {**info, "reward_terms": terms, "reward_weights": weights}
        if missing:
            info["missing_terms"] = missing
        return obs, weighted_reward(terms, weights), terminated, truncated, info
