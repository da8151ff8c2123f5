"""Known-answer and gradient tests for `turnwise.trainers.losses`.

Expected numbers are worked out by hand (arithmetic in the comments). Section 11 conventions
pinned here: 1 (LOOP's clip bounds, both forms) and 6 (OPRL: trajectory score mean vs sum,
all success × failure pairs, action-level vs token-level ratio).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install 'turnwise[agents]')")

from turnwise.trainers.losses import (  # noqa: E402
    LOOP_CLIP,
    PPO_CLIP,
    ClipRange,
    aggregate,
    entropy_from_logits,
    kl_estimate,
    masked_mean,
    policy_loss,
    prm_ce_loss,
    prm_dpo_loss,
    progress_estimator_loss,
    value_loss,
)

approx = pytest.approx


def logp_for(ratios: list[list[float]]) -> torch.Tensor:
    """Log-probs whose ratio to old log-probs of 0 are `ratios`, as a leaf with grad."""
    return torch.log(torch.tensor(ratios, dtype=torch.float64)).requires_grad_(True)


def zeros_like(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x, requires_grad=False)


RATIOS = [[1.5, 0.5, 1.1, 0.7]]
ADV = torch.tensor([[1.0, 1.0, -1.0, -1.0]], dtype=torch.float64)
ONES = torch.ones(1, 4, dtype=torch.bool)


# ---------------------------------------------------------------------- clip bounds (11.1)
def test_clip_range_constructors() -> None:
    assert ClipRange.symmetric(0.2) == ClipRange(0.8, 1.2) == PPO_CLIP
    assert ClipRange.asymmetric(0.2, 0.3) == ClipRange(0.8, 1.3)
    assert ClipRange.loop(0.1).lower == approx(1 / 1.1)
    assert LOOP_CLIP.upper == approx(1.1)
    with pytest.raises(ValueError, match="lower <= 1 <= upper"):
        ClipRange(1.1, 1.2)
    with pytest.raises(ValueError, match="finite"):
        ClipRange(0.8, math.inf)


def test_symmetric_clip_known_answer_and_gradient() -> None:
    logp = logp_for(RATIOS)
    loss, metrics = policy_loss(logp, zeros_like(logp), ADV, ONES)
    # ρ 1.5, A 1: min(1.5, 1.2) = 1.2 → −1.2 (clipped)   ρ 0.5, A 1: min(0.5, 0.8) → −0.5
    # ρ 1.1, A −1: min(−1.1, −1.1) → 1.1                ρ 0.7, A −1: min(−0.7, −0.8) → 0.8 (clipped)
    # token mean: (−1.2 − 0.5 + 1.1 + 0.8)/4 = 0.05
    assert loss.item() == approx(0.05)
    assert metrics["loss/clip_frac"] == 0.5
    assert metrics["loss/ratio_mean"] == approx((1.5 + 0.5 + 1.1 + 0.7) / 4)
    assert metrics["loss/policy"] == approx(0.05)
    assert metrics["loss/tokens"] == 4.0
    # approx KL, k3 of the token ratios: mean((ρ − 1) − log ρ)
    k3 = sum(r - 1 - math.log(r) for r in RATIOS[0]) / 4
    assert metrics["loss/approx_kl"] == approx(k3)
    loss.backward()
    assert logp.grad is not None
    # d(−ρA/4)/d log ρ = −ρA/4 on unclipped tokens, 0 on clipped ones
    assert logp.grad[0].tolist() == approx([0.0, -0.5 / 4, 1.1 / 4, 0.0])


def test_asymmetric_clip_higher_arpo() -> None:
    logp = logp_for(RATIOS)
    loss, _ = policy_loss(logp, zeros_like(logp), ADV, ONES, clip=ClipRange.asymmetric(0.2, 0.3))
    # only token 0 changes: min(1.5, 1.3) → −1.3; (−1.3 − 0.5 + 1.1 + 0.8)/4 = 0.025
    assert loss.item() == approx(0.025)


def test_loop_code_bounds_vs_paper_bounds() -> None:
    """Section 11.1: LOOP's paper clips to [1 − ε, 1 + ε], its code to [1/(1 + ε), 1 + ε]."""
    logp = logp_for(RATIOS)
    code, _ = policy_loss(logp, zeros_like(logp), ADV, ONES, clip=ClipRange.loop(0.2))
    # token 3: ρ 0.7, A −1, lower bound 1/1.2 = 0.8333333: min(−0.7, −0.8333333) → 0.8333333
    # (−1.2 − 0.5 + 1.1 + 0.8333333)/4 = 0.0583333
    assert code.item() == approx(0.2333333 / 4, abs=1e-7)
    paper, _ = policy_loss(logp, zeros_like(logp), ADV, ONES, clip=ClipRange.symmetric(0.2))
    assert paper.item() == approx(0.05)


