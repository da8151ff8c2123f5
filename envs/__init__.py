"""Built-in environments, one subpackage per family.

`register_all` registers every id with string entry points; no env module is imported until an
env is made, so `import turnwise` stays light whatever the families need.
"""

from __future__ import annotations

from turnwise.registry import register

__all__ = ["register_all"]


def register_all() -> None:
    """Register the built-in env ids (called by `import turnwise`)."""
    register(
        "turnwise/KeyDoor-v0",
        "turnwise.envs.keydoor:KeyDoorEnv",
        family="text",
        description="Rooms, keys and locked doors: a fast, dependency-free text world",
    )
    register(
        "turnwise/Dilemma-v0",
        "turnwise.envs.dilemma:DilemmaEnv",
        family="social",
        multi_agent=True,
        description="The iterated prisoner's dilemma between two players: the smallest social env",
    )
