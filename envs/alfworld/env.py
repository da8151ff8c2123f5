"""`ALFWorldEnv` (the official games) and `ALFWorldGenEnv` (games generated offline).

Both play games through alfworld's own TextWorld-PDDL engine (see `.engine`), so observations,
admissible commands and success are alfworld's. On top, turnwise adds:

* reward terms `outcome` (1.0 on the winning step), `progress` (the change in the share of the
  goal's sub-conditions that hold, see `.progress`; potential-based, so an episode's progress
  terms add up to the share reached — 1.0 when it is won) and the base class's `valid`;
* `state_key`: the canonical symbolic state (agent place, held object, object places, opened,
  cleaned/heated/cooled/toggled), never the text;
* `expert_action()`: alfworld's hand-coded expert for the current state.

A command is valid when, lower-cased with its whitespace collapsed, it is one of the engine's
admissible commands. Anything else gets the engine's own answer, "Nothing happens.", changes
nothing and is flagged invalid (with `info["invalid_reason"]` saying why).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from turnwise.core import Env, StepResult

from .._params import count_range
from .engine import INVALID_FEEDBACK, TASK_TYPES, Engine, Expert, TaskSpec, normalize_command
from .engine import run_expert as _run_expert
from .generator import SceneSize
from .progress import Scene, Snapshot
from .tasks import (
    GEN_SPLITS,
    OFFICIAL_SPLITS,
    SOLVE_BUDGET,
    GenCatalog,
    OfficialCatalog,
    expert_seed,
)

__all__ = ["SCENES", "ALFWorldEnv", "ALFWorldGenEnv"]

#: Scene-size presets of `ALFWorldGenEnv`.
SCENES: dict[str, SceneSize] = {
    "small": SceneSize(receptacles=(3, 5), distractors=(2, 4)),
    "medium": SceneSize(receptacles=(8, 12), distractors=(8, 12)),
    "full": SceneSize(receptacles=None, distractors=(20, 30)),
}
_TASK_PREFIX = "Your task is to:"
_ZERO = {"outcome": 0.0, "progress": 0.0}


class _ALFWorldBase(Env):
    """What both ALFWorld envs share: the engine, rewards, state key and expert."""

    family = "text"
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        **Env.default_reward_weights,
        "outcome": 1.0,
        "progress": 0.5,
    }

    def __init__(
        self,
        *,
        split: str,
        max_turns: int,
        reward_weights: Mapping[str, float] | None,
        max_action_length: int,
        render_mode: str | None,
        explain_invalid: bool,
    ) -> None:
        super().__init__(
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self.explain_invalid = bool(explain_invalid)
        self._engine: Engine | None = None
        self._spec: TaskSpec | None = None
        self._scene: Scene | None = None
        self._snapshot: Snapshot | None = None
        self._share = 0.0
        self._expert: Expert | None = None

    # ---------------------------------------------------------------- to implement
    def _game_file(self, task_id: str) -> Path:
        raise NotImplementedError

    # ---------------------------------------------------------------- contract
    @property
    def engine(self) -> Engine:
        """The alfworld engine (started on first use; one per env)."""
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    @property
    def spec_of_task(self) -> TaskSpec:
        """What the current game asks for (task type and target classes)."""
        if self._spec is None:
            raise RuntimeError("call reset() first")
        return self._spec

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        path = self._game_file(task_id)
        engine = self.engine
        engine.load(path)
        state = engine.reset()
        traj = json.loads(path.with_name("traj_data.json").read_text(encoding="utf-8"))
        self._spec = TaskSpec.from_traj_data(traj)
        self._scene = Scene(state.facts, engine.names)
        self._snapshot = self._scene.snapshot(state.facts)
        self._share = self._snapshot.progress(self._spec)
        # Generated games carry their hash; the official ones are named by their path.
        name = traj.get("turnwise", {}).get("canonical_hash") or task_id
        self._expert = Expert(engine, expert_seed(name))
        self._expert.observe_reset(state)
        instruction = next(
            (line.strip() for line in state.feedback.splitlines() if line.startswith(_TASK_PREFIX)),
            "",
        )
        extra = {"instruction": instruction, "task_type": self._spec.task_type}
        return state.feedback, extra

    def _step(self, action: str) -> StepResult:
        command = normalize_command(action)
        state, accepted = self.engine.step(command)
        if not accepted:
            reason = "empty command" if not command else "not an admissible command here"
            text = INVALID_FEEDBACK
            if self.explain_invalid:
                text += f" ({reason}; info['admissible_actions'] lists the valid commands.)"
            return StepResult(text, dict(_ZERO), valid=False, info={"invalid_reason": reason})
        assert self._scene is not None and self._spec is not None and self._expert is not None
        # The expert follows the valid steps only: an invalid one changes nothing it tracks.
        self._expert.observe_step(state, command)
        self._snapshot = self._scene.snapshot(state.facts)
        share = self._snapshot.progress(self._spec)
        terms = {"outcome": 1.0 if state.won else 0.0, "progress": share - self._share}
        self._share = share
        return StepResult(state.feedback, terms, terminated=state.won, success=state.won)

    def admissible_actions(self) -> list[str] | None:
        """The engine's admissible commands for the current state (sorted, as it gives them)."""
        state = self._engine.state if self._engine is not None else None
        return [] if state is None or self._ended else state.admissible

    def state_key(self) -> str:
        """Sorted symbolic facts, e.g. `at(fridge 1);holds(apple 1);hot(apple 1);open(...)`."""
        return "" if self._snapshot is None else self._snapshot.key

    @property
    def progress_share(self) -> float:
        """The share of the goal's sub-conditions that hold now (0.0 to 1.0)."""
        return self._share

    def expert_action(self) -> str | None:
        """alfworld's hand-coded expert's next command; None once the episode ended or it gave up."""
        if self._ended or self._expert is None:
            return None
        return self._expert.action()

    def _close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class ALFWorldEnv(_ALFWorldBase):
    """The official ALFWorld text games, played through alfworld's engine and expert.

    Needs the data `alfworld-download` fetches (`$ALFWORLD_DATA/json_2.1.1/...`); without it
    the constructor raises `ALFWorldDataError` saying how to get it.

    Args:
        split: `train` (3,553 games in ALFWorld 0.4), `valid_seen` or `valid_unseen`.
        data_dir: the folder holding `json_2.1.1/` (default: `$ALFWORLD_DATA`).
        task_types: keep only these task types (default: all six).
        max_turns: steps before truncation (50, as in most published ALFWorld results).
        explain_invalid: append why a command was rejected to "Nothing happens." (off by
            default: published agents saw the bare text).
        reward_weights, max_action_length, render_mode: as in `turnwise.Env`.
    """

    splits = OFFICIAL_SPLITS

    def __init__(
        self,
        split: str = "train",
        *,
        data_dir: str | os.PathLike[str] | None = None,
        task_types: Sequence[str] | None = None,
        max_turns: int = 50,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
        explain_invalid: bool = False,
    ) -> None:
        self._catalog = OfficialCatalog(data_dir, _task_types(task_types))
        super().__init__(
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
            explain_invalid=explain_invalid,
        )

    @property
    def data_dir(self) -> Path:
        return self._catalog.root

    def tasks(self, split: str | None = None) -> Sequence[str]:
        return self._catalog.ids(self.split if split is None else split)

    def _game_file(self, task_id: str) -> Path:
        return self._catalog.game_file(task_id)