def test_symmetric_clip_equals_loops_g_epsilon_form() -> None:
    # LOOP Eq. 5: min(ρA, g_ε(A)) with g_ε(A) = A + ε|A|, here ε = 0.2
    gen = torch.Generator().manual_seed(0)
    ratio = torch.rand(1, 64, generator=gen, dtype=torch.float64) * 2
    adv = torch.randn(1, 64, generator=gen, dtype=torch.float64)
    loss, _ = policy_loss(torch.log(ratio), torch.zeros_like(ratio), adv, torch.ones(1, 64))
    g = adv + 0.2 * adv.abs()
    assert loss.item() == approx((-torch.minimum(ratio * adv, g)).mean().item())


# ---------------------------------------------------------------------- dual clip
def test_dual_clip_caps_negative_advantage_loss() -> None:
    logp = logp_for([[5.0, 2.0, 5.0]])
    adv = torch.tensor([[-1.0, -1.0, 1.0]], dtype=torch.float64)
    loss, metrics = policy_loss(logp, zeros_like(logp), adv, torch.ones(1, 3), dual_clip=3.0)
    # ρ 5, A −1: max(5, 1.2) = 5, capped at c·|A| = 3      ρ 2, A −1: max(2, 1.2) = 2 < 3 → 2
    # ρ 5, A +1: −min(5, 1.2) = −1.2 (ordinary clip; dual clip only touches A < 0)
    assert loss.item() == approx((3.0 + 2.0 - 1.2) / 3)
    assert metrics["loss/dual_clip_frac"] == approx(1 / 3)
    loss.backward()
    assert logp.grad is not None
    # capped token: constant 3 → no gradient; ρ 2 token: d(2·e^x)/dx / 3 = 2/3; clipped: 0
    assert logp.grad[0].tolist() == approx([0.0, 2.0 / 3, 0.0])
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        policy_loss(logp, zeros_like(logp), adv, torch.ones(1, 3), dual_clip=1.0)


# ---------------------------------------------------------------------- the loss mask
def test_masked_tokens_get_zero_gradient_even_when_padding_is_nan() -> None:
    logp = torch.tensor([[-1.0, -0.5, -2.0, -0.3]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-1.1, float("nan"), -2.0, float("nan")]], dtype=torch.float64)
    adv = torch.tensor([[1.0, float("nan"), -2.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 0, 1, 0]])
    for level in ("token", "turn", "sequence"):
        logp.grad = None
        turn_index = torch.tensor([[0, 0, 1, 1]])
        loss, metrics = policy_loss(logp, old, adv, mask, ratio_level=level, turn_index=turn_index)
        loss.backward()
        assert logp.grad is not None
        assert torch.isfinite(loss)
        assert logp.grad[0, 1].item() == 0.0 and logp.grad[0, 3].item() == 0.0, level
        assert logp.grad[0, 0].item() != 0.0, level
        assert metrics["loss/tokens"] == 2.0


