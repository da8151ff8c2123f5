"""Playing an ALFWorld game through the `alfworld` package's own TextWorld-PDDL engine.

`Engine` builds the wrapper chain `alfworld.agents.environment.AlfredTWEnv` builds for
evaluation — TextWorld's `GenericEnvironment` (which picks the PDDL backend for `.tw-pddl`
files), then alfworld's `AlfredDemangler` (object names such as `apple 1`) and `AlfredInfos` —
with the same `EnvInfos` (`won`, `admissible_commands`, `extras=["gamefile"]`). So observations,
admissible commands and success are exactly what published ALFWorld numbers were measured on.

Two things are done differently, both invisible in what the agent sees:

* A command that is not admissible is answered "Nothing happens." without calling the engine.
  The engine would say the same and leave the state unchanged, but only after recomputing every
  admissible command (most of a step's time in a big kitchen).
* `Expert` drives alfworld's hand-coded expert (`HandCodedTWAgent`) exactly as alfworld's
  `AlfredExpert` wrapper does — it observes the intro, then acts on every step's game state —
  but lazily: the steps are logged and replayed through the expert only when an expert action
  is asked for, so an agent that never asks pays nothing (the wrapper asks for the engine's
  facts on every step and runs the expert every step). Its random tie-breaks come from its own
  seeded generator, not from Python's global one, so expert runs are reproducible.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "INVALID_FEEDBACK",
    "TASK_TYPES",
    "Engine",
    "Expert",
    "GameState",
    "TaskSpec",
    "normalize_command",
    "run_expert",
]

#: The six ALFWorld task types, in alfworld's numbering (its `TASK_TYPES`).
TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
#: What the engine answers to a command that is not admissible.
INVALID_FEEDBACK = "Nothing happens."
#: alfworld's `AlfredExpert` gives the hand-coded expert this many steps.
EXPERT_MAX_STEPS = 200


def normalize_command(text: str) -> str:
    """`text` lower-cased with runs of whitespace collapsed (the engine only strips it).

    Every admissible command is lower-case and single-spaced, so this accepts `Go To  Fridge 1`
    for `go to fridge 1` and changes nothing else.

    Example:
        >>> normalize_command("  Go To   fridge 1 ")
        'go to fridge 1'
    """
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class TaskSpec:
    """What a game asks for, from its `traj_data.json` (class names lower-case, `""` if unused)."""

    task_type: str
    object_target: str
    parent_target: str = ""
    toggle_target: str = ""

    @classmethod
    def from_traj_data(cls, data: Mapping[str, Any]) -> TaskSpec:
        params = data["pddl_params"]
        return cls(
            task_type=str(data["task_type"]),
            object_target=str(params.get("object_target") or "").lower(),
            parent_target=str(params.get("parent_target") or "").lower(),
            toggle_target=str(params.get("toggle_target") or "").lower(),
        )

    @classmethod
    def read(cls, game_file: str | Path) -> TaskSpec:
        """The spec of the game at `game_file` (from the `traj_data.json` beside it)."""
        path = Path(game_file).with_name("traj_data.json")
        with open(path, encoding="utf-8") as f:
            return cls.from_traj_data(json.load(f))


@dataclass
class GameState:
    """One engine state as turnwise keeps it (the engine's own object stays in `raw`)."""

    feedback: str
    admissible: list[str]
    won: bool
    facts: Sequence[Any]
    """The engine's raw facts (`textworld.logic.Proposition`s over PDDL ids)."""
    raw: Any


def _load_textworld() -> tuple[Any, Any, Any, Any]:
    # Imported here: `import turnwise.envs.alfworld` must not pull in textworld and alfworld.
    try:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
        from textworld.envs.wrappers import GenericEnvironment
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            f"the ALFWorld envs need textworld[pddl] and alfworld ({exc}); "
            "install them with `pip install turnwise[text]`"
        ) from exc
    return textworld, GenericEnvironment, AlfredDemangler, AlfredInfos


@contextlib.contextmanager
def _argv_kept() -> Iterator[None]:
    """Put `sys.argv` back afterwards: textworld's PDDL translator (fast-downward) overwrites it
    with its own command line (`translate.py domain task`) when it loads or resets a game."""
    argv, saved = sys.argv, list(sys.argv)
    try:
        yield
    finally:
        argv[:] = saved  # the same list object, with its own contents, whatever was done to it
        sys.argv = argv


