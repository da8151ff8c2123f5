"""TextWorld: `turnwise/TextWorld-v0`, games of the real `textworld` engine with turn-level rewards.

Registered with the entry point `turnwise.envs.textworld:TextWorldEnv`; needs
`pip install turnwise[text]`. See `docs/envs/textworld.md`.
"""

from .env import TextWorldEnv

__all__ = ["TextWorldEnv"]
