"""Known-answer tests for what the trainer does with a batch before the update, without a model.

`assign_credit` on hand-built trajectories and rows (every expected number is worked out in the
comment beside it), G-RA gated `turn_rewards`, ARPO's `ReplayBuffer`, `TrainConfig` checks and
preset resolution, and `bootstrap_ci`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from turnwise.trainers.algorithms import (
    Batch,
    ReplayBuffer,
    assign_credit,
    group_members,
    turn_rewards,
)
from turnwise.trainers.config import ALGORITHMS, PRESETS, TrainConfig
from turnwise.trainers.loop import bootstrap_ci, rollout_metrics
from turnwise.trainers.sequences import Row
from turnwise.trajectory import Trajectory, Turn

approx = pytest.approx

KEYDOOR_WEIGHTS = {"outcome": 1.0, "progress": 0.5, "valid": 0.1}


# ---------------------------------------------------------------------- builders
def make_traj(
    rewards: Sequence[float],
    *,
    group: str | None = "g",
    task: str = "task-0",
    success: bool = False,
    keys: Sequence[str | None] | None = None,
    valid: Sequence[bool] | None = None,
    truncated: bool = False,
    **metadata: Any,
) -> Trajectory:
    """A trajectory whose turn `t` has reward `rewards[t]` (and state key `keys[t]` after it)."""
    turns = [
        Turn(
            t,
            f"obs {t}",
            f"act {t}",
            float(r),
            valid=True if valid is None else valid[t],
            state_key=None if keys is None else keys[t],
            token_ids=[10 + t, 20 + t],
        )
        for t, r in enumerate(rewards)
    ]
    return Trajectory(
        "turnwise/KeyDoor-v0",
        task,
        seed=7,
        turns=turns,
        group_id=group,
        success=success,
        terminated=not truncated,
        truncated=truncated,
        metadata=dict(metadata),
    )


def two_turn_row(trajectory: int) -> Row:
    """One context of two turns: 2 prompt tokens + 2 generated, then 1 prompt + 2 generated."""
    return Row(
        input_ids=[1, 2, 3, 4, 5, 6, 7],
        loss_mask=[0, 0, 1, 1, 0, 1, 1],
        turn_index=[0, 0, 0, 0, 1, 1, 1],
        trajectory=trajectory,
        turns=[0, 1],
    )


def one_turn_row(trajectory: int, turn: int) -> Row:
    """One context holding only turn `turn`: 2 prompt tokens then 2 generated."""
    return Row([1, 2, 3, 4], [0, 0, 1, 1], [turn] * 4, trajectory=trajectory, turns=[turn])


def on_tokens(a0: float, a1: float) -> list[float]:
    """What `two_turn_row` gets: turn advantages on generated tokens, 0 on prompt tokens."""
    return [0.0, 0.0, a0, a0, 0.0, a1, a1]


def credit(batch: Batch, algo: str, **options: Any) -> list[list[float]]:
    config = TrainConfig(algo=algo, **options).resolved()  # type: ignore[arg-type]
    return [a.tolist() for a in assign_credit(batch, config)]


# ---------------------------------------------------------------------- leave-one-out, group norm
def group_batch() -> Batch:
    """Group `a`: returns 1, 0, 0.5 (over two turns each); group `b`: 0.2 and 0.2."""
    trajs = [
        make_traj([0.0, 1.0], group="a", success=True),
        make_traj([0.0, 0.0], group="a"),
        make_traj([0.25, 0.25], group="a"),
        make_traj([0.1, 0.1], group="b", task="task-1"),
        make_traj([0.2, 0.0], group="b", task="task-1"),
    ]
    return Batch(trajs, [two_turn_row(i) for i in range(len(trajs))])


def test_leave_one_out_broadcasts_to_generated_tokens_only() -> None:
    # Group a: R = [1, 0, 0.5]; A_i = R_i − mean of the other two:
    #   1 − (0 + 0.5)/2 = 0.75, 0 − (1 + 0.5)/2 = −0.75, 0.5 − (1 + 0)/2 = 0.
    # Group b: equal returns (0.2, 0.2): exactly 0.
    out = credit(group_batch(), "rloo")
    assert out[0] == approx(on_tokens(0.75, 0.75))
    assert out[1] == approx(on_tokens(-0.75, -0.75))
    assert out[2] == approx(on_tokens(0.0, 0.0))
    assert out[3] == out[4] == [0.0] * 7


def test_group_norm_broadcasts_to_generated_tokens_only() -> None:
    # Group a: mean 0.5, deviations [0.5, −0.5, 0]; unbiased std √((0.25 + 0.25)/2) = 0.5:
    #   A = [0.5, −0.5, 0] / (0.5 + 1e-6) ≈ [1, −1, 0].
    out = credit(group_batch(), "grpo")
    scale = 0.5 / (0.5 + 1e-6)
    assert out[0] == approx(on_tokens(scale, scale))
    assert out[1] == approx(on_tokens(-scale, -scale))
    assert out[2] == approx(on_tokens(0.0, 0.0))
    assert out[3] == out[4] == [0.0] * 7
    # Population std: √(0.5/3) = 0.4082483, so A_0 = 0.5/0.4082483 = 1.2247449.
    pop = credit(group_batch(), "grpo", std="population")
    assert pop[0][2] == approx(0.5 / (math.sqrt(0.5 / 3) + 1e-6))


def test_every_row_of_a_trajectory_gets_its_advantage() -> None:
    """A trajectory split over two contexts (one row per turn) gets its advantage in both."""
    trajs = [make_traj([1.0, 0.0], group="a"), make_traj([0.0, 0.0], group="a")]
    rows = [one_turn_row(0, 0), one_turn_row(0, 1), one_turn_row(1, 0), one_turn_row(1, 1)]
    # LOO over K = 2: A = R − R_other = ±1.
    out = credit(Batch(trajs, rows), "rloo")
    assert out == [[0.0, 0.0, 1.0, 1.0]] * 2 + [[0.0, 0.0, -1.0, -1.0]] * 2


def test_group_of_a_trajectory_without_group_id_is_itself() -> None:
    trajs = [make_traj([1.0], group=None), make_traj([0.0], group=None)]
    batch = Batch(trajs, [one_turn_row(0, 0), one_turn_row(1, 0)])
    assert batch.group_ids() == [trajs[0].id, trajs[1].id]
    assert credit(batch, "rloo") == [[0.0] * 4, [0.0] * 4]  # two groups of one: no baseline
    assert group_members(["x", "y", "x"]) == {"x": [0, 2], "y": [1]}


def test_min_abs_advantage_zeroes_near_zero_rollouts() -> None:
    # Group a: R = [1, 0.995]: LOO A = ±0.005, below LOOP's 0.01: both zeroed.
    # Group b: R = [1, 0]: A = ±1, kept.
    trajs = [
        make_traj([1.0], group="a"),
        make_traj([0.995], group="a"),
        make_traj([1.0], group="b"),
        make_traj([0.0], group="b"),
    ]
    batch = Batch(trajs, [one_turn_row(i, 0) for i in range(4)])
    assert TrainConfig(algo="loop").resolved().min_abs_advantage == 0.01
    filtered = credit(batch, "loop")
    assert filtered == [[0.0] * 4, [0.0] * 4, [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, -1.0, -1.0]]
    unfiltered = credit(batch, "loop", min_abs_advantage=0.0)  # 0: no filter
    assert unfiltered[0] == approx([0.0, 0.0, 0.005, 0.005])
    assert unfiltered[1] == approx([0.0, 0.0, -0.005, -0.005])
    # The filter works on |A|, with group_norm too: a threshold above every |A| drops them all.
    assert credit(batch, "grpo", min_abs_advantage=5.0) == [[0.0] * 4] * 4


# ---------------------------------------------------------------------- GiGPO
def test_gigpo_gives_the_right_step_the_credit() -> None:
    """Both members walk from the start to the same state `s`; at `s` one takes the step that
    wins, the other a losing one. Their turn-1 steps share the anchor `s`, so the winning step
    gets the larger step advantage, and for the winner the decisive step gets more credit than
    the approach to it."""
    win = make_traj([0.0, 1.0], group="g", keys=["s", "won"], success=True)
    lose = make_traj([0.0, 0.0], group="g", keys=["s", "lost"])
    batch = Batch([win, lose], [two_turn_row(0), two_turn_row(1)])
    # std none, γ = 0.5, ω = 1:
    #   episode: R = [1, 0] → ±0.5;
    #   anchor <initial> (turn 0 of both): returns 0 + 0.5·1 = 0.5 and 0 → ±0.25;
    #   anchor s (turn 1 of both): returns 1 and 0 → ±0.5;
    #   combined: win [0.5 + 0.25, 0.5 + 0.5] = [0.75, 1.0], lose [−0.75, −1.0].
    out = credit(batch, "gigpo", gamma=0.5, std="none")
    assert out[0] == approx(on_tokens(0.75, 1.0))
    assert out[1] == approx(on_tokens(-0.75, -1.0))
    # The turn-1 step advantage (turn-1 tokens minus the episode part) is largest for the
    # winning step; the losing step at the same state gets the most blame.
    assert out[0][5] > out[0][2] > 0 > out[1][2] > out[1][5]


def test_gigpo_steps_from_states_nobody_else_visited_get_no_step_advantage() -> None:
    # Turn 1 acts from "a" in one member and "b" in the other: two anchor groups of one, so
    # only turn 0 (shared initial state) has a step advantage.
    # std none, γ = 1: episode ±0.5; turn 0 returns 1 and 0 → ±0.5; turn 1 → 0.
    win = make_traj([0.0, 1.0], group="g", keys=["a", "end"], success=True)
    lose = make_traj([0.0, 0.0], group="g", keys=["b", "end"])
    batch = Batch([win, lose], [two_turn_row(0), two_turn_row(1)])
    out = credit(batch, "gigpo", gamma=1.0, std="none")
    assert out[0] == approx(on_tokens(1.0, 0.5))
    assert out[1] == approx(on_tokens(-1.0, -0.5))


# ---------------------------------------------------------------------- SPA
def test_spa_credits_the_decisive_step() -> None:
    """The progress head says step 1 of the first trajectory did most of the work: its fused
    reward, hence (TD(0), zero values) its advantage, is the largest of the batch."""
    decisive = make_traj([0.0, 0.0, 1.0], group="g", success=True)
    other = make_traj([0.0, 0.0], group="g", valid=[True, False])
    rows = [
        Row(list(range(9)), [0, 1, 1, 0, 1, 1, 0, 1, 1], [0, 0, 0, 1, 1, 1, 2, 2, 2], trajectory=0),
        two_turn_row(1),
    ]
    batch = Batch([decisive, other], rows)
    batch.extra["progress"] = [np.array([0.1, 0.8, 0.1]), np.array([0.0, 0.0])]
    batch.turn_values = [np.zeros(3), np.zeros(2)]
    # Fused step rewards r = 1·ĉ + 0.5·valid: [0.6, 1.3, 0.6] and [0.5, 0.0].
    # γ = 1, λ = 0, V = 0: A_t = δ_t = r_t. Whitened over the batch's 5 turns: mean 0.6,
    # deviations [0, 0.7, 0, −0.1, −0.6], population std √(0.86/5) = 0.4147288.
    config = TrainConfig(algo="spa", gamma=1.0, lam=0.0).resolved()
    out = [a.tolist() for a in assign_credit(batch, config)]
    std = math.sqrt(0.86 / 5)
    a = [0.0, 0.7 / std, 0.0]
    b = [-0.1 / std, -0.6 / std]
    assert out[0] == approx([0.0, a[0], a[0], 0.0, a[1], a[1], 0.0, a[2], a[2]], abs=1e-6)
    assert out[1] == approx(on_tokens(*b), abs=1e-6)
    assert max(max(o) for o in out) == out[0][4]  # the decisive step's tokens
    # The critic's targets are the (unwhitened) returns: r_t + γ·0 with λ = 0.
    assert [r.tolist() for r in batch.turn_returns] == [approx([0.6, 1.3, 0.6]), [0.5, 0.0]]


def test_spa_with_its_preset_still_ranks_the_decisive_step_first() -> None:
    """SPA's own γ = 0.99, λ = 0.95, with a critic that already values the states before each
    step at the reward that follows them on average (0.6): the decisive step stands out."""
    traj = make_traj([0.0, 0.0, 1.0], group="g", success=True)
    row = Row(list(range(9)), [0, 1, 1, 0, 1, 1, 0, 1, 1], [0, 0, 0, 1, 1, 1, 2, 2, 2])
    batch = Batch([traj], [row])
    batch.extra["progress"] = [np.array([0.1, 0.8, 0.1])]
    batch.turn_values = [np.array([1.8, 1.2, 0.6])]
    # r = [0.6, 1.3, 0.6]; δ_2 = 0.6 − 0.6 = 0 (terminated), δ_1 = 1.3 + 0.99·0.6 − 1.2 = 0.694,
    # δ_0 = 0.6 + 0.99·1.2 − 1.8 = −0.012; A_2 = 0, A_1 = 0.694, A_0 = −0.012 + 0.9405·0.694.
    out = assign_credit(batch, TrainConfig(algo="spa").resolved())[0]
    turn_adv = [out[1], out[4], out[7]]
    assert int(np.argmax(turn_adv)) == 1


# ---------------------------------------------------------------------- G-RA gates
def term_traj(*terms: dict[str, float]) -> Trajectory:
    """A trajectory whose turns report these reward terms (KeyDoor's weights)."""
    turns = [
        Turn(
            t,
            "o",
            "a",
            sum(KEYDOOR_WEIGHTS[k] * v for k, v in values.items()),
            reward_terms=dict(values),
            reward_weights={k: KEYDOOR_WEIGHTS[k] for k in values},
        )
        for t, values in enumerate(terms)
    ]
    return Trajectory("turnwise/KeyDoor-v0", "t", turns=turns)


def test_turn_rewards_without_gates_are_the_turn_rewards() -> None:
    traj = term_traj({"outcome": 0.0, "progress": 0.5}, {"outcome": 1.0, "progress": 0.5})
    assert turn_rewards(traj).tolist() == [0.25, 1.25]


def test_turn_rewards_gates_in_priority_order() -> None:
    gates = [("outcome", 1.0), ("progress", 0.5)]
    # Both gates open: outcome total 1 ≥ 1, progress total 1 ≥ 0.5: every term, with its weight:
    #   turn 0: 0.5·0.5 = 0.25; turn 1: 1 + 0.5·0.5 + 0.1·(−1) = 1.15.
    both_open = term_traj(
        {"outcome": 0.0, "progress": 0.5, "valid": 0.0},
        {"outcome": 1.0, "progress": 0.5, "valid": -1.0},
    )
    assert turn_rewards(both_open, gates).tolist() == approx([0.25, 1.15])
    # Outcome closed (total 0 < 1): progress and valid count for nothing.
    closed = term_traj(
        {"outcome": 0.0, "progress": 0.5, "valid": -1.0},
        {"outcome": 0.0, "progress": 0.5, "valid": 0.0},
    )
    assert turn_rewards(closed, gates).tolist() == [0.0, 0.0]
    assert closed.total_reward == approx(0.4)  # what the ungated reward would have been
    # Outcome open, progress closed (total 0 < 0.5): progress counts (its own values, 0),
    # valid (below it) does not.
    second_closed = term_traj(
        {"outcome": 0.0, "progress": 0.0, "valid": -1.0},
        {"outcome": 1.0, "progress": 0.0, "valid": 0.0},
    )
    assert turn_rewards(second_closed, gates).tolist() == [0.0, 1.0]


def test_turn_rewards_unnamed_terms_come_last() -> None:
    # Gate on progress only; outcome is not named, so it comes after progress and is gated.
    # Progress total 0.25 < 0.5: outcome dropped, progress (weight 0.5) counts.
    low = term_traj({"progress": 0.25, "outcome": 0.0}, {"progress": 0.0, "outcome": 1.0})
    assert turn_rewards(low, [("progress", 0.5)]).tolist() == [0.125, 0.0]
    # Progress total 0.5 ≥ 0.5: outcome counts.
    high = term_traj({"progress": 0.25, "outcome": 0.0}, {"progress": 0.25, "outcome": 1.0})
    assert turn_rewards(high, [("progress", 0.5)]).tolist() == [0.125, 1.125]
    # A named term a trajectory never reported counts as 0 (so its gate opens only at <= 0).
    outcome_only = term_traj({"outcome": 0.0}, {"outcome": 1.0})
    assert turn_rewards(outcome_only, [("bonus", 1.0)]).tolist() == [0.0, 0.0]
    assert turn_rewards(outcome_only, [("bonus", 0.0)]).tolist() == [0.0, 1.0]


def test_turn_rewards_with_several_unnamed_terms() -> None:
    """KeyDoor reports outcome, progress and valid: gating on outcome alone leaves two terms
    unnamed, which count (with their weights) exactly when the outcome gate is open, whatever
    their own totals. (Until d061ea4 this raised "term 'progress' gates lower-priority terms
    but has no threshold", so `--reward-gate outcome>=1` crashed every KeyDoor run.)"""
    # Gate open: [0.5·0.5, 1 + 0.5·0.5 + 0.1·(−1)] = [0.25, 1.15]; progress's total (1) and
    # valid's (−1) do not gate each other.
    won = term_traj(
        {"outcome": 0.0, "progress": 0.5, "valid": 0.0},
        {"outcome": 1.0, "progress": 0.5, "valid": -1.0},
    )
    assert turn_rewards(won, [("outcome", 1.0)]).tolist() == approx([0.25, 1.15])
    # Gate closed: neither unnamed term counts.
    lost = term_traj(
        {"outcome": 0.0, "progress": 0.5, "valid": -1.0},
        {"outcome": 0.0, "progress": -0.5, "valid": 0.0},
    )
    assert turn_rewards(lost, [("outcome", 1.0)]).tolist() == [0.0, 0.0]
    # The gated run's reward metric works on such trajectories too.
    assert rollout_metrics([won, lost], [("outcome", 1.0)])["rollout/reward_mean"] == approx(0.7)


def test_credit_uses_gated_rewards() -> None:
    # Ungated returns: win 0.25 + (1 + 0.5·2) = 2.25, lose 0.25 + 0.25 = 0.5: LOO ±1.75.
    # Gated by outcome>=1, progress>=0: the winner keeps 2.25, the loser's progress is gated
    # away (its outcome total is 0): 0. LOO over 2: ±2.25.
    win = term_traj({"outcome": 0.0, "progress": 0.5}, {"outcome": 1.0, "progress": 2.0})
    lose = term_traj({"outcome": 0.0, "progress": 0.5}, {"outcome": 0.0, "progress": 0.5})
    for t in (win, lose):
        t.group_id = "g"
    batch = Batch([win, lose], [two_turn_row(0), two_turn_row(1)])
    assert credit(batch, "rloo")[0] == approx(on_tokens(1.75, 1.75))
    gated = credit(batch, "rloo", reward_gate="outcome>=1,progress>=0")
    assert gated[0] == approx(on_tokens(2.25, 2.25))
    assert gated[1] == approx(on_tokens(-2.25, -2.25))


# ---------------------------------------------------------------------- ARPO replay buffer
def test_replay_injects_only_into_all_failed_groups_of_a_task_with_a_success() -> None:
    buffer = ReplayBuffer(size=4, seed=0)
    earlier = make_traj([1.0], group="old", task="t1", success=True, member=0, extra="kept")
    buffer.add([earlier, make_traj([0.0], group="old", task="t1")])
    assert len(buffer) == 1 and list(buffer.buffers) == ["t1"]

    batch = [
        make_traj([0.0], group="a", task="t1", member=0),  # all failed, t1 stored: replaced
        make_traj([0.0], group="a", task="t1", member=1),
        make_traj([0.0], group="b", task="t1", member=0),  # has a success: kept as is
        make_traj([1.0], group="b", task="t1", success=True, member=1),
        make_traj([0.0], group="c", task="t2", member=0),  # all failed, nothing stored for t2
        make_traj([0.0], group="c", task="t2", member=1),
    ]
    before = list(batch)
    out, injected = buffer.inject(batch)
    assert injected == 1 and len(out) == len(batch)
    assert batch == before  # the input list is not modified
    clone = out[0]
    assert clone is not earlier and clone.id == earlier.id and clone.success
    assert clone.group_id == "a" and clone.task_id == "t1"
    assert clone.metadata == {"member": 0, "extra": "kept", "replayed": True}
    assert "replayed" not in earlier.metadata  # the stored one is untouched
    assert out[1:] == batch[1:]

    # add: the batch's own success is stored, the replayed clone is not stored again.
    buffer.add(out)
    assert [t.id for t in buffer.buffers["t1"]] == [earlier.id, batch[3].id]
    assert "t2" not in buffer.buffers


def test_replay_with_nothing_stored_changes_nothing() -> None:
    buffer = ReplayBuffer(size=2)
    batch = [make_traj([0.0], group="a"), make_traj([0.0], group="a")]
    assert buffer.inject(batch) == (batch, 0)
    assert len(buffer) == 0


def test_replay_keeps_the_newest_successes_per_task() -> None:
    buffer = ReplayBuffer(size=2)
    wins = [make_traj([1.0], task="t", success=True) for _ in range(3)]
    buffer.add(wins)
    assert [t.id for t in buffer.buffers["t"]] == [wins[1].id, wins[2].id]


def test_replay_state_round_trips_through_json() -> None:
    buffer = ReplayBuffer(size=3, seed=1)
    wins = [make_traj([1.0], task=f"t{i % 2}", success=True, member=i) for i in range(4)]
    buffer.add(wins)
    state = json.loads(json.dumps(buffer.state()))
    restored = ReplayBuffer(size=3, seed=1)
    restored.load(state)
    assert len(restored) == 4
    assert {k: [t.to_dict() for t in v] for k, v in restored.buffers.items()} == {
        k: [t.to_dict() for t in v] for k, v in buffer.buffers.items()
    }
    assert all(b.maxlen == 3 for b in restored.buffers.values())


def test_replay_state_carries_the_random_choice() -> None:
    """A resumed ARPO run replays the successes the uninterrupted run would have (the draw
    generator is part of the state since d061ea4)."""

    def all_failed() -> list[Trajectory]:
        return [make_traj([0.0], group="a", task="t"), make_traj([0.0], group="a", task="t")]

    buffer = ReplayBuffer(size=8, seed=0)
    buffer.add([make_traj([1.0], task="t", success=True) for _ in range(8)])
    for _ in range(5):  # earlier iterations' draws
        buffer.inject(all_failed())
    restored = ReplayBuffer(size=8, seed=0)  # what Trainer does on --resume
    restored.load(json.loads(json.dumps(buffer.state())))
    picks = [buffer.inject(all_failed())[0][0].id for _ in range(8)]
    again = [restored.inject(all_failed())[0][0].id for _ in range(8)]
    assert again == picks


# ---------------------------------------------------------------------- TrainConfig
def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'dqn'"):
        TrainConfig(algo="dqn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--group-size must be at least 2"):
        TrainConfig(group_size=1)
    with pytest.raises(ValueError, match="--iterations must be at least 1"):
        TrainConfig(iterations=0)
    with pytest.raises(ValueError, match="--tasks-per-iteration must be at least 1"):
        TrainConfig(tasks_per_iteration=0)
    with pytest.raises(ValueError, match="--eval-every"):
        TrainConfig(eval_every=-1)


@pytest.mark.parametrize(
    "gate", ["outcome", "outcome>=", ">=1", "outcome>=high", "outcome>=nan", "outcome>1"]
)
def test_config_rejects_malformed_reward_gates(gate: str) -> None:
    with pytest.raises(ValueError, match=r"--reward-gate: .* is not TERM>=THRESHOLD"):
        TrainConfig(reward_gate=gate)


def test_config_parses_reward_gates_in_order() -> None:
    config = TrainConfig(reward_gate=" outcome>=1, progress >= 0.5 ,")
    assert config.gates() == [("outcome", 1.0), ("progress", 0.5)]
    assert TrainConfig().gates() == []


def test_config_rejects_an_unknown_advantage() -> None:
    with pytest.raises(ValueError, match="advantage"):
        TrainConfig(advantage="bogus")


# Options that stay None after resolution only where None means "off".
MAY_STAY_NONE = {
    "dual_clip", "min_abs_advantage", "prm", "max_turns", "value_clip", "kl_target", "stop_kl",
    "filter_max",
}  # fmt: skip


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_resolved_fills_every_option_from_the_preset(algo: str) -> None:
    config = TrainConfig(algo=algo)  # type: ignore[arg-type]
    resolved = config.resolved()
    for key, value in PRESETS[algo].items():
        assert getattr(resolved, key) == value, key
    for f in dataclasses.fields(resolved):
        if getattr(resolved, f.name) is None:
            assert f.name in MAY_STAY_NONE, f"{algo}: {f.name} left unset"
    assert config.advantage is None  # the original is not modified
    assert resolved.resolved() == resolved


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_resolved_keeps_explicit_values(algo: str) -> None:
    explicit = {
        "advantage": "group_norm", "clip_low": 0.05, "clip_high": 0.5, "epochs": 3,
        "kl_coef": 0.123, "gamma": 0.5, "lam": 0.25, "critic": True, "replay": True,
        "minibatches": 7, "dual_clip": 2.5, "min_abs_advantage": 0.2,
    }  # fmt: skip
    resolved = TrainConfig(algo=algo, **explicit).resolved()  # type: ignore[arg-type]
    for key, value in explicit.items():
        assert getattr(resolved, key) == value, key
    # Falsy explicit values win too (0.0 is not "unset").
    # (Without a critic, PPO's and SPA's advantages cannot be computed: name another.)
    falsy = TrainConfig(
        algo=algo,
        kl_coef=0.0,
        critic=False,
        epochs=1,
        advantage="group_norm",  # type: ignore[arg-type]
    ).resolved()
    assert (falsy.kl_coef, falsy.critic, falsy.epochs) == (0.0, False, 1)


def test_advantages_refuse_a_missing_companion() -> None:
    with pytest.raises(ValueError, match="needs a critic"):
        TrainConfig(algo="ppo", critic=False)
    with pytest.raises(ValueError, match="--prm dpo"):
        TrainConfig(algo="grpo", advantage="oprl")


def test_resolved_presets_differ_where_the_algorithms_do() -> None:
    grpo = TrainConfig(algo="grpo", clip_high=0.28).resolved()
    assert (grpo.clip_low, grpo.clip_high, grpo.kl_coef, grpo.epochs) == (0.2, 0.28, 0.01, 1)
    arpo = TrainConfig(algo="arpo").resolved()
    assert arpo.replay is True and arpo.dual_clip == 3.0 and arpo.clip_high == 0.3
    assert TrainConfig(algo="ppo").resolved().critic is True
    assert TrainConfig(algo="loop").resolved().minibatches == 4  # the fallback
    assert TrainConfig(algo="rloo").resolved().minibatches == 1
    assert {TrainConfig(algo=a).resolved().prm for a in ("oprl", "prime")} == {"dpo", "ce"}  # type: ignore[arg-type]


# ---------------------------------------------------------------------- bootstrap_ci
def test_bootstrap_ci_properties() -> None:
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    low, high = bootstrap_ci([])
    assert math.isnan(low) and math.isnan(high)
    rng = np.random.default_rng(3)
    values = rng.random(50).tolist()
    low, high = bootstrap_ci(values)
    assert min(values) <= low < float(np.mean(values)) < high <= max(values)
    assert bootstrap_ci(values) == (low, high)  # seeded: the same interval every time
    # Same resamples (same seed): the 50% interval sits inside the 95% one.
    low50, high50 = bootstrap_ci(values, level=0.5)
    assert low <= low50 < high50 <= high
    assert bootstrap_ci(values, seed=1) != (low, high)
    # More data with the same spread: a narrower interval.
    wide = bootstrap_ci([0.0, 1.0] * 5)
    narrow = bootstrap_ci([0.0, 1.0] * 200)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert narrow[0] < 0.5 < narrow[1]
