"""TextWorld challenges and their settings: validation, canonical tags, and game making.

A configuration is a challenge name plus its settings. The four standard challenges are
textworld's own (`textworld.challenges`): their settings are parsed by the argument parser each
challenge registers for `tw-make`, so names, types, choices and defaults are textworld's, not a
copy of them. `custom` makes a game with `textworld.generator.make_game` from world and quest
sizes.

Two settings follow the split unless you pin them: `tw-cooking`'s `split` (its food items and
preparations come in train/valid/test subsets, as in the First TextWorld Problems) and
`tw-simple`'s `test` (test games use foods no train game has).

Example:
    >>> config = ChallengeConfig.of("custom", {"nb_rooms": 4, "quest_length": "5"})
    >>> config.tag
    'nb_objects6+nb_rooms4+quest_breadth1+quest_length5'
    >>> config.settings_for("valid") == config.settings
    True
    >>> ChallengeConfig.of("custom", {"rooms": 4})
    Traceback (most recent call last):
    ...
    ValueError: bad settings for custom: unrecognized arguments: --rooms 4; usage: custom [--nb-rooms NB_ROOMS] [--nb-objects NB_OBJECTS] [--quest-length QUEST_LENGTH] [--quest-breadth QUEST_BREADTH]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["CHALLENGES", "ChallengeConfig", "make_game"]

Settings = dict[str, Any]

#: Challenges this env can make: textworld's four, then `custom`.
CHALLENGES = ("tw-coin_collector", "tw-treasure_hunter", "tw-simple", "tw-cooking", "custom")

# Values for the settings textworld requires but gives no default.
_REQUIRED_DEFAULTS: dict[str, Settings] = {
    "tw-coin_collector": {"level": 5},
    "tw-treasure_hunter": {"level": 1},
    "tw-simple": {"rewards": "dense", "goal": "detailed"},
}
# Settings that follow the env's split unless given: name -> split -> value.
_SPLIT_SETTINGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "tw-cooking": ("split", lambda split: split),
    "tw-simple": ("test", lambda split: split == "test"),
}
# Generous turn limits: published TextWorld setups allow 50-100 steps; long coin-collector and
# custom quests get twice (coin collector) or four times (custom) their quest length.
_BASE_MAX_TURNS = 100


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing and exiting."""

    def error(self, message: str) -> Any:  # argparse's documented hook
        raise ValueError(message)


def _custom_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nb-rooms", type=int, default=3, help="rooms in the world")
    parser.add_argument("--nb-objects", type=int, default=6, help="objects, at least")
    parser.add_argument("--quest-length", type=int, default=3, help="actions the quest needs")
    parser.add_argument("--quest-breadth", type=int, default=1, help="subquests (1: linear)")


@cache
def _parser(challenge: str) -> _Parser:
    parser = _Parser(prog=challenge, add_help=False)
    if challenge == "custom":
        _custom_arguments(parser)
    else:
        import textworld.challenges

        _, _, add_arguments = textworld.challenges.CHALLENGES[challenge]
        add_arguments(parser)
    return parser


def _argv(settings: Mapping[str, Any]) -> list[str]:
    """`settings` as `tw-make` command-line arguments (booleans are flags)."""
    argv = []
    for key, value in settings.items():
        flag = "--" + str(key).replace("_", "-")
        if isinstance(value, bool):
            if value:
                argv.append(flag)
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def _tag_part(key: str, value: Any) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return key
    if isinstance(value, int):
        return f"{key}{value}"
    return f"{key}-{value}"


def _tag(settings: Mapping[str, Any]) -> str:
    parts = [_tag_part(k, settings[k]) for k in sorted(settings)]
    return "+".join(p for p in parts if p) or "default"


