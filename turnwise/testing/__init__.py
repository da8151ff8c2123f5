"""Conformance checks for turnwise envs: run them on any env you write.

* `check_env(env)` / `run_checks(env)` — a single-agent `turnwise.Env` (bare or wrapped);
* `check_parallel_env(env)` / `run_parallel_checks(env)` — a PettingZoo `ParallelEnv` that follows
  `turnwise.multiagent`'s conventions;
* `hostile_actions()` — the inputs every env must survive.

`check_*` raise `EnvCheckError` (an `AssertionError`, so pytest shows it as a test failure) listing
every failed check; `run_*` return the `CheckReport` instead. docs/checking-envs.md explains each
check and how to read its failures.
"""

from turnwise.testing.check_env import check_env, run_checks
from turnwise.testing.common import CheckReport, CheckResult, CheckSkipped, EnvCheckError
from turnwise.testing.hostile import HostileAction, hostile_actions
from turnwise.testing.multiagent import check_parallel_env, run_parallel_checks

__all__ = [
    "CheckReport",
    "CheckResult",
    "CheckSkipped",
    "EnvCheckError",
    "HostileAction",
    "check_env",
    "check_parallel_env",
    "hostile_actions",
    "run_checks",
    "run_parallel_checks",
]
