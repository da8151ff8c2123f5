"""Known-answer tests for `turnwise.trainers.credit`.

Every expected number is worked out by hand from the formulas in
shared/reference/algorithms.md; the arithmetic sits in the comment beside it. Each convention of
the reference's section 11 that lives in credit assignment is pinned here (3: GRPO std; 4: GiGPO
episode statistics; 5: SPA legacy flags; 6: OPRL step statistics; 7: PRIME leave-one-out).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from turnwise.trainers.credit import (
    advantages_by_group,
    anchor_keys,
    discounted_returns,
    filter_low_advantage,
    gae,
    gated_step_rewards,
    gigpo_advantages,
    group_indices,
    group_normalized_advantages,
    igpo_advantages,
    igpo_information_gain,
    implicit_process_rewards,
    leave_one_out_advantages,
    leave_one_out_baseline,
    oprl_advantages,
    place_on_last_token,
    prime_advantages,
    reward_terms_table,
    spa_legacy_progress,
    spa_step_rewards,
    token_advantages,
    turn_sums,
)
from turnwise.trajectory import Trajectory, Turn

approx = pytest.approx


def lists(arrays: list[np.ndarray]) -> list[list[float]]:
    return [a.tolist() for a in arrays]


# ---------------------------------------------------------------------- leave-one-out
def test_leave_one_out_known_answer() -> None:
    r = [1.0, 0.0, 0.0, 0.5]
    # sum 1.5, K = 4: baselines (1.5 − R_i)/3 = [1/6, 1/2, 1/2, 1/3]
    assert leave_one_out_baseline(r).tolist() == approx([1 / 6, 0.5, 0.5, 1 / 3])
    # A = R − b = [5/6, −1/2, −1/2, 1/6]
    assert leave_one_out_advantages(r).tolist() == approx([5 / 6, -0.5, -0.5, 1 / 6])


def test_leave_one_out_is_k_over_k_minus_1_times_mean_centred() -> None:
    r = [1.0, 0.0, 0.0, 0.5]
    # mean 0.375; R − mean = [0.625, −0.375, −0.375, 0.125]; × 4/3 = [5/6, −1/2, −1/2, 1/6]
    centred = group_normalized_advantages(r, std="none")
    assert centred.tolist() == approx([0.625, -0.375, -0.375, 0.125])
    assert (4 / 3 * centred).tolist() == approx(leave_one_out_advantages(r).tolist())


def test_leave_one_out_group_of_one_or_of_equal_rewards_is_exactly_zero() -> None:
    assert leave_one_out_advantages([0.7]).tolist() == [0.0]
    # (0.3 − 0.1)/2 is 0.10000000000000002 in floats: still exactly 0
    assert leave_one_out_advantages([0.1, 0.1, 0.1]).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("bad", [[1.0, float("nan")], [float("inf")], []])
def test_rewards_must_be_finite_and_non_empty(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        leave_one_out_advantages(bad)
    with pytest.raises(ValueError):
        group_normalized_advantages(bad)


# ---------------------------------------------------------------------- GRPO (section 11.3)
def test_grpo_std_unbiased_vs_population_arpo_injected_success() -> None:
    """T-ARPO-1: one injected success in a group of 8 zeros-but-one: 2.47 (N−1) vs 2.65 (N)."""
    r = [1.0] + [0.0] * 7
    # mean 1/8; deviations 0.875 and −0.125 (×7); sum of squares 0.765625 + 7·0.015625 = 0.875
    # unbiased std √(0.875/7) = √0.125 = 0.3535534; population std √(0.875/8) = 0.3307189
    unbiased = group_normalized_advantages(r)  # the default is "unbiased"
    assert unbiased[0] == approx(0.875 / (0.3535534 + 1e-6), rel=1e-6)  # 2.4748668
    assert round(float(unbiased[0]), 2) == 2.47
    assert unbiased[1] == approx(-0.125 / (0.3535534 + 1e-6), rel=1e-6)
    population = group_normalized_advantages(r, std="population")
    assert population[0] == approx(0.875 / (0.3307189 + 1e-6), rel=1e-6)  # 2.6457433
    assert round(float(population[0]), 2) == 2.65
    assert population[1] == approx(-0.125 / (0.3307189 + 1e-6), rel=1e-6)


def test_grpo_eps_is_added_to_the_std() -> None:
    # [1, 0]: mean 0.5, unbiased std 0.7071068; 0.5 / (0.7071068 + 0.5) = 0.4142136
    assert group_normalized_advantages([1.0, 0.0], eps=0.5).tolist() == approx(
        [0.4142136, -0.4142136]
    )


def test_grpo_std_none_is_mean_centred() -> None:
    assert group_normalized_advantages([3.0, 1.0, 2.0], std="none").tolist() == [1.0, -1.0, 0.0]


@pytest.mark.parametrize("std", ["unbiased", "population", "none"])
def test_grpo_zero_std_and_singleton_groups_are_exactly_zero(std: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "degrees of freedom" or divide-by-zero warning
        assert group_normalized_advantages([0.1, 0.1, 0.1], std=std, eps=0.0).tolist() == [0.0] * 3  # type: ignore[arg-type]
        assert group_normalized_advantages([5.0], std=std, eps=0.0).tolist() == [0.0]  # type: ignore[arg-type]


def test_grpo_unknown_std_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown std 'sample'"):
        group_normalized_advantages([1.0, 0.0], std="sample")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- grouping
def test_advantages_by_group_normalises_within_each_group() -> None:
    r = [1.0, 3.0, 0.0, 2.0, 5.0]
    g = ["a", "b", "a", "b", "c"]
    # a: [1, 0] → ±0.5/0.7071068; b: [3, 2] → ±0.5/0.7071068; c: alone → 0
    z = 0.5 / (0.7071068 + 1e-6)
    assert advantages_by_group(r, g).tolist() == approx([z, z, -z, -z, 0.0], rel=1e-6)
    # leave-one-out: a: 1 − 0, 0 − 1; b: 3 − 2, 2 − 3; c: 0
    assert advantages_by_group(r, g, estimator="leave_one_out").tolist() == [
        1.0,
        1.0,
        -1.0,
        -1.0,
        0.0,
    ]


def test_group_ids_must_be_present_and_match() -> None:
    assert {k: v.tolist() for k, v in group_indices([2, 1, 2]).items()} == {2: [0, 2], 1: [1]}
    with pytest.raises(ValueError, match="no group id"):
        advantages_by_group([1.0, 0.0], ["a", None])
    with pytest.raises(ValueError, match="lengths differ"):
        advantages_by_group([1.0, 0.0], ["a"])
    with pytest.raises(ValueError, match="unknown estimator"):
        advantages_by_group([1.0], ["a"], estimator="rloo")  # type: ignore[arg-type]


def test_filter_low_advantage_is_loops_rule() -> None:
    # keep |A| >= 0.01
    assert filter_low_advantage([0.01, -0.0099, 0.0, -0.3]).tolist() == [True, False, False, True]


# ---------------------------------------------------------------------- returns and GAE
def test_discounted_returns_with_and_without_bootstrap() -> None:
    # γ = 0.5: G2 = 2, G1 = 0 + 0.5·2 = 1, G0 = 1 + 0.5·1 = 1.5
    assert discounted_returns([1.0, 0.0, 2.0], gamma=0.5).tolist() == [1.5, 1.0, 2.0]
    # bootstrap 4: G2 = 2 + 0.5·4 = 4, G1 = 0.5·4 = 2, G0 = 1 + 0.5·2 = 2
    assert discounted_returns([1.0, 0.0, 2.0], gamma=0.5, bootstrap_value=4.0).tolist() == [
        2.0,
        2.0,
        4.0,
    ]


def test_gae_terminated() -> None:
    # γ 0.9, λ 0.5, V(s_2) = 0: δ1 = 1 − 0.8 = 0.2, A1 = 0.2;
    # δ0 = 0 + 0.9·0.8 − 0.5 = 0.22, A0 = 0.22 + 0.45·0.2 = 0.31; returns = A + V = [0.81, 1.0]
    adv, ret = gae([0.0, 1.0], [0.5, 0.8], gamma=0.9, lam=0.5, terminated=True)
    assert adv.tolist() == approx([0.31, 0.2])
    assert ret.tolist() == approx([0.81, 1.0])


def test_gae_truncated_bootstraps_from_the_last_state() -> None:
    # V(s_2) = 2: δ1 = 1 + 0.9·2 − 0.8 = 2.0, A1 = 2.0; A0 = 0.22 + 0.45·2.0 = 1.12
    adv, ret = gae(
        [0.0, 1.0], [0.5, 0.8], gamma=0.9, lam=0.5, terminated=False, bootstrap_value=2.0
    )
    assert adv.tolist() == approx([1.12, 2.0])
    assert ret.tolist() == approx([1.62, 2.8])


def test_gae_lambda_limits() -> None:
    # λ = 1: A = Monte-Carlo return − V = [0.9 − 0.5, 1 − 0.8]; λ = 0: A = δ = [0.22, 0.2]
    assert gae([0.0, 1.0], [0.5, 0.8], gamma=0.9, lam=1.0)[0].tolist() == approx([0.4, 0.2])
    assert gae([0.0, 1.0], [0.5, 0.8], gamma=0.9, lam=0.0)[0].tolist() == approx([0.22, 0.2])


def test_gae_terminal_and_truncated_must_be_explicit() -> None:
    with pytest.raises(ValueError, match="terminated episode has no next state"):
        gae([1.0], [0.0], terminated=True, bootstrap_value=1.0)
    with pytest.raises(ValueError, match="needs bootstrap_value"):
        gae([1.0], [0.0], terminated=False)
    with pytest.raises(ValueError, match="lengths differ"):
        gae([1.0, 2.0], [0.0])


# ---------------------------------------------------------------------- GiGPO (section 11.4)
REWARDS = [[0.0, 1.0], [0.0, 0.0, 0.0]]
KEYS = [["s0", "s1"], ["s0", "s2", "s1"]]


def test_gigpo_known_answer_without_std() -> None:
    adv = gigpo_advantages(REWARDS, KEYS, gamma=0.5, std="none")
    # R = [1, 0], mean 0.5: A^E = [0.5, −0.5]
    assert adv.episode.tolist() == [0.5, -0.5]
    # step returns (γ 0.5): A: [0 + 0.5·1, 1] = [0.5, 1]; B: [0, 0, 0]
    # group s0 = {A0: 0.5, B0: 0} mean 0.25 → [0.25, −0.25]; s1 = {A1: 1, B2: 0} → [0.5, −0.5];
    # s2 = {B1} alone → 0
    assert lists(adv.step) == [[0.25, 0.5], [-0.25, 0.0, -0.5]]
    # combined, ω = 1: A: [0.75, 1.0]; B: [−0.75, −0.5, −1.0]
    assert lists(adv.combined) == [[0.75, 1.0], [-0.75, -0.5, -1.0]]


def test_gigpo_omega_weights_the_step_level() -> None:
    adv = gigpo_advantages(REWARDS, KEYS, gamma=0.5, std="none", omega=0.5)
    # A: [0.5 + 0.125, 0.5 + 0.25]; B: [−0.5 − 0.125, −0.5, −0.5 − 0.25]
    assert lists(adv.combined) == [[0.625, 0.75], [-0.625, -0.5, -0.75]]


def test_gigpo_with_unbiased_std() -> None:
    adv = gigpo_advantages(REWARDS, KEYS, gamma=0.5)
    # episode [1, 0]: ±0.5/0.7071068; s0 [0.5, 0]: ±0.25/0.3535534; s1 [1, 0]: ±0.5/0.7071068;
    # each ≈ ±0.7071058 (eps 1e-6); A: [1.4142, 1.4142]; B: [−1.4142, −0.7071, −1.4142]
    z = 0.7071068
    assert lists(adv.combined)[0] == approx([2 * z, 2 * z], abs=1e-5)
    assert lists(adv.combined)[1] == approx([-2 * z, -z, -2 * z], abs=1e-5)


def test_gigpo_episode_stats_trajectory_vs_step_rows() -> None:
    """Section 11.4: per trajectory (paper) vs per step row (newer verl-agent)."""
    rewards = [[1.0], [0.0, 0.0, 0.0]]
    keys = [["a"], ["b", "c", "d"]]
    # per trajectory: [1, 0] → ±0.5/0.7071068 = ±0.7071
    per_traj = gigpo_advantages(rewards, keys).episode
    assert per_traj.tolist() == approx([0.7071058, -0.7071058], abs=1e-6)
    # per step row: rows [1, 0, 0, 0], mean 0.25, unbiased std √((0.5625 + 3·0.0625)/3) = 0.5
    # → (1 − 0.25)/0.5 = 1.5 and (0 − 0.25)/0.5 = −0.5
    per_row = gigpo_advantages(rewards, keys, episode_stats="step").episode
    assert per_row.tolist() == approx([1.5, -0.5], abs=1e-5)
    per_row_none = gigpo_advantages(rewards, keys, episode_stats="step", std="none").episode
    assert per_row_none.tolist() == [0.75, -0.25]


def test_gigpo_episode_rewards_override_the_sum_of_step_rewards() -> None:
    adv = gigpo_advantages(REWARDS, KEYS, episode_rewards=[10.0, 0.0], gamma=0.5, std="none")
    assert adv.episode.tolist() == [5.0, -5.0]


def test_gigpo_similarity_groups_near_duplicate_states() -> None:
    rewards = [[1.0], [0.0]]
    keys = [["Kitchen"], ["kitchen"]]
    exact = gigpo_advantages(rewards, keys, std="none")
    assert lists(exact.step) == [[0.0], [0.0]]  # different keys: two singleton groups

    def same_ignoring_case(a: str, b: str) -> float:
        return float(a.lower() == b.lower())

    similar = gigpo_advantages(rewards, keys, std="none", similarity=same_ignoring_case)
    assert lists(similar.step) == [[0.5], [-0.5]]  # one group [1, 0], mean 0.5


def test_gigpo_similarity_is_greedy_against_each_groups_first_member() -> None:
    # similarity 1 − |a − b|, threshold 0.9: 0.0 opens group 1; 0.08 joins it (0.92);
    # 0.16 vs 0.0 is 0.84 < 0.9 → opens group 2 (even though it is 0.92 from 0.08)
    def similarity(a: float, b: float) -> float:
        return 1.0 - abs(a - b)

    adv = gigpo_advantages(
        [[1.0], [0.0], [5.0]], [[0.0], [0.08], [0.16]], std="none", similarity=similarity
    )
    # group 1 returns [1, 0] → [0.5, −0.5]; group 2 = {5} alone → 0
    assert lists(adv.step) == [[0.5], [-0.5], [0.0]]


def test_gigpo_none_keys_never_group() -> None:
    adv = gigpo_advantages([[1.0], [0.0]], [[None], [None]], std="none")
    assert lists(adv.step) == [[0.0], [0.0]]


def test_anchor_keys_shift_state_after_to_state_before() -> None:
    turns = [
        Turn(0, "o", "a", 0.0, state_key="s1"),
        Turn(1, "o", "b", 0.0, state_key="s2"),
        Turn(2, "o", "c", 1.0, state_key="s3"),
    ]
    assert anchor_keys(turns) == ["<initial>", "s1", "s2"]
    assert anchor_keys(turns, initial_key="start") == ["start", "s1", "s2"]
    assert anchor_keys([]) == []


def test_gigpo_input_errors() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        gigpo_advantages([[1.0, 0.0]], [["a"]])
    with pytest.raises(ValueError, match="empty group"):
        gigpo_advantages([], [])
    with pytest.raises(ValueError, match="unknown episode_stats"):
        gigpo_advantages([[1.0]], [["a"]], episode_stats="rows")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- SPA (section 11.5)
def test_spa_fused_reward() -> None:
    # α·ĉ + β·1[valid], α 1, β 0.5: [0.2 + 0.5, 0.3 + 0, 0.5 + 0.5]
    assert spa_step_rewards([0.2, 0.3, 0.5], [True, False, True]).tolist() == approx(
        [0.7, 0.3, 1.0]
    )
    # α 2, β 1: [0.4 + 1, 0.6, 1.0 + 1]
    assert spa_step_rewards(
        [0.2, 0.3, 0.5], [True, False, True], progress_weight=2.0, grounding_weight=1.0
    ).tolist() == approx([1.4, 0.6, 2.0])


def test_spa_last_step_grounded_reproduces_the_released_code() -> None:
    # last step invalid: 0.5 + 0 by default; forced valid: 0.5 + 0.5
    assert spa_step_rewards([0.1, 0.5], [True, False]).tolist() == approx([0.6, 0.5])
    assert spa_step_rewards([0.1, 0.5], [True, False], last_step_grounded=True).tolist() == approx(
        [0.6, 1.0]
    )


def test_spa_legacy_position_weight_zeroes_the_last_step() -> None:
    # L = 3: multipliers L − k − 1 = [2, 1, 0] on [0.7, 0.3, 1.0]
    r = spa_step_rewards([0.2, 0.3, 0.5], [True, False, True], legacy_position_weight=True)
    assert r.tolist() == approx([1.4, 0.3, 0.0])


def test_spa_legacy_progress_is_leave_one_out_outcome_per_step() -> None:
    # outcomes [1, 0, 0.5]: 1 − 0.25, 0 − 0.75, 0.5 − 0.5
    assert lists(spa_legacy_progress([1.0, 0.0, 0.5], [2, 1, 3])) == [
        [0.75, 0.75],
        [-0.75],
        [0.0, 0.0, 0.0],
    ]


def test_spa_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        spa_step_rewards([0.1, 0.2], [True])


# ---------------------------------------------------------------------- token helpers
MASK = [0, 1, 1, 0, 1]
TURNS = [0, 0, 0, 1, 1]


def test_token_advantages_broadcast_turn_values_to_generated_tokens() -> None:
    assert token_advantages([1.0, -2.0], TURNS, MASK).tolist() == [0.0, 1.0, 1.0, 0.0, -2.0]
    assert token_advantages(0.5, TURNS, MASK).tolist() == [0.0, 0.5, 0.5, 0.0, 0.5]
    assert token_advantages([1.0, -2.0], TURNS, [True, True, False, False, True]).tolist() == [
        1.0,
        1.0,
        0.0,
        0.0,
        -2.0,
    ]


def test_token_advantages_input_errors() -> None:
    with pytest.raises(ValueError, match="only 1 turn advantages"):
        token_advantages([1.0], TURNS, MASK)
    with pytest.raises(ValueError, match="only 0/1"):
        token_advantages([1.0, 2.0], TURNS, [0, 2, 1, 0, 1])
    with pytest.raises(ValueError, match="lengths differ"):
        token_advantages([1.0, 2.0], TURNS, [0, 1])
    with pytest.raises(ValueError, match="finite"):
        token_advantages(float("nan"), TURNS, MASK)


def test_token_advantages_on_a_tokenized_trajectory() -> None:
    pytest.importorskip("transformers", reason="turnwise.agents needs transformers")
    from turnwise.agents.tokens import trajectory_tensors

    traj = Trajectory(
        "env",
        "t",
        turns=[
            Turn(
                0, "o", "a", 0.0, prompt_token_ids=[1, 2], token_ids=[3, 4], logprobs=[-0.5, -0.1]
            ),
            Turn(1, "o", "b", 1.0, prompt_token_ids=[5], token_ids=[6], logprobs=[-0.2]),
        ],
    )
    t = trajectory_tensors(traj)
    assert token_advantages([0.3, 0.9], t.turn_index, t.loss_mask).tolist() == [
        0.0,
        0.0,
        0.3,
        0.3,
        0.0,
        0.9,
    ]


def test_turn_sums_and_place_on_last_token() -> None:
    # turn 0's generated tokens hold 0.5 + 0.25; turn 1's 1.0 (masked 9s ignored)
    assert turn_sums([9.0, 0.5, 0.25, 9.0, 1.0], TURNS, MASK).tolist() == [0.75, 1.0]
    assert turn_sums([9.0, 0.5, 0.25, 9.0, 1.0], TURNS, MASK, num_turns=3).tolist() == [
        0.75,
        1.0,
        0.0,
    ]
    assert place_on_last_token([0.5, 2.0], TURNS, MASK).tolist() == [0.0, 0.0, 0.5, 0.0, 2.0]


# ---------------------------------------------------------------------- implicit process rewards
LP = [0.0, -1.0, -0.5, 0.0, -0.2]
REF = [0.0, -1.5, -0.3, 0.0, -0.6]


def test_implicit_rewards_per_token() -> None:
    # β = 0.1 × (log π − log π_ref) on generated tokens: 0.1·0.5, 0.1·(−0.2), 0.1·0.4
    r = implicit_process_rewards(LP, REF, MASK, TURNS, beta=0.1, granularity="token")
    assert r.tolist() == approx([0.0, 0.05, -0.02, 0.0, 0.04])


def test_implicit_rewards_per_turn_sum_on_last_token() -> None:
    # turn 0: 0.05 − 0.02 = 0.03 on its last generated token (index 2); turn 1: 0.04 at index 4
    r = implicit_process_rewards(LP, REF, MASK, TURNS, beta=0.1)
    assert r.tolist() == approx([0.0, 0.0, 0.03, 0.0, 0.04])
    per_token = implicit_process_rewards(LP, REF, MASK, TURNS, beta=0.1, granularity="token")
    assert turn_sums(per_token, TURNS, MASK).tolist() == approx([0.03, 0.04])


def test_implicit_rewards_input_errors() -> None:
    with pytest.raises(ValueError, match="needs turn_index"):
        implicit_process_rewards(LP, REF, MASK)
    with pytest.raises(ValueError, match="NaN"):
        implicit_process_rewards([float("nan")] * 5, REF, MASK, TURNS)
    with pytest.raises(ValueError, match="unknown granularity"):
        implicit_process_rewards(LP, REF, MASK, TURNS, granularity="step")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- OPRL (section 11.6)
OUTCOMES = [1.0, 0.0]
STEPS = [[0.2, 0.4], [-0.2]]


def test_oprl_leave_one_out_all_steps() -> None:
    # A^E: K = 2, 2·(R − 0.5) = [1, −1]
    # A^S: pool [0.2, 0.4, −0.2], mean 0.4/3, K = 3: 1.5·(x − 0.13333) = [0.1, 0.4, −0.5]
    adv = oprl_advantages(OUTCOMES, STEPS, estimator="leave_one_out")
    assert lists(adv)[0] == approx([1.1, 1.4])
    assert lists(adv)[1] == approx([-1.5])


def test_oprl_leave_one_out_one_step_row_per_trajectory() -> None:
    # the code's pool: first steps [0.2, −0.2], mean 0, K = 2: 2·x = [0.4, 0.8 | −0.4]
    adv = oprl_advantages(
        OUTCOMES, STEPS, estimator="leave_one_out", step_stats="one_per_trajectory"
    )
    assert lists(adv)[0] == approx([1.4, 1.8])
    assert lists(adv)[1] == approx([-1.4])


def test_oprl_group_norm_is_the_default() -> None:
    # A^E: [1, 0] → ±0.5/0.7071068 = ±0.7071058
    # A^S: pool [0.2, 0.4, −0.2], mean 0.1333333, deviations [0.0666667, 0.2666667, −0.3333333],
    #   sum of squares 0.1866667, unbiased std √0.0933333 = 0.3055050
    #   → [0.2182178, 0.8728716, −1.0910895]
    adv = oprl_advantages(OUTCOMES, STEPS)
    assert lists(adv)[0] == approx([0.7071058 + 0.2182178, 0.7071058 + 0.8728716], abs=1e-5)
    assert lists(adv)[1] == approx([-0.7071058 - 1.0910895], abs=1e-5)
    half = oprl_advantages(OUTCOMES, STEPS, alpha=0.5)
    assert lists(half)[1] == approx([-0.7071058 - 0.5 * 1.0910895], abs=1e-5)


def test_oprl_pool_without_spread_is_only_centred() -> None:
    # one trajectory: A^E = 0; code pool = [0.3] (no spread) → x − 0.3 = [0, 0.2]
    adv = oprl_advantages([1.0], [[0.3, 0.5]], step_stats="one_per_trajectory")
    assert lists(adv) == [approx([0.0, 0.2])]


# ---------------------------------------------------------------------- PRIME (section 11.7)
PROCESS = [[0.1, 0.3], [-0.2]]  # token means r̄ = [0.2, −0.2]


def test_prime_leave_one_out_excluding_self_paper() -> None:
    # process: traj 0 − r̄_1 → [0.1 + 0.2, 0.3 + 0.2] = [0.3, 0.5]; traj 1 − r̄_0 → [−0.4]
    # returns (γ 1): [0.8, 0.5], [−0.4]; outcome LOO: 1 − 0 = 1, 0 − 1 = −1 on every token
    adv = prime_advantages(PROCESS, [1.0, 0.0], ["g", "g"], whiten=False)
    assert lists(adv)[0] == approx([1.8, 1.5])
    assert lists(adv)[1] == approx([-1.4])


def test_prime_leave_one_out_including_self_code() -> None:
    # r·K/(K−1) − Σ_j r̄_j/(K−1) = 2r − 0: traj 0 → [0.2, 0.6] (returns [0.8, 0.6]); traj 1 → [−0.4]
    adv = prime_advantages(PROCESS, [1.0, 0.0], ["g", "g"], loo="include_self", whiten=False)
    assert lists(adv)[0] == approx([1.8, 1.6])
    assert lists(adv)[1] == approx([-1.4])


def test_prime_whitening_over_the_batch() -> None:
    # [1.8, 1.5, −1.4]: mean 0.6333333, unbiased var 6.2466667/2 = 3.1233333, std 1.7672955
    # → [0.6601424, 0.4903915, −1.1505339]
    adv = prime_advantages(PROCESS, [1.0, 0.0], ["g", "g"])
    assert np.concatenate(adv).tolist() == approx([0.6601424, 0.4903915, -1.1505339], abs=1e-6)


def test_prime_discounts_and_coefficients() -> None:
    # γ 0.5 on the process source: [0.3 + 0.5·0.5, 0.5] = [0.55, 0.5], + outcome 1
    adv = prime_advantages(PROCESS, [1.0, 0.0], ["g", "g"], gamma=0.5, whiten=False)
    assert lists(adv)[0] == approx([1.55, 1.5])
    # γ_outcome 0.5: the outcome sits on the last token, one step back it is halved
    adv = prime_advantages(PROCESS, [1.0, 0.0], ["g", "g"], gamma_outcome=0.5, whiten=False)
    assert lists(adv)[0] == approx([0.8 + 0.5, 0.5 + 1.0])
    # verl's recipe weighs both sources by 5
    adv = prime_advantages(
        PROCESS, [1.0, 0.0], ["g", "g"], process_coef=5.0, outcome_coef=5.0, whiten=False
    )
    assert lists(adv)[0] == approx([9.0, 7.5])


def test_prime_groups_of_one_get_zero_and_groups_stay_apart() -> None:
    adv = prime_advantages(
        [[0.1, 0.3], [0.5], [-0.2]], [1.0, 1.0, 0.0], ["g", "h", "g"], whiten=False
    )
    assert lists(adv) == [approx([1.8, 1.5]), [0.0], approx([-1.4])]


# ---------------------------------------------------------------------- G-RA
PRIORITY = ["outcome", "format", "tool"]
THRESHOLDS = {"outcome": 0.5, "format": 0.0}


def test_gating_all_gates_open() -> None:
    terms = {"outcome": [0, 0, 1.0], "format": [0.1, 0.1, 0.1], "tool": [0.2, 0, 0.2]}
    # outcome 1 ≥ 0.5 → format counts; format 0.3 ≥ 0 → tool counts: [0.3, 0.1, 1.3]
    assert gated_step_rewards(terms, PRIORITY, THRESHOLDS).tolist() == approx([0.3, 0.1, 1.3])


def test_gating_outcome_below_threshold_zeroes_every_lower_term() -> None:
    terms = {"outcome": [0, 0, 0.4], "format": [0.1, 0.1, 0.1], "tool": [0.2, 0, 0.2]}
    assert gated_step_rewards(terms, PRIORITY, THRESHOLDS).tolist() == approx([0.0, 0.0, 0.4])


def test_gating_middle_term_failing_closes_only_the_ones_below_it() -> None:
    terms = {"outcome": [0, 0, 1.0], "format": [-0.1, 0, 0], "tool": [0.2, 0, 0.2]}
    # format counts (−0.1) but its total −0.1 < 0 closes the tool gate: [−0.1, 0, 1]
    assert gated_step_rewards(terms, PRIORITY, THRESHOLDS).tolist() == approx([-0.1, 0.0, 1.0])


def test_gating_comparison_at_the_threshold() -> None:
    terms = {"outcome": [0.0, 0.5], "format": [0.1, 0.1]}
    both = ["outcome", "format"]
    # 0.5 ≥ 0.5 opens: [0.1, 0.6]; 0.5 > 0.5 does not: [0, 0.5]
    assert gated_step_rewards(terms, both, {"outcome": 0.5}).tolist() == approx([0.1, 0.6])
    assert gated_step_rewards(terms, both, {"outcome": 0.5}, comparison=">").tolist() == approx(
        [0.0, 0.5]
    )


def test_gating_two_channel_form_and_weights() -> None:
    # R(τ) = r_high + 1[r_high ≥ Δ]·Σ r_low, with weight 2 on the low channel: 1 + 2·0.3
    terms = {"outcome": [0.0, 0.0, 1.0], "format": [0.1, 0.1, 0.1]}
    r = gated_step_rewards(terms, ["outcome", "format"], {"outcome": 1.0}, weights={"format": 2.0})
    assert r.sum() == approx(1.6)
    assert r.tolist() == approx([0.2, 0.2, 1.2])


def test_gating_input_errors() -> None:
    with pytest.raises(ValueError, match="no threshold"):
        gated_step_rewards({"outcome": [1.0], "format": [0.0]}, ["outcome", "format"], {})
    with pytest.raises(ValueError, match="no place in priority"):
        gated_step_rewards({"outcome": [1.0], "style": [0.0]}, ["outcome"], {})
    with pytest.raises(ValueError, match="different lengths"):
        gated_step_rewards(
            {"outcome": [1.0], "format": [0.0, 1.0]}, ["outcome", "format"], {"outcome": 0}
        )


def test_reward_terms_table_from_turns() -> None:
    turns = [
        Turn(0, "o", "a", 0.1, reward_terms={"valid": 0.1}),
        Turn(1, "o", "b", 1.0, reward_terms={"outcome": 1.0, "valid": 0.0}),
    ]
    table = reward_terms_table(turns)
    assert {k: v.tolist() for k, v in table.items()} == {"valid": [0.1, 0.0], "outcome": [0.0, 1.0]}
    # a term the table lacks but the priority names counts as 0
    assert gated_step_rewards(
        table, ["outcome", "valid", "format"], {"outcome": 1, "valid": 0}
    ).tolist() == approx([0.1, 1.0])


# ---------------------------------------------------------------------- IGPO
def test_information_gain_logprob_and_prob() -> None:
    # log-prob beliefs [−2, −1, −0.5]: gains [1, 0.5]
    assert igpo_information_gain([-2.0, -1.0, -0.5]).tolist() == [1.0, 0.5]
    # probabilities: e^−1 − e^−2 = 0.3678794 − 0.1353353 = 0.2325442
    assert igpo_information_gain([-2.0, -1.0], kind="prob").tolist() == approx([0.2325442])
    assert igpo_information_gain([-1.0]).tolist() == []  # one turn: no gain, outcome only


def test_igpo_separate_normalisation_paper_default() -> None:
    gains, outcomes = [[1.0, 0.5], [-1.0]], [1.0, 0.0]
    # IG pool [1, 0.5, −1]: mean 1/6, deviations [5/6, 1/3, −7/6], population var 2.1666667/3
    # = 0.7222222, std 0.8498366 → [0.9805807, 0.3922323, −1.3728129]
    # outcomes [1, 0]: mean 0.5, population std 0.5 → [1, −1]
    # returns (γ 1): A: [0.98058 + 0.39223 + 1, 0.39223 + 1, 1]; B: [−1.37281 − 1, −1]
    adv = igpo_advantages(gains, outcomes)
    assert lists(adv)[0] == approx([2.3728130, 1.3922323, 1.0], abs=1e-5)
    assert lists(adv)[1] == approx([-2.3728129, -1.0], abs=1e-5)


def test_igpo_joint_normalisation_code_default() -> None:
    # one pool [1, 0.5, 1 | −1, 0]: mean 0.3, deviations [0.7, 0.2, 0.7, −1.3, −0.3],
    # population var 2.8/5 = 0.56, std 0.7483315 → [0.9354143, 0.2672612, 0.9354143,
    # −1.7371974, −0.4008919]; returns: A [2.1380899, 1.2026756, 0.9354143], B [−2.1380893, −0.4008919]
    adv = igpo_advantages([[1.0, 0.5], [-1.0]], [1.0, 0.0], normalization="joint")
    assert lists(adv)[0] == approx([2.1380899, 1.2026756, 0.9354143], abs=1e-5)
    assert lists(adv)[1] == approx([-2.1380893, -0.4008919], abs=1e-5)


def test_igpo_discount_and_group_of_one() -> None:
    # γ 0.5 on separate-normalised turn rewards [0.9805807, 0.3922323, 1]:
    # [0.9805807 + 0.5·(0.3922323 + 0.5·1), 0.3922323 + 0.5·1, 1] = [1.4266969, 0.8922323, 1]
    adv = igpo_advantages([[1.0, 0.5], [-1.0]], [1.0, 0.0], gamma=0.5)
    assert lists(adv)[0] == approx([1.4266969, 0.8922323, 1.0], abs=1e-5)
    # a group of one: every pool has one value → 0 (the code's std of 1 gives the same)
    assert lists(igpo_advantages([[0.5]], [1.0])) == [[0.0, 0.0]]


def test_igpo_unbiased_std_option() -> None:
    # outcomes [1, 0] with unbiased std 0.7071068 → ±0.7071058 on the final turn
    adv = igpo_advantages([[], []], [1.0, 0.0], std="unbiased")
    assert lists(adv) == [approx([0.7071058], abs=1e-6), approx([-0.7071058], abs=1e-6)]
