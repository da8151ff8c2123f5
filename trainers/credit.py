"""Credit assignment: who gets how much of the reward, as pure functions on numpy arrays.

Every function here takes rewards (and, where a method needs them, values, log-probs, state keys
or beliefs) as plain lists or numpy arrays and returns float64 arrays. Nothing imports torch: the
trainer makes tensors once, from what `token_advantages` returns.

Sections, in the order a trainer uses them:

* group baselines: leave-one-out (RLOO, LOOP) and group-normalised (GRPO, Dr.GRPO), per group;
* returns and GAE over turn (or token) rewards, with terminal vs truncated made explicit;
* step-level methods: GiGPO anchor-state groups, SPA's fused progress reward, implicit process
  rewards (PRIME, OPRL/iStar), G-RA gating, IGPO information gain;
* `token_advantages`: per-turn values onto the generated tokens of a training sequence.

Conventions that differ between papers and released code are named options; the defaults follow
the paper unless stated (see docs/trainers/credit-and-losses.md for the table). Groups in which
every reward is equal, and groups of one, get advantage exactly 0: there is no signal to learn
from, and we never divide by a zero standard deviation (whatever `eps` is).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from turnwise.trajectory import Turn

__all__ = [
    "GiGPOAdvantages",
    "StdMode",
    "advantages_by_group",
    "anchor_keys",
    "discounted_returns",
    "filter_low_advantage",
    "gae",
    "gated_step_rewards",
    "gigpo_advantages",
    "group_indices",
    "group_normalized_advantages",
    "igpo_advantages",
    "igpo_information_gain",
    "implicit_process_rewards",
    "leave_one_out_advantages",
    "leave_one_out_baseline",
    "oprl_advantages",
    "place_on_last_token",
    "prime_advantages",
    "reward_terms_table",
    "spa_legacy_progress",
    "spa_step_rewards",
    "token_advantages",
    "turn_sums",
]

FloatArray = npt.NDArray[np.float64]

StdMode = Literal["unbiased", "population", "none"]
"""How a group's rewards are scaled after centring: "unbiased" divides by the N−1 standard
deviation (`torch.std`, verl, EasyR1), "population" by the N one (`np.std`, IGPO's code), "none"
does not divide (Dr.GRPO, GiGPO "w/o std", LOOP)."""

_STD_MODES = ("unbiased", "population", "none")


# ---------------------------------------------------------------------- input checks
def _check_option(value: str, allowed: Sequence[str], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")


def _floats(values: npt.ArrayLike, name: str, *, allow_empty: bool = False) -> FloatArray:
    """`values` as a 1-D float64 array; ValueError on NaN, infinity, wrong shape or emptiness."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity: {arr.tolist()}")
    return arr


