"""ALFWorld household tasks in text, played through the `alfworld` package's own engine.

* `turnwise/ALFWorld-v0` (`ALFWorldEnv`): the official game sets (train, valid_seen,
  valid_unseen); needs the data of `alfworld-download` under `$ALFWORLD_DATA`.
* `turnwise/ALFWorldGen-v0` (`ALFWorldGenEnv`): ALFWorld-format games generated offline from the
  package's domain, grammar and floorplans, each checked winnable by alfworld's expert. They are
  not the official games: scores are not comparable with published ones.

See `docs/envs/alfworld.md`. Importing this package does not import textworld or alfworld; the
first reset does.
"""

from .env import SCENES, ALFWorldEnv, ALFWorldGenEnv
from .tasks import ALFWorldDataError

__all__ = ["SCENES", "ALFWorldDataError", "ALFWorldEnv", "ALFWorldGenEnv"]
