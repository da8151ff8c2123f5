"""`DilemmaEnv`: the iterated prisoner's dilemma between `player_0` and `player_1`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from turnwise.envs.dilemma.game import (
    COOPERATE,
    DEFECT,
    MOVES,
    SPLITS,
    Task,
    parse_move,
    parse_task,
    success_threshold,
    tit_for_tat,
)
from turnwise.multiagent import JointStep, ParallelEnv

__all__ = ["DilemmaEnv"]

PLAYERS = ("player_0", "player_1")
# What a forfeited round looks like in a player's history and state key.
_FORFEIT = "forfeit"


class DilemmaEnv(ParallelEnv):
    """The iterated prisoner's dilemma: each round both players answer `cooperate` or `defect`.

    * **Tasks** are `"<variant>-<rounds>"` (`classic-5`, `donation-8`, ...; see
      `turnwise.envs.dilemma.game`): train and test share no (payoff matrix, rounds) pair, and
      the `lopsided` matrix is only in test. The number of rounds is announced.
    * **Moves** are `cooperate` or `defect`, in any case, surrounding whitespace ignored. Anything
      else, and any action the base rejects (not a string, too long, missing), **forfeits the
      round**: the player gets the sucker's payoff S, its move counts as `cooperate` for the
      opponent, and `valid_action` is False. A forfeit never scores more than a legal move.
    * **Rewards**: the term `payoff` is the round's payoff (plus the base's `valid` term).
    * **Success** (per player, at the end): a total of at least (rounds − 1)·P + S, i.e. not
      exploited beyond one round (`game.success_threshold`).
    * **Expert**: tit-for-tat (cooperate first, then copy the opponent), which always succeeds;
      two experts cooperate throughout.
    * Deterministic: there is no randomness at all; the seed only picks the task.

    Example:
        >>> env = DilemmaEnv()
        >>> _, infos = env.reset(options={"task_id": "classic-3"})
        >>> for _ in range(3):
        ...     moves = {a: env.expert_action(a) for a in env.agents}
        ...     obs, rewards, terminated, truncated, infos = env.step(moves)
        >>> rewards["player_0"], terminated["player_0"], infos["player_0"]["success"]
        (3.0, True, True)
        >>> print(obs["player_1"]["text"])
        Round 3 of 3: you cooperated; your opponent cooperated. You get 3, they get 3.
        Score: you 9, your opponent 9.
        Game over after 3 rounds: you 9, your opponent 9.
    """

    metadata: ClassVar[dict[str, Any]] = {
        **ParallelEnv.metadata,
        "name": "turnwise/Dilemma-v0",
    }
    #: Scripted partners by name (`turnwise.matches.load_seat_agent`).
    partners: ClassVar[dict[str, str]] = {
        name: f"turnwise.envs.dilemma.strategies:{cls}"
        for name, cls in [
            ("always-cooperate", "AlwaysCooperate"),
            ("always-defect", "AlwaysDefect"),
            ("random-moves", "RandomMoves"),
            ("tit-for-tat", "TitForTat"),
        ]
    }

    def __init__(
        self,
        *,
        split: str = "train",
        max_turns: int = 20,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            PLAYERS,
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self._task: Task | None = None
        # Per player: the moves it played ("forfeit" for an invalid one), and its total payoff.
        self._played: dict[str, list[str]] = {}
        self._score: dict[str, float] = {}

    def tasks(self, split: str | None = None) -> Sequence[str]:
        split = split or self.split
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; {self.env_id} has {self.splits}")
        return SPLITS[split]

    def _reset_task(
        self, task_id: str
    ) -> tuple[Mapping[str, str], Mapping[str, Mapping[str, Any]]]:
        task = self._task = parse_task(task_id)
        self._played = {p: [] for p in PLAYERS}
        self._score = dict.fromkeys(PLAYERS, 0.0)
        instruction = (
            f"Play {task.rounds} rounds of the prisoner's dilemma and score as much as you can. "
            f"Each round, answer 'cooperate' or 'defect'. Success: a total of at least "
            f"{success_threshold(task):g}."
        )
        observations = {p: self._intro(task, p) for p in PLAYERS}
        return observations, {p: {"instruction": instruction} for p in PLAYERS}

    def _step(self, moves: Mapping[str, str | None]) -> JointStep:
        task = self._require_task()
        parsed = {p: parse_move(m) if m is not None else None for p, m in moves.items()}
        # A forfeit counts as cooperating for the opponent's payoff, and scores S itself.
        effective = {p: parsed[p] or COOPERATE for p in PLAYERS}
        payoff = {}
        for me, them in (PLAYERS, PLAYERS[::-1]):
            mine = parsed[me]
            payoff[me] = task.payoffs.of(mine, effective[them]) if mine else task.payoffs.sucker
            self._score[me] += payoff[me]
            self._played[me].append(mine or _FORFEIT)
        over = len(self._played[PLAYERS[0]]) >= task.rounds
        observations = {
            me: self._report(task, me, them, moves[me], payoff, over)
            for me, them in (PLAYERS, PLAYERS[::-1])
        }
        threshold = success_threshold(task)
        return JointStep(
            observations=observations,
            reward_terms={p: {"payoff": payoff[p]} for p in PLAYERS},
            valid={p: parsed[p] is not None for p in PLAYERS},
            terminated=over,
            success={p: self._score[p] >= threshold for p in PLAYERS},
            infos={
                me: {
                    "move": self._played[me][-1],
                    "opponent_move": self._played[them][-1],
                    "scores": dict(self._score),
                }
                for me, them in (PLAYERS, PLAYERS[::-1])
            },
        )

    def admissible_actions(self, agent: str) -> list[str] | None:
        return list(MOVES)

    def state_key(self, agent: str) -> str:
        # The whole state from `agent`'s seat: task, seat, and both move histories.
        other = PLAYERS[1 - PLAYERS.index(agent)]
        history = ",".join(
            f"{a[0].upper()}{b[0].upper()}"
            for a, b in zip(self._played.get(agent, []), self._played.get(other, []), strict=False)
        )
        return f"{self.task_id}|{agent}|{history}"

    def expert_action(self, agent: str) -> str | None:
        if not self.agents:
            return None
        other = PLAYERS[1 - PLAYERS.index(agent)]
        # What the opponent effectively played: a forfeit counted as cooperating.
        theirs = [COOPERATE if m == _FORFEIT else m for m in self._played.get(other, [])]
        return tit_for_tat(theirs)

    # ------------------------------------------------------------------ text
    def _require_task(self) -> Task:
        if self._task is None:
            raise RuntimeError("no game in progress: call reset()")
        return self._task

    @staticmethod
    def _intro(task: Task, player: str) -> str:
        return (
            f"Iterated prisoner's dilemma ({task.payoffs.name} payoffs), {task.rounds} rounds. "
            "Each round you and your opponent choose at the same time to cooperate or defect:\n"
            f"{task.payoffs.describe()}\n"
            "Any answer other than 'cooperate' or 'defect' forfeits the round: you get "
            f"{task.payoffs.sucker:g}, and it counts as cooperating for your opponent.\n"
            f"You are {player}. Round 1 of {task.rounds}: cooperate or defect?"
        )

    def _report(
        self,
        task: Task,
        me: str,
        them: str,
        action: str | None,
        payoff: Mapping[str, float],
        over: bool,
    ) -> str:
        played = len(self._played[me])
        mine, theirs = self._played[me][-1], self._played[them][-1]
        if mine == _FORFEIT:
            shown = "" if action is None else f" {action.strip()[:40]!r} is not a move, so"
            you = f"{shown} you forfeited the round"
        else:
            you = f" you {_past(mine)}"
        they = "forfeited (counted as cooperating)" if theirs == _FORFEIT else _past(theirs)
        lines = [
            f"Round {played} of {task.rounds}:{you}; your opponent {they}. "
            f"You get {payoff[me]:g}, they get {payoff[them]:g}.",
            f"Score: you {self._score[me]:g}, your opponent {self._score[them]:g}.",
        ]
        if over:
            lines.append(
                f"Game over after {task.rounds} rounds: you {self._score[me]:g}, "
                f"your opponent {self._score[them]:g}."
            )
        else:
            lines.append(f"Round {played + 1} of {task.rounds}: cooperate or defect?")
        return "\n".join(lines)


def _past(move: str) -> str:
    return {COOPERATE: "cooperated", DEFECT: "defected"}[move]
