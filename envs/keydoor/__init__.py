"""KeyDoor: rooms, keys and locked doors — the built-in, dependency-free text world.

`turnwise/KeyDoor-v0` is registered with the entry point `turnwise.envs.keydoor:KeyDoorEnv`.
See `docs/envs/keydoor.md`.

Example:
    >>> import turnwise
    >>> env = turnwise.make("turnwise/KeyDoor-v0", difficulty="hard")
    >>> obs, info = env.reset(seed=0)
    >>> info["task_id"].startswith("hard-train-")
    True
    >>> env.close()
"""

from .env import KeyDoorEnv

__all__ = ["KeyDoorEnv"]