def test_masked_tokens_do_not_change_the_loss() -> None:
    logp = logp_for([[1.1, 0.9]])
    mask = torch.tensor([[1, 0]])
    a, _ = policy_loss(logp, zeros_like(logp), torch.tensor([[1.0, 1.0]]), mask)
    b, _ = policy_loss(logp, zeros_like(logp), torch.tensor([[1.0, -100.0]]), mask)
    # only token 0 counts: −1.1·1
    assert a.item() == approx(-1.1) and b.item() == approx(-1.1)


def test_nan_advantage_on_a_generated_token_is_refused() -> None:
    logp = logp_for([[1.0]])
    with pytest.raises(ValueError, match="NaN"):
        policy_loss(logp, zeros_like(logp), torch.tensor([[float("nan")]]), torch.ones(1, 1))


# ---------------------------------------------------------------------- ratio granularity
def test_turn_level_ratio_is_the_geometric_mean_within_a_turn() -> None:
    """Section 11.6: OPRL's paper uses an action-level ratio, its code a token-level one."""
    logp = logp_for([[2.0, 0.5, 1.5]])
    turns = torch.tensor([[0, 0, 1]])
    adv = torch.ones(1, 3, dtype=torch.float64)
    token, _ = policy_loss(logp, zeros_like(logp), adv, torch.ones(1, 3))
    # token ratios 2, 0.5, 1.5 with A 1: −min(2, 1.2), −min(0.5, 0.8), −min(1.5, 1.2)
    assert token.item() == approx((-1.2 - 0.5 - 1.2) / 3)
    turn, metrics = policy_loss(
        logp, zeros_like(logp), adv, torch.ones(1, 3), ratio_level="turn", turn_index=turns
    )
    # turn 0: √(2·0.5) = 1 (unclipped) for both tokens; turn 1: 1.5 → 1.2
    assert turn.item() == approx((-1.0 - 1.0 - 1.2) / 3)
    assert metrics["loss/ratio_mean"] == approx((1 + 1 + 1.5) / 3)
    turn.backward()
    assert logp.grad is not None
    # turn 0 loss −2·exp((x0 + x1)/2)/3: each token gets −(1/3)·1·... = −1/3; turn 1 clipped: 0
    assert logp.grad[0].tolist() == approx([-1 / 3, -1 / 3, 0.0])


def test_turn_level_ratio_needs_turn_index() -> None:
    logp = logp_for([[1.0]])
    with pytest.raises(ValueError, match="needs turn_index"):
        policy_loss(logp, zeros_like(logp), torch.ones(1, 1), torch.ones(1, 1), ratio_level="turn")


def test_ratio_product_vs_geometric_mean() -> None:
    logp = logp_for([[1.1, 1.1]])
    adv = torch.ones(1, 2, dtype=torch.float64)
    kwargs = {"ratio_level": "sequence"}
    geo, _ = policy_loss(logp, zeros_like(logp), adv, torch.ones(1, 2), **kwargs)  # type: ignore[arg-type]
    # geometric mean 1.1 (inside the bounds): −1.1
    assert geo.item() == approx(-1.1)
    prod, m = policy_loss(
        logp,
        zeros_like(logp),
        adv,
        torch.ones(1, 2),
        ratio_reduce="product",
        **kwargs,  # type: ignore[arg-type]
    )
    # LOOP "bandit": product 1.21 → clipped to 1.2: −1.2, no gradient at all
    assert prod.item() == approx(-1.2)
    assert m["loss/clip_frac"] == 1.0


def test_sequence_level_ratio_is_per_row_and_ignores_padding() -> None:
    logp = torch.log(torch.tensor([[1.21, 1.0], [0.81, 1.0]], dtype=torch.float64))
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)  # [B] advantages broadcast per sequence
    loss, _ = policy_loss(logp, torch.zeros_like(logp), adv, mask, ratio_level="sequence")
    # row 0: √(1.21·1) = 1.1, A 1 → −1.1 on 2 tokens; row 1: 0.81 (one real token), A −1:
    # max(0.81, 0.8) = 0.81; token mean: (−1.1 − 1.1 + 0.81)/3
    assert loss.item() == approx((-2.2 + 0.81) / 3)