def _same_length(a: Sequence[Any] | np.ndarray, b: Sequence[Any] | np.ndarray, what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{what}: lengths differ ({len(a)} vs {len(b)})")


def _normalize(x: FloatArray, std: StdMode, eps: float) -> FloatArray:
    """`(x − mean) / (std + eps)` over `x`; exactly 0 where all of `x` is equal (or `x` is one)."""
    _check_option(std, _STD_MODES, "std")
    if x.size == 0 or np.all(x == x[0]):
        return np.zeros_like(x)
    centered = x - x.mean()
    if std == "none":
        return centered
    # Not all equal, so x has at least two entries and ddof=1 is defined.
    return centered / (x.std(ddof=1 if std == "unbiased" else 0) + eps)


# ---------------------------------------------------------------------- group baselines
def leave_one_out_baseline(rewards: npt.ArrayLike) -> FloatArray:
    """Each rollout's baseline: the mean reward of the *other* rollouts of its group.

    `b_i = (1/(K−1)) Σ_{j≠i} R_j`. A group of one has no other rollout: its baseline is its own
    reward, so its advantage is 0.

    Example:
        >>> leave_one_out_baseline([1.0, 0.0, 0.5]).tolist()
        [0.25, 0.75, 0.5]
    """
    r = _floats(rewards, "rewards")
    if r.size == 1:
        return r.copy()
    return (r.sum() - r) / (r.size - 1)


def leave_one_out_advantages(rewards: npt.ArrayLike) -> FloatArray:
    """RLOO / LOOP advantage `A_i = R_i − mean_{j≠i} R_j` for one group (no std division).

    Equals `K/(K−1) · (R_i − mean(R))`, so the mean-only ("Dr.GRPO") advantage is this one times
    `(K−1)/K`. A group of one gets 0.

    Example:
        >>> leave_one_out_advantages([1.0, 0.0, 0.5]).tolist()
        [0.75, -0.75, 0.0]
    """
    r = _floats(rewards, "rewards")
    if np.all(r == r[0]):  # exactly 0, not the rounding error of (sum − R_i)/(K−1)
        return np.zeros_like(r)
    return r - leave_one_out_baseline(r)


def group_normalized_advantages(
    rewards: npt.ArrayLike, *, std: StdMode = "unbiased", eps: float = 1e-6
) -> FloatArray:
    """GRPO advantage `A_i = (R_i − mean(R)) / (std(R) + eps)` for one group.

    Args:
        rewards: the K rewards of one group.
        std: "unbiased" (N−1, verl/EasyR1's `torch.std`; the default), "population" (N), or
            "none" for `R_i − mean(R)` (Dr.GRPO, GiGPO "w/o std").
        eps: added to the standard deviation (verl: 1e-6); it never rescues a zero std, because a
            group whose rewards are all equal (a group of one included) gets exactly 0.

    Example:
        >>> group_normalized_advantages([1.0, 0.0], std="none").tolist()
        [0.5, -0.5]
        >>> group_normalized_advantages([1.0, 1.0, 1.0]).tolist()
        [0.0, 0.0, 0.0]
    """
    return _normalize(_floats(rewards, "rewards"), std, eps)


def group_indices(group_ids: Sequence[Hashable]) -> dict[Hashable, npt.NDArray[np.int64]]:
    """Positions of each group's members, groups in order of first appearance.

    Raises `ValueError` on a `None` id: a rollout without a group cannot get a group baseline.

    Example:
        >>> {k: v.tolist() for k, v in group_indices(["a", "b", "a"]).items()}
        {'a': [0, 2], 'b': [1]}
    """
    groups: dict[Hashable, list[int]] = {}
    for i, gid in enumerate(group_ids):
        if gid is None:
            raise ValueError(f"rollout {i} has no group id (Trajectory.group_id is None)")
        groups.setdefault(gid, []).append(i)
    return {gid: np.asarray(idx, dtype=np.int64) for gid, idx in groups.items()}


def advantages_by_group(
    rewards: npt.ArrayLike,
    group_ids: Sequence[Hashable],
    *,
    estimator: Literal["group_norm", "leave_one_out"] = "group_norm",
    std: StdMode = "unbiased",
    eps: float = 1e-6,
) -> FloatArray:
    """One advantage per rollout, each computed within its own group (e.g. `Trajectory.group_id`).

    Args:
        rewards: one episode reward per rollout, any order.
        group_ids: the group of each rollout.
        estimator: "group_norm" (GRPO, see `group_normalized_advantages`) or "leave_one_out"
            (RLOO/LOOP, see `leave_one_out_advantages`; `std` and `eps` are then unused).
        std: see `group_normalized_advantages`.
        eps: see `group_normalized_advantages`.

    Example:
        >>> advantages_by_group([1.0, 3.0, 0.0, 2.0], ["a", "b", "a", "b"],
        ...                     estimator="leave_one_out").tolist()
        [1.0, 1.0, -1.0, -1.0]
    """
    _check_option(estimator, ("group_norm", "leave_one_out"), "estimator")
    _check_option(std, _STD_MODES, "std")
    r = _floats(rewards, "rewards")
    _same_length(r, group_ids, "rewards and group_ids")
    out = np.zeros_like(r)
    for idx in group_indices(group_ids).values():
        if estimator == "leave_one_out":
            out[idx] = leave_one_out_advantages(r[idx])
        else:
            out[idx] = _normalize(r[idx], std, eps)
    return out


def filter_low_advantage(advantages: npt.ArrayLike, min_abs: float = 0.01) -> npt.NDArray[np.bool_]:
    """LOOP's filter: True for rollouts to keep, those with `|A| >= min_abs` (LOOP: 0.01).

    Example:
        >>> filter_low_advantage([0.5, -0.005, 0.0, -0.2]).tolist()
        [True, False, False, True]
    """
    return np.abs(_floats(advantages, "advantages", allow_empty=True)) >= min_abs


# ---------------------------------------------------------------------- returns and GAE
def discounted_returns(
    rewards: npt.ArrayLike, *, gamma: float = 1.0, bootstrap_value: float = 0.0
) -> FloatArray:
    """Reward-to-go `G_t = Σ_{k≥t} γ^{k−t} r_k (+ γ^{T−t} · bootstrap_value)`.

    Args:
        rewards: per-step (or per-token) rewards of one trajectory.
        gamma: discount factor.
        bootstrap_value: value of the state after the last step; 0 for a terminated episode.

    Example:
        >>> discounted_returns([1.0, 0.0, 2.0], gamma=0.5).tolist()
        [1.5, 1.0, 2.0]
    """
    r = _floats(rewards, "rewards", allow_empty=True)
    out = np.zeros_like(r)
    running = float(bootstrap_value)
    for t in range(r.size - 1, -1, -1):
        running = r[t] + gamma * running
        out[t] = running
    return out


def gae(
    rewards: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
    terminated: bool = True,
    bootstrap_value: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Generalised advantage estimation over one trajectory; returns `(advantages, returns)`.

    `δ_t = r_t + γ V(s_{t+1}) − V(s_t)`, `A_t = Σ_{k≥t} (γλ)^{k−t} δ_k`, `returns = A + V`
    (the λ-returns a critic regresses to). The value after the last step is 0 when the episode
    terminated, and `bootstrap_value` when it was truncated (turn limit, time limit): a
    truncated episode's future is not zero, only unobserved.

    Args:
        rewards: per-step rewards `r_0 … r_{T−1}` (per turn, or per token for token-level GAE).
        values: critic values `V(s_0) … V(s_{T−1})`.
        gamma: discount (TRL default 1.0; SPA's StepTool config 0.99).
        lam: GAE λ (TRL default 0.95).
        terminated: True if the last step ended the episode (`Trajectory.terminated`).
        bootstrap_value: `V(s_T)`; required when `terminated` is False, refused when True.

    Example:
        >>> adv, ret = gae([0.0, 1.0], [0.5, 0.8], gamma=0.9, lam=0.5)
        >>> adv.round(6).tolist(), ret.round(6).tolist()
        ([0.31, 0.2], [0.81, 1.0])
    """
    r = _floats(rewards, "rewards", allow_empty=True)
    v = _floats(values, "values", allow_empty=True)
    _same_length(r, v, "rewards and values")
    if terminated and bootstrap_value is not None:
        raise ValueError("a terminated episode has no next state: leave bootstrap_value None")
    if not terminated and bootstrap_value is None:
        raise ValueError("a truncated episode needs bootstrap_value, the value of its last state")
    next_value = 0.0 if bootstrap_value is None else float(bootstrap_value)
    if not np.isfinite(next_value):
        raise ValueError(f"bootstrap_value must be finite, got {next_value}")
    adv = np.zeros_like(r)
    running = 0.0
    for t in range(r.size - 1, -1, -1):
        delta = r[t] + gamma * next_value - v[t]
        running = delta + gamma * lam * running
        adv[t] = running
        next_value = v[t]
    return adv, adv + v


# ---------------------------------------------------------------------- GiGPO
@dataclass(frozen=True)
class GiGPOAdvantages:
    """GiGPO's two levels and their sum, one array per trajectory of the group.

    Attributes:
        episode: `A^E`, one value per trajectory (broadcast to all of its steps).
        step: `A^S` per step (0 for steps whose anchor state no other step shares).
        combined: `A^E + ω·A^S` per step, what the policy loss uses.
    """

    episode: FloatArray
    step: list[FloatArray]
    combined: list[FloatArray]


def anchor_keys(turns: Sequence[Turn], initial_key: str = "<initial>") -> list[str | None]:
    """The key of the state each turn's action was taken *from*.

    `Turn.state_key` is the state *after* a step, so turn t acts from turn t−1's key, and turn 0
    from the initial state. The recorder does not keep the reset state's key; trajectories of one
    group share their task and env seed, hence their initial state, so one `initial_key` stands
    for it. A `None` key (the env reports none) never joins a group.

    Example:
        >>> from turnwise.trajectory import Turn
        >>> anchor_keys([Turn(0, "o", "a", 0.0, state_key="s1"), Turn(1, "o", "b", 1.0)])
        ['<initial>', 's1']
    """
    return [initial_key, *(t.state_key for t in turns[:-1])] if turns else []


def _anchor_groups(
    keys: list[Hashable | None],
    similarity: Callable[[Any, Any], float] | None,
    threshold: float,
) -> list[list[int]]:
    """Partition of step positions into anchor groups (see `gigpo_advantages`)."""
    groups: list[list[int]] = []
    if similarity is None:
        by_key: dict[Hashable, list[int]] = {}
        for pos, key in enumerate(keys):
            if key is None:
                groups.append([pos])
            else:
                by_key.setdefault(key, []).append(pos)
        return groups + list(by_key.values())
    representatives: list[Any] = []
    members: list[list[int]] = []
    for pos, key in enumerate(keys):
        if key is None:
            groups.append([pos])
            continue
        for g, rep in enumerate(representatives):
            if similarity(rep, key) >= threshold:
                members[g].append(pos)
                break
        else:
            representatives.append(key)
            members.append([pos])
    return groups + members


def gigpo_advantages(
    step_rewards: Sequence[npt.ArrayLike],
    anchor_keys: Sequence[Sequence[Hashable | None]],
    *,
    episode_rewards: npt.ArrayLike | None = None,
    gamma: float = 0.95,
    omega: float = 1.0,
    std: StdMode = "unbiased",
    eps: float = 1e-6,
    episode_stats: Literal["trajectory", "step"] = "trajectory",
    similarity: Callable[[Any, Any], float] | None = None,
    threshold: float = 0.9,
) -> GiGPOAdvantages:
    """GiGPO advantages for one group: episode-level group score plus anchor-state step score.

    * Episode: `A^E_i = (R_i − mean R) / F_norm`, `F_norm` = std or 1 (`std`).
    * Anchor groups: all steps of the group's trajectories whose anchor state is the same,
      across trajectories and time steps. Exact match of the keys by default; with
      `similarity`, a step joins the first earlier group whose first member's key has
      `similarity(first, key) >= threshold` (GiGPO's QA variant uses 0.9), else starts one.
    * Step return: `G_t = Σ_{k≥t} γ^{k−t} r_k` (γ = 0.95 in the paper).
    * Step advantage: `A^S_t = (G_t − mean_group G) / F_norm(group)`; a step alone in its group
      (or with a `None` key) gets 0, as in the paper (mean is itself, std set to 1).
    * Combined: `A_t = A^E_i + ω · A^S_t` (ω = 1, the paper's untuned default).

    Args:
        step_rewards: per trajectory, its per-step rewards.
        anchor_keys: per trajectory, the key of the state each step acted from (`anchor_keys`).
        episode_rewards: per trajectory `R_i`; default: the sum of its step rewards.
        gamma: discount of the step return.
        omega: weight of the step advantage.
        std: normalisation of both levels ("unbiased", "population", or "none" = "w/o std").
        eps: added to each std.
        episode_stats: "trajectory" (one value per trajectory; paper and older verl-agent) or
            "step" (one row per step, so long trajectories weigh more; newer verl-agent's
            `compute_mean_std_cross_steps`).
        similarity: optional similarity of two keys, for non-exact anchor matching.
        threshold: minimum similarity to share a group.

    Example:
        >>> adv = gigpo_advantages([[0.0, 1.0], [0.0, 0.0, 0.0]],
        ...                        [["s0", "s1"], ["s0", "s2", "s1"]], gamma=0.5, std="none")
        >>> adv.episode.tolist(), [a.tolist() for a in adv.combined]
        ([0.5, -0.5], [[0.75, 1.0], [-0.75, -0.5, -1.0]])
    """
    _check_option(episode_stats, ("trajectory", "step"), "episode_stats")
    _check_option(std, _STD_MODES, "std")
    _same_length(step_rewards, anchor_keys, "step_rewards and anchor_keys")
    if not step_rewards:
        raise ValueError("empty group")
    rewards = [
        _floats(r, f"step_rewards[{i}]", allow_empty=True) for i, r in enumerate(step_rewards)
    ]
    for i, (r, keys) in enumerate(zip(rewards, anchor_keys, strict=True)):
        _same_length(r, keys, f"trajectory {i}: step rewards and anchor keys")
    if episode_rewards is None:
        episode = np.array([r.sum() for r in rewards])
    else:
        episode = _floats(episode_rewards, "episode_rewards")
        _same_length(episode, rewards, "episode_rewards and step_rewards")

    # Episode level.
    if episode_stats == "trajectory":
        a_episode = _normalize(episode, std, eps)
    else:
        rows = np.repeat(episode, [r.size for r in rewards])
        if rows.size == 0 or np.all(rows == rows[0]):
            a_episode = np.zeros_like(episode)
        else:
            scale = 1.0 if std == "none" else rows.std(ddof=1 if std == "unbiased" else 0) + eps
            a_episode = (episode - rows.mean()) / scale

    # Step level: flatten all steps, group them by anchor state, normalise within each group.
    returns = np.concatenate([discounted_returns(r, gamma=gamma) for r in rewards])
    flat_keys: list[Hashable | None] = [k for keys in anchor_keys for k in keys]
    a_step_flat = np.zeros_like(returns)
    for members in _anchor_groups(flat_keys, similarity, threshold):
        a_step_flat[members] = _normalize(returns[members], std, eps)
    a_step = np.split(a_step_flat, np.cumsum([r.size for r in rewards])[:-1])
    combined = [a_episode[i] + omega * s for i, s in enumerate(a_step)]
    return GiGPOAdvantages(episode=a_episode, step=a_step, combined=combined)


# ---------------------------------------------------------------------- SPA-RL
def spa_step_rewards(
    contributions: npt.ArrayLike,
    valid: Sequence[bool],
    *,
    progress_weight: float = 1.0,
    grounding_weight: float = 0.5,
    last_step_grounded: bool = False,
    legacy_position_weight: bool = False,
) -> FloatArray:
    """SPA-RL's fused per-step reward `r_t = α·ĉ_t + β·g_t` for one trajectory.

    `ĉ_t` is the progress estimator's contribution of step t (trained so that `Σ_t ĉ_t ≈ R`),
    `g_t = 1[step t's action was valid]` the grounding signal (`Turn.valid`). The defaults
    α = 1, β = 0.5 are the released code's (the paper's weights are unverified).

    Args:
        contributions: `ĉ_t` per step.
        valid: whether each step's action was valid (executable) in the env.
        progress_weight: α.
        grounding_weight: β.
        last_step_grounded: the released code always grants the last step its grounding reward
            (it has no next observation to check); off by default, we know the last step's
            validity.
        legacy_position_weight: the released StepTool trainer multiplies step k's reward (of L)
            by `L − k − 1`, which zeroes the last step. Kept only to reproduce that code.

    Example:
        >>> spa_step_rewards([0.2, 0.3, 0.5], [True, False, True]).tolist()
        [0.7, 0.3, 1.0]
    """
    c = _floats(contributions, "contributions", allow_empty=True)
    _same_length(c, valid, "contributions and valid")
    g = np.asarray([bool(v) for v in valid], dtype=np.float64)
    if last_step_grounded and g.size:
        g[-1] = 1.0
    r = progress_weight * c + grounding_weight * g
    if legacy_position_weight:
        r = r * (r.size - 1 - np.arange(r.size))
    return r


def spa_legacy_progress(outcomes: npt.ArrayLike, lengths: Sequence[int]) -> list[FloatArray]:
    """The released SPA data pipeline's stand-in for `ĉ_t`: every step of trajectory i gets
    `R_i − mean_{j≠i} R_j` over its group. It discards the learned attribution; kept only to
    reproduce that code (pass the result to `spa_step_rewards` as `contributions`).

    Example:
        >>> [c.tolist() for c in spa_legacy_progress([1.0, 0.0, 0.5], [2, 1, 3])]
        [[0.75, 0.75], [-0.75], [0.0, 0.0, 0.0]]
    """
    loo = leave_one_out_advantages(outcomes)
    _same_length(loo, lengths, "outcomes and lengths")
    return [np.full(int(n), a) for a, n in zip(loo, lengths, strict=True)]


# ---------------------------------------------------------------------- token / turn helpers
def _token_inputs(
    turn_index: npt.ArrayLike, loss_mask: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    idx = np.asarray(turn_index)
    mask = np.asarray(loss_mask)
    if idx.ndim != 1 or mask.ndim != 1:
        raise ValueError("turn_index and loss_mask must be one-dimensional (one sequence)")
    _same_length(idx, mask, "turn_index and loss_mask")
    if not np.all(np.isin(mask, (0, 1))):
        raise ValueError("loss_mask must hold only 0/1 (or booleans)")
    if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0):
        raise ValueError("turn_index must hold non-negative integers")
    return idx.astype(np.int64), mask.astype(bool)


def token_advantages(
    turn_advantages: float | npt.ArrayLike, turn_index: npt.ArrayLike, loss_mask: npt.ArrayLike
) -> FloatArray:
    """Per-token advantages of one sequence: each generated token gets its turn's value.

    Args:
        turn_advantages: indexed by `Turn.index` (a scalar: one trajectory-level advantage for
            every generated token, as in GRPO/LOOP).
        turn_index: `TokenizedTrajectory.turn_index`.
        loss_mask: `TokenizedTrajectory.loss_mask`; tokens with 0 (prompt, observations) get 0.

    Example:
        >>> token_advantages([1.0, -2.0], [0, 0, 0, 1, 1], [0, 1, 1, 0, 1]).tolist()
        [0.0, 1.0, 1.0, 0.0, -2.0]
    """
    idx, mask = _token_inputs(turn_index, loss_mask)
    out = np.zeros(idx.size, dtype=np.float64)
    if np.ndim(turn_advantages) == 0:
        value = float(turn_advantages)  # type: ignore[arg-type]
        if not np.isfinite(value):
            raise ValueError(f"advantage must be finite, got {value}")
        out[mask] = value
        return out
    per_turn = _floats(turn_advantages, "turn_advantages", allow_empty=True)
    if mask.any() and idx[mask].max() >= per_turn.size:
        raise ValueError(
            f"a generated token belongs to turn {idx[mask].max()} but only "
            f"{per_turn.size} turn advantages were given"
        )
    out[mask] = per_turn[idx[mask]]
    return out


def turn_sums(
    token_values: npt.ArrayLike,
    turn_index: npt.ArrayLike,
    loss_mask: npt.ArrayLike,
    *,
    num_turns: int | None = None,
) -> FloatArray:
    """Sum of `token_values` over each turn's generated tokens, indexed by `Turn.index`.

    `num_turns` defaults to the largest turn index + 1; a turn without generated tokens gets 0.

    Example:
        >>> turn_sums([9.0, 0.5, 0.25, 9.0, 1.0], [0, 0, 0, 1, 1], [0, 1, 1, 0, 1]).tolist()
        [0.75, 1.0]
    """
    idx, mask = _token_inputs(turn_index, loss_mask)
    v = _floats(token_values, "token_values", allow_empty=True)
    _same_length(v, idx, "token_values and turn_index")
    n = num_turns if num_turns is not None else (int(idx.max()) + 1 if idx.size else 0)
    return np.bincount(idx[mask], weights=v[mask], minlength=n).astype(np.float64)


def place_on_last_token(
    turn_values: npt.ArrayLike, turn_index: npt.ArrayLike, loss_mask: npt.ArrayLike
) -> FloatArray:
    """Put each turn's value on that turn's last generated token (0 elsewhere).

    This is how step rewards become token rewards for token-level GAE (SPA) and how OPRL places
    its action-level implicit reward.

    Example:
        >>> place_on_last_token([0.5, 2.0], [0, 0, 0, 1, 1], [0, 1, 1, 0, 1]).tolist()
        [0.0, 0.0, 0.5, 0.0, 2.0]
    """
    idx, mask = _token_inputs(turn_index, loss_mask)
    per_turn = _floats(turn_values, "turn_values", allow_empty=True)
    out = np.zeros(idx.size, dtype=np.float64)
    last_token: dict[int, int] = {}
    for position in np.flatnonzero(mask).tolist():
        last_token[int(idx[position])] = position
    for turn, position in last_token.items():
        if turn >= per_turn.size:
            raise ValueError(f"turn {turn} has generated tokens but no value was given")
        out[position] = per_turn[turn]
    return out


# ---------------------------------------------------------------------- implicit process rewards
def implicit_process_rewards(
    logprobs: npt.ArrayLike,
    ref_logprobs: npt.ArrayLike,
    loss_mask: npt.ArrayLike,
    turn_index: npt.ArrayLike | None = None,
    *,
    beta: float = 0.05,
    granularity: Literal["token", "turn"] = "turn",
) -> FloatArray:
    """Implicit PRM rewards `β · (log π_φ − log π_ref)` of one sequence, per token.

    * "token" (PRIME, Yuan et al.): each generated token gets `β (log π_φ(y_t) − log π_ref(y_t))`.
    * "turn" (OPRL/iStar, the default): each action's (turn's) sum of those terms, placed on its
      last generated token (as OPRL's code does); other tokens get 0. Use `turn_sums` on the
      "token" output for the per-turn values themselves.

    `π_ref` is PRIME's frozen SFT model, or OPRL's previous policy `π_θold` (the rollout's own
    log-probs). β = 0.05 in both papers.

    Example:
        >>> lp, ref = [0.0, -1.0, -0.5, 0.0, -0.2], [0.0, -1.5, -0.3, 0.0, -0.6]
        >>> mask, turns = [0, 1, 1, 0, 1], [0, 0, 0, 1, 1]
        >>> implicit_process_rewards(lp, ref, mask, turns, beta=0.1).round(6).tolist()
        [0.0, 0.0, 0.03, 0.0, 0.04]
    """
    _check_option(granularity, ("token", "turn"), "granularity")
    lp = _floats(logprobs, "logprobs", allow_empty=True)
    ref = _floats(ref_logprobs, "ref_logprobs", allow_empty=True)
    _same_length(lp, ref, "logprobs and ref_logprobs")
    mask = np.asarray(loss_mask)
    _same_length(lp, mask, "logprobs and loss_mask")
    if turn_index is None:
        if granularity == "turn":
            raise ValueError('granularity="turn" needs turn_index')
        turn_index = np.zeros(lp.size, dtype=np.int64)
    idx, bmask = _token_inputs(turn_index, mask)
    _same_length(lp, idx, "logprobs and turn_index")
    tokens = np.where(bmask, beta * (lp - ref), 0.0)
    if granularity == "token":
        return tokens
    return place_on_last_token(turn_sums(tokens, idx, bmask), idx, bmask)


def oprl_advantages(
    outcomes: npt.ArrayLike,
    step_rewards: Sequence[npt.ArrayLike],
    *,
    alpha: float = 1.0,
    estimator: Literal["group_norm", "leave_one_out"] = "group_norm",
    std: StdMode = "unbiased",
    eps: float = 1e-6,
    step_stats: Literal["all_steps", "one_per_trajectory"] = "all_steps",
) -> list[FloatArray]:
    """OPRL/iStar advantage `A_t = A^E(τ) + α·A^S(a_t)` for one group, per step.

    `A^E` normalises the outcome rewards over the group; `A^S` normalises each step's implicit
    reward `r_φ(a_t)` over the group's steps. No discounting, no reward-to-go.

    Args:
        outcomes: outcome reward per trajectory.
        step_rewards: per trajectory, the implicit reward of each action (`turn_sums` of
            `implicit_process_rewards(..., granularity="token")`).
        alpha: weight of the step term (paper: 1).
        estimator: "group_norm": `(x − mean)/(std + eps)` (paper); "leave_one_out": the
            official `istar_rloo` script's `K/(K−1)·(x − mean)`, K = number of pooled values.
        std: for "group_norm".
        eps: for "group_norm".
        step_stats: which step rows give the step-level mean (and std): "all_steps" (paper) or
            "one_per_trajectory" (the code's "seen pairs" filter keeps one step row per
            trajectory; we keep its first step). When the pooled values are all equal (one
            trajectory, say) there is no spread to divide by and values are only centred.

    Example:
        >>> adv = oprl_advantages([1.0, 0.0], [[0.2, 0.4], [-0.2]], estimator="leave_one_out")
        >>> [a.round(6).tolist() for a in adv]
        [[1.1, 1.4], [-1.5]]
    """
    _check_option(estimator, ("group_norm", "leave_one_out"), "estimator")
    _check_option(step_stats, ("all_steps", "one_per_trajectory"), "step_stats")
    out_r = _floats(outcomes, "outcomes")
    steps = [_floats(s, f"step_rewards[{i}]") for i, s in enumerate(step_rewards)]
    _same_length(out_r, steps, "outcomes and step_rewards")

    def scores(x: FloatArray, pool: FloatArray) -> FloatArray:
        """Normalise `x` with the statistics of `pool`."""
        if np.all(pool == pool[0]):
            # No spread to divide by (a group of one, or equal values): centre only, exactly.
            centered = x - pool[0]
            if estimator == "leave_one_out" and pool.size > 1:
                return pool.size / (pool.size - 1) * centered
            return centered
        centered = x - pool.mean()
        if estimator == "leave_one_out":
            return pool.size / (pool.size - 1) * centered
        if std == "none":
            return centered
        return centered / (pool.std(ddof=1 if std == "unbiased" else 0) + eps)

    _check_option(std, _STD_MODES, "std")
    a_episode = scores(out_r, out_r)
    flat = np.concatenate(steps)
    pool = flat if step_stats == "all_steps" else np.array([s[0] for s in steps])
    a_step = np.split(scores(flat, pool), np.cumsum([s.size for s in steps])[:-1])
    return [a_episode[i] + alpha * s for i, s in enumerate(a_step)]


def prime_advantages(
    process_rewards: Sequence[npt.ArrayLike],
    outcomes: npt.ArrayLike,
    group_ids: Sequence[Hashable],
    *,
    gamma: float = 1.0,
    gamma_outcome: float = 1.0,
    loo: Literal["exclude_self", "include_self"] = "exclude_self",
    process_coef: float = 1.0,
    outcome_coef: float = 1.0,
    whiten: bool = True,
) -> list[FloatArray]:
    """PRIME's per-token advantage (Eq. 5) for a batch: per-source leave-one-out, then returns.

    Per trajectory i of a group of K, with `r̄_j` trajectory j's mean token reward:

    * process tokens: `r_s − (1/(K−1)) Σ_{j≠i} r̄_j` ("exclude_self", the paper), or the code's
      `r_s·K/(K−1) − (1/(K−1)) Σ_j r̄_j` ("include_self", which counts i's own mean);
    * outcome on the last token: `r_o − (1/(K−1)) Σ_{j≠i} r_o,j` (both forms agree here);
    * each source reverse-cumsummed with its own γ (1 in the paper), weighted, summed;
    * `whiten`: over all tokens of the batch, `(x − mean)/sqrt(var + 1e-8)` with the unbiased
      variance (verl's `masked_whiten`).

    A group of one has no baseline: its tokens get 0 from both sources.

    Args:
        process_rewards: per trajectory, the implicit reward of each *generated* token.
        outcomes: outcome reward per trajectory (e.g. 0/1 correctness).
        group_ids: the group (prompt) of each trajectory.
        gamma: discount of the process source.
        gamma_outcome: discount of the outcome source.
        loo: "exclude_self" (paper) or "include_self" (released code).
        process_coef: weight of the process source (verl's recipe: 5).
        outcome_coef: weight of the outcome source (verl's recipe: 5).
        whiten: normalise over the batch at the end.

    Example:
        >>> adv = prime_advantages([[0.1, 0.3], [-0.2]], [1.0, 0.0], ["g", "g"], whiten=False)
        >>> [a.round(6).tolist() for a in adv]
        [[1.8, 1.5], [-1.4]]
    """
    _check_option(loo, ("exclude_self", "include_self"), "loo")
    tokens = [_floats(p, f"process_rewards[{i}]") for i, p in enumerate(process_rewards)]
    out_r = _floats(outcomes, "outcomes")
    _same_length(tokens, out_r, "process_rewards and outcomes")
    _same_length(tokens, group_ids, "process_rewards and group_ids")
    advantages: list[FloatArray] = [np.zeros_like(t) for t in tokens]
    for idx in group_indices(group_ids).values():
        k = idx.size
        if k < 2:
            continue
        means = np.array([tokens[i].mean() for i in idx])
        outcome_adv = leave_one_out_advantages(out_r[idx])
        for pos, i in enumerate(idx):
            if loo == "exclude_self":
                shaped = tokens[i] - (means.sum() - means[pos]) / (k - 1)
            else:
                shaped = tokens[i] * k / (k - 1) - means.sum() / (k - 1)
            outcome_tokens = np.zeros_like(shaped)
            outcome_tokens[-1] = outcome_adv[pos]
            advantages[i] = process_coef * discounted_returns(
                shaped, gamma=gamma
            ) + outcome_coef * discounted_returns(outcome_tokens, gamma=gamma_outcome)
    if whiten:
        flat = np.concatenate(advantages)
        if flat.size > 1:
            var = flat.var(ddof=1)
            flat = (flat - flat.mean()) / np.sqrt(var + 1e-8)
            advantages = np.split(flat, np.cumsum([a.size for a in advantages])[:-1])
    return advantages


# ---------------------------------------------------------------------- G-RA gating
def reward_terms_table(turns: Sequence[Turn]) -> dict[str, FloatArray]:
    """Each reward term of a trajectory as a per-step array (`Turn.reward_terms`; missing = 0).

    Example:
        >>> from turnwise.trajectory import Turn
        >>> turns = [Turn(0, "o", "a", 0.1, reward_terms={"valid": 0.1}),
        ...          Turn(1, "o", "b", 1.0, reward_terms={"outcome": 1.0})]
        >>> {k: v.tolist() for k, v in reward_terms_table(turns).items()}
        {'valid': [0.1, 0.0], 'outcome': [0.0, 1.0]}
    """
    names: dict[str, None] = {}
    for turn in turns:
        names.update(dict.fromkeys(turn.reward_terms))
    return {name: np.array([float(t.reward_terms.get(name, 0.0)) for t in turns]) for name in names}


def gated_step_rewards(
    step_terms: Mapping[str, npt.ArrayLike],
    priority: Sequence[str],
    thresholds: Mapping[str, float],
    *,
    weights: Mapping[str, float] | None = None,
    comparison: Literal[">=", ">"] = ">=",
) -> FloatArray:
    """G-RA: per-step reward where a lower-priority term counts only if every higher one passes.

    Each term's *trajectory total* (the unweighted sum of its per-step values) is compared with
    its threshold. Term p (in `priority`, highest first) contributes its per-step values iff every
    term before it clears its threshold; otherwise it contributes 0 on every step. With two
    channels this is `R(τ) = r_high + 1[r_high ≥ Δ] · Σ_t r_low_t`. The highest term always
    counts (put the outcome first; it is usually non-zero only on the last step).

    Args:
        step_terms: per-step values of each term (`reward_terms_table(traj.turns)`).
        priority: term names, highest priority first; every key of `step_terms` must appear.
        thresholds: the threshold of every term that gates a later one (all but the last).
        weights: per-term weights (`Turn.reward_weights`); default 1 each.
        comparison: ">=" (a total equal to the threshold opens the gate) or ">".

    Example:
        >>> terms = {"outcome": [0.0, 0.0, 0.4], "format": [0.1, 0.1, 0.1]}
        >>> gated_step_rewards(terms, ["outcome", "format"], {"outcome": 0.5}).tolist()
        [0.0, 0.0, 0.4]
    """
    _check_option(comparison, (">=", ">"), "comparison")
    if len(set(priority)) != len(priority):
        raise ValueError(f"priority lists a term twice: {list(priority)}")
    unknown = set(step_terms) - set(priority)
    if unknown:
        raise ValueError(f"terms {sorted(unknown)} have no place in priority {list(priority)}")
    for name in priority[:-1]:
        if name not in thresholds:
            raise ValueError(f"term {name!r} gates lower-priority terms but has no threshold")
    weights = weights or {}
    arrays = {
        name: _floats(v, f"step_terms[{name!r}]", allow_empty=True)
        for name, v in step_terms.items()
    }
    lengths = {a.size for a in arrays.values()}
    if len(lengths) > 1:
        raise ValueError(f"step_terms have different lengths: {sorted(lengths)}")
    total = np.zeros(lengths.pop() if lengths else 0)
    gate_open = True
    for name in priority:
        values = arrays.get(name)
        if values is None:  # a term this trajectory never reported counts as 0 everywhere
            values = np.zeros_like(total)
        if gate_open:
            total = total + weights.get(name, 1.0) * values
        if name in thresholds:
            score = float(values.sum())
            passed = score >= thresholds[name] if comparison == ">=" else score > thresholds[name]
            gate_open = gate_open and passed
    return total


# ---------------------------------------------------------------------- IGPO
def igpo_information_gain(
    beliefs: npt.ArrayLike, *, kind: Literal["logprob", "prob"] = "logprob"
) -> FloatArray:
    """IGPO's information-gain reward of each non-final turn of one trajectory.

    `beliefs[k]` is `b`, the length-normalised log-probability of the gold answer given the
    prompt and the first k turns (stop-gradient), for k = 0 … T−1 (T = number of turns). Turn
    k < T−1 gets `b_{k+1} − b_k` ("logprob", the paper's best variant) or
    `exp(b_{k+1}) − exp(b_k)` ("prob"); the final turn gets only the outcome reward, so the
    result has T−1 entries.

    Example:
        >>> igpo_information_gain([-2.0, -1.0, -0.5]).tolist()
        [1.0, 0.5]
    """
    _check_option(kind, ("logprob", "prob"), "kind")
    b = _floats(beliefs, "beliefs")
    return np.diff(b if kind == "logprob" else np.exp(b))


def igpo_advantages(
    info_gains: Sequence[npt.ArrayLike],
    outcomes: npt.ArrayLike,
    *,
    normalization: Literal["separate", "joint"] = "separate",
    std: StdMode = "population",
    eps: float = 1e-6,
    gamma: float = 1.0,
) -> list[FloatArray]:
    """IGPO per-turn advantages for one group of G rollouts.

    Turn rewards of rollout i are `[*info_gains[i], outcomes[i]]` (information gain on each
    non-final turn, the outcome, e.g. F1 or the format penalty, on the final turn). They are
    z-scored within the group, then `Ã_{i,t} = Σ_{k≥t} γ^{k−t} r̃_{i,k}` (γ = 1).

    Args:
        info_gains: per rollout, `igpo_information_gain(beliefs)` (T_i − 1 values).
        outcomes: outcome reward per rollout.
        normalization: "separate" (the paper: IG rewards with the mean/std of all IG rewards of
            the group, outcomes with those of the outcomes) or "joint" (one pool; the code's
            function default).
        std: the code uses "population"; a pool of one (or of equal values) gives 0.
        eps: added to the std.
        gamma: discount of the turn return.

    Example:
        >>> adv = igpo_advantages([[1.0, 0.5], [-1.0]], [1.0, 0.0], normalization="joint")
        >>> [a.round(4).tolist() for a in adv]
        [[2.1381, 1.2027, 0.9354], [-2.1381, -0.4009]]
    """
    _check_option(normalization, ("separate", "joint"), "normalization")
    gains = [_floats(g, f"info_gains[{i}]", allow_empty=True) for i, g in enumerate(info_gains)]
    out_r = _floats(outcomes, "outcomes")
    _same_length(gains, out_r, "info_gains and outcomes")
    sizes = [g.size for g in gains]
    if normalization == "joint":
        flat = _normalize(
            np.concatenate([np.append(g, o) for g, o in zip(gains, out_r, strict=True)]), std, eps
        )
        turn_rewards = np.split(flat, np.cumsum([s + 1 for s in sizes])[:-1])
    else:
        ig = _normalize(np.concatenate(gains), std, eps)
        oc = _normalize(out_r, std, eps)
        turn_rewards = [
            np.append(g, oc[i]) for i, g in enumerate(np.split(ig, np.cumsum(sizes)[:-1]))
        ]
    return [discounted_returns(r, gamma=gamma) for r in turn_rewards]
