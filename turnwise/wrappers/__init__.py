"""Wrappers that each do one thing to a turnwise env.

* `ProcessRewards` — adds process-reward hooks as named, weighted reward terms.
* `ParseAction` — turns raw model text into the env's action, keeping the text in `info`.
* `RecordTrajectory` — records every episode as a `turnwise.Trajectory`.
* `SingleAgent` — one seat of a multi-agent (PettingZoo) env as a `turnwise.Env`.
"""

from turnwise.wrappers.parse_action import ParseAction
from turnwise.wrappers.process_rewards import ProcessRewards
from turnwise.wrappers.record import RecordTrajectory

__all__ = ["ParseAction", "ProcessRewards", "RecordTrajectory", "SingleAgent"]


def __getattr__(name: str) -> object:
    # SingleAgent pulls in PettingZoo; import it only when asked for.
    if name == "SingleAgent":
        from turnwise.wrappers.single_agent import SingleAgent

        return SingleAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