# ---------------------------------------------------------------------- aggregation
PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
AGG_MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_aggregations_known_answers() -> None:
    # token-mean (1 + 2 + 3 + 4)/4; seq-mean-token-mean (2 + 4)/2; seq-mean-token-sum (6 + 4)/2
    assert aggregate(PER_TOKEN, AGG_MASK, "token-mean").item() == 2.5
    assert aggregate(PER_TOKEN, AGG_MASK, "seq-mean-token-mean").item() == 3.0
    assert aggregate(PER_TOKEN, AGG_MASK, "seq-mean-token-sum").item() == 5.0


def test_aggregation_with_a_constant_denominator() -> None:
    # LOOP: sum of per-trajectory means over a fixed minibatch size 4: (2 + 4)/4
    assert aggregate(PER_TOKEN, AGG_MASK, "seq-mean-token-mean", denominator=4).item() == 1.5
    assert aggregate(PER_TOKEN, AGG_MASK, "token-mean", denominator=10).item() == 1.0
    # a row without tokens is not a sequence: (2 + 4)/2 even with an empty third row
    padded = torch.cat([PER_TOKEN, torch.full((1, 3), 7.0)])
    mask = torch.cat([AGG_MASK, torch.zeros(1, 3, dtype=torch.long)])
    assert aggregate(padded, mask, "seq-mean-token-mean").item() == 3.0
    with pytest.raises(ValueError, match="denominator must be positive"):
        aggregate(PER_TOKEN, AGG_MASK, denominator=0)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(PER_TOKEN, AGG_MASK, "sum")  # type: ignore[arg-type]


def test_no_tokens_gives_zero_loss() -> None:
    logp = logp_for([[1.3]])
    loss, metrics = policy_loss(logp, zeros_like(logp), torch.ones(1, 1), torch.zeros(1, 1))
    assert loss.item() == 0.0 and metrics["loss/tokens"] == 0.0


def test_policy_loss_uses_the_chosen_aggregation() -> None:
    logp = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)  # ratio 1: ℓ = −A
    adv = -PER_TOKEN.to(torch.float64)
    loss, _ = policy_loss(logp, torch.zeros(2, 3), adv, AGG_MASK, aggregation="seq-mean-token-sum")
    assert loss.item() == 5.0


# ---------------------------------------------------------------------- KL penalty
def test_kl_estimators() -> None:
    lp, ref = torch.tensor([-1.0]), torch.tensor([-1.5])
    # k1 = −1 − (−1.5) = 0.5; k3 = e^−0.5 − (−0.5) − 1 = 0.6065307 + 0.5 − 1 = 0.1065307
    assert kl_estimate(lp, ref, "k1").item() == approx(0.5)
    assert kl_estimate(lp, ref, "k3").item() == approx(0.1065307)
    # verl's clamp: log π_ref − log π_θ = 3 gives e³ − 3 − 1 = 16.0855, clamped to 10, and no
    # gradient there; at 2, e² − 2 − 1 = 4.389056 and d/d(log π_θ) = 1 − e² = −6.389056.
    logp = torch.tensor([-4.0, -3.0], requires_grad=True)
    k3 = kl_estimate(logp, torch.tensor([-1.0, -1.0]), "k3")
    assert k3.tolist() == approx([10.0, 4.389056])
    k3.sum().backward()
    assert logp.grad is not None and logp.grad.tolist() == approx([0.0, -6.389056])
    with pytest.raises(ValueError, match="unknown kl_estimator"):
        kl_estimate(lp, ref, "k2")  # type: ignore[arg-type]


