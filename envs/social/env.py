"""`SocialEnv` (`turnwise/Social-v0`): two characters talk, and an LLM judge scores them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from turnwise.core import VALID_TERM
from turnwise.envs.social.rubric import DIMENSIONS, EPISODE_RUBRIC, TURN_RUBRIC
from turnwise.envs.social.scenarios import Scenario, load_scenarios, shipped_scenarios
from turnwise.judging import LLMJudge, Verdict
from turnwise.multiagent import JointStep, ParallelEnv
from turnwise.testing.hostile import free_text_hostile

__all__ = ["PROGRESS_TERM", "SUCCESS_GOAL", "SocialEnv"]

PLAYERS = ("player_0", "player_1")
#: The turn-level term of `judge_every_turn`: the change in judged goal completion, over 10.
PROGRESS_TERM = "goal_progress"
#: A character succeeds when the judge scores its goal at least this (of 10).
SUCCESS_GOAL = 7.0
_LEAVE = re.compile(r"\[?\s*leave\s*\]?\.?", re.IGNORECASE)
_KINDS = {"[action]": "action", "[non-verbal]": "non-verbal"}


@dataclass(frozen=True)
class _Line:
    speaker: int
    kind: str  # "speak", "action", "non-verbal", "leave" or "silent"
    text: str = ""

    def render(self, name: str) -> str:
        if self.kind == "speak":
            return f'{name} said: "{self.text}"'
        if self.kind == "leave":
            return f"{name} left the conversation."
        if self.kind == "silent":
            return f"{name} said nothing."
        return f"{name} [{self.kind}] {self.text}"


class SocialEnv(ParallelEnv):
    """Sotopia-style open-ended scenarios: two characters with private goals talk in turns.

    * **Tasks** are scenario ids (`shipped_scenarios()`, or a JSON-lines file passed as
      `scenarios=`): a setting, two characters with backgrounds and secrets, their relationship
      and a private goal each. `player_0` plays the first character and speaks first.
    * **Turns.** Each joint step one character acts, alternately; the other seat waits
      (`admissible_actions == []`, its action is ignored). The speaker's action is what it says;
      `[action] ...` is something it does, `[non-verbal] ...` a gesture, and `leave` ends the
      conversation. An empty or rejected action (not a string, too long, missing) is a silent
      turn and invalid. A leading "Name:" of the speaker's own name is dropped.
    * **Observations** give each seat the latest line of the conversation and whose turn it is;
      the scenario, the character's profile, secret and goal are its reset `instruction`.
    * **End.** The conversation ends (`terminated`) when someone leaves or after `max_turns`
      lines (Sotopia's 20 by default): a fixed-length conversation is over, not cut short.
    * **Judge.** At the end the judge (any policy spec, a `Policy`, or an `LLMJudge`) scores both
      characters on Sotopia's seven dimensions (`turnwise.envs.social.rubric`). Each becomes a
      reward term scaled to at most 1 in size (`goal`/10, `relationship`/5, ...); the default
      weights average the seven, Sotopia's overall score. With `judge_every_turn=True` the judge
      also scores goal completion after every line, and the term `goal_progress` is its change
      over 10 (potential-based: the terms of an episode sum to the last judged progress).
      The raw verdict is in `info["judge"]` at the end.
    * **A missing verdict** (every reply malformed, or the judge unreachable) is recorded, never
      scored as zero: the dimension terms are absent, `info["judge"]["missing"]` is True with the
      reason, and `success` is False. Without a judge, every verdict is missing.
    * **Success**: a judged goal score of at least 7 (`SUCCESS_GOAL`).
    * **Deterministic**: no randomness; the seed only picks the scenario. A judge's verdicts are
      cached, so replaying an episode asks it nothing new.

    Example:
        >>> env = SocialEnv()
        >>> obs, infos = env.reset(options={"task_id": env.tasks("train")[0]})
        >>> infos["player_1"]["admissible_actions"]
        []
        >>> obs, rewards, terminated, _, infos = env.step({"player_0": "leave", "player_1": ""})
        >>> terminated["player_0"], infos["player_0"]["judge"]["missing"]
        (True, True)
        >>> sorted(infos["player_0"]["reward_terms"])  # no judge: no scores, not zeros
        ['valid']
    """

    metadata: ClassVar[dict[str, Any]] = {**ParallelEnv.metadata, "name": "turnwise/Social-v0"}
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        VALID_TERM: 0.1,
        PROGRESS_TERM: 1.0,
        **dict.fromkeys(DIMENSIONS, 1 / len(DIMENSIONS)),
    }
    #: Anything non-blank is something said: injection strings are just words here.
    accepted_hostile_actions: ClassVar[tuple[str, ...]] = free_text_hostile()

    def __init__(
        self,
        *,
        judge: Any = None,
        judge_every_turn: bool = False,
        judge_cache: str | Path | None = None,
        scenarios: str | Path | None = None,
        split: str = "train",
        max_turns: int = 20,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        found = load_scenarios(scenarios) if scenarios is not None else shipped_scenarios()
        self._scenarios: dict[str, Scenario] = {s.id: s for s in found}
        super().__init__(
            PLAYERS,
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        if judge_cache is not None and (judge is None or isinstance(judge, LLMJudge)):
            raise TypeError("judge_cache needs a judge given as a spec or Policy (an LLMJudge "
                            "takes its cache itself: LLMJudge(policy, cache=PATH))")  # fmt: skip
        if judge is None or isinstance(judge, LLMJudge):
            self.judge: LLMJudge | None = judge
        else:
            self.judge = LLMJudge(judge, cache=judge_cache)
        self.judge_every_turn = bool(judge_every_turn)
        self._scenario: Scenario | None = None
        self._lines: list[_Line] = []
        self._progress = (0.0, 0.0)

    # ------------------------------------------------------------------ the game
    def tasks(self, split: str | None = None) -> list[str]:
        split = split or self.split
        return [s.id for s in self._scenarios.values() if s.split == split]

    @property
    def scenario(self) -> Scenario:
        """The scenario being played."""
        if self._scenario is None:
            raise RuntimeError("call reset() first")
        return self._scenario

    def _reset_task(self, task_id: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        self._scenario = scenario = self._scenarios[task_id]
        self._lines, self._progress = [], (0.0, 0.0)
        first = scenario.characters[0].first_name
        observations = {
            PLAYERS[0]: f"You meet {scenario.characters[1].first_name}. You speak first.",
            PLAYERS[1]: f"You meet {first}. {first} speaks first.",
        }
        infos = {
            seat: {"instruction": self._instruction(i), "scenario": scenario.id,
                   "character": scenario.characters[i].name}
            for i, seat in enumerate(PLAYERS)
        }  # fmt: skip
        return observations, infos

    def _instruction(self, i: int) -> str:
        scenario = self.scenario
        me, other = scenario.characters[i], scenario.characters[1 - i]
        return (
            f"Scenario: {scenario.setting}\n"
            f"You are {me.profile()}\n"
            f"You are talking with {other.public()}. Your relationship: {scenario.relationship}.\n"
            f"Your goal: {scenario.goals[i]}\n"
            "Keep your secret and your goal to yourself unless revealing them serves you. Each "
            "turn, write only what you say next. You may instead write '[action] ...' for "
            "something you do, '[non-verbal] ...' for a gesture, or 'leave' to end the "
            "conversation."
        )

    def _speaker(self) -> int:
        """Index of the character whose turn it is (before this step: turn already counted)."""
        return (self.turn - 1) % 2

    def admissible_actions(self, agent: str) -> list[str] | None:
        if not self.agents:
            return []
        # After reset (turn 0) player_0 speaks; after turn t the speaker is t % 2.
        return None if PLAYERS.index(agent) == self.turn % 2 else []

    def _step(self, moves: Mapping[str, str | None]) -> JointStep:
        scenario = self.scenario
        i = self._speaker()
        line = self._line(i, moves.get(PLAYERS[i]))
        self._lines.append(line)
        over = line.kind == "leave" or self.turn >= self.max_turns
        rendered = line.render(scenario.characters[i].name)
        terms: dict[str, dict[str, float]] = {seat: {} for seat in PLAYERS}
        infos: dict[str, dict[str, Any]] = {seat: {} for seat in PLAYERS}
        success = dict.fromkeys(PLAYERS, False)
        if over:
            verdict = self._ask(EPISODE_RUBRIC)
            for k, seat in enumerate(PLAYERS):
                infos[seat]["judge"] = self._verdict_info(verdict, k)
                if not verdict.missing:
                    scores = verdict.value[k]
                    terms[seat] = {d: scores[d] / max(map(abs, DIMENSIONS[d])) for d in DIMENSIONS}
                    success[seat] = scores["goal"] >= SUCCESS_GOAL
        elif self.judge_every_turn:
            verdict = self._ask(TURN_RUBRIC)
            if not verdict.missing:
                progress = verdict.value
                for k, seat in enumerate(PLAYERS):
                    terms[seat][PROGRESS_TERM] = (progress[k] - self._progress[k]) / 10
                self._progress = (float(progress[0]), float(progress[1]))
            for k, seat in enumerate(PLAYERS):
                infos[seat]["judge"] = self._verdict_info(verdict, k)
        observations = {}
        for k, seat in enumerate(PLAYERS):
            if over:
                status = "The conversation is over."
            elif k == 1 - i:
                status = "Your turn."
            else:
                status = f"Waiting for {scenario.characters[1 - i].first_name}."
            observations[seat] = f"{rendered}\n{status}"
        return JointStep(
            observations=observations,
            reward_terms=terms,
            valid={PLAYERS[i]: line.kind != "silent"},
            terminated=over,
            success=success,
            infos=infos,
        )

    def _line(self, i: int, move: str | None) -> _Line:
        text = (move or "").strip()
        names = self.scenario.characters[i].name, self.scenario.characters[i].first_name
        for name in names:  # models often prefix their own name, as in a script
            if text.lower().startswith(name.lower() + ":"):
                text = text[len(name) + 1 :].strip()
                break
        if not text:
            return _Line(i, "silent")
        if _LEAVE.fullmatch(text):
            return _Line(i, "leave")
        for prefix, kind in _KINDS.items():
            if text.lower().startswith(prefix):
                rest = text[len(prefix) :].strip()
                return _Line(i, kind, rest) if rest else _Line(i, "silent")
        return _Line(i, "speak", text)

    # ------------------------------------------------------------------ judging
    def transcript(self) -> str:
        """The conversation so far, one line per turn."""
        names = [c.name for c in self.scenario.characters]
        return "\n".join(
            f"Turn {n}: {line.render(names[line.speaker])}" for n, line in enumerate(self._lines, 1)
        )

    def _ask(self, rubric: Any) -> Verdict:
        if self.judge is None:
            return Verdict(None, rubric.id, error="no judge was given (SocialEnv(judge=SPEC))")
        scenario = self.scenario
        return self.judge.ask(
            rubric,
            setting=scenario.setting,
            relationship=scenario.relationship,
            profile_1=scenario.characters[0].profile(),
            profile_2=scenario.characters[1].profile(),
            goal_1=scenario.goals[0],
            goal_2=scenario.goals[1],
            transcript=self.transcript() or "(nothing was said)",
        )

    def _verdict_info(self, verdict: Verdict, k: int) -> dict[str, Any]:
        value = verdict.value
        scores = None if value is None else value[k]
        return {
            "prompt": verdict.prompt,
            "judge": None if self.judge is None else self.judge.name,
            "scores": dict(scores) if isinstance(scores, dict) else scores,
            "missing": verdict.missing,
            "error": verdict.error,
            "replies": list(verdict.replies),
        }

    # ------------------------------------------------------------------ the rest
    def state_key(self, agent: str) -> str:
        if self._scenario is None:
            return super().state_key(agent)
        digest = hashlib.sha256(self.transcript().encode()).hexdigest()[:16]
        return f"{self._scenario.id}:{agent}:{len(self._lines)}:{digest}"
