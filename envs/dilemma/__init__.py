"""The iterated prisoner's dilemma, turnwise's smallest social (multi-agent) env.

`turnwise/Dilemma-v0` is a `turnwise.multiagent.ParallelEnv`; see `DilemmaEnv` for the rules and
`turnwise.envs.dilemma.game` for payoffs, tasks and the expert.
"""

from turnwise.envs.dilemma.env import DilemmaEnv
from turnwise.envs.dilemma.game import PAYOFFS, Payoffs, Task, parse_task

__all__ = ["PAYOFFS", "DilemmaEnv", "Payoffs", "Task", "parse_task"]
