"""What each algorithm does with an iteration's rollouts before the policy update.

An iteration's rollouts arrive as a `Batch`: the trajectories (groups of K per task), their
training rows, and the per-token log-probs the trainer computed without gradient (the policy's
before the update, the reference's when one is kept). `assign_credit(batch, ...)` returns one
per-token advantage array per row, from the pure functions of `turnwise.trainers.credit`:

| advantage | per | from |
|---|---|---|
| `leave_one_out` (LOOP, RLOO) | trajectory | return minus the mean of its siblings' |
| `group_norm` (GRPO, ARPO) | trajectory | return z-scored within its group |
| `gigpo` | turn | group advantage + ω · anchor-state step advantage |
| `gae` (PPO), `spa` | turn | GAE over turn rewards (SPA: fused progress + grounding rewards) |
| `oprl` | turn | outcome z-score + implicit PRM step reward z-score |
| `prime` | token | per-source leave-one-out of outcome and implicit PRM rewards, then returns |
| `igpo` | turn | information gain about the gold answer + outcome, z-scored, returns |

The rewards a trajectory's turns carry are `Turn.reward` (the env's weighted sum of its terms),
or G-RA's gated rewards when gates are set (`turn_rewards`).

ARPO's replay buffer is state kept across iterations: `ReplayBuffer`.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from turnwise.trajectory import Trajectory

from . import credit
from .sequences import Row

__all__ = ["Batch", "ReplayBuffer", "assign_credit", "group_members", "turn_rewards"]


@dataclass
class Batch:
    """One iteration's rollouts and what the trainer computed about them."""

    trajectories: list[Trajectory]
    rows: list[Row]
    old_logprobs: list[np.ndarray] = field(default_factory=list)
    """Per row: each token's log-prob under the policy before this iteration's update."""
    ref_logprobs: list[np.ndarray] = field(default_factory=list)
    """Per row: under the reference policy (when one is kept)."""
    turn_values: list[np.ndarray] = field(default_factory=list)
    """Per trajectory: the critic's value at the start of each turn (PPO, SPA)."""
    turn_returns: list[np.ndarray] = field(default_factory=list)
    """Per trajectory: GAE returns per turn, the critic's targets (filled by `assign_credit`)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Algorithm inputs the trainer computed: `progress` (SPA contributions per turn),
    `prm_rewards` (implicit PRM per turn or per token), `beliefs` (IGPO)."""

    def group_ids(self) -> list[str]:
        return [t.group_id or t.id for t in self.trajectories]


def turn_rewards(traj: Trajectory, gates: Sequence[tuple[str, float]] = ()) -> np.ndarray:
    """The reward of each turn: `Turn.reward`, or G-RA's gated sum of its terms.

    With gates `[(term, threshold), ...]` in priority order, a term counts on every turn only
    when every higher-priority term's trajectory total clears its threshold; terms not named
    come last. Each term keeps its weight (`Turn.reward_weights`).
    """
    if not gates:
        return np.array([t.reward for t in traj.turns], dtype=np.float64)
    table = credit.reward_terms_table(traj.turns)
    named = [term for term, _ in gates]
    priority = named + sorted(k for k in table if k not in named)
    for term in priority:
        table.setdefault(term, np.zeros(len(traj.turns)))
    weights: dict[str, float] = {}
    for turn in traj.turns:
        weights.update(turn.reward_weights)
    # Unnamed terms pass any gate of their own: they count once every named gate is open.
    thresholds = {term: float("-inf") for term in priority} | dict(gates)
    return credit.gated_step_rewards(
        table, priority, thresholds, weights={k: weights.get(k, 1.0) for k in priority}
    )


