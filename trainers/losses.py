"""Policy, critic and process-reward-model losses, in torch.

Inputs are batches of training sequences, shape [B, L]: per-token log-probs under the current
policy (with grad), under the sampling policy (`old_logprobs`, constants), per-token advantages
(`turnwise.trainers.credit.token_advantages`) and `loss_mask` (1 on generated tokens). Only
tokens with `loss_mask == 1` enter a ratio, a loss or a metric: prompt and observation tokens
are context, and padding may hold anything (even NaN) without reaching the loss or its gradient.

`policy_loss` is the PPO clipped surrogate with the choices the papers disagree on as options:
the level of the importance ratio (token, turn, sequence), the clip bounds (symmetric,
asymmetric "clip-higher", LOOP's `[1/(1+ε), 1+ε]`), dual clip, the aggregation over tokens, and
an optional KL penalty to a reference model. Every loss returns a scalar to minimise; metrics
come back as Python floats under fixed `loss/…` names.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "LOOP_CLIP",
    "PPO_CLIP",
    "Aggregation",
    "ClipRange",
    "aggregate",
    "entropy_from_logits",
    "kl_estimate",
    "masked_mean",
    "policy_loss",
    "prm_ce_loss",
    "prm_dpo_loss",
    "progress_estimator_loss",
    "value_loss",
]

RatioLevel = Literal["token", "turn", "sequence"]
"""One importance ratio per token (PPO, LOOP's best), per turn (LOOP "turn", OPRL's paper), or
per sequence (GSPO; LOOP "bandit")."""
RatioReduce = Literal["geometric_mean", "product"]
"""How token ratios combine into a turn or sequence ratio: their geometric mean (GSPO: the
exponentiated mean log-ratio, independent of length) or their product (LOOP's "bandit" and
"turn" variants: the likelihood ratio of the whole span)."""
Aggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]
"""How per-token losses become one number (verl's names): "token-mean" over all generated
tokens of the batch (verl, EasyR1, TRL); "seq-mean-token-mean": each sequence's token mean,
then the mean over sequences (LOOP, original GRPO); "seq-mean-token-sum": each sequence's token
sum, then the mean over sequences."""
KLEstimator = Literal["k1", "k3"]
"""Per-token estimators of KL(π_θ ‖ π_ref) from samples of π_θ: "k1" = log π_θ − log π_ref
(unbiased, high variance, can be negative); "k3" = exp(log π_ref − log π_θ) − (log π_ref −
log π_θ) − 1 (unbiased, never negative; GRPO's), clamped as verl's `low_var_kl` clamps it: the
log-ratio to ±20 and the estimate to at most 10, so a token the policy has pushed far below
the reference stops pulling on it (exp would otherwise make its gradient explode)."""


# ---------------------------------------------------------------------- clip bounds
@dataclass(frozen=True)
class ClipRange:
    """Bounds `[lower, upper]` on the importance ratio (not on ε).

    Use the constructors: `ClipRange.symmetric(0.2)` is `[0.8, 1.2]`;
    `ClipRange.asymmetric(0.2, 0.3)` is ARPO's clip-higher `[0.8, 1.3]`; `ClipRange.loop(0.1)`
    is LOOP's released code, `[1/1.1, 1.1]` (its paper states `[0.9, 1.1]`).

    Example:
        >>> ClipRange.loop(0.25)
        ClipRange(lower=0.8, upper=1.25)
    """

    lower: float
    upper: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise ValueError(f"clip bounds must be finite, got {self}")
        if not 0.0 <= self.lower <= 1.0 <= self.upper:
            raise ValueError(f"clip bounds must satisfy 0 <= lower <= 1 <= upper, got {self}")

    @classmethod
    def symmetric(cls, eps: float = 0.2) -> ClipRange:
        """`[1 − ε, 1 + ε]`: PPO, GRPO, GiGPO, PRIME (ε = 0.2), LOOP's paper (ε = 0.1)."""
        return cls(1.0 - eps, 1.0 + eps)

    @classmethod
    def asymmetric(cls, eps_low: float = 0.2, eps_high: float = 0.3) -> ClipRange:
        """`[1 − ε_low, 1 + ε_high]`: "clip-higher" (ARPO: 0.2 and 0.3)."""
        return cls(1.0 - eps_low, 1.0 + eps_high)

    @classmethod
    def loop(cls, eps: float = 0.1) -> ClipRange:
        """`[1/(1 + ε), 1 + ε]`: LOOP's released code (ε = 0.1)."""
        return cls(1.0 / (1.0 + eps), 1.0 + eps)


PPO_CLIP = ClipRange.symmetric(0.2)
"""The default bounds, `[0.8, 1.2]`."""
LOOP_CLIP = ClipRange.loop(0.1)
"""LOOP's released code, `[1/1.1, 1.1]`."""


# ---------------------------------------------------------------------- helpers
def _check_option(value: str, allowed: Sequence[str], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the positions where `mask` is true (0 when there are none).

    Masked-out entries may hold anything, NaN included, without changing the value (for a zero
    gradient there too, mask the inputs of the op that produced `x`: 0 · NaN is NaN).

    Example:
        >>> masked_mean(torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([1, 0, 1])).item()
        2.0
    """
    m = mask.bool()
    return torch.where(m, x, 0.0).sum() / m.sum().clamp(min=1)


def aggregate(
    per_token: torch.Tensor,
    loss_mask: torch.Tensor,
    aggregation: Aggregation = "token-mean",
    *,
    denominator: float | None = None,
) -> torch.Tensor:
    """Reduce per-token losses [B, L] to a scalar, counting only `loss_mask` tokens.

    Args:
        per_token: loss of each token.
        loss_mask: 1 on tokens that count.
        aggregation: "token-mean", "seq-mean-token-mean" or "seq-mean-token-sum" (see
            `Aggregation`).
        denominator: a constant to divide by instead of the number of tokens ("token-mean") or
            of sequences with at least one token (the "seq-mean-…" modes). LOOP divides its sum
            of per-trajectory means by the fixed minibatch size (32), even after filtering.

    Example:
        >>> losses = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
        >>> mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
        >>> [aggregate(losses, mask, a).item() for a in
        ...  ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")]
        [2.5, 3.0, 5.0]
    """
    _check_option(
        aggregation, ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum"), "aggregation"
    )
    if per_token.dim() != 2 or per_token.shape != loss_mask.shape:
        raise ValueError(
            f"per_token and loss_mask must both be [B, L], got {tuple(per_token.shape)} "
            f"and {tuple(loss_mask.shape)}"
        )
    if denominator is not None and not denominator > 0:
        raise ValueError(f"denominator must be positive, got {denominator}")
    m = loss_mask.bool()
    x = torch.where(m, per_token, 0.0)
    if aggregation == "token-mean":
        count = m.sum().clamp(min=1) if denominator is None else denominator
        return x.sum() / count
    tokens = m.sum(-1)
    per_seq = x.sum(-1)
    if aggregation == "seq-mean-token-mean":
        per_seq = per_seq / tokens.clamp(min=1)
    count = (tokens > 0).sum().clamp(min=1) if denominator is None else denominator
    return per_seq.sum() / count


def kl_estimate(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator = "k3"
) -> torch.Tensor:
    """Per-token estimate of KL(π_θ ‖ π_ref) at the sampled tokens (see `KLEstimator`).

    Example:
        >>> lp, ref = torch.tensor([-1.0]), torch.tensor([-1.5])
        >>> kl_estimate(lp, ref, "k1").item(), round(kl_estimate(lp, ref, "k3").item(), 6)
        (0.5, 0.106531)
        >>> kl_estimate(torch.tensor([-20.0]), torch.tensor([-1.0]), "k3").item()  # clamped
        10.0
    """
    _check_option(estimator, ("k1", "k3"), "kl_estimator")
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    back = (-log_ratio).clamp(-20.0, 20.0)  # log π_ref − log π_θ
    return (torch.exp(back) - back - 1.0).clamp(max=10.0)


def _log_ratio(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    mask: torch.Tensor,
    turn_index: torch.Tensor | None,
    level: RatioLevel,
    reduce: RatioReduce,
) -> torch.Tensor:
    """Per-token log importance ratio [B, L] at the requested level (0 on masked tokens)."""
    token = torch.where(mask, logprobs - old_logprobs, 0.0)
    if level == "token":
        return token
    if level == "sequence":
        total = token.sum(-1, keepdim=True)  # [B, 1]
        if reduce == "geometric_mean":
            total = total / mask.sum(-1, keepdim=True).clamp(min=1)
        return total.expand_as(token)
    if turn_index is None:
        raise ValueError('ratio_level="turn" needs turn_index')
    if turn_index.shape != token.shape:
        raise ValueError(f"turn_index must be [B, L] like logprobs, got {tuple(turn_index.shape)}")
    turns = torch.where(mask, turn_index.long(), 0)
    if bool((turns < 0).any()):
        raise ValueError("turn_index must be non-negative on generated tokens")
    n_turns = int(turns.max().item()) + 1 if turns.numel() else 1
    # One bucket per (row, turn): key = row * n_turns + turn.  [B, L]
    rows = torch.arange(token.shape[0], device=token.device).unsqueeze(-1)
    key = (rows * n_turns + turns).flatten()
    sums = token.new_zeros(token.shape[0] * n_turns).index_add(0, key, token.flatten())
    if reduce == "geometric_mean":
        counts = token.new_zeros(sums.shape).index_add(0, key, mask.flatten().to(token.dtype))
        sums = sums / counts.clamp(min=1)
    return sums[key].view_as(token)


# ---------------------------------------------------------------------- policy loss
def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    *,
    turn_index: torch.Tensor | None = None,
    ratio_level: RatioLevel = "token",
    ratio_reduce: RatioReduce = "geometric_mean",
    clip: ClipRange = PPO_CLIP,
    dual_clip: float | None = None,
    aggregation: Aggregation = "token-mean",
    denominator: float | None = None,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    kl_estimator: KLEstimator = "k3",
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO clipped surrogate over generated tokens; returns `(loss, metrics)`.

    Per token, with ratio ρ (at `ratio_level`) and advantage A:
    `ℓ = −min(ρA, clip(ρ, lower, upper)·A)`; with `dual_clip` = c > 1, tokens with A < 0 get
    `min(ℓ, −c·A)` (a bad action whose ratio has grown far above 1 stops adding loss). Then
    `ℓ += kl_coef · KL_t` if `kl_coef > 0`, and `aggregate` reduces over `loss_mask` tokens.
    `old_logprobs`, `advantages` and `ref_logprobs` are constants (detached).

    Args:
        logprobs: [B, L] log-probs of the tokens under the policy being trained.
        old_logprobs: [B, L] log-probs under the policy that sampled them.
        advantages: [B, L] per token, or [B] per sequence (broadcast to its tokens).
        loss_mask: [B, L], 1 on generated tokens.
        turn_index: [B, L] turn of each token; needed for `ratio_level="turn"`.
        ratio_level: "token" (default), "turn" or "sequence" (see `RatioLevel`).
        ratio_reduce: "geometric_mean" (default) or "product", for turn/sequence ratios.
        clip: ratio bounds (`ClipRange`); default `[0.8, 1.2]`.
        dual_clip: c > 1 (ARPO: 3.0), or None.
        aggregation: see `Aggregation`; default "token-mean".
        denominator: see `aggregate`.
        ref_logprobs: [B, L] log-probs under the reference model, for the KL penalty.
        kl_coef: weight of the KL penalty (0: none, the default; GiGPO 0.01, IGPO 0.001).
        kl_estimator: "k3" (default) or "k1".

    Returns:
        The loss, and metrics: `loss/policy` (the loss), `loss/clip_frac` (share of tokens
        whose clipped branch was taken, so they get no gradient), `loss/dual_clip_frac`,
        `loss/approx_kl` (k3 estimate of KL(π_old ‖ π_θ) from token ratios), `loss/ratio_mean`,
        `loss/kl_ref` (token mean of the KL estimate; 0 without a reference), `loss/tokens`.

    Example:
        >>> logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.7]]))
        >>> adv, mask = torch.tensor([[1.0, 1.0, -1.0, -1.0]]), torch.ones(1, 4)
        >>> loss, metrics = policy_loss(logp, torch.zeros(1, 4), adv, mask)
        >>> round(loss.item(), 6), metrics["loss/clip_frac"]
        (0.05, 0.5)
    """
    _check_option(ratio_level, ("token", "turn", "sequence"), "ratio_level")
    _check_option(ratio_reduce, ("geometric_mean", "product"), "ratio_reduce")
    if logprobs.dim() != 2:
        raise ValueError(f"logprobs must be [B, L], got {tuple(logprobs.shape)}")
    for name, t in (("old_logprobs", old_logprobs), ("loss_mask", loss_mask)):
        if t.shape != logprobs.shape:
            raise ValueError(f"{name} must be [B, L] like logprobs, got {tuple(t.shape)}")
    if dual_clip is not None and not dual_clip > 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    if kl_coef > 0 and ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs")
    mask = loss_mask.bool()
    adv = advantages.detach().to(logprobs.dtype)
    if adv.dim() == 1:
        adv = adv.unsqueeze(-1).expand_as(logprobs)
    if adv.shape != logprobs.shape:
        raise ValueError(f"advantages must be [B] or [B, L], got {tuple(advantages.shape)}")
    adv = torch.where(mask, adv, 0.0)
    if not bool(torch.isfinite(adv).all()):
        raise ValueError("advantages contain NaN or infinity on generated tokens")

    log_ratio = _log_ratio(
        logprobs, old_logprobs.detach(), mask, turn_index, ratio_level, ratio_reduce
    )
    ratio = torch.exp(log_ratio)  # [B, L]
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(clip.lower, clip.upper)
    per_token = torch.maximum(unclipped, clipped)  # = −min(ρA, clip(ρ)A)
    took_clip = mask & (clipped > unclipped)
    took_dual = torch.zeros_like(mask)
    if dual_clip is not None:
        cap = -adv * dual_clip  # positive where A < 0
        took_dual = mask & (adv < 0) & (per_token > cap)
        per_token = torch.where(took_dual, cap, per_token)
    kl = torch.zeros_like(per_token)
    if ref_logprobs is not None:
        if ref_logprobs.shape != logprobs.shape:
            raise ValueError(f"ref_logprobs must be [B, L], got {tuple(ref_logprobs.shape)}")
        # Mask the inputs, not only the output: a NaN on padding would otherwise reach the
        # gradient through exp's backward (0 · NaN).
        kl = kl_estimate(
            torch.where(mask, logprobs, 0.0),
            torch.where(mask, ref_logprobs.detach(), 0.0),
            kl_estimator,
        )
        if kl_coef > 0:
            per_token = per_token + kl_coef * kl
    loss = aggregate(per_token, mask, aggregation, denominator=denominator)

    with torch.no_grad():
        token_log_ratio = torch.where(mask, logprobs - old_logprobs, 0.0)
        token_ratio = torch.exp(token_log_ratio)
        metrics = {
            "loss/policy": float(loss.item()),
            "loss/clip_frac": float(masked_mean(took_clip.float(), mask).item()),
            "loss/dual_clip_frac": float(masked_mean(took_dual.float(), mask).item()),
            "loss/approx_kl": float(masked_mean(token_ratio - 1 - token_log_ratio, mask).item()),
            "loss/ratio_mean": float(masked_mean(ratio, mask).item()),
            "loss/kl_ref": float(masked_mean(kl, mask).item()),
            "loss/tokens": float(mask.sum().item()),
        }
    return loss, metrics


# ---------------------------------------------------------------------- critic and entropy
def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_eps: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO critic loss `½ (V − G)²`, masked mean; returns `(loss, metrics)`.

    With `clip_eps` (TRL: 0.2), `V_clip = V_old + clip(V − V_old, −ε, ε)` and the loss is
    `½ max((V − G)², (V_clip − G)²)`: a value may not move more than ε from the one it had
    at collection time to lower the loss.

    Args:
        values: current value predictions (any shape).
        old_values: predictions at collection time (constants).
        returns: regression targets (`credit.gae`'s returns; constants).
        mask: 1 where a value counts.
        clip_eps: value clip range, or None for the plain squared error.

    Example:
        >>> v, old, g = torch.tensor([0.5, 1.0]), torch.tensor([0.4, 0.4]), torch.tensor([1.0, 0.0])
        >>> value_loss(v, old, g, torch.ones(2), clip_eps=0.2)[0].item()
        0.3125
    """
    if not (values.shape == old_values.shape == returns.shape == mask.shape):
        raise ValueError("values, old_values, returns and mask must have one shape")
    if clip_eps is not None and not clip_eps > 0:
        raise ValueError(f"clip_eps must be positive, got {clip_eps}")
    m = mask.bool()
    # Mask the inputs so that padding (even NaN) gets zero gradient, not 0 · NaN.
    values = torch.where(m, values, 0.0)
    returns = torch.where(m, returns.detach(), 0.0)
    per = (values - returns) ** 2
    clipped_frac = torch.zeros_like(per)
    if clip_eps is not None:
        old = torch.where(m, old_values.detach(), 0.0)
        v_clip = old + (values - old).clamp(-clip_eps, clip_eps)
        per_clipped = (v_clip - returns) ** 2
        clipped_frac = (per_clipped > per).to(per.dtype)
        per = torch.maximum(per, per_clipped)
    loss = 0.5 * masked_mean(per, mask)
    metrics = {
        "loss/value": float(loss.item()),
        "loss/value_clip_frac": float(masked_mean(clipped_frac, mask).item()),
    }
    return loss, metrics


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position, over the last dimension.

    `H = logsumexp(z) − Σ softmax(z)·z`. Average it over generated tokens with `masked_mean`.

    Example:
        >>> round(entropy_from_logits(torch.tensor([0.0, math.log(3.0)])).item(), 6)
        0.562335
    """
    return torch.logsumexp(logits, dim=-1) - (F.softmax(logits, dim=-1) * logits).sum(-1)


# ---------------------------------------------------------------------- reward-model losses
def progress_estimator_loss(
    contributions: torch.Tensor, step_mask: torch.Tensor, outcomes: torch.Tensor
) -> torch.Tensor:
    """SPA-RL's progress-estimator loss `mean_i (Σ_t ĉ_{i,t} − R_i)²`.

    Only the sum of a trajectory's step contributions is supervised (no per-step labels).

    Args:
        contributions: [B, S] predicted contribution of each step.
        step_mask: [B, S], 1 on real steps (0 on padding).
        outcomes: [B] final reward of each trajectory.

    Example:
        >>> c = torch.tensor([[0.2, 0.3], [0.5, 0.0]])
        >>> progress_estimator_loss(c, torch.tensor([[1, 1], [1, 0]]), torch.tensor([1.0, 0.0])).item()
        0.25
    """
    if contributions.shape != step_mask.shape or contributions.dim() != 2:
        raise ValueError("contributions and step_mask must both be [B, S]")
    if outcomes.shape != contributions.shape[:1]:
        raise ValueError(f"outcomes must be [B], got {tuple(outcomes.shape)}")
    total = torch.where(step_mask.bool(), contributions, 0.0).sum(-1)
    return ((total - outcomes.detach()) ** 2).mean()


def prm_dpo_loss(
    step_log_ratios: torch.Tensor,
    step_mask: torch.Tensor,
    positive: torch.Tensor,
    group_ids: Sequence[Hashable],
    *,
    beta: float = 0.05,
    score: Literal["sum", "mean"] = "sum",
) -> torch.Tensor:
    """OPRL/iStar's trajectory-DPO loss for the implicit PRM.

    A trajectory's score is `β · Σ_t log[π_φ(a_t)/π_old(a_t)]` over its actions ("sum", the
    paper: the log-ratio of the trajectory's action probability) or `β · mean_t` ("mean", the
    released code). Within each group every positive trajectory is paired with every negative
    one, and the loss is `mean over pairs of −log σ(score⁺ − score⁻)`; 0 if no group has both.

    Args:
        step_log_ratios: [B, S] per action, the sum over its tokens of `log π_φ − log π_old`.
        step_mask: [B, S], 1 on real actions.
        positive: [B] bool, outcome above the threshold (τ⁺) or not (τ⁻).
        group_ids: the task group of each trajectory.
        beta: β (0.05).
        score: "sum" (paper) or "mean" (code).

    Example:
        >>> ratios = torch.tensor([[1.0, 3.0], [0.0, 0.0], [2.0, -2.0]])
        >>> mask = torch.tensor([[1, 1], [1, 0], [1, 1]])
        >>> pos = torch.tensor([True, True, False])
        >>> round(prm_dpo_loss(ratios, mask, pos, ["g"] * 3, beta=0.5).item(), 6)
        0.410038
    """
    _check_option(score, ("sum", "mean"), "score")
    if step_log_ratios.dim() != 2 or step_log_ratios.shape != step_mask.shape:
        raise ValueError("step_log_ratios and step_mask must both be [B, S]")
    if positive.shape != step_log_ratios.shape[:1] or len(group_ids) != positive.shape[0]:
        raise ValueError("positive and group_ids need one entry per trajectory")
    m = step_mask.bool()
    scores = torch.where(m, step_log_ratios, 0.0).sum(-1)
    if score == "mean":
        scores = scores / m.sum(-1).clamp(min=1)
    scores = beta * scores
    pos_idx: list[int] = []
    neg_idx: list[int] = []
    is_pos = positive.bool().tolist()
    members: dict[Hashable, list[int]] = {}
    for i, gid in enumerate(group_ids):
        members.setdefault(gid, []).append(i)
    for idx in members.values():
        for i in idx:
            for j in idx:
                if is_pos[i] and not is_pos[j]:
                    pos_idx.append(i)
                    neg_idx.append(j)
    if not pos_idx:
        return scores.sum() * 0.0
    margin = scores[pos_idx] - scores[neg_idx]
    return F.softplus(-margin).mean()  # −log σ(x) = softplus(−x)


def prm_ce_loss(
    token_log_ratios: torch.Tensor,
    loss_mask: torch.Tensor,
    outcomes: torch.Tensor,
    *,
    beta: float = 0.05,
) -> torch.Tensor:
    """PRIME's online PRM loss: cross-entropy of `σ(β Σ_t log[π_φ/π_ref])` against the outcome.

    `L = −[r_o log σ(r) + (1 − r_o) log(1 − σ(r))]`, `r = β Σ_t (log π_φ(y_t) − log π_ref(y_t))`
    over the generated tokens, averaged over the batch.

    Args:
        token_log_ratios: [B, L] `log π_φ − log π_ref` per token.
        loss_mask: [B, L], 1 on generated tokens.
        outcomes: [B] outcome labels in [0, 1].
        beta: β (0.05).

    Example:
        >>> ratios = torch.tensor([[1.0, 1.0], [-2.0, 0.0]])
        >>> mask, outcomes = torch.tensor([[1, 1], [1, 0]]), torch.tensor([1.0, 0.0])
        >>> round(prm_ce_loss(ratios, mask, outcomes, beta=0.5).item(), 6)
        0.313262
    """
    if token_log_ratios.dim() != 2 or token_log_ratios.shape != loss_mask.shape:
        raise ValueError("token_log_ratios and loss_mask must both be [B, L]")
    if outcomes.shape != token_log_ratios.shape[:1]:
        raise ValueError(f"outcomes must be [B], got {tuple(outcomes.shape)}")
    r = beta * torch.where(loss_mask.bool(), token_log_ratios, 0.0).sum(-1)
    target = outcomes.detach().to(r.dtype)
    return F.binary_cross_entropy_with_logits(r, target)
