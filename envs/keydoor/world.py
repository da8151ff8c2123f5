"""KeyDoor worlds: the procedural generator, the rules, and the optimal solver.

A world is a tree of rooms on a grid (so `north`/`south`/`east`/`west` mean what they say), some
of whose doors are locked. Each locked door has a key of its colour, placed where it can be
reached before that door is needed, so every world is solvable. A gold coin lies in a room far
from the start; distractor keys (of colours no door has) and objects lie anywhere.

The state of play is three integers, `(room, taken, unlocked)`: the room the player is in, a bit
mask of the items taken (nothing is ever dropped, so this is also the inventory) and a bit mask
of the locked doors opened so far. Everything here is text-free except the command strings and
the state key: presentation (the order in which things are listed) is the env's business.

Example:
    >>> config = WorldConfig(n_rooms=(4, 5), n_locked=(1, 2), n_distractors=(1, 1))
    >>> world = generate(config, seed=7)
    >>> world.distance(world.initial) == len(world.solution())
    True
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

__all__ = [
    "DIRECTIONS",
    "GOAL_ITEM",
    "KEY_COLOURS",
    "OBJECTS",
    "ROOM_NAMES",
    "Door",
    "Item",
    "Move",
    "State",
    "World",
    "WorldConfig",
    "generate",
]

DIRECTIONS = ("north", "south", "east", "west")
# Grid steps per direction; y grows southwards.
_DELTAS = ((0, -1), (0, 1), (1, 0), (-1, 0))
_OPPOSITE = (1, 0, 3, 2)

ROOM_NAMES = (
    "kitchen",
    "hall",
    "library",
    "study",
    "cellar",
    "attic",
    "garden",
    "bedroom",
    "bathroom",
    "pantry",
    "gallery",
    "workshop",
)
KEY_COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black")
OBJECTS = (
    "apple",
    "book",
    "candle",
    "feather",
    "lamp",
    "old map",
    "silver spoon",
    "teapot",
    "umbrella",
    "wooden box",
)
GOAL_ITEM = "gold coin"

State = tuple[int, int, int]
"""`(room, taken, unlocked)`: room index, bit mask of items taken, bit mask of doors unlocked."""

_T = TypeVar("_T")


class _Rng:
    """Integers drawn only from `random.Random.random()`.

    Python promises that `random()` gives the same stream for the same integer seed in every
    version, but not `randrange`, `choice` or `shuffle` (nor NumPy's `Generator`). Task worlds
    must never change under a versioned env id, so everything is derived from `random()`.
    """

    __slots__ = ("_random",)

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed).random

    def below(self, n: int) -> int:
        return int(self._random() * n)

    def between(self, low: int, high: int) -> int:
        return low + self.below(high - low + 1)

    def choice(self, seq: Sequence[_T]) -> _T:
        return seq[self.below(len(seq))]

    def sample(self, seq: Sequence[_T], k: int) -> list[_T]:
        pool = list(seq)
        for i in range(k):  # a partial Fisher-Yates shuffle
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def _check_range(name: str, value: tuple[int, int], low: int, high: int) -> None:
    lo, hi = value
    if not low <= lo <= hi <= high:
        raise ValueError(f"{name} must lie within [{low}, {high}] with min <= max, got {value}")


@dataclass(frozen=True)
class WorldConfig:
    """What the generator draws from: inclusive `(min, max)` ranges of counts.

    Example:
        >>> WorldConfig(n_rooms=(2, 3), n_locked=(0, 1), n_distractors=(0, 1)).tag
        'r2to3l0to1d0to1'
        >>> WorldConfig(n_rooms=(2, 2), n_locked=(2, 2), n_distractors=(0, 0))
        Traceback (most recent call last):
        ...
        ValueError: n_locked=(2, 2) is too many: with as few as 2 rooms, at most 1 door can be locked
    """

    n_rooms: tuple[int, int]
    """Number of rooms (at least 2, at most `len(ROOM_NAMES)`)."""
    n_locked: tuple[int, int]
    """Number of locked doors (each needs its own key colour)."""
    n_distractors: tuple[int, int]
    """Number of distractor items: keys that open nothing, or objects."""

    def __post_init__(self) -> None:
        _check_range("n_rooms", self.n_rooms, 2, len(ROOM_NAMES))
        _check_range("n_locked", self.n_locked, 0, len(KEY_COLOURS))
        _check_range("n_distractors", self.n_distractors, 0, len(OBJECTS))
        most = self.n_rooms[0] - 1  # a tree of n rooms has n - 1 doors
        if self.n_locked[1] > most:
            raise ValueError(
                f"n_locked={self.n_locked} is too many: with as few as {self.n_rooms[0]} rooms, "
                f"at most {most} door{'s' * (most > 1)} can be locked"
            )

    @property
    def tag(self) -> str:
        """A short, readable name of the configuration (used in task ids of custom configs)."""

        def part(letter: str, value: tuple[int, int]) -> str:
            lo, hi = value
            return f"{letter}{lo}" if lo == hi else f"{letter}{lo}to{hi}"

        return part("r", self.n_rooms) + part("l", self.n_locked) + part("d", self.n_distractors)


class Item(NamedTuple):
    """Something lying in a room that can be taken."""

    name: str
    room: int
    opens: int = -1
    """Index of the locked door this key opens; -1 for anything else."""
    goal: bool = False


class Door(NamedTuple):
    """A locked door between two rooms."""

    rooms: tuple[int, int]
    colour: str
    key: int
    """Index of the item that opens it."""

    @property
    def name(self) -> str:
        return f"{self.colour} door"


class Move(NamedTuple):
    """A state-changing command and where it leads."""

    kind: str
    """`go`, `take`, `unlock`, or `win` (taking the goal item)."""
    state: State
    target: int
    """The room entered, the item taken, or the door unlocked."""


@dataclass(eq=False)
class World:
    """One generated task: the map, the items, and the rules of play."""

    rooms: tuple[str, ...]
    positions: tuple[tuple[int, int], ...]
    exits: tuple[tuple[tuple[int, int], ...], ...]
    """`exits[room][direction] = (neighbour or -1, locked-door index or -1)`."""
    doors: tuple[Door, ...]
    items: tuple[Item, ...]
    start: int = 0

    def __post_init__(self) -> None:
        self.goal_item = next(i for i, item in enumerate(self.items) if item.goal)
        self.goal_room = self.items[self.goal_item].room
        # Items in each room in canonical (name) order: the order admissible actions list them.
        by_room: list[list[int]] = [[] for _ in self.rooms]
        for i in sorted(range(len(self.items)), key=self._name):
            by_room[self.items[i].room].append(i)
        self.items_in = tuple(tuple(row) for row in by_room)
        self._key_mask = sum(1 << door.key for door in self.doors)
        self._distance: dict[State, int] | None = None

    def _name(self, item: int) -> str:
        return self.items[item].name

    @property
    def initial(self) -> State:
        """The state every episode of this world starts in."""
        return (self.start, 0, 0)

    @property
    def layout_hash(self) -> str:
        """A digest of everything that makes the world what it is (and nothing else).

        Worlds with equal hashes play identically, whatever seed generated them; splits are
        deduplicated by it.
        """
        lo_x = min(x for x, _ in self.positions)
        lo_y = min(y for _, y in self.positions)
        rooms = sorted(
            (name, x - lo_x, y - lo_y)
            for name, (x, y) in zip(self.rooms, self.positions, strict=True)
        )
        passages = sorted(
            (*sorted((self.rooms[r], self.rooms[t])), self.doors[lock].colour if lock >= 0 else "")
            for r, row in enumerate(self.exits)
            for t, lock in row
            if t > r
        )
        items = sorted((item.name, self.rooms[item.room]) for item in self.items)
        canonical = repr((rooms, passages, items, self.rooms[self.start]))
        return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()

    # ---------------------------------------------------------------- rules
    def moves(self, state: State) -> dict[str, Move]:
        """The state-changing commands valid in `state`, in canonical order.

        Canonical order: `go` (north, south, east, west), then `take` (by item name), then
        `unlock` (by direction).
        """
        room, taken, unlocked = state
        out: dict[str, Move] = {}
        row = self.exits[room]
        for d, (target, lock) in enumerate(row):
            if target >= 0 and (lock < 0 or unlocked >> lock & 1):
                out["go " + DIRECTIONS[d]] = Move("go", (target, taken, unlocked), target)
        for i in self.items_in[room]:
            if not taken >> i & 1:
                item = self.items[i]
                kind = "win" if item.goal else "take"
                out["take " + item.name] = Move(kind, (room, taken | 1 << i, unlocked), i)
        for d, (_, lock) in enumerate(row):
            if lock >= 0 and not unlocked >> lock & 1:
                door = self.doors[lock]
                if taken >> door.key & 1:
                    command = f"unlock {DIRECTIONS[d]} door with {self.items[door.key].name}"
                    out[command] = Move("unlock", (room, taken, unlocked | 1 << lock), lock)
        return out

    def is_won(self, state: State) -> bool:
        """Whether the goal item has been taken."""
        return bool(state[1] >> self.goal_item & 1)

    def state_key(self, state: State) -> str:
        """Canonical text of the state: room, inventory (= items taken) and unlocked doors.

        Example:
            >>> world = generate(WorldConfig((2, 2), (0, 0), (0, 0)), seed=1)
            >>> world.state_key(world.initial) == f"room={world.rooms[0]};inventory=;unlocked="
            True
        """
        room, taken, unlocked = state
        inventory = ",".join(sorted(it.name for i, it in enumerate(self.items) if taken >> i & 1))
        opened = ",".join(sorted(d.name for i, d in enumerate(self.doors) if unlocked >> i & 1))
        return f"room={self.rooms[room]};inventory={inventory};unlocked={opened}"

    # ---------------------------------------------------------------- solver
    def distance(self, state: State) -> int:
        """The least number of state-changing commands from `state` to taking the goal item."""
        if self.is_won(state):
            return 0
        if self._distance is None:
            self._distance = self._solve()
        try:
            return self._distance[self._reduce(state)]
        except KeyError:
            raise ValueError(f"state {state} cannot be reached in this world") from None

    def expert(self, state: State) -> str | None:
        """The first command, in canonical order, on a shortest path to the goal."""
        if self.is_won(state):
            return None
        remaining = self.distance(state)
        for command, move in self.moves(state).items():
            if move.kind == "win" or self.distance(move.state) == remaining - 1:
                return command
        raise AssertionError("the solver's distance table is inconsistent")  # pragma: no cover

    def solution(self) -> list[str]:
        """The expert's commands from the initial state to the goal."""
        state, commands = self.initial, []
        while (command := self.expert(state)) is not None:
            commands.append(command)
            state = self.moves(state)[command].state
        return commands

    def _reduce(self, state: State) -> State:
        # Distractors never change how far the goal is, so the solver forgets them: its graph
        # stays small (at most rooms x 2^keys x 2^doors states) whatever the distractor count.
        room, taken, unlocked = state
        return (room, taken & self._key_mask, unlocked)

    def _solve(self) -> dict[State, int]:
        """Distances to the goal of every reachable (reduced) state, by two breadth-first passes."""
        start = self._reduce(self.initial)
        predecessors: dict[State, list[State]] = {start: []}
        frontier, winning = [start], []
        for state in frontier:  # forward: the reachable graph (the list grows while iterated)
            for move in self.moves(state).values():
                if move.kind == "win":
                    winning.append(state)
                    continue
                nxt = self._reduce(move.state)
                if nxt == state:
                    continue
                if nxt not in predecessors:
                    predecessors[nxt] = []
                    frontier.append(nxt)
                predecessors[nxt].append(state)
        distance = dict.fromkeys(winning, 1)
        queue = list(winning)
        for state in queue:  # backward from the states where the goal can be taken
            for prev in predecessors[state]:
                if prev not in distance:
                    distance[prev] = distance[state] + 1
                    queue.append(prev)
        if start not in distance:  # pragma: no cover - the generator guarantees solvability
            raise AssertionError("generated an unsolvable world")
        return distance


# -------------------------------------------------------------------- generation
def _neighbour(position: tuple[int, int], direction: int) -> tuple[int, int]:
    dx, dy = _DELTAS[direction]
    return position[0] + dx, position[1] + dy


def generate(config: WorldConfig, seed: int) -> World:
    """Generate the world of `seed` under `config`; the same arguments always give the same world.

    Rooms grow as a random tree on the grid from the start room. The coin goes to one of the
    deepest rooms; locked doors go first on the path to it (so they matter), then elsewhere.
    Keys are placed in order of their door's depth, each in a room reachable once the doors
    before it are open, which makes every world solvable.
    """
    rng = _Rng(seed)
    n_rooms = rng.between(*config.n_rooms)
    n_locked = rng.between(*config.n_locked)
    n_distractors = rng.between(*config.n_distractors)
    names = rng.sample(ROOM_NAMES, n_rooms)

    # The map: room 0 is the start; each new room opens off a free side of an earlier one.
    positions = [(0, 0)]
    occupied = {(0, 0)}
    parent, depth, entry = [-1], [0], [-1]  # entry: direction from the parent into the room
    sides = [(0, d, _neighbour((0, 0), d)) for d in range(4)]  # free sides, in creation order
    for new in range(1, n_rooms):
        room, d, here = rng.choice(sides)
        positions.append(here)
        occupied.add(here)
        parent.append(room)
        depth.append(depth[room] + 1)
        entry.append(d)
        sides = [side for side in sides if side[2] != here]
        for d in range(4):
            there = _neighbour(here, d)
            if there not in occupied:
                sides.append((new, d, there))

    deepest = max(depth)
    goal_room = rng.choice([r for r in range(1, n_rooms) if depth[r] >= max(1, deepest - 1)])
    path = []  # rooms on the way to the goal, each standing for the door into it
    room = goal_room
    while room != 0:
        path.append(room)
        room = parent[room]

    # Locked doors, named by the room behind them, in order of depth.
    on_path = rng.sample(path, min(n_locked, len(path)))
    elsewhere = [r for r in range(1, n_rooms) if r not in path]
    behind = sorted(on_path + rng.sample(elsewhere, n_locked - len(on_path)), key=depth.__getitem__)
    colours = rng.sample(KEY_COLOURS, n_locked)
    lock_of = [-1] * n_rooms
    for lock, room in enumerate(behind):
        lock_of[room] = lock
    locks_before = [0] * n_rooms  # bit mask of the locked doors between the start and a room
    for room in range(1, n_rooms):  # parents come before their children
        locks_before[room] = locks_before[parent[room]]
        if lock_of[room] >= 0:
            locks_before[room] |= 1 << lock_of[room]

    items: list[Item] = []
    doors: list[Door] = []
    for lock, room in enumerate(behind):
        opened = (1 << lock) - 1
        reachable = [r for r in range(n_rooms) if locks_before[r] & ~opened == 0]
        items.append(Item(f"{colours[lock]} key", rng.choice(reachable), opens=lock))
        doors.append(Door((parent[room], room), colours[lock], key=lock))

    spare_colours = [c for c in KEY_COLOURS if c not in colours]
    objects = list(OBJECTS)
    for _ in range(n_distractors):
        if spare_colours and rng.below(2) == 0:
            name = spare_colours.pop(rng.below(len(spare_colours))) + " key"
        else:
            name = objects.pop(rng.below(len(objects)))
        items.append(Item(name, rng.below(n_rooms)))
    items.append(Item(GOAL_ITEM, goal_room, goal=True))

    exits = [[(-1, -1)] * 4 for _ in range(n_rooms)]
    for room in range(1, n_rooms):
        exits[parent[room]][entry[room]] = (room, lock_of[room])
        exits[room][_OPPOSITE[entry[room]]] = (parent[room], lock_of[room])
    return World(
        rooms=tuple(names),
        positions=tuple(positions),
        exits=tuple(tuple(row) for row in exits),
        doors=tuple(doors),
        items=tuple(items),
    )
