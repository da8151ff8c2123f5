"""FactQA: search a small synthetic encyclopedia and answer a question with a gold answer.

`turnwise/FactQA-v0` is registered with the entry point `turnwise.envs.factqa.env:FactQAEnv`.
Its reset info carries `gold_answer`, which the IGPO trainer needs. See `docs/envs/factqa.md`.

Example:
    >>> import turnwise
    >>> env = turnwise.make("turnwise/FactQA-v0", difficulty="easy")
    >>> obs, info = env.reset(seed=0)
    >>> info["task_id"].startswith("easy-train-"), isinstance(info["gold_answer"], str)
    (True, True)
    >>> env.close()
"""

from .env import FactQAEnv

__all__ = ["FactQAEnv"]