def test_kl_penalty_is_off_by_default_and_added_per_token() -> None:
    logp = torch.tensor([[-1.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-1.5]], dtype=torch.float64)
    adv = torch.ones(1, 1, dtype=torch.float64)
    off, m = policy_loss(logp, logp.detach(), adv, torch.ones(1, 1), ref_logprobs=ref)
    # ratio 1, A 1: −1; KL reported but not added
    assert off.item() == approx(-1.0)
    assert m["loss/kl_ref"] == approx(0.1065307)
    on, _ = policy_loss(logp, logp.detach(), adv, torch.ones(1, 1), ref_logprobs=ref, kl_coef=0.1)
    assert on.item() == approx(-1.0 + 0.1 * 0.1065307)
    k1, _ = policy_loss(
        logp, logp.detach(), adv, torch.ones(1, 1), ref_logprobs=ref, kl_coef=0.1, kl_estimator="k1"
    )
    assert k1.item() == approx(-1.0 + 0.1 * 0.5)
    with pytest.raises(ValueError, match="needs ref_logprobs"):
        policy_loss(logp, logp.detach(), adv, torch.ones(1, 1), kl_coef=0.1)


# ---------------------------------------------------------------------- value loss, entropy
def test_value_loss_plain_and_clipped() -> None:
    v = torch.tensor([0.5, 1.0], requires_grad=True)
    old, g = torch.tensor([0.4, 0.4]), torch.tensor([1.0, 0.0])
    plain, _ = value_loss(v, old, g, torch.ones(2))
    # ½·mean(0.25, 1) = 0.3125
    assert plain.item() == approx(0.3125)
    # clip 0.2: token 0 V_clip = 0.5 (same); token 1 V_clip = 0.6, (0.6)² = 0.36 < 1 → max is 1
    clipped, m = value_loss(v, old, g, torch.ones(2), clip_eps=0.2)
    assert clipped.item() == approx(0.3125) and m["loss/value_clip_frac"] == 0.0


def test_value_clip_stops_the_gradient_when_the_clipped_error_is_larger() -> None:
    v = torch.tensor([1.0], requires_grad=True)
    # V_clip = 0.4 + 0.2 = 0.6: (0.6 − 2)² = 1.96 > (1 − 2)² = 1 → ½·1.96, constant in V
    loss, m = value_loss(v, torch.tensor([0.4]), torch.tensor([2.0]), torch.ones(1), clip_eps=0.2)
    assert loss.item() == approx(0.98)
    assert m["loss/value_clip_frac"] == 1.0
    loss.backward()
    assert v.grad is not None and v.grad.item() == 0.0


def test_value_loss_mask_even_with_nan_padding() -> None:
    v = torch.tensor([0.0, 5.0], requires_grad=True)
    nan = float("nan")
    for clip_eps in (None, 0.2):
        v.grad = None
        loss, _ = value_loss(
            v,
            torch.tensor([0.0, nan]),
            torch.tensor([1.0, nan]),
            torch.tensor([1, 0]),
            clip_eps=clip_eps,
        )
        # ½·(0 − 1)² on the one real value
        assert loss.item() == approx(0.5)
        loss.backward()
        assert v.grad is not None and v.grad.tolist() == [-1.0, 0.0]


def test_kl_penalty_ignores_nan_padding() -> None:
    logp = torch.tensor([[-1.0, -0.5]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-1.5, float("nan")]], dtype=torch.float64)
    mask = torch.tensor([[1, 0]])
    loss, m = policy_loss(
        logp, logp.detach(), torch.ones(1, 2), mask, ref_logprobs=ref, kl_coef=0.1
    )
    loss.backward()
    assert logp.grad is not None
    assert torch.isfinite(loss) and m["loss/kl_ref"] == approx(0.1065307)
    assert logp.grad[0, 1].item() == 0.0


def test_entropy_and_masked_mean() -> None:
    # uniform over 2: ln 2; p = [0.25, 0.75]: 0.25·ln 4 + 0.75·ln(4/3) = 0.3465736 + 0.2157616
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    assert entropy_from_logits(logits).tolist() == approx([math.log(2), 0.5623352])
    assert masked_mean(torch.tensor([1.0, 3.0, 100.0]), torch.tensor([1, 1, 0])).item() == 2.0
    assert masked_mean(torch.tensor([1.0]), torch.tensor([0])).item() == 0.0


