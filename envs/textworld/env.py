"""`TextWorldEnv`: games of the real TextWorld engine, with turn-level rewards and an expert.

Games are generated offline by textworld's own challenges (or `textworld.generator` for custom
sizes), compiled to Z-machine files, cached (`games.py`), and played through `textworld.start`:
Jericho runs the compiled game and textworld's `TWInform7` wrapper tracks its logical state,
which gives the admissible commands, the facts and the expert's policy.

A command is valid exactly when its normalised form (whitespace collapsed, lower case) is one of
the engine's admissible commands. Anything else is answered by the env without reaching the
engine, so an invalid command never changes the game, not even its move counter: TextWorld's
parser accepts more than its admissible commands (abbreviations, `take all`, ...), and letting
those through would change the state behind a step flagged invalid.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from turnwise.core import Env, StepResult

from .challenges import ChallengeConfig
from .games import SPLITS, GameRecord, GameStore

__all__ = ["ENGINE_INFOS", "TextWorldEnv", "clean_feedback", "engine_infos"]

#: What turnwise asks the engine for (`textworld.EnvInfos` fields); the benchmark asks the same.
ENGINE_INFOS = (
    "admissible_commands",
    "policy_commands",
    "facts",
    "score",
    "max_score",
    "won",
    "lost",
    "objective",
)
_ZERO = {"score": 0.0, "outcome": 0.0}

# The ASCII-art "TextWorld" banner that opens every game: lines of nothing but these characters.
_ART_LINE = re.compile(r"[\s_|\\/$<>]*")
# The engine's end-of-game prompt offers commands no agent can use here.
_END_PROMPT = "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?"
_BLANK_LINES = re.compile(r"\n{3,}")


def engine_infos() -> Any:
    """The `textworld.EnvInfos` this env requests from the engine."""
    import textworld

    return textworld.EnvInfos(**dict.fromkeys(ENGINE_INFOS, True))


def clean_feedback(text: str, intro: bool = False) -> str:
    """The engine's text without its prompt and status line (and, for the intro, the banner).

    Every turn the engine ends with the prompt `>` followed by the status line (room name,
    score/moves); the intro starts with an ASCII-art banner. Both are noise to an agent.

    Example:
        >>> clean_feedback("\\nYou open the box.\\n\\n\\n>   -= Hall =-1/3")
        'You open the box.'
        >>> clean_feedback(" __ \\n|__|\\n\\nWelcome!\\n\\n-= Hall =-\\nA hall.\\n\\n>", intro=True)
        'Welcome!\\n\\n-= Hall =-\\nA hall.'
    """
    cut = text.rfind("\n>")
    if cut >= 0 and "\n" not in text[cut + 2 :]:
        text = text[:cut]
    lines = [line.strip() for line in text.split("\n")]
    if intro:
        start = 0
        while start < len(lines) and _ART_LINE.fullmatch(lines[start]):
            start += 1
        lines = lines[start:]
    if lines and lines[-1] == _END_PROMPT:
        lines.pop()
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _quoted(text: str) -> str:
    """` 'text'` when it is short, plain ASCII; otherwise nothing (never echo hostile input)."""
    if 0 < len(text) <= 40 and text.isascii() and all(c.isalnum() or c in " -'" for c in text):
        return f" '{text}'"
    return ""


def _fact(prop: Any) -> str:
    return f"{prop.name}({', '.join(v.name for v in prop.arguments)})"


class TextWorldEnv(Env):
    """TextWorld games (coin collector, treasure hunter, simple, cooking, or custom sizes).

    Args:
        challenge: `tw-coin_collector`, `tw-treasure_hunter`, `tw-simple` (default),
            `tw-cooking` (textworld's challenges), or `custom`.
        settings: the challenge's settings, as `tw-make` takes them (`{"level": 5}`,
            `{"recipe": 2, "take": 1, "open": True}`; `custom`: `nb_rooms`, `nb_objects`,
            `quest_length`, `quest_breadth`). Missing ones take textworld's defaults, or level 1
            and dense rewards with detailed goals where textworld has none. `tw-cooking`'s
            `split` and `tw-simple`'s `test` follow `split` unless given.
        split: `train`, `valid` or `test`; they never share a game.
        split_sizes: tasks per split (default 100 / 20 / 20). Games are generated on first use.
        max_turns: default 100 (twice the quest length for long coin-collector levels, four
            times for long custom quests).
        cache_root: where generated games are kept (default: `turnwise.paths.cache_dir`).
        reward_weights, max_action_length, render_mode: as in `turnwise.Env`.

    Reward terms: `score` (the game's score change this turn over its maximum score, so a won
    game's `score` terms add up to 1), `outcome` (1.0 on the winning turn) and `valid`.
    """

    family = "text"
    splits = SPLITS
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        **Env.default_reward_weights,
        "outcome": 1.0,
        "score": 0.5,
    }

    def __init__(
        self,
        challenge: str = "tw-simple",
        settings: Mapping[str, Any] | None = None,
        *,
        split: str = "train",
        split_sizes: Mapping[str, int] | None = None,
        max_turns: int | None = None,
        cache_root: str | os.PathLike[str] | None = None,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        self.config = ChallengeConfig.of(challenge, settings)
        self.store = GameStore(
            self.config, split_sizes, Path(cache_root) if cache_root is not None else None
        )
        super().__init__(
            split=split,
            max_turns=self.config.default_max_turns() if max_turns is None else max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self.challenge = challenge
        self._engine: Any = None
        self._engine_file: Path | None = None
        self._record: GameRecord | None = None
        self._state: Any = None  # the engine's last `GameState`
        self._commands: dict[str, str] = {}  # normalised command -> the engine's spelling
        self._verbs: frozenset[str] = frozenset()
        self._initial_facts: frozenset[Any] = frozenset()
        self._initial_location = ""
        self._initial_inventory: list[str] = []
        self._key = ""
        self._score = 0
        self._max_score = 0

    # ---------------------------------------------------------------- contract
    def tasks(self, split: str | None = None) -> Sequence[str]:
        return self.store.ids(self.split if split is None else split)

    @property
    def engine(self) -> Any:
        """The `textworld` environment playing the current game (None before the first reset)."""
        return self._engine

    @property
    def record(self) -> GameRecord:
        """The cache record (seed, content hash, file) of the current episode's game."""
        if self._record is None:
            raise RuntimeError("call reset() first: there is no game before the first episode")
        return self._record

    def prepare(self, split: str | None = None, count: int | None = None, workers: int = 1) -> None:
        """Generate the first `count` games of `split` (default: all of this env's split) now.

        Games are otherwise made on first use; this makes many at once, `workers` in parallel.
        """
        ids = self.tasks(split)
        self.store.prepare(ids[: len(ids) if count is None else count], workers=workers)

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        same_game = self._record is not None and self._record.task_id == task_id
        if not same_game:
            self._record = self.store.record(task_id)
        assert self._record is not None
        engine = self._load(self.store.path(self._record))
        # Jericho's interpreter has its own random generator; 0 would mean "seed by the clock".
        engine.seed(int(self.np_random.integers(1, 2**31 - 1)))
        state = engine.reset()
        self._max_score = int(state["max_score"] or 0)
        self._score = int(state["score"] or 0)
        self._verbs = frozenset(state["verbs"] or ())
        if not same_game:  # a game always starts in the same state
            self._initial_facts = frozenset(state["facts"])
            self._initial_location = ""
            self._initial_inventory = []
            for prop in self._initial_facts:
                args = prop.arguments
                if prop.name == "at" and args[0].type == "P":
                    self._initial_location = args[1].name
                elif prop.name == "in" and len(args) == 2 and args[1].type == "I":
                    self._initial_inventory.append(args[0].name)
        self._observe(state)
        info = {
            "instruction": str(state["objective"] or ""),
            "score": self._score,
            "max_score": self._max_score,
        }
        return clean_feedback(str(state.feedback), intro=True), info

    def _step(self, action: str) -> StepResult:
        command = " ".join(action.split()).lower()
        engine_command = self._commands.get(command)
        if engine_command is None:
            return StepResult(self._diagnose(command), dict(_ZERO), valid=False)
        state, _, _ = self._engine.step(engine_command)
        self._observe(state)
        score = int(state["score"] or 0)
        gained = (score - self._score) / self._max_score if self._max_score > 0 else 0.0
        self._score = score
        won, lost = bool(state["won"]), bool(state["lost"])
        return StepResult(
            clean_feedback(str(state.feedback)),
            {"score": gained, "outcome": 1.0 if won else 0.0},
            terminated=won or lost,
            success=won,
            info={"score": score, "max_score": self._max_score},
        )

    def admissible_actions(self) -> list[str]:
        """The engine's admissible commands, sorted (empty once the episode has ended)."""
        return [] if self._ended else list(self._commands.values())

    def state_key(self) -> str:
        """`location=<room>;inventory=<items>;changed=<facts>`, from the engine's facts.

        `changed` lists, sorted, each fact that differs from the game's initial state
        (`+open(fridge)` now holds, `-closed(fridge)` no longer does), leaving out the player's
        location and inventory, which have their own fields. The text plays no part.
        """
        return self._key

    def expert_action(self) -> str | None:
        """The next command of the engine's winning policy from the current state.

        None once the episode has ended, or when the game can no longer be won.
        """
        if self._ended or self._state is None:
            return None
        policy = self._state["policy_commands"] or []
        return str(policy[0]) if policy else None

    def _close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
            self._engine_file = None

    # ---------------------------------------------------------------- internals
    def _load(self, path: Path) -> Any:
        """The engine, playing the game at `path` (started again only for another game)."""
        if self._engine is not None and self._engine_file == path:
            return self._engine
        import textworld

        self._close()
        with warnings.catch_warnings():
            # Jericho warns that it cannot read score and moves from the memory of games it
            # does not know; textworld reads them from the game's own output instead.
            warnings.filterwarnings("ignore", message=r"Game .* is not fully supported")
            self._engine = textworld.start(str(path), engine_infos())
        self._engine_file = path
        return self._engine

    def _observe(self, state: Any) -> None:
        """Take in the engine's new state: admissible commands and the state key."""
        self._state = state
        self._commands = {" ".join(c.split()).lower(): c for c in state["admissible_commands"]}
        self._key = self._state_key(state["facts"])

    def _state_key(self, facts: Iterable[Any]) -> str:
        # Only the difference from the initial state is walked: most facts never change.
        now = frozenset(facts)
        location = self._initial_location
        held = set(self._initial_inventory)
        changed = []
        for prop in now.symmetric_difference(self._initial_facts):
            args = prop.arguments
            present = prop in now
            if prop.name == "at" and args[0].type == "P":
                if present:
                    location = args[1].name
            elif prop.name == "in" and len(args) == 2 and args[1].type == "I":
                (held.add if present else held.discard)(args[0].name)
            else:
                changed.append(("+" if present else "-") + _fact(prop))
        return (
            f"location={location};inventory={','.join(sorted(held))};"
            f"changed={' '.join(sorted(changed))}"
        )

    def _diagnose(self, command: str) -> str:
        """Why a command that is not admissible was rejected (without echoing hostile text)."""
        hint = "info['admissible_actions'] lists the commands valid now."
        if not command:
            return f"Invalid action: empty command. Try 'look'; {hint}"
        verb = command.split(" ", 1)[0]
        if verb in self._verbs:
            what = _quoted(command).strip() or "that"
            return f"Invalid action: you can't do {what} here right now; nothing happened. {hint}"
        verbs = ", ".join(sorted(self._verbs))
        return f"Invalid action: unknown command{_quoted(verb)}. Commands start with: {verbs}."