class ALFWorldGenEnv(_ALFWorldBase):
    """ALFWorld-format household tasks generated offline (not the official games).

    Every game is generated from alfworld's domain, grammar, floorplans and constants on first
    use, checked winnable by alfworld's hand-coded expert within 50 steps, cached under
    `cache_dir("alfworld", "gen", ...)` and played through alfworld's engine. Scores are not
    comparable with published ALFWorld numbers.

    Args:
        scene: `small` (3–5 receptacles, 2–4 distractors), `medium` (8–12, 8–12) or `full`
            (every receptacle of the floorplan — 20–35 in a kitchen — and 20–30 distractors).
        n_receptacles: override the preset: a count or an inclusive `(min, max)` range (>= 3).
        n_distractors: override the preset's distractor count or range.
        task_types: the task types to deal (default all six, round-robin over task indices).
        split: `train` (1000 ids), `valid` (100) or `test` (200); they never share a game.
        max_turns, reward_weights, max_action_length, render_mode, explain_invalid: as in
            `ALFWorldEnv`.

    Example:
        >>> env = ALFWorldGenEnv("small")
        >>> env.tasks()[:2]
        ('small-train-00000', 'small-train-00001')
        >>> env.task_type_of("small-train-00003")
        'pick_heat_then_place_in_recep'
    """

    splits = GEN_SPLITS

    def __init__(
        self,
        scene: str = "small",
        *,
        n_receptacles: int | tuple[int, int] | None = None,
        n_distractors: int | tuple[int, int] | None = None,
        task_types: Sequence[str] | None = None,
        split: str = "train",
        max_turns: int = 50,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
        explain_invalid: bool = False,
    ) -> None:
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}; choose one of {', '.join(SCENES)}")
        base = SCENES[scene]
        size = SceneSize(
            receptacles=base.receptacles
            if n_receptacles is None
            else count_range("n_receptacles", n_receptacles),
            distractors=base.distractors
            if n_distractors is None
            else count_range("n_distractors", n_distractors),
        )
        types = _task_types(task_types)
        label = scene if size == base else size.tag
        if types != TASK_TYPES:
            label += "-" + "+".join(str(TASK_TYPES.index(t) + 1) for t in types)
        self._catalog = GenCatalog(label, size, types)
        self._generator_kwargs = {
            "scene": scene, "n_receptacles": n_receptacles, "n_distractors": n_distractors,
            "task_types": list(types),
        }  # fmt: skip
        self.scene = scene
        self.size = size
        super().__init__(
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
            explain_invalid=explain_invalid,
        )

    def tasks(self, split: str | None = None) -> Sequence[str]:
        return self._catalog.ids(self.split if split is None else split)

    def task_type_of(self, task_id: str) -> str:
        """The task type an id is dealt (known without generating its game)."""
        return self._catalog.task_type(task_id)

    def cached(self, task_id: str) -> bool:
        """Whether the game of `task_id` is generated already (else its first use makes it)."""
        return self._catalog.cached(task_id)

    def game_file(self, task_id: str) -> Path:
        """The `game.tw-pddl` of `task_id`, generated and checked on first use."""
        return self._catalog.game_file(task_id, self._solve)

    def _game_file(self, task_id: str) -> Path:
        return self.game_file(task_id)

    def prepare(self, split: str | None = None, count: int | None = None, workers: int = 1) -> None:
        """Generate and check the first `count` games of `split` (default: all of this env's
        split) now, in `workers` child processes, instead of one by one on first use (~0.7 s
        each on one core).

        Example (slow; not run as a doctest):
            ALFWorldGenEnv("small").prepare("test", count=64, workers=2)
        """
        ids = list(self.tasks(split))[:count]
        missing = [t for t in ids if not self.cached(t)]
        if not missing:
            return
        workers = max(1, min(int(workers), len(missing)))
        if workers == 1:
            for task_id in missing:
                self.game_file(task_id)
            return
        children = []
        for chunk in (missing[i::workers] for i in range(workers)):
            request = json.dumps({"env": self._generator_kwargs, "task_ids": chunk})
            child = subprocess.Popen(
                [sys.executable, "-c", f"from {__name__} import _prepare_main; _prepare_main()"],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            assert child.stdin is not None
            child.stdin.write(request)
            child.stdin.close()
            children.append(child)
        problems = []
        for child in children:
            assert child.stderr is not None
            err = child.stderr.read()
            child.stderr.close()
            if child.wait() != 0:
                problems.append((err.strip().splitlines() or ["(no message)"])[-1])
        if problems:
            raise RuntimeError("generating ALFWorld games failed: " + "; ".join(problems))

    def _solve(self, game_file: Path, seed: int) -> list[str] | None:
        # Checked on this env's own engine: it is idle between episodes.
        return _run_expert(self.engine, game_file, seed, SOLVE_BUDGET)


def _task_types(task_types: Sequence[str] | None) -> tuple[str, ...]:
    """The task types asked for (all six by default); anything else is a clear error."""
    types = tuple(task_types) if task_types is not None else TASK_TYPES
    if not types or not set(types) <= set(TASK_TYPES):
        raise ValueError(f"task_types must be a non-empty subset of {TASK_TYPES}")
    return types


def _prepare_main() -> None:
    """Generate the games a request on stdin names, `{"env": kwargs, "task_ids": [...]}` (the
    child processes of `ALFWorldGenEnv.prepare`)."""
    request = json.loads(sys.stdin.read())
    env = ALFWorldGenEnv(**request["env"])
    try:
        for task_id in request["task_ids"]:
            env.game_file(task_id)
    finally:
        env.close()
