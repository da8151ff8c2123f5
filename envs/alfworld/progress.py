"""The symbolic state of an ALFWorld game: its canonical key and the goal's progress.

Both are read from the engine's facts, never from the text. `Scene` holds what cannot change
during a game (object and receptacle types, where receptacles stand, which open); `Snapshot`
holds what can (where the agent is, what it holds, where objects lie, what is open, cleaned,
heated, cooled or switched on).

Progress is the share of the goal's sub-conditions that hold now. For an object `o` of the
target type, its conditions are, in the order an agent meets them:

* found — `o` is in view (in a receptacle where the agent stands, open if it opens), held, or
  already in a receptacle of the target type;
* held — the agent holds `o`, or `o` is already in a target receptacle;
* cleaned / heated / cooled (those task types only) — `o` has the property and is held or placed;
* placed — `o` is in a target receptacle (with the property, where one is asked for).

The share is the best object's count over the number of conditions; for two objects
(`pick_two_obj_and_place`) the two best objects count, over twice as many. For
`look_at_obj_in_light` the conditions are: the object found, the object held, and a lamp of the
target type switched on where the agent stands. Each condition implies the ones before it, so a
solved game has a share of exactly 1.0.

Example:
    >>> from textworld.logic import Proposition, Variable
    >>> def fact(name, *args):
    ...     return Proposition(name, [Variable(a, t) for a, t in args])
    >>> agent, apple = ("agent1", "agent"), ("apple_bar_1", "object")
    >>> table, loc = ("table_bar_1", "receptacle"), ("loc_bar_1", "location")
    >>> facts = [fact("objecttype", apple, ("appletype", "otype")),
    ...          fact("receptacletype", table, ("diningtabletype", "rtype")),
    ...          fact("receptacleatlocation", table, loc),
    ...          fact("atlocation", agent, loc), fact("inreceptacle", apple, table)]
    >>> spec = TaskSpec("pick_and_place_simple", "apple", "countertop")
    >>> scene = Scene(facts, {"apple_bar_1": "apple 1", "table_bar_1": "diningtable 1"})
    >>> snap = scene.snapshot(facts)
    >>> snap.key
    'at(diningtable 1);in(apple 1,diningtable 1)'
    >>> round(snap.progress(spec), 3)  # found: 1 of found, held, placed
    0.333
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .engine import TaskSpec

__all__ = ["Scene", "Snapshot"]

# Properties an object gains during a game, by PDDL predicate, and how the key names them.
_PROPERTIES = {
    "isclean": "clean",
    "ishot": "hot",
    "iscool": "cool",
    "istoggled": "toggled",
    "ison": "on",
    "issliced": "sliced",
}
# The property each state-change task type asks for.
_TASK_PROPERTY = {
    "pick_clean_then_place_in_recep": "isclean",
    "pick_heat_then_place_in_recep": "ishot",
    "pick_cool_then_place_in_recep": "iscool",
}


class Scene:
    """The facts of a game that never change, and the names to show them with."""

    def __init__(self, facts: Iterable[Any], names: Mapping[str, str]) -> None:
        self.names = dict(names)
        self.object_type: dict[str, str] = {}
        self.receptacle_type: dict[str, str] = {}
        self.receptacle_location: dict[str, str] = {}
        self.openable: set[str] = set()
        for f in facts:
            name, args = f.name, f.arguments
            if name == "objecttype":
                self.object_type[args[0].name] = _type_class(args[1].name)
            elif name == "receptacletype":
                self.receptacle_type[args[0].name] = _type_class(args[1].name)
            elif name == "receptacleatlocation":
                self.receptacle_location[args[0].name] = args[1].name
            elif name == "openable":
                self.openable.add(args[0].name)
        # Where the agent stands, named by the receptacles there (else by the location's name).
        at: dict[str, list[str]] = {}
        for recep, loc in self.receptacle_location.items():
            at.setdefault(loc, []).append(self.name(recep))
        self.place_name = {loc: ",".join(sorted(names_)) for loc, names_ in at.items()}

    def name(self, pddl_id: str) -> str:
        return self.names.get(pddl_id, pddl_id)

    def snapshot(self, facts: Iterable[Any]) -> Snapshot:
        """The changing part of the state described by `facts`."""
        return Snapshot(self, facts)


class Snapshot:
    """The state that can change, with its canonical `key` (equal keys, equal states)."""

    __slots__ = ("_key", "agent_at", "floor", "held", "inside", "opened", "properties", "scene")

    def __init__(self, scene: Scene, facts: Iterable[Any]) -> None:
        self.scene = scene
        self.agent_at = ""
        self.held: set[str] = set()
        self.inside: dict[str, str] = {}
        self.floor: dict[str, str] = {}
        self.opened: set[str] = set()
        self.properties: dict[str, set[str]] = {p: set() for p in _PROPERTIES}
        for f in facts:
            name = f.name
            if name == "inreceptacle":
                self.inside[f.arguments[0].name] = f.arguments[1].name
            elif name == "objectatlocation":
                self.floor[f.arguments[0].name] = f.arguments[1].name
            elif name == "atlocation":
                self.agent_at = f.arguments[1].name
            elif name == "holds":
                self.held.add(f.arguments[1].name)
            elif name == "opened":
                self.opened.add(f.arguments[0].name)
            elif name in _PROPERTIES:
                self.properties[name].add(f.arguments[0].name)
        self._key: str | None = None

    # ------------------------------------------------------------------ the key
    @property
    def key(self) -> str:
        """Sorted facts: `at(...)`, `holds(...)`, `in(obj,recep)`, `open(...)`, `hot(...)`, ...

        `objectatlocation` only counts for objects in no receptacle and not held (elsewhere it
        repeats `in`/`holds`); bookkeeping such as `checked` never counts, so going somewhere
        and back gives the same key.
        """
        if self._key is None:
            name = self.scene.name
            parts = [f"at({self.scene.place_name.get(self.agent_at, name(self.agent_at))})"]
            parts += [f"holds({name(o)})" for o in self.held]
            parts += [f"in({name(o)},{name(r)})" for o, r in self.inside.items()]
            parts += [
                f"on_floor({name(o)},{name(loc)})"
                for o, loc in self.floor.items()
                if o not in self.inside and o not in self.held
            ]
            parts += [f"open({name(r)})" for r in self.opened]
            for predicate, label in _PROPERTIES.items():
                parts += [f"{label}({name(o)})" for o in self.properties[predicate]]
            self._key = ";".join(sorted(parts))
        return self._key

    # ------------------------------------------------------------------ progress
    def visible(self, obj: str) -> bool:
        """Whether `obj` lies where the agent stands, in plain view (its receptacle open)."""
        recep = self.inside.get(obj)
        scene = self.scene
        if recep is None:
            return obj not in self.held and self.floor.get(obj) == self.agent_at
        if scene.receptacle_location.get(recep) != self.agent_at:
            return False
        return recep not in scene.openable or recep in self.opened

    def progress(self, spec: TaskSpec) -> float:
        """The share of `spec`'s goal conditions that hold now (see the module docstring)."""
        scene = self.scene
        targets = [o for o, t in scene.object_type.items() if t == spec.object_target]
        if spec.task_type == "look_at_obj_in_light":
            return self._look_progress(spec, targets)
        prop = _TASK_PROPERTY.get(spec.task_type)
        scores = sorted((self._object_score(o, spec, prop) for o in targets), reverse=True)
        per_object = 3 if prop is None else 4
        if spec.task_type == "pick_two_obj_and_place":
            return sum(scores[:2]) / (2 * per_object)
        return (scores[0] if scores else 0) / per_object

    def _object_score(self, obj: str, spec: TaskSpec, prop: str | None) -> int:
        recep = self.inside.get(obj)
        placed = recep is not None and self.scene.receptacle_type.get(recep) == spec.parent_target
        held = obj in self.held
        score = int(placed or held or self.visible(obj)) + int(placed or held)
        if prop is None:
            return score + int(placed)
        has = obj in self.properties[prop]
        return score + int(has and (held or placed)) + int(has and placed)

    def _look_progress(self, spec: TaskSpec, targets: list[str]) -> float:
        held = any(o in self.held for o in targets)
        found = held or any(self.visible(o) for o in targets)
        scene = self.scene
        lamp_on = any(
            scene.object_type.get(lamp) == spec.toggle_target
            and scene.receptacle_location.get(self.inside.get(lamp, "")) == self.agent_at
            for lamp in self.properties["istoggled"]
        )
        return (int(found) + int(held) + int(lamp_on)) / 3


def _type_class(type_id: str) -> str:
    """`appletype` -> `apple` (type constants are class names plus `Type`, lower-cased)."""
    return type_id[:-4] if type_id.endswith("type") else type_id