class Engine:
    """One alfworld TextWorld-PDDL engine (its own copy of fast-downward), playing one game."""

    def __init__(self) -> None:
        textworld, generic, demangler, infos = _load_textworld()
        request = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
        env = generic(request)
        env = demangler(shuffle=False)(env)
        self._env = infos(env)
        self.game_file: str | None = None
        self.names: dict[str, str] = {}
        """PDDL id -> the name the agent sees (`apple 1`), for the loaded game."""
        self.state: GameState | None = None
        self._admissible_set: frozenset[str] = frozenset()

    def load(self, game_file: str | Path) -> None:
        """Load `game_file` (a `game.tw-pddl`); loading the loaded game again does nothing."""
        path = str(game_file)
        if path == self.game_file:
            return
        self.game_file = None
        with warnings.catch_warnings():
            # textworld's PddlEnv.load reads the file without closing it.
            warnings.simplefilter("ignore", ResourceWarning)
            with _argv_kept():
                self._env.load(path)
        self.game_file = path
        infos = self._env._entity_infos  # the demangled names alfworld gave every entity
        self.names = {key: (info.name or key).strip() for key, info in infos.items()}

    def reset(self) -> GameState:
        """Start the loaded game from its initial state."""
        if self.game_file is None:
            raise RuntimeError("Engine.reset() before load()")
        with _argv_kept():
            return self._keep(self._env.reset())

    def is_admissible(self, command: str) -> bool:
        return command in self._admissible_set

    def step(self, command: str) -> tuple[GameState, bool]:
        """Apply `command`; return the new state and whether the engine accepted it.

        A command that is not admissible leaves the state as it is (as the engine would) and
        gets `INVALID_FEEDBACK`, without asking the engine.
        """
        state = self.state
        if state is None:
            raise RuntimeError("Engine.step() before reset()")
        if command not in self._admissible_set:
            return GameState(
                INVALID_FEEDBACK, state.admissible, state.won, state.facts, None
            ), False
        raw, _, _ = self._env.step(command)
        return self._keep(raw), True

    def readable_facts(self, facts: Sequence[Any]) -> list[Any]:
        """`facts` with PDDL ids replaced by display names (what the hand-coded expert reads)."""
        from textworld.logic import Proposition, Variable

        names = self.names
        return [
            Proposition(f.name, [Variable(names.get(v.name, v.name), v.type) for v in f.arguments])
            for f in facts
        ]

    def close(self) -> None:
        self._env.close()
        self.state = None
        self.game_file = None

    def _keep(self, raw: Any) -> GameState:
        admissible = list(raw["admissible_commands"])
        state = GameState(str(raw.feedback), admissible, bool(raw["won"]), raw["_facts"], raw)
        self.state = state
        self._admissible_set = frozenset(admissible)
        return state


class Expert:
    """alfworld's hand-coded expert, following an episode the way `AlfredExpert` does.

    Call `observe_reset` after the engine's reset and `observe_step` after each step (cheap:
    nothing runs until `action()` is asked for).

    Args:
        engine: the engine playing the game (for display names of facts).
        seed: seeds the expert's random tie-breaks (which of two apples to take, ...).
    """

    def __init__(self, engine: Engine, seed: int) -> None:
        from alfworld.agents.expert import HandCodedTWAgent

        if engine.game_file is None:
            raise RuntimeError("load a game before creating its Expert")
        self._engine = engine
        self._agent = HandCodedTWAgent(max_steps=EXPERT_MAX_STEPS)
        self._agent.reset(engine.game_file)  # reads traj_data.json beside the game file
        self._rng_state = random.Random(seed).getstate()
        self._pending: list[tuple[GameState, str]] = []
        self._intro: str | None = None
        self._next: str | None = "look"  # what AlfredExpert proposes before the first step
        self.failed = False

    def observe_reset(self, state: GameState) -> None:
        self._intro = state.feedback

    def observe_step(self, state: GameState, command: str) -> None:
        if not self.failed:
            self._pending.append((state, command))

    def action(self) -> str | None:
        """The expert's next command (always admissible), or None once it has given up."""
        if self.failed:
            return None
        if self._intro is not None or self._pending:
            self._catch_up()
        return self._next

    def _catch_up(self) -> None:
        from alfworld.agents.expert import HandCodedAgentFailed, HandCodedAgentTimeout

        # The expert draws from Python's global `random`; give it its own stream and put the
        # caller's back afterwards.
        saved = random.getstate()
        random.setstate(self._rng_state)
        try:
            if self._intro is not None:
                self._agent.observe(self._intro)
                self._intro = None
            for state, command in self._pending:
                game_state = {
                    "feedback": state.feedback,
                    "admissible_commands": state.admissible,
                    "facts": self._engine.readable_facts(state.facts),
                    "won": state.won,
                }
                proposal = self._agent.act(game_state, 0, state.won, command)
                # As AlfredExpert: a proposal that is not admissible becomes "look".
                self._next = proposal if proposal in state.admissible else "look"
        except (HandCodedAgentFailed, HandCodedAgentTimeout):
            self.failed = True
            self._next = None
        finally:
            self._pending.clear()
            self._rng_state = random.getstate()
            random.setstate(saved)


def run_expert(
    engine: Engine, game_file: str | Path, seed: int, max_steps: int
) -> list[str] | None:
    """The expert's commands that win `game_file` within `max_steps`, or None if it does not."""
    engine.load(game_file)
    state = engine.reset()
    expert = Expert(engine, seed)
    expert.observe_reset(state)
    commands: list[str] = []
    for _ in range(max_steps):
        command = expert.action()
        if command is None:
            return None
        state, _ = engine.step(command)
        commands.append(command)
        if state.won:
            return commands
        expert.observe_step(state, command)
    return None
