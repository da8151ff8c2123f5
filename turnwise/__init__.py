"""turnwise: a gym for LLM agents that act over many turns, and the trainers that teach them.

    >>> import turnwise
    >>> env = turnwise.make("turnwise/KeyDoor-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step("look")
    >>> info["valid_action"], sorted(info["reward_terms"])
    (True, ['outcome', 'progress', 'valid'])
    >>> env.close()

Importing turnwise registers every built-in env id with Gymnasium (string entry points only:
nothing heavy is imported until an env is made), so `gymnasium.make("turnwise/...")` works too.
"""

from turnwise._version import __version__
from turnwise.core import Env, Observation, StepResult, UnknownTaskError
from turnwise.registry import EnvEntry, UnknownEnvError, list_envs, make, register
from turnwise.rewards import BatchProcessReward, ProcessReward, StepContext
from turnwise.trajectory import Trajectory, Turn

__all__ = [
    "BatchProcessReward",
    "Env",
    "EnvEntry",
    "Observation",
    "ProcessReward",
    "StepContext",
    "StepResult",
    "Trajectory",
    "Turn",
    "UnknownEnvError",
    "UnknownTaskError",
    "__version__",
    "list_envs",
    "make",
    "register",
]


def _register_builtin_envs() -> None:
    from turnwise.envs import register_all

    register_all()


_register_builtin_envs()