# ---------------------------------------------------------------------- reward-model losses
def test_progress_estimator_loss() -> None:
    c = torch.tensor([[0.2, 0.3], [0.5, 100.0]], requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0]])
    # sums 0.5 and 0.5 vs outcomes 1 and 0: mean(0.25, 0.25)
    loss = progress_estimator_loss(c, mask, torch.tensor([1.0, 0.0]))
    assert loss.item() == approx(0.25)
    loss.backward()
    assert c.grad is not None and c.grad[1, 1].item() == 0.0


DPO_RATIOS = torch.tensor([[1.0, 3.0], [0.0, 0.0], [2.0, -2.0]])
DPO_MASK = torch.tensor([[1, 1], [1, 0], [1, 1]])
DPO_POS = torch.tensor([True, True, False])


def test_prm_dpo_loss_sum_vs_mean_score() -> None:
    """Section 11.6: the paper scores a trajectory by the sum over actions, the code by the mean."""
    # β 0.5, sum: scores 0.5·4 = 2, 0, 0.5·0 = 0; pairs (0, 2), (1, 2):
    # −log σ(2) = ln(1 + e^−2) = 0.1269280, −log σ(0) = ln 2 = 0.6931472 → mean 0.4100376
    loss = prm_dpo_loss(DPO_RATIOS, DPO_MASK, DPO_POS, ["g"] * 3, beta=0.5)
    assert loss.item() == approx(0.4100376, abs=1e-6)
    # mean: scores 0.5·2 = 1, 0, 0: ln(1 + e^−1) = 0.3132617, ln 2 → mean 0.5032044
    loss = prm_dpo_loss(DPO_RATIOS, DPO_MASK, DPO_POS, ["g"] * 3, beta=0.5, score="mean")
    assert loss.item() == approx(0.5032044, abs=1e-6)


def test_prm_dpo_pairs_every_success_with_every_failure_within_groups_only() -> None:
    # groups: {0, 2} has one pair (0, 2); {1} has none → only −log σ(2)
    loss = prm_dpo_loss(DPO_RATIOS, DPO_MASK, DPO_POS, ["a", "b", "a"], beta=0.5)
    assert loss.item() == approx(0.1269280, abs=1e-6)
    # no group with both kinds: 0, and still differentiable
    ratios = DPO_RATIOS.clone().requires_grad_(True)
    loss = prm_dpo_loss(ratios, DPO_MASK, torch.tensor([True, True, True]), ["g"] * 3)
    assert loss.item() == 0.0
    loss.backward()
    assert ratios.grad is not None


def test_prm_ce_loss() -> None:
    ratios = torch.tensor([[1.0, 1.0], [-2.0, 50.0]])
    mask, outcomes = torch.tensor([[1, 1], [1, 0]]), torch.tensor([1.0, 0.0])
    # β 0.5: r = [1, −1]; −log σ(1) = 0.3132617 and −log(1 − σ(−1)) = −log σ(1) → mean 0.3132617
    assert prm_ce_loss(ratios, mask, outcomes, beta=0.5).item() == approx(0.3132617, abs=1e-6)


# ---------------------------------------------------------------------- input checks
def test_shape_and_option_errors() -> None:
    logp = logp_for([[1.0, 1.0]])
    with pytest.raises(ValueError, match="old_logprobs must be"):
        policy_loss(logp, torch.zeros(1, 3), torch.ones(1, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="advantages must be"):
        policy_loss(logp, zeros_like(logp), torch.ones(2, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="unknown ratio_level"):
        policy_loss(logp, zeros_like(logp), torch.ones(1, 2), torch.ones(1, 2), ratio_level="step")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be \\[B, L\\]"):
        policy_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), torch.ones(2))
