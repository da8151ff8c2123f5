"""Scenarios of `turnwise/Social-v0`: a setting, two characters, their relationship and goals.

The shipped set (`data/scenarios.jsonl`, written for turnwise) is read by `shipped_scenarios()`;
`load_scenarios(path)` reads any file in the same JSON-lines format, one scenario per line:

.. code-block:: json

    {"id": "sublet-deposit", "split": "train", "category": "negotiation",
     "setting": "...", "relationship": "friends",
     "characters": [{"name": "...", "age": 31, "occupation": "...", "personality": "...",
                     "background": "...", "secret": "..."}, {...}],
     "goals": ["goal of the first character", "goal of the second"]}

A broken file raises `ScenarioError` naming the line and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORIES",
    "Character",
    "Scenario",
    "ScenarioError",
    "load_scenarios",
    "shipped_scenarios",
]

CATEGORIES = (
    "negotiation", "persuasion", "cooperation", "conflict", "exchange", "accommodation",
    "deception",
)  # fmt: skip
_CHARACTER_KEYS = ("name", "age", "occupation", "personality", "background", "secret")
_DATA = Path(__file__).with_name("data") / "scenarios.jsonl"


class ScenarioError(ValueError):
    """A scenario file that cannot be read; the message names the line and the problem."""


@dataclass(frozen=True)
class Character:
    """One side of a scenario. The `secret` is known to the character and the judge only."""

    name: str
    age: int
    occupation: str
    personality: str
    background: str
    secret: str

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    def public(self) -> str:
        """What the other character knows at the start: name, age, occupation, manner."""
        return f"{self.name}, {self.age}, {self.occupation}; {self.personality}"

    def profile(self) -> str:
        """The whole profile, as the character itself (and the judge) sees it."""
        return (
            f"{self.name}, {self.age}, {self.occupation}. Personality: {self.personality}. "
            f"Background: {self.background} Secret: {self.secret}"
        )


@dataclass(frozen=True)
class Scenario:
    """A social scenario: two characters, a setting, their relationship and private goals."""

    id: str
    split: str
    category: str
    setting: str
    relationship: str
    characters: tuple[Character, Character]
    goals: tuple[str, str]

    @classmethod
    def from_dict(cls, data: Any) -> Scenario:
        """Build from one JSON object; `ScenarioError` on anything missing or mistyped."""
        if not isinstance(data, dict):
            raise ScenarioError(f"a scenario is a JSON object, got {type(data).__name__}")
        text = {}
        for key in ("id", "split", "category", "setting", "relationship"):
            value = data.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ScenarioError(f"scenario {data.get('id')!r}: {key!r} must be a string")
            text[key] = value.strip()
        if text["category"] not in CATEGORIES:
            raise ScenarioError(
                f"scenario {text['id']!r}: unknown category {text['category']!r}; "
                f"one of {', '.join(CATEGORIES)}"
            )
        people, goals = data.get("characters"), data.get("goals")
        if not isinstance(people, list) or len(people) != 2:
            raise ScenarioError(f"scenario {text['id']!r}: 'characters' must list two characters")
        if not (
            isinstance(goals, list) and len(goals) == 2 and all(isinstance(g, str) for g in goals)
        ):
            raise ScenarioError(f"scenario {text['id']!r}: 'goals' must list two strings")
        characters = tuple(_character(text["id"], p) for p in people)
        if characters[0].name == characters[1].name:
            raise ScenarioError(f"scenario {text['id']!r}: the two characters share a name")
        return cls(
            id=text["id"],
            split=text["split"],
            category=text["category"],
            setting=text["setting"],
            relationship=text["relationship"],
            characters=(characters[0], characters[1]),
            goals=(goals[0].strip(), goals[1].strip()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "split": self.split,
            "category": self.category,
            "setting": self.setting,
            "relationship": self.relationship,
            "characters": [{k: getattr(c, k) for k in _CHARACTER_KEYS} for c in self.characters],
            "goals": list(self.goals),
        }


def _character(scenario: str, data: Any) -> Character:
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {scenario!r}: a character is a JSON object")
    values: dict[str, Any] = {}
    for key in _CHARACTER_KEYS:
        value = data.get(key)
        if key == "age":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 130:
                raise ScenarioError(f"scenario {scenario!r}: a character's age must be an integer")
        elif not isinstance(value, str) or not value.strip():
            raise ScenarioError(f"scenario {scenario!r}: a character's {key!r} must be a string")
        else:
            value = value.strip()
        values[key] = value
    return Character(**values)


def load_scenarios(path: str | Path) -> list[Scenario]:
    """Read a JSON-lines scenario file; ids must be unique."""
    path = Path(path)
    scenarios: list[Scenario] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read scenarios from {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            scenario = Scenario.from_dict(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{path} line {n}: not JSON ({exc.msg})") from exc
        except ScenarioError as exc:
            raise ScenarioError(f"{path} line {n}: {exc}") from exc
        if scenario.id in seen:
            raise ScenarioError(f"{path} line {n}: the id {scenario.id!r} appears twice")
        seen.add(scenario.id)
        scenarios.append(scenario)
    if not scenarios:
        raise ScenarioError(f"{path} holds no scenarios")
    return scenarios


@cache
def _shipped() -> tuple[Scenario, ...]:
    return tuple(load_scenarios(_DATA))


def shipped_scenarios(split: str | None = None) -> Sequence[Scenario]:
    """The scenarios shipped with turnwise (of `split`, when given), in file order."""
    return [s for s in _shipped() if split is None or s.split == split]
