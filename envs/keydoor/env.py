"""`KeyDoorEnv`: find the gold coin in a small house of rooms, keys and locked doors.

Commands (matched after stripping, lower-casing and collapsing whitespace):

    look                                   describe the room again
    inventory                              list what you carry
    go <direction>                         north, south, east or west
    take <item>                            e.g. `take red key`
    unlock <direction> door with <key>     e.g. `unlock north door with red key`

Taking the gold coin ends the episode with success. An action is valid exactly when its
normalised form is one of `admissible_actions()`; anything else is an invalid step whose
observation says what was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from turnwise.core import Env, StepResult

from .._params import CountRange, count_range
from .tasks import PRESETS, SPLITS, Catalog, default_max_turns
from .world import DIRECTIONS, GOAL_ITEM, Move, State, World, WorldConfig

__all__ = ["GRAMMAR", "INSTRUCTION", "KeyDoorEnv"]

INSTRUCTION = "Find the gold coin and take it."
#: The action that completes every task (reset info `gold_action`: what IGPO scores its belief in).
GOLD_ACTION = f"take {GOAL_ITEM}"
GRAMMAR = (
    "Commands: look, inventory, go <direction>, take <item>, unlock <direction> door with <key>."
)
_DIRECTION_HINT = "directions are north, south, east and west."
_ZERO = {"outcome": 0.0, "progress": 0.0}


def _quoted(text: str) -> str:
    """`'text'` when it is short, plain ASCII; otherwise nothing (never echo hostile input)."""
    if 0 < len(text) <= 24 and text.isascii() and all(c.isalnum() or c in " -'" for c in text):
        return f" '{text}'"
    return ""


def _with_article(name: str) -> str:
    return ("an " if name[0] in "aeiou" else "a ") + name


def _listing(names: Sequence[str]) -> str:
    phrases = [_with_article(n) for n in names]
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


class KeyDoorEnv(Env):
    """Rooms, keys and locked doors: a fast, dependency-free text world with an exact expert.

    Args:
        difficulty: `easy` (2–3 rooms, at most 1 locked door, up to 1 distractor), `medium`
            (4–5 rooms, 1–2 locked doors, 1 distractor) or `hard` (6–9 rooms, 2–3 locked doors,
            2–3 distractors).
        n_rooms, n_locked, n_distractors: override the preset; a count or an inclusive
            `(min, max)` range. A custom configuration has its own task ids (`r7l2d1-train-...`).
        split, reward_weights, max_action_length, render_mode: as in `turnwise.Env`.
        max_turns: defaults to 15 / 30 / 50 for easy / medium / hard.

    Reset info adds `gold_action`, the action that ends every task (`take gold coin`), to the
    standard keys: IGPO scores its belief in that reply.

    Reward terms: `outcome` (1.0 on taking the coin), `progress` (potential-based:
    `(d_before - d_after) / d_start`, where `d` is the optimal number of state-changing steps
    left; an optimal episode's progress sums to 1.0), and the base class's `valid`.

    Example:
        >>> env = KeyDoorEnv("easy")
        >>> obs, info = env.reset(seed=0, options={"task_id": "easy-train-00002"})
        >>> obs["text"]
        'You are in the study. You see a purple key and a lamp. Exits: east, north (locked, purple door).'
        >>> info["instruction"], env.expert_action()
        ('Find the gold coin and take it.', 'take purple key')
        >>> obs, reward, terminated, truncated, info = env.step("  Take PURPLE   key ")
        >>> obs["text"], info["reward_terms"]["progress"], reward
        ('You take the purple key.', 0.25, 0.125)
        >>> info["state_key"]
        'room=study;inventory=purple key;unlocked='
        >>> env.step("go north")[0]["text"]
        'Invalid action: the door to the north is locked (purple door).'
    """

    family = "text"
    splits = SPLITS
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        **Env.default_reward_weights,
        "outcome": 1.0,
        "progress": 0.5,
    }

    def __init__(
        self,
        difficulty: str = "medium",
        *,
        n_rooms: CountRange | None = None,
        n_locked: CountRange | None = None,
        n_distractors: CountRange | None = None,
        split: str = "train",
        max_turns: int | None = None,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        if difficulty not in PRESETS:
            raise ValueError(
                f"unknown difficulty {difficulty!r}; choose one of {', '.join(PRESETS)}"
            )
        preset = PRESETS[difficulty]
        base = preset.config
        config = WorldConfig(
            n_rooms=base.n_rooms if n_rooms is None else count_range("n_rooms", n_rooms),
            n_locked=base.n_locked if n_locked is None else count_range("n_locked", n_locked),
            n_distractors=(
                base.n_distractors
                if n_distractors is None
                else count_range("n_distractors", n_distractors)
            ),
        )
        if max_turns is None:
            max_turns = default_max_turns(config, preset)
        super().__init__(
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self.difficulty = difficulty
        self.config = config
        self._catalog = Catalog.of(config, difficulty if config == base else config.tag)
        self._world: World | None = None
        self._state: State = (0, 0, 0)
        self._d0 = 1
        self._dir_order: tuple[int, ...] = (0, 1, 2, 3)
        self._item_order: tuple[int, ...] = ()
        # Facts about the current state, recomputed only when the state changes.
        self._moves: dict[str, Move] = {}
        self._admissible: tuple[str, ...] = ()
        self._key = ""

    # ---------------------------------------------------------------- contract
    def tasks(self, split: str | None = None) -> Sequence[str]:
        return self._catalog.ids(self.split if split is None else split)

    @property
    def world(self) -> World:
        """The world of the current episode."""
        if self._world is None:
            raise RuntimeError("call reset() first: there is no world before the first episode")
        return self._world

    @property
    def state(self) -> State:
        """The current `(room, taken, unlocked)` state (see `turnwise.envs.keydoor.world`)."""
        return self._state

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        world = self._catalog.world(task_id)
        self._world = world
        self._d0 = world.distance(world.initial)
        # The episode seed only changes presentation: the order exits and items are listed in.
        draws = self.np_random.random(4 + len(world.items))
        self._dir_order = tuple(sorted(range(4), key=lambda i: draws[i]))
        self._item_order = tuple(sorted(range(len(world.items)), key=lambda i: draws[4 + i]))
        self._enter(world.initial)
        return self._describe(), {"instruction": INSTRUCTION, "gold_action": GOLD_ACTION}

    def _step(self, action: str) -> StepResult:
        command = " ".join(action.lower().split())
        move = self._moves.get(command)
        if move is None:
            if command == "look":
                return StepResult(self._describe(), dict(_ZERO))
            if command == "inventory":
                return StepResult(self._inventory(), dict(_ZERO))
            problem = self._diagnose(command)
            return StepResult(self._invalid_observation(problem), dict(_ZERO), valid=False)
        world = self.world
        before = world.distance(self._state)
        self._enter(move.state)
        progress = (before - world.distance(move.state)) / self._d0
        won = move.kind == "win"
        terms = {"outcome": 1.0 if won else 0.0, "progress": progress}
        if move.kind == "go":
            text = self._describe()
        elif move.kind == "unlock":
            text = f"You unlock the {world.doors[move.target].name}."
        else:
            text = f"You take the {world.items[move.target].name}."
            if won:
                text += " Task complete!"
        return StepResult(text, terms, terminated=won, success=won)

    def admissible_actions(self) -> list[str]:
        """Every valid command now, in canonical order: `go`, `take`, `unlock`, `look`, `inventory`."""
        return [] if self._ended else list(self._admissible)

    def state_key(self) -> str:
        """`room=<room>;inventory=<items, sorted>;unlocked=<doors, sorted>`: text-free, seed-free."""
        return self._key

    def expert_action(self) -> str | None:
        """The next command of a shortest solution (breadth-first search); None once it ended."""
        if self._ended or self._world is None:
            return None
        return self._world.expert(self._state)

    # ---------------------------------------------------------------- text
    def _enter(self, state: State) -> None:
        world = self.world
        self._state = state
        self._moves = world.moves(state)
        self._admissible = (*self._moves, "look", "inventory")
        self._key = world.state_key(state)

    def _describe(self) -> str:
        world = self.world
        room, taken, unlocked = self._state
        parts = [f"You are in the {world.rooms[room]}."]
        here = [
            world.items[i].name
            for i in self._item_order
            if world.items[i].room == room and not taken >> i & 1
        ]
        if here:
            parts.append(f"You see {_listing(here)}.")
        exits = []
        for d in self._dir_order:
            target, lock = world.exits[room][d]
            if target < 0:
                continue
            if lock >= 0 and not unlocked >> lock & 1:
                exits.append(f"{DIRECTIONS[d]} (locked, {world.doors[lock].name})")
            else:
                exits.append(DIRECTIONS[d])
        parts.append(f"Exits: {', '.join(exits)}.")
        return " ".join(parts)

    def _inventory(self) -> str:
        world, taken = self.world, self._state[1]
        carried = [world.items[i].name for i in self._item_order if taken >> i & 1]
        return f"You carry {_listing(carried)}." if carried else "You carry nothing."

    def _diagnose(self, command: str) -> str:
        """Why a command that is not admissible was rejected, as precisely as possible."""
        if not command:
            return f"empty command. {GRAMMAR}"
        verb, _, rest = command.partition(" ")
        if verb in ("look", "inventory"):
            return f"'{verb}' takes nothing after it; type just '{verb}'."
        if verb == "go":
            return self._why_not_go(rest)
        if verb == "take":
            return self._why_not_take(rest)
        if verb == "unlock":
            return self._why_not_unlock(rest)
        if verb in DIRECTIONS:
            return f"unknown command '{verb}'; to move, type 'go {verb}'."
        return f"unknown command{_quoted(verb)}. {GRAMMAR}"

    def _exit(self, direction: str) -> tuple[int, int]:
        return self.world.exits[self._state[0]][DIRECTIONS.index(direction)]

    def _why_not_go(self, direction: str) -> str:
        if not direction:
            return f"go where? Type 'go <direction>'; {_DIRECTION_HINT}"
        if direction not in DIRECTIONS:
            return f"unknown direction{_quoted(direction)}; {_DIRECTION_HINT}"
        target, lock = self._exit(direction)
        if target < 0:
            return f"there is no exit to the {direction}."
        # Admissible otherwise, so the door must be locked.
        return f"the door to the {direction} is locked ({self.world.doors[lock].name})."

    def _item_named(self, name: str) -> int | None:
        return next((i for i, it in enumerate(self.world.items) if it.name == name), None)

    def _why_not_take(self, name: str) -> str:
        if not name:
            return "take what? Type 'take <item>', e.g. 'take red key'."
        first = name.split(" ", 1)[0]
        if first in ("the", "a", "an"):
            return f"name the item without '{first}', e.g. 'take red key'."
        index = self._item_named(name)
        if index is not None and self._state[1] >> index & 1:
            return f"you already have the {name}."
        return f"there is no{_quoted(name) or ' such item'} here."

    def _why_not_unlock(self, rest: str) -> str:
        usage = "type 'unlock <direction> door with <key>', e.g. 'unlock north door with red key'."
        words = rest.split(" ", 3)
        if len(words) < 4 or words[1:3] != ["door", "with"]:
            return usage
        direction, key_name = words[0], words[3]
        if direction not in DIRECTIONS:
            return f"unknown direction{_quoted(direction)}; {_DIRECTION_HINT}"
        target, lock = self._exit(direction)
        world, (_, taken, unlocked) = self.world, self._state
        if target < 0:
            return f"there is no door to the {direction}."
        if lock < 0:
            return f"the way {direction} has no lock."
        if unlocked >> lock & 1:
            return f"the {world.doors[lock].name} to the {direction} is already unlocked."
        index = self._item_named(key_name)
        if index is None or not taken >> index & 1:
            return f"you do not have {'the ' + key_name if _quoted(key_name) else 'that'}."
        if world.items[index].opens < 0 and not key_name.endswith(" key"):
            return f"the {key_name} is not a key."
        # Admissible otherwise, so the key must be the wrong one.
        return f"the {key_name} does not fit the {world.doors[lock].name}."
