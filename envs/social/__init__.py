"""Social envs: curated TextArena games and judged open-ended scenarios, as PettingZoo envs.

* `turnwise/TextArena-v0` (`TextArenaEnv`): negotiation, deception, communication, repeated
  dilemmas and cooperation games from TextArena, one seat per player.
* `turnwise/Social-v0` (`SocialEnv`): Sotopia-style scenarios, two characters with private goals,
  scored by an LLM judge on seven dimensions (`turnwise.envs.social.rubric`).

See docs/envs/social.md.
"""

from turnwise.envs.social.arena import CURATED_GAMES, TextArenaEnv
from turnwise.envs.social.env import SocialEnv
from turnwise.envs.social.scenarios import Character, Scenario, load_scenarios, shipped_scenarios

__all__ = [
    "CURATED_GAMES",
    "Character",
    "Scenario",
    "SocialEnv",
    "TextArenaEnv",
    "load_scenarios",
    "shipped_scenarios",
]