def group_members(group_ids: Sequence[str]) -> dict[str, list[int]]:
    """Trajectory indices per group id, in batch order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(group_ids):
        groups[g].append(i)
    return dict(groups)


def assign_credit(
    batch: Batch, config: Any, all_sum: Callable[[Sequence[float]], list[float]] | None = None
) -> list[np.ndarray]:
    """Per-row per-token advantages for `config.advantage` (see the module docstring).

    `all_sum` sums statistics over data-parallel ranks (`Distributed.all_sum`), for the
    normalisations over the whole batch (PPO's and SPA's, PRIME's); groups never span ranks.
    """
    total = all_sum or (lambda values: [float(v) for v in values])
    if not batch.rows:
        if config.advantage in ("gae", "spa", "prime"):
            _moments([], total)  # take part in the other ranks' batch statistics
        return []
    kind = config.advantage
    gates = config.gates()
    trajs = batch.trajectories
    rewards = [turn_rewards(t, gates) for t in trajs]
    returns = np.array([r.sum() for r in rewards])
    group_ids = batch.group_ids()

    if kind in ("leave_one_out", "group_norm"):
        per_traj = credit.advantages_by_group(returns, group_ids, estimator=kind, std=config.std)
        if config.min_abs_advantage:
            keep = credit.filter_low_advantage(per_traj, config.min_abs_advantage)
            per_traj = np.where(keep, per_traj, 0.0)
        return [
            credit.token_advantages(per_traj[row.trajectory], row.turn_index, row.loss_mask)
            for row in batch.rows
        ]
    if kind == "prime":
        return _prime(batch, returns, group_ids, total)
    per_turn = _per_turn(kind, batch, rewards, returns, group_ids, config, total)
    return [
        credit.token_advantages(per_turn[row.trajectory], row.turn_index, row.loss_mask)
        for row in batch.rows
    ]


def _per_turn(
    kind: str,
    batch: Batch,
    rewards: list[np.ndarray],
    returns: np.ndarray,
    group_ids: list[str],
    config: Any,
    total: Callable[..., list[float]],
) -> list[np.ndarray]:
    trajs = batch.trajectories
    out: list[np.ndarray] = [np.zeros(len(t.turns)) for t in trajs]
    if kind == "gigpo":
        for members in group_members(group_ids).values():
            adv = credit.gigpo_advantages(
                [rewards[i] for i in members],
                [credit.anchor_keys(trajs[i].turns) for i in members],
                episode_rewards=returns[members],
                gamma=config.gamma,
                omega=config.omega,
                std=config.std,
            )
            for i, combined in zip(members, adv.combined, strict=True):
                out[i] = combined
        return out
    if kind in ("gae", "spa"):
        step_rewards = rewards
        if kind == "spa":
            progress = batch.extra["progress"]
            step_rewards = [
                credit.spa_step_rewards(
                    progress[i],
                    [turn.valid for turn in t.turns],
                    progress_weight=config.spa_progress_weight,
                    grounding_weight=config.spa_grounding_weight,
                )
                for i, t in enumerate(trajs)
            ]
        batch.turn_returns = []
        for i, traj in enumerate(trajs):
            if not traj.turns:
                batch.turn_returns.append(np.zeros(0))
                continue
            # A truncated episode's last observation is never rendered into the context, so
            # there is no value to bootstrap from: its tail is treated as worth 0.
            turn_adv, ret = credit.gae(
                step_rewards[i], batch.turn_values[i], gamma=config.gamma, lam=config.lam,
                terminated=not traj.truncated, bootstrap_value=0.0 if traj.truncated else None,
            )  # fmt: skip
            out[i] = turn_adv
            batch.turn_returns.append(ret)
        return _whiten(out, total)
    if kind == "oprl":
        prm = batch.extra["prm_rewards"]
        outcomes = returns
        for members in group_members(group_ids).values():
            advs = credit.oprl_advantages(
                outcomes[members],
                [prm[i] for i in members],
                alpha=config.prm_weight,
                std=config.std,
            )
            for i, a in zip(members, advs, strict=True):
                out[i] = a
        return out
    if kind == "igpo":
        beliefs = batch.extra["beliefs"]
        for members in group_members(group_ids).values():
            gains = [credit.igpo_information_gain(beliefs[i]) for i in members]
            advs = credit.igpo_advantages(gains, returns[members], gamma=config.gamma)
            for i, a in zip(members, advs, strict=True):
                out[i] = a
        return out
    raise ValueError(f"unknown advantage {kind!r}")


def _prime(
    batch: Batch, returns: np.ndarray, group_ids: list[str], total: Callable[..., list[float]]
) -> list[np.ndarray]:
    """PRIME's per-token advantages, placed on each row's generated tokens."""
    token_rewards = batch.extra["prm_rewards"]  # per trajectory: one per generated token
    per_traj = credit.prime_advantages(token_rewards, returns, group_ids, whiten=False)
    # Whitened over the batch's tokens with the unbiased variance (verl's masked_whiten).
    n, mean, var = _moments(per_traj, total, ddof=1)
    if n > 1:
        per_traj = [(a - mean) / np.sqrt(var + 1e-8) for a in per_traj]
    out = []
    offsets: dict[int, int] = defaultdict(int)
    for row in batch.rows:
        mask = np.asarray(row.loss_mask, dtype=bool)
        values = np.zeros(len(row.loss_mask))
        start = offsets[row.trajectory]
        count = int(mask.sum())
        values[mask] = per_traj[row.trajectory][start : start + count]
        offsets[row.trajectory] = start + count
        out.append(values)
    return out


def _moments(
    arrays: Sequence[np.ndarray], total: Callable[..., list[float]], ddof: int = 0
) -> tuple[float, float, float]:
    """(count, mean, variance) of every value in `arrays`, over all ranks (`total`)."""
    values = np.concatenate([np.ravel(a) for a in arrays]) if arrays else np.zeros(0)
    n, first, _ = total([values.size, values.sum(), 0.0])
    mean = first / n if n else 0.0
    # Centred second moment in a second pass: exact where E[x²] − mean² would cancel.
    [second] = total([float(((values - mean) ** 2).sum())])
    return n, mean, second / (n - ddof) if n > ddof else 0.0


def _whiten(per_turn: list[np.ndarray], total: Callable[..., list[float]]) -> list[np.ndarray]:
    """Zero mean, unit variance over every turn of the batch (PPO's advantage normalisation)."""
    n, mean, var = _moments(per_turn, total)
    std = float(np.sqrt(var))
    if n < 2 or std < 1e-8:
        return per_turn
    return [(a - mean) / (std + 1e-8) for a in per_turn]


class ReplayBuffer:
    """ARPO's per-task buffer of successful trajectories (the newest `size` per task).

    `inject(trajectories)` replaces the first member of every group in which no rollout
    succeeded with a random stored success of that task (if there is one); `add` then stores
    the batch's successes, so a success is replayed from the next iteration on.
    """

    def __init__(self, size: int = 8, seed: int = 0) -> None:
        self.size = size
        self.buffers: dict[str, deque[Trajectory]] = {}
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def inject(self, trajectories: list[Trajectory]) -> tuple[list[Trajectory], int]:
        """The batch with replayed successes in all-failed groups, and how many were injected."""
        out = list(trajectories)
        injected = 0
        groups = group_members([t.group_id or t.id for t in out])
        for members in groups.values():
            task = out[members[0]].task_id
            stored = self.buffers.get(task)
            if not stored or any(out[i].success for i in members):
                continue
            replay = self.rng.choice(list(stored))
            clone = Trajectory.from_dict(replay.to_dict())
            clone.group_id = out[members[0]].group_id
            clone.metadata = {**clone.metadata, "replayed": True}
            out[members[0]] = clone
            injected += 1
        return out, injected

    def add(self, trajectories: Sequence[Trajectory]) -> None:
        for t in trajectories:
            if t.success and not t.metadata.get("replayed"):
                self.buffers.setdefault(t.task_id, deque(maxlen=self.size)).append(t)

    def state(self) -> dict[str, Any]:
        """The buffers and the draw generator's state, as JSON values (for checkpoints)."""
        version, internal, gauss = self.rng.getstate()
        return {
            "buffers": {task: [t.to_dict() for t in b] for task, b in self.buffers.items()},
            "rng": [version, list(internal), gauss],
        }

    def load(self, state: dict[str, Any]) -> None:
        self.buffers = {
            task: deque((Trajectory.from_dict(d) for d in items), maxlen=self.size)
            for task, items in state["buffers"].items()
        }
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
