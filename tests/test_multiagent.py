"""Multi-agent conventions: the `ParallelEnv` base, `DilemmaEnv`, and `check_parallel_env`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import pytest

import turnwise
from turnwise import UnknownTaskError
from turnwise.envs.dilemma import PAYOFFS, DilemmaEnv, parse_task
from turnwise.envs.dilemma.game import success_threshold
from turnwise.envs.dilemma.strategies import AlwaysDefect, RandomMoves, TitForTat
from turnwise.multiagent import JointStep, ParallelEnv
from turnwise.testing import EnvCheckError, check_parallel_env, run_parallel_checks

P0, P1 = "player_0", "player_1"


def play(env: DilemmaEnv, moves: Sequence[tuple[Any, Any]], task: str = "classic-5") -> list[Any]:
    env.reset(seed=0, options={"task_id": task})
    return [env.step({P0: a, P1: b}) for a, b in moves]


def failed(report: Any) -> set[str]:
    return {r.name for r in report.failures}


# ---------------------------------------------------------------------------- the dilemma
def test_payoffs_follow_the_matrix() -> None:
    env = DilemmaEnv()
    rounds = play(env, [("cooperate", "cooperate"), ("defect", "cooperate"), ("defect", "defect")])
    payoffs = [
        (r[4][P0]["reward_terms"]["payoff"], r[4][P1]["reward_terms"]["payoff"]) for r in rounds
    ]
    assert payoffs == [(3.0, 3.0), (5.0, 0.0), (1.0, 1.0)]
    assert rounds[-1][4][P1]["scores"] == {P0: 9.0, P1: 4.0}
    assert rounds[1][4][P1]["opponent_move"] == "defect"


def test_moves_are_case_insensitive_and_anything_else_forfeits() -> None:
    env = DilemmaEnv()
    ((obs, rewards, _, _, infos),) = play(env, [("  DEFECT\n", "dance")])
    assert infos[P0]["valid_action"] and not infos[P1]["valid_action"]
    # The forfeit counts as cooperating for the opponent, and scores S itself.
    assert infos[P0]["reward_terms"]["payoff"] == 5.0
    assert infos[P1]["reward_terms"] == {"payoff": 0.0, "valid": -1.0}
    assert rewards[P1] == pytest.approx(-0.1)
    assert "'dance' is not a move, so you forfeited the round" in obs[P1]["text"]
    assert "forfeited (counted as cooperating)" in obs[P0]["text"]


def test_a_forfeit_never_beats_a_legal_move() -> None:
    for variant in PAYOFFS.values():
        for theirs in ("cooperate", "defect"):
            forfeit = variant.sucker
            assert forfeit <= min(variant.of(mine, theirs) for mine in ("cooperate", "defect"))


def test_non_strings_and_missing_actions_are_the_agents_invalid_move_only() -> None:
    env = DilemmaEnv()
    env.reset(seed=0, options={"task_id": "donation-3"})
    obs, _, _, _, infos = env.step({P0: b"defect"})
    assert not infos[P0]["valid_action"] and not infos[P1]["valid_action"]
    assert obs[P0]["text"].startswith("Invalid action: an action is a string, got bytes.")
    assert obs[P1]["text"].startswith("Invalid action: no action was given.")
    assert infos[P0]["reward_terms"]["payoff"] == -1.0  # donation game: S = -1
    _, _, _, _, infos = env.step({P0: "x" * 5000, P1: "cooperate", "player_9": "defect"})
    assert not infos[P0]["valid_action"] and infos[P1]["valid_action"]
    assert "player_9" not in infos


def test_the_game_ends_after_its_rounds_with_success_per_seat() -> None:
    env = DilemmaEnv()
    results = play(env, [("cooperate", "defect")] * 3, task="classic-3")
    _, _, terminated, truncated, infos = results[-1]
    assert terminated == {P0: True, P1: True} and truncated == {P0: False, P1: False}
    assert env.agents == []
    assert infos[P0]["success"] is False and infos[P1]["success"] is True
    assert "success" not in results[0][4][P0]
    assert infos[P0]["admissible_actions"] == []
    assert "Game over after 3 rounds: you 0, your opponent 15." in results[-1][0][P0]["text"]


def test_max_turns_truncates_every_seat() -> None:
    env = DilemmaEnv(max_turns=2)
    results = play(env, [("cooperate", "cooperate")] * 2, task="classic-8")
    _, _, terminated, truncated, infos = results[-1]
    assert truncated == {P0: True, P1: True} and not any(terminated.values())
    assert infos[P0]["success"] is False and infos[P0]["truncation_reason"] == "max_turns"


def test_steps_after_the_end_are_invalid_and_do_not_raise() -> None:
    env = DilemmaEnv()
    play(env, [("defect", "defect")] * 3, task="classic-3")
    obs, rewards, terminated, _, infos = env.step({P0: "defect", P1: None})
    assert set(obs) == {P0, P1} and all(terminated.values())
    assert rewards == {P0: 0.0, P1: 0.0} and infos[P0]["reward_terms"] == {}
    assert not infos[P1]["valid_action"] and infos[P1]["episode_over"]
    assert infos[P0]["success"] is True  # (3 - 1) * P + S = 2 <= 3
    assert env.step({}) == ({}, {}, {}, {}, {})


def test_tit_for_tat_expert_is_never_exploited_beyond_one_round() -> None:
    for task_id in DilemmaEnv().tasks("train") + DilemmaEnv().tasks("test"):
        task = parse_task(task_id)
        for partner in (AlwaysDefect(), RandomMoves(seed=3), TitForTat()):
            env = DilemmaEnv(split="test")
            obs, infos = env.reset(options={"task_id": task_id})
            while env.agents:
                moves = {P0: env.expert_action(P0), P1: partner.act(obs[P1], infos[P1])}
                obs, _, _, _, infos = env.step(moves)
            assert infos[P0]["success"], (task_id, type(partner).__name__)
            assert infos[P0]["scores"][P0] >= success_threshold(task)
    assert env.expert_action(P0) is None  # the game is over


def test_two_experts_cooperate_throughout() -> None:
    env = DilemmaEnv()
    env.reset(options={"task_id": "classic-5"})
    while env.agents:
        *_, infos = env.step({a: env.expert_action(a) for a in env.agents})
    assert infos[P0]["scores"] == {P0: 15.0, P1: 15.0}


def test_tasks_splits_and_task_selection() -> None:
    env = DilemmaEnv()
    train, test = env.tasks("train"), env.tasks("test")
    assert train and test and not set(train) & set(test)
    assert any(t.startswith("lopsided") for t in test)
    _, infos = env.reset(seed=5)
    assert infos[P0]["task_id"] in train and infos[P0]["split"] == "train"
    _, infos = env.reset(options={"task_id": "lopsided-4"})
    assert infos[P1]["split"] == "test" and infos[P1]["max_turns"] == 20
    assert "Success: a total of at least 6" in infos[P1]["instruction"]
    with pytest.raises(UnknownTaskError, match=r"no task 'classic-7'\. Did you mean"):
        env.reset(options={"task_id": "classic-7"})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"rounds": 3})
    with pytest.raises(ValueError, match="unknown split"):
        DilemmaEnv(split="valid")


def test_state_keys_tell_seats_and_histories_apart() -> None:
    env = DilemmaEnv()
    _, infos = env.reset(options={"task_id": "classic-3"})
    assert infos[P0]["state_key"] == "classic-3|player_0|"
    *_, infos = env.step({P0: "cooperate", P1: "dance"})
    assert infos[P0]["state_key"] == "classic-3|player_0|CF"
    assert infos[P1]["state_key"] == "classic-3|player_1|FC"


def test_made_through_the_registry_and_kept_out_of_gymnasium() -> None:
    env = turnwise.make("turnwise/Dilemma-v0", split="test")
    assert isinstance(env, DilemmaEnv) and env.split == "test"
    assert "turnwise/Dilemma-v0" not in gymnasium.registry
    entry = turnwise.registry.entry("turnwise/Dilemma-v0")
    assert entry.multi_agent and entry.family == "social"


def test_base_class_rejects_misuse_loudly() -> None:
    env = DilemmaEnv()
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step({P0: "defect", P1: "defect"})
    env.reset()
    with pytest.raises(TypeError, match="takes a dict"):
        env.step(["defect", "defect"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distinct"):
        ParallelEnv(["a", "a"])
    assert env.observation_space(P0) is env.observation_space(P0)
    assert env.render() is not None and "[player_0]" in str(env.render())
    env.close()
    env.close()


# ---------------------------------------------------------------------------- the checker
def test_dilemma_passes_the_parallel_checker() -> None:
    for split in ("train", "test"):
        report = check_parallel_env(turnwise.make("turnwise/Dilemma-v0", split=split))
        assert report.ok and report["pettingzoo"].detail == "passed, no warnings"
        assert report["expert"].detail == "the expert solved 6 tasks (all seats)"


class Relay(ParallelEnv):
    """A strictly turn-based toy: the seat to move says `pass`; the waiting seat is ignored.

    Both seats succeed once the baton went round `n` times.
    """

    metadata = {**ParallelEnv.metadata, "name": "Relay"}  # noqa: RUF012

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(("a", "b"), max_turns=kwargs.pop("max_turns", 10), **kwargs)
        self.passes = self.goal = 0

    def tasks(self, split: str | None = None) -> Sequence[str]:
        return [f"{split or self.split}-{n}" for n in (2, 3)]

    def _reset_task(self, task_id: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        self.goal, self.passes = int(task_id.rsplit("-", 1)[1]), 0
        return {a: self._view(a) for a in self.possible_agents}, {
            a: {"instruction": "pass the baton"} for a in self.possible_agents
        }

    def holder(self) -> str:
        return self.possible_agents[self.passes % 2]

    def _view(self, agent: str) -> str:
        return "you hold the baton: say pass" if agent == self.holder() else "wait"

    def _step(self, moves: Mapping[str, str | None]) -> JointStep:
        holder = self.holder()
        valid = (moves.get(holder) or "").strip() == "pass"
        self.passes += valid
        done = self.passes >= self.goal
        return JointStep(
            observations={a: self._view(a) for a in self.agents},
            reward_terms={a: {"outcome": float(done)} for a in self.agents},
            valid={holder: valid},
            terminated=done,
            success=dict.fromkeys(self.agents, done),
        )

    def admissible_actions(self, agent: str) -> list[str]:
        return ["pass"] if agent == self.holder() else []

    def expert_action(self, agent: str) -> str | None:
        return "pass" if agent == self.holder() else ""


def test_a_turn_based_env_with_waiting_seats_passes() -> None:
    report = check_parallel_env(Relay())
    assert report.ok


def test_catches_a_parallel_env_that_raises_on_hostile_input() -> None:
    class Fragile(DilemmaEnv):
        def _step(self, moves: Mapping[str, str | None]) -> JointStep:
            for move in moves.values():
                if move is not None and "<" in move:
                    raise ValueError("markup in a move")
            return super()._step(moves)

    detail = run_parallel_checks(Fragile())["hostile_actions"].detail
    assert "html_script ('<script>alert(1)</script>') from player_0 raised ValueError" in detail
    assert "from player_1 raised ValueError" in detail


def test_catches_hostile_input_flagged_valid() -> None:
    class Gullible(DilemmaEnv):
        def _step(self, moves: Mapping[str, str | None]) -> JointStep:
            result = super()._step(moves)
            result.valid = dict.fromkeys(self.agents, True)
            return result

    report = run_parallel_checks(Gullible())
    assert "hostile_actions" in failed(report)
    assert "empty ('') from player_1 was not flagged" in report["hostile_actions"].detail
    assert run_parallel_checks(Gullible(), expert=False)["expert"].skipped


def test_catches_a_nondeterministic_parallel_env() -> None:
    games = itertools.count()

    class Moody(DilemmaEnv):
        def _reset_task(self, task_id: str) -> Any:
            observations, infos = super()._reset_task(task_id)
            mood = next(games)
            return {a: f"{o} (mood {mood})" for a, o in observations.items()}, infos

    report = run_parallel_checks(Moody())
    assert failed(report) == {"determinism"}
    assert "reset: observations" in report["determinism"].detail


@pytest.mark.parametrize("defect", ["bonus", "no_state_key"])
def test_catches_reward_not_the_weighted_sum_and_missing_keys(defect: str) -> None:
    class Sloppy(DilemmaEnv):
        def step(self, actions: dict[str, str]) -> Any:
            obs, rewards, terminated, truncated, infos = super().step(actions)
            for agent in rewards:
                if defect == "bonus":
                    rewards[agent] += 1.0
                else:
                    infos[agent].pop("state_key")
            return obs, rewards, terminated, truncated, infos

    detail = run_parallel_checks(Sloppy())["step_info"].detail
    if defect == "bonus":
        assert "player_0: reward" in detail and "is not the weighted sum" in detail
    else:
        assert "player_1: info is missing 'state_key'" in detail


def test_catches_a_game_that_ends_for_one_seat_only() -> None:
    class Lopsided(DilemmaEnv):
        def step(self, actions: dict[str, str]) -> Any:
            obs, rewards, terminated, truncated, infos = super().step(actions)
            if terminated.get(P1):
                terminated[P1] = False
                infos[P1].pop("success")
            return obs, rewards, terminated, truncated, infos

    detail = run_parallel_checks(Lopsided())["step_info"].detail
    assert "ended for some seats only" in detail


def test_catches_close_twice_and_failing_experts() -> None:
    class Brittle(DilemmaEnv):
        def close(self) -> None:
            if self._closed:
                raise RuntimeError("closed twice")
            super().close()

        def expert_action(self, agent: str) -> str | None:
            return "cooperate" if agent == P0 else "defect"

    report = run_parallel_checks(Brittle())
    assert failed(report) == {"close", "expert"}
    assert "without success for ['player_0']" in report["expert"].detail
    with pytest.raises(EnvCheckError, match="failed 2 of 11 checks"):
        check_parallel_env(Brittle())


def test_catches_spaces_that_are_rebuilt_on_every_call() -> None:
    class Rebuilds(DilemmaEnv):
        def action_space(self, agent: str) -> gymnasium.spaces.Space[Any]:
            return turnwise.spaces.String(4096)

    report = run_parallel_checks(Rebuilds())
    assert {"spaces", "pettingzoo"} <= failed(report)
    assert "return a new object each call" in report["spaces"].detail