@dataclass(frozen=True)
class ChallengeConfig:
    """A challenge and its complete, validated settings (defaults filled in).

    Build it with `ChallengeConfig.of`. `settings` holds every setting except the ones that
    follow the split (see the module docstring), unless they were pinned.
    """

    challenge: str
    items: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, challenge: str, settings: Mapping[str, Any] | None = None) -> ChallengeConfig:
        """Validate `settings` for `challenge`; raise `ValueError` naming what is wrong."""
        if challenge not in CHALLENGES:
            raise ValueError(f"unknown challenge {challenge!r}; choose one of {CHALLENGES}")
        given = dict(settings or {})
        for key in given:
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"setting names are identifiers, got {key!r}")
        follow = _SPLIT_SETTINGS.get(challenge)
        parsed = vars(_parse(challenge, {**_REQUIRED_DEFAULTS.get(challenge, {}), **given}))
        if follow is not None and follow[0] not in given:
            del parsed[follow[0]]
        _check_ranges(challenge, parsed)
        return cls(challenge, tuple(sorted(parsed.items())))

    @property
    def settings(self) -> Settings:
        """The settings as a dict (those that follow the split left out)."""
        return dict(self.items)

    @property
    def tag(self) -> str:
        """The settings as a short canonical string, as task ids show them.

        A pinned split-following setting is always spelled out (`test-false`), so that it
        never reads like the same setting left to follow the split.
        """
        settings = self.settings
        follow = _SPLIT_SETTINGS.get(self.challenge)
        if follow is not None and follow[0] in settings:
            value = settings.pop(follow[0])
            settings[follow[0]] = str(value).lower()
        return _tag(settings)

    def settings_for(self, split: str) -> Settings:
        """The settings games of `split` are made with."""
        settings = self.settings
        follow = _SPLIT_SETTINGS.get(self.challenge)
        if follow is not None and follow[0] not in settings:
            settings[follow[0]] = follow[1](split)
        return settings

    def cache_key(self, split: str) -> str:
        """Everything that determines the games of `split`, as a folder name."""
        return f"{self.challenge}/{_tag(self.settings_for(split))}"

    def default_max_turns(self) -> int:
        """The turn limit used unless one is given (see `_BASE_MAX_TURNS`).

        Example:
            >>> ChallengeConfig.of("custom", {"quest_length": 40}).default_max_turns()
            160
        """
        settings = self.settings
        if self.challenge == "tw-coin_collector":
            return max(_BASE_MAX_TURNS, 2 * ((settings["level"] - 1) % 100 + 1))
        if self.challenge == "custom":
            return max(_BASE_MAX_TURNS, 4 * settings["quest_length"] * settings["quest_breadth"])
        return _BASE_MAX_TURNS


def _parse(challenge: str, settings: Mapping[str, Any]) -> argparse.Namespace:
    try:
        return _parser(challenge).parse_args(_argv(settings))
    except ValueError as exc:
        usage = " ".join(_parser(challenge).format_usage().split())
        raise ValueError(f"bad settings for {challenge}: {exc}; {usage}") from None


def _check_ranges(challenge: str, settings: Mapping[str, Any]) -> None:
    """Ranges textworld only checks deep inside generation, checked up front."""
    level: int = settings.get("level", 0)
    if challenge == "tw-coin_collector" and not 1 <= level <= 300:
        raise ValueError(f"tw-coin_collector levels are 1-300, got {level}")
    if (
        challenge == "tw-coin_collector"
        and ((level - 1) // 100 + 1) * ((level - 1) % 100 + 1) > 100
    ):
        raise ValueError(
            f"tw-coin_collector level {level} needs over 100 rooms (textworld's limit)"
        )
    if challenge == "tw-treasure_hunter" and not 1 <= level <= 30:
        raise ValueError(f"tw-treasure_hunter levels are 1-30, got {level}")
    if challenge == "tw-cooking" and not 0 <= settings["take"] <= settings["recipe"]:
        raise ValueError("tw-cooking needs 0 <= take <= recipe")
    if challenge == "custom":
        for key in ("nb_rooms", "quest_length", "quest_breadth"):
            if settings[key] < 1:
                raise ValueError(f"custom {key} must be at least 1, got {settings[key]}")
        if settings["nb_rooms"] > 100:
            raise ValueError("custom games have at most 100 rooms (textworld's limit)")


def make_game(challenge: str, settings: Mapping[str, Any], seed: int) -> Any:
    """Make (not compile) the `textworld.Game` of `challenge` with `settings` and `seed`.

    Seeds textworld's global generator too, since some generation steps draw from it.
    """
    import textworld
    import textworld.challenges
    import textworld.generator

    textworld.g_rng.set_seed(seed)
    options = textworld.GameOptions()
    options.seeds = seed
    if challenge == "custom":
        options.nb_rooms = settings["nb_rooms"]
        options.nb_objects = settings["nb_objects"]
        options.quest_length = settings["quest_length"]
        options.quest_breadth = settings["quest_breadth"]
        return textworld.generator.make_game(options)
    _, make, _ = textworld.challenges.CHALLENGES[challenge]
    return make(settings=dict(settings), options=options)
