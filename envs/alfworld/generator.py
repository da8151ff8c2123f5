"""Writing ALFWorld-format games (`game.tw-pddl` + `traj_data.json`) offline.

Everything comes from what the `alfworld` package ships: the PDDL domain (`alfred.pddl`), the
text grammar (`alfred.twl2`), the 120 AI2-THOR floorplans (`gen/layouts`: each one's
receptacles with their poses, the object classes it holds and its walkable points), the
object/receptacle constants (`gen/constants.py`: what fits where, what can be cleaned, heated,
cooled, toggled) and the goal library (`gen/goal_library.py`: each task type's PDDL goal and
its task sentences).

A game is drawn from a seed alone (`random.Random`, whose stream Python keeps stable):

1. a floorplan of a room type where ALFRED poses the task type (heat and cool in kitchens,
   look-at in living rooms and bedrooms, clean in kitchens and bathrooms, the rest anywhere);
2. the task: an object class present in the floorplan that the task can use, a receptacle
   class it can be put in (not the appliance that changes it), a lamp for look-at;
3. the receptacles: the ones the task needs (a target, the microwave/fridge/sink, a place for
   the objects and the lamp), then others of the floorplan up to the scene size;
4. the objects: 1–2 of the target class (2–3 for pick-two), never already in a target
   receptacle, then distractors of the floorplan's other classes, each in a receptacle that
   can hold it; the agent starts at a walkable point with no receptacle.

Names follow AI2-THOR ids (`Apple|+00.68|+00.95|-02.20`, mangled into PDDL ids as ALFWorld
does), so alfworld's demangler shows them as `apple 1`. Receptacle ids and poses are the
floorplan's own; the ones a floorplan lists only as a class get a pose on its walkable grid.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .engine import TASK_TYPES

__all__ = ["GENERATOR_VERSION", "Game", "SceneSize", "generate", "write_game"]

#: Bump when the same seed would give a different game (that is a new env version).
GENERATOR_VERSION = 0

# The room types ALFRED poses each task in (its GOALS_VALID), as floorplan number ranges.
_ROOMS = {
    "kitchen": range(1, 31),
    "livingroom": range(201, 231),
    "bedroom": range(301, 331),
    "bathroom": range(401, 431),
}
_TASK_ROOMS = {
    "pick_and_place_simple": ("kitchen", "livingroom", "bedroom", "bathroom"),
    "look_at_obj_in_light": ("livingroom", "bedroom"),
    "pick_clean_then_place_in_recep": ("kitchen", "bathroom"),
    "pick_heat_then_place_in_recep": ("kitchen",),
    "pick_cool_then_place_in_recep": ("kitchen",),
    "pick_two_obj_and_place": ("kitchen", "livingroom", "bedroom", "bathroom"),
}
# The appliance each state change needs, and the object property that allows it.
_APPLIANCE = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable"),
}
_LAMPS = ("DeskLamp", "FloorLamp")
# Object abilities the domain's actions check, by their names in the constants.
_ABILITIES = ("Cleanable", "Heatable", "Coolable")
# Where a lamp stands; the constants list no receptacle for lamps (THOR lamps are fixed).
_LAMP_HOLDERS = ("Desk", "SideTable", "Dresser", "Shelf", "CoffeeTable", "DiningTable", "TVStand")


@dataclass(frozen=True)
class SceneSize:
    """How big a generated scene is.

    Attributes:
        receptacles: inclusive range of receptacles, or None for every receptacle of the
            floorplan (a full room: 24–30 in most kitchens).
        distractors: inclusive range of objects besides the task's own.
    """

    receptacles: tuple[int, int] | None
    distractors: tuple[int, int]

    def __post_init__(self) -> None:
        if self.receptacles is not None:
            lo, hi = self.receptacles
            if not 3 <= lo <= hi <= 60:
                raise ValueError(f"receptacles must satisfy 3 <= min <= max <= 60, got {lo, hi}")
        lo, hi = self.distractors
        if not 0 <= lo <= hi <= 100:
            raise ValueError(f"distractors must satisfy 0 <= min <= max <= 100, got {lo, hi}")

    @property
    def tag(self) -> str:
        r = "all" if self.receptacles is None else _span(self.receptacles)
        return f"r{r}d{_span(self.distractors)}"


def _span(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}to{pair[1]}"


@dataclass
class Game:
    """A generated game before it is written: the task, the scene and the PDDL problem."""

    task_type: str
    floorplan: int
    object_target: str
    parent_target: str
    toggle_target: str
    receptacles: dict[str, tuple[str, str]]
    """Receptacle id -> (class, location id)."""
    objects: dict[str, tuple[str, str]]
    """Object id -> (class, id of the receptacle it starts in)."""
    start: str
    description: str
    seed: int
    problem: str = ""
    canonical: dict[str, Any] = field(default_factory=dict)

    @property
    def canonical_hash(self) -> str:
        """SHA-256 of the game's content (task, receptacles, object classes per place, start)."""
        text = json.dumps(self.canonical, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------- package data
@cache
def _package() -> tuple[Path, Any, Any]:
    import alfworld
    import alfworld.gen.constants as constants
    import alfworld.gen.goal_library as goals

    return Path(alfworld.__file__).parent, constants, goals


@cache
def _domain_and_grammar() -> tuple[str, str]:
    root = _package()[0] / "data"
    return (root / "alfred.pddl").read_text(), (root / "alfred.twl2").read_text()


@cache
def _rules() -> tuple[dict[str, frozenset[str]], frozenset[str], dict[str, frozenset[str]]]:
    """(receptacle class -> object classes it holds, static receptacle classes, properties)."""
    constants = _package()[1]
    movable = set(constants.MOVABLE_RECEPTACLES)
    holds = {r: frozenset(o for o in objs) for r, objs in constants.VAL_RECEPTACLE_OBJECTS.items()}
    static = frozenset(r for r in holds if r not in movable)
    props = {k: frozenset(v) for k, v in constants.VAL_ACTION_OBJECTS.items()}
    return holds, static, props


@cache
def _pickupable() -> frozenset[str]:
    holds, _, _ = _rules()
    known = set(_package()[1].OBJECTS)
    found = {o for objs in holds.values() for o in objs if o in known and "Sliced" not in o}
    return frozenset(found)


@dataclass(frozen=True)
class _Floorplan:
    number: int
    receptacles: tuple[tuple[str, str, tuple[float, float, int, int]], ...]
    """(id, class, pose x, z, rotation, horizon) of each receptacle."""
    classes: frozenset[str]
    points: tuple[tuple[float, float], ...]


@cache
def _floorplan(number: int) -> _Floorplan:
    import numpy as np

    root = _package()[0] / "gen" / "layouts"
    with open(root / f"FloorPlan{number}-objects.json", encoding="utf-8") as f:
        classes = frozenset(json.load(f))
    with open(root / f"FloorPlan{number}-openable.json", encoding="utf-8") as f:
        poses = json.load(f)
    points = tuple((float(x), float(z)) for x, z in np.load(root / f"FloorPlan{number}-layout.npy"))
    _, static, _ = _rules()
    receptacles = []
    for rid in sorted(poses):
        parts = rid.split("|")
        cls = parts[-1] if parts[-1].endswith("Basin") else parts[0]
        if cls in static:
            x, z, rot, hor = poses[rid]
            receptacles.append((rid, cls, (float(x), float(z), int(rot), int(hor))))
    # Receptacle classes the floorplan holds but lists no pose for get one instance on the grid.
    listed = {cls for _, cls, _ in receptacles}
    for i, cls in enumerate(sorted(c for c in classes if c in static and c not in listed)):
        x, z = points[(i * 7919) % len(points)]
        prefix = {"SinkBasin": "Sink", "BathtubBasin": "Bathtub"}.get(cls)
        coords = f"{x:+06.2f}|+00.90|{z:+06.2f}"
        rid = f"{prefix}|{coords}|{cls}" if prefix else f"{cls}|{coords}"
        receptacles.append((rid, cls, (x, z, 90 * (i % 4), 30)))
    return _Floorplan(number, tuple(receptacles), classes, points)


def floorplans(task_type: str) -> list[int]:
    """Floorplan numbers a task type may be generated in."""
    return [n for room in _TASK_ROOMS[task_type] for n in _ROOMS[room]]


# ---------------------------------------------------------------------------- drawing a game
class _Unsuitable(Exception):
    """This floorplan cannot pose the drawn task; draw again."""


def generate(task_type: str, size: SceneSize, seed: int) -> Game:
    """The game of `task_type` drawn from `seed` (no file is written; see `write_game`)."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; choose from {', '.join(TASK_TYPES)}")
    rng = random.Random(f"alfworld-gen/{GENERATOR_VERSION}/{task_type}/{size.tag}/{seed}")
    options = floorplans(task_type)
    for _ in range(200):
        try:
            game = _draw(task_type, size, rng, _floorplan(rng.choice(options)), seed)
        except _Unsuitable:
            continue
        game.problem = _problem(game)
        return game
    raise RuntimeError(f"could not draw a {task_type} game of size {size} from seed {seed}")


def _draw(task_type: str, size: SceneSize, rng: random.Random, plan: _Floorplan, seed: int) -> Game:
    holds, _, props = _rules()
    here = {cls for _, cls, _ in plan.receptacles}
    pickup = sorted(c for c in plan.classes if c in _pickupable())
    appliance, needed_prop = _APPLIANCE.get(task_type, (None, None))
    if appliance == "SinkBasin" and "SinkBasin" not in here and "BathtubBasin" in here:
        appliance = "BathtubBasin"  # the expert cleans in a bathtub where there is no sink
    if appliance is not None and appliance not in here:
        raise _Unsuitable
    candidates = [o for o in pickup if needed_prop is None or o in props[needed_prop]]
    if not candidates:
        raise _Unsuitable
    obj = rng.choice(candidates)
    toggle = ""
    if task_type == "look_at_obj_in_light":
        lamps = sorted(c for c in plan.classes if c in _LAMPS)
        if not lamps or not any(h in here for h in _LAMP_HOLDERS):
            raise _Unsuitable
        toggle, parent = rng.choice(lamps), ""
    else:
        parents = sorted(r for r in here if obj in holds[r] and r != appliance)
        if not parents:
            raise _Unsuitable
        parent = rng.choice(parents)

    # Receptacles: what the task needs first, then others up to the scene size.
    pool = list(plan.receptacles)
    rng.shuffle(pool)
    chosen: list[tuple[str, str, tuple[float, float, int, int]]] = []

    def take(accept: Any) -> None:
        for entry in pool:
            if entry not in chosen and accept(entry[1]):
                chosen.append(entry)
                return
        raise _Unsuitable

    if parent:
        take(lambda c: c == parent)
    if appliance is not None:
        take(lambda c: c == appliance)
    if toggle:
        take(lambda c: c in _LAMP_HOLDERS)
    take(lambda c: c != parent and obj in holds[c])  # somewhere for the targets to start
    wanted = len(pool) if size.receptacles is None else rng.randint(*size.receptacles)
    for entry in pool:
        if len(chosen) >= wanted:
            break
        if entry not in chosen:
            chosen.append(entry)

    receptacles, taken_locs = {}, set()
    for rid, cls, (x, z, rot, hor) in chosen:
        gx, gz = round(x / 0.25), round(z / 0.25)
        while f"{gx}|{gz}" in taken_locs:  # one location per receptacle, so views never mix
            gx += 1
        taken_locs.add(f"{gx}|{gz}")
        receptacles[rid] = (cls, f"loc|{gx}|{gz}|{rot // 90 % 4}|{hor}")

    objects: dict[str, tuple[str, str]] = {}

    def place(cls: str, allowed: Sequence[str]) -> bool:
        if not allowed:
            return False
        rid = rng.choice(sorted(allowed))
        rx, ry, rz = (float(v) for v in _coords(rid))
        n = len(objects)
        oid = f"{cls}|{rx + 0.01 * (n + 1):+06.2f}|{ry + 0.01 * n:+06.2f}|{rz:+06.2f}"
        objects[oid] = (cls, rid)
        return True

    starts = [r for r, (c, _) in receptacles.items() if c != parent and obj in holds[c]]
    n_targets = rng.randint(2, 3) if task_type == "pick_two_obj_and_place" else rng.randint(1, 2)
    for _ in range(n_targets):
        place(obj, starts)
    if toggle:
        place(toggle, [r for r, (c, _) in receptacles.items() if c in _LAMP_HOLDERS])
    others = [c for c in pickup if c != obj]
    for _ in range(rng.randint(*size.distractors) if others else 0):
        cls = rng.choice(others)
        place(cls, [r for r, (c, _) in receptacles.items() if cls in holds[c]])

    used = {loc.split("|", 1)[1].rsplit("|", 2)[0] for _, loc in receptacles.values()}
    free = [p for p in plan.points if f"{round(p[0] / 0.25)}|{round(p[1] / 0.25)}" not in used]
    if not free:
        raise _Unsuitable
    sx, sz = rng.choice(free)
    start = f"loc|{round(sx / 0.25)}|{round(sz / 0.25)}|{rng.randrange(4)}|30"

    templates = _package()[2].gdict[task_type]["templates"]
    description = rng.choice(templates).format(
        obj=obj.lower(), recep=parent.lower(), toggle=toggle.lower(), mrecep=""
    )
    game = Game(
        task_type, plan.number, obj, parent, toggle, receptacles, objects, start, description, seed
    )
    game.canonical = {
        "task": [task_type, obj, parent, toggle],
        "floorplan": plan.number,
        "receptacles": sorted(f"{rid}@{loc}" for rid, (_, loc) in receptacles.items()),
        "objects": sorted(f"{cls}@{rid}" for cls, rid in objects.values()),
        "start": start,
    }
    return game


def _coords(rid: str) -> tuple[str, str, str]:
    parts = rid.split("|")
    return parts[1], parts[2], parts[3]


# ---------------------------------------------------------------------------- PDDL
def mangle(thor_id: str) -> str:
    """An AI2-THOR id as ALFWorld writes it in PDDL (`|` -> `_bar_`, `-` -> `_minus_`, ...).

    Example:
        >>> mangle("Apple|+00.68|-02.20")
        'Apple_bar__plus_00_dot_68_bar__minus_02_dot_20'
    """
    for old, new in (("-", "_minus_"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_")):
        thor_id = thor_id.replace(old, new)
    return thor_id.replace(",", "_comma_")


def _problem(game: Game) -> str:
    holds, _, props = _rules()
    constants = _package()[1]
    openable = set(constants.OPENABLE_CLASS_LIST)
    movable = set(constants.MOVABLE_RECEPTACLES)
    objs: list[str] = ["agent1 - agent"]
    init: list[str] = [f"(atLocation agent1 {mangle(game.start)})"]
    locations = {game.start}
    for rid, (cls, loc) in sorted(game.receptacles.items()):
        r = mangle(rid)
        objs.append(f"{r} - receptacle")
        locations.add(loc)
        init += [f"(receptacleType {r} {cls}Type)", f"(receptacleAtLocation {r} {mangle(loc)})"]
        if cls in openable:
            init.append(f"(openable {r})")
    for oid, (cls, rid) in sorted(game.objects.items()):
        o = mangle(oid)
        objs.append(f"{o} - object")
        init += [
            f"(objectType {o} {cls}Type)",
            f"(inReceptacle {o} {mangle(rid)})",
            f"(objectAtLocation {o} {mangle(game.receptacles[rid][1])})",
        ]
        if cls in _LAMPS:
            init.append(f"(toggleable {o})")
            continue
        init.append(f"(pickupable {o})")
        if cls in movable:
            init.append(f"(isReceptacleObject {o})")
        init += [f"({prop.lower()} {o})" for prop in _ABILITIES if cls in props[prop]]
    objs += [f"{mangle(loc)} - location" for loc in sorted(locations)]
    rtypes = sorted({cls for cls, _ in game.receptacles.values()} | {game.parent_target} - {""})
    otypes = sorted({cls for cls, _ in game.objects.values()} | {game.object_target})
    objs += [f"{t}Type - rtype" for t in rtypes] + [f"{t}Type - otype" for t in otypes]
    init += [
        f"(canContain {r}Type {o}Type)" for r in rtypes for o in otypes if o in holds.get(r, ())
    ]
    goal = _package()[2].gdict[game.task_type]["pddl"].replace("#", "-")
    goal = goal.format(
        obj=game.object_target, recep=game.parent_target, toggle=game.toggle_target, mrecep=""
    )
    lines = [f"(define (problem plan_turnwise_{game.canonical_hash[:12]})", "(:domain alfred)"]
    lines += ["(:objects", *objs, ")", "(:init", *init, ")", goal.strip()]
    return "\n".join(lines) + "\n"


def write_game(game: Game, directory: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `game.tw-pddl` and `traj_data.json` into `directory`; return the game file."""
    domain, grammar = _domain_and_grammar()
    directory.mkdir(parents=True, exist_ok=True)
    game_file = directory / "game.tw-pddl"
    data = {
        "pddl_domain": domain,
        "grammar": grammar.replace("UNKNOWN GOAL", game.description),
        "pddl_problem": game.problem,
        "solvable": True,
    }
    game_file.write_text(json.dumps(data), encoding="utf-8")
    traj = {
        "task_id": f"turnwise_{game.canonical_hash[:16]}",
        "task_type": game.task_type,
        "pddl_params": {
            "object_target": game.object_target,
            "parent_target": game.parent_target,
            "toggle_target": game.toggle_target,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "scene": {"floor_plan": f"FloorPlan{game.floorplan}", "scene_num": game.floorplan},
        "turk_annotations": {"anns": [{"task_desc": game.description, "votes": []}]},
        "turnwise": {
            "generator_version": GENERATOR_VERSION,
            "seed": game.seed,
            "canonical_hash": game.canonical_hash,
            **(extra or {}),
        },
    }
    (directory / "traj_data.json").write_text(json.dumps(traj, indent=1), encoding="utf-8")
    return game_file
